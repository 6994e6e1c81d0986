"""alerts.message_fr: what was observed, in French, for the dashboard

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # alerts raised before this revision keep '' and are shown with their English message
    op.add_column("alerts", sa.Column("message_fr", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("alerts", "message_fr")
