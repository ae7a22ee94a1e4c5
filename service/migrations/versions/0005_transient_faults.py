"""Transient faults and the first poll: message retry state, poll_cursor.first_poll_at,
outbox.unconfirmed_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): a batch copy of `message` would drop the old table,
    # and with foreign keys on that cascades to every attachment
    op.add_column(
        "message",
        sa.Column("before_first_poll", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("message", sa.Column("fault", sa.String(length=20), nullable=True))
    op.add_column("message", sa.Column("fault_error", sa.Text(), nullable=True))
    op.add_column("message", sa.Column("fault_since", UTCDateTime(), nullable=True))
    op.add_column("message", sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("message", sa.Column("retry_at", UTCDateTime(), nullable=True))
    op.add_column("poll_cursor", sa.Column("first_poll_at", UTCDateTime(), nullable=True))
    op.add_column(
        "poll_cursor",
        sa.Column("first_listing_uid", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column("outbox", sa.Column("unconfirmed_at", UTCDateTime(), nullable=True))
    # a mailbox polled before this revision has had its first poll
    cursor = sa.table(
        "poll_cursor", sa.column("first_poll_at", UTCDateTime()),
        sa.column("last_poll_at", UTCDateTime()),
    )  # fmt: skip
    op.get_bind().execute(cursor.update().values(first_poll_at=cursor.c.last_poll_at))


DROPPED = {
    "outbox": ("unconfirmed_at",),
    "poll_cursor": ("first_listing_uid", "first_poll_at"),
    "message": ("retry_at", "retries", "fault_since", "fault_error", "fault", "before_first_poll"),
}


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN exists on both backends (SQLite since 3.35); no batch copy
    for table, columns in DROPPED.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
