"""OCR of scanned PDFs: the ocr_job table; a form PDF's text source and its agreement with
its Word form

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:07:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocr_job",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", service.models.UTCDateTime(), nullable=True),
        sa.Column("reading", sa.JSON(), nullable=True),
        sa.Column("problem", sa.JSON(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", service.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", service.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("ocr_job") as batch:
        batch.create_index(batch.f("ix_ocr_job_status"), ["status"], unique=False)
    with op.batch_alter_table("attachment") as batch:
        batch.add_column(sa.Column("text_source", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("agreement", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachment") as batch:
        batch.drop_column("agreement")
        batch.drop_column("text_source")
    with op.batch_alter_table("ocr_job") as batch:
        batch.drop_index(batch.f("ix_ocr_job_status"))
    op.drop_table("ocr_job")
