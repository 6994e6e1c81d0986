"""telemetry_arrivals keeps the range of the values that arrived: vmin, vmax

The arrivals trigger already groups each insert statement's readings by (asset, metric); it now
also keeps their smallest and largest value. A flat_line policy (F1) needs no more to tell that a
sensor whose readings arrived spreading wider than its threshold is not stuck: the rule engine
decides it from the arrivals instead of reading them back from telemetry (engine/evaluate.py,
flat_line's quiet series). Rows written before (NULL) are read back as before.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None


def _trigger(with_values: bool) -> str:
    values = (", vmin, vmax", ", min(value), max(value)") if with_values else ("", "")
    return f"""
        CREATE OR REPLACE FUNCTION telemetry_record_arrivals() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO telemetry_arrivals (asset_id, metric_id, min_ts, max_ts, n{values[0]})
            SELECT asset_id, metric_id, min(ts), max(ts), count(*){values[1]} FROM new_rows GROUP BY asset_id, metric_id;
            RETURN NULL;
        END $$
        """


def upgrade() -> None:
    op.add_column("telemetry_arrivals", sa.Column("vmin", sa.Float(), nullable=True))
    op.add_column("telemetry_arrivals", sa.Column("vmax", sa.Float(), nullable=True))
    op.execute(_trigger(with_values=True))


def downgrade() -> None:
    op.execute(_trigger(with_values=False))
    op.drop_column("telemetry_arrivals", "vmax")
    op.drop_column("telemetry_arrivals", "vmin")
