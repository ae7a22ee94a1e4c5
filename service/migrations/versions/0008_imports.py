"""imports with a preview and an undo: import_run's state, who, options and per-row changes;
a submission's internal remark on its result

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:08:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_run") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=20), server_default="applied", nullable=False)
        )
        batch.add_column(sa.Column("by", sa.String(length=200), server_default="", nullable=False))
        batch.add_column(sa.Column("options", sa.JSON(), server_default="{}", nullable=False))
        batch.add_column(
            sa.Column("fingerprint", sa.String(length=64), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("changes", sa.JSON(), server_default="{}", nullable=False))
        batch.add_column(sa.Column("blank", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("queued", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("applied_at", service.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("undone_at", service.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("undone_by", sa.String(length=200), nullable=True))
    # imports made before this revision were applied when they were made
    op.execute("UPDATE import_run SET applied_at = created_at")
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("result_remark", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("result_remark")
    with op.batch_alter_table("import_run") as batch:
        for name in (
            "undone_by",
            "undone_at",
            "applied_at",
            "queued",
            "blank",
            "changes",
            "fingerprint",
            "options",
            "by",
            "status",
        ):
            batch.drop_column(name)
