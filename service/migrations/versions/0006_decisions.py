"""decisions on queue items: who, when, what, state before and after, undo

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", service.models.UTCDateTime(), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("concerns", sa.Text(), server_default="", nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("open_item", sa.String(length=500), nullable=True),
        sa.Column("manual_decision_id", sa.Integer(), nullable=True),
        sa.Column("undone_at", service.models.UTCDateTime(), nullable=True),
        sa.Column("undone_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_item"),
    )
    with op.batch_alter_table("decision") as batch:
        batch.create_index(batch.f("ix_decision_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("decision") as batch:
        batch.drop_index(batch.f("ix_decision_item_id"))
    op.drop_table("decision")
