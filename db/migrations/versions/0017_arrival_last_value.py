"""telemetry_arrivals keeps the value of the newest reading that arrived: vlast

With the range of the values (0016), a counter rule (runtime: R4, R6) tells from the arrivals
alone that none of the readings that arrived can fire (the largest one minus the counter's
baseline is below the threshold) and records the newest one, without reading them back from
telemetry (engine/evaluate.py, the runtime rules' quiet series). Rows written before (NULL) are
read back as before.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None


def _trigger(with_last: bool) -> str:
    last = (", vlast", ", (array_agg(value ORDER BY ts DESC))[1]") if with_last else ("", "")
    return f"""
        CREATE OR REPLACE FUNCTION telemetry_record_arrivals() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO telemetry_arrivals (asset_id, metric_id, min_ts, max_ts, n, vmin, vmax{last[0]})
            SELECT asset_id, metric_id, min(ts), max(ts), count(*), min(value), max(value){last[1]}
            FROM new_rows GROUP BY asset_id, metric_id;
            RETURN NULL;
        END $$
        """


def upgrade() -> None:
    op.add_column("telemetry_arrivals", sa.Column("vlast", sa.Float(), nullable=True))
    op.execute(_trigger(with_last=True))


def downgrade() -> None:
    op.execute(_trigger(with_last=False))
    op.drop_column("telemetry_arrivals", "vlast")
