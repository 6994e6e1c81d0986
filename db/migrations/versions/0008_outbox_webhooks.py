"""outbox and webhooks: every change to an alert or a work order as an event row, its deliveries
to each WEBHOOK_URL, the inbound message ids already seen (replays refused), and
work_orders.external_ref (the GMAO's own reference)

Revision ID: 0008
Revises: 0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("work_orders", sa.Column("external_ref", sa.String(length=100), nullable=True))
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("ordering_key", sa.String(length=48), nullable=False),
        sa.Column("payload", JSONB(), nullable=True),
        sa.Column("fanned_out", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("entity IN ('alert', 'work_order')", name="outbox_events_entity_check"),
    )
    op.create_index("ix_outbox_events_key", "outbox_events", ["ordering_key", "id"])
    op.create_index("ix_outbox_events_to_fan_out", "outbox_events", ["id"],
                    postgresql_where=sa.text("NOT fanned_out"))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("outbox_events.id"), nullable=False),
        sa.Column("endpoint", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("retry_step", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("last_attempt_at", TZ, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_check"),
    )
    op.create_index("uq_webhook_deliveries_event_endpoint", "webhook_deliveries", ["event_id", "endpoint"], unique=True)
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        "inbound_messages",
        sa.Column("webhook_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("webhook_id"),
    )


def downgrade() -> None:
    op.drop_table("inbound_messages")
    op.drop_table("webhook_deliveries")
    op.drop_table("outbox_events")
    op.drop_column("work_orders", "external_ref")
