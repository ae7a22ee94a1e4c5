"""outbox.recipient: the first recipient, indexed, so the daily cap is an index lookup

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 16:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("recipient", sa.String(length=320), nullable=False, server_default="")
        )
    outbox = sa.table(
        "outbox", sa.column("id", sa.Integer), sa.column("recipients", sa.JSON),
        sa.column("recipient", sa.String),
    )  # fmt: skip
    connection = op.get_bind()
    for row_id, recipients in connection.execute(sa.select(outbox.c.id, outbox.c.recipients)):
        if recipients:
            connection.execute(
                outbox.update().where(outbox.c.id == row_id).values(recipient=recipients[0])
            )
    op.create_index(
        "ix_outbox_recipient_kind_created", "outbox", ["recipient", "kind", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_recipient_kind_created", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("recipient")
