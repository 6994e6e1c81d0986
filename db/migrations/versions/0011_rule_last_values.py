"""rule last values: the values of a consecutive rule's last readings

policy_evaluations gains `win_values`: for a rule over the N most recent readings (consecutive),
the values of the N - 1 readings up to `last_ts` (oldest first, float8 as stored), with win_n =
N - 1 saying which N they were taken for. The next run reads only the readings that arrived and
puts these before them, instead of looking the previous readings up again (docs/engine.md).

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("policy_evaluations", sa.Column("win_values", postgresql.ARRAY(sa.Float()), nullable=True))


def downgrade() -> None:
    op.drop_column("policy_evaluations", "win_values")
