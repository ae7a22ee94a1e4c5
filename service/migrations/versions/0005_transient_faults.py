"""Transient faults and the first poll: message retry state, poll_cursor.first_poll_at,
outbox.unconfirmed_at

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.models import UTCDateTime

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("before_first_poll", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("fault", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("fault_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fault_since", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retry_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("poll_cursor") as batch:
        batch.add_column(sa.Column("first_poll_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("first_listing_uid", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("unconfirmed_at", UTCDateTime(), nullable=True))
    # a mailbox polled before this revision has had its first poll
    cursor = sa.table(
        "poll_cursor", sa.column("first_poll_at", UTCDateTime()),
        sa.column("last_poll_at", UTCDateTime()),
    )  # fmt: skip
    op.get_bind().execute(cursor.update().values(first_poll_at=cursor.c.last_poll_at))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("unconfirmed_at")
    with op.batch_alter_table("poll_cursor") as batch:
        batch.drop_column("first_listing_uid")
        batch.drop_column("first_poll_at")
    with op.batch_alter_table("message") as batch:
        for name in ("retry_at", "retries", "fault_since", "fault_error", "fault"):
            batch.drop_column(name)
        batch.drop_column("before_first_poll")
