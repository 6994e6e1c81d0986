"""rule window state: the running sums of a windowed rule at the last reading it evaluated

policy_evaluations gains, for rules whose value is a sum over a time window (threshold avg,
rate_of_change), the window's exact sums at `last_ts` (numeric: count, Σy, Σx, Σx², Σxy) and the
window length they were taken over. The next run then adds the readings that arrived and takes
away those that left the window, instead of reading every window again (docs/engine.md).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("policy_evaluations", sa.Column("win_seconds", sa.Integer(), nullable=True))
    op.add_column("policy_evaluations", sa.Column("win_n", sa.Integer(), nullable=True))
    op.add_column("policy_evaluations", sa.Column("win_sums", postgresql.ARRAY(sa.Numeric()), nullable=True))


def downgrade() -> None:
    for column in ("win_sums", "win_n", "win_seconds"):
        op.drop_column("policy_evaluations", column)
