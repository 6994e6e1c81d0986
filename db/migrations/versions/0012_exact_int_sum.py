"""exact integer sum: isum(bigint) -> bigint

The rule engine sums values in millionths and times in epoch microseconds as integers, so that
the window's sums are exact whatever the order they are added in (the live engine adds what
arrived to stored sums, a re-evaluation or the backtest adds over the whole window: they must
agree). PostgreSQL's sum(bigint) returns numeric, whose arithmetic costs several times that of
bigint at every reading. isum adds in bigint (int8pl: an overflow is an error, never a wrong
sum) and, with its inverse (int8mi), serves a window frame that slides (moving aggregate).

Revision ID: 0012
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE AGGREGATE isum(bigint) (SFUNC = int8pl, STYPE = bigint, "
               "MSFUNC = int8pl, MINVFUNC = int8mi, MSTYPE = bigint, PARALLEL = SAFE)")


def downgrade() -> None:
    op.execute("DROP AGGREGATE isum(bigint)")
