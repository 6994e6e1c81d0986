"""cold tier hour index: readings() decodes only the hours it is asked for

A cold row (0006: one UTC day of one (asset, metric), microsecond deltas and values or `milli`
value deltas, all cumulative) could only be decoded whole: 8,640 readings of a 10-s series to
return the few hundred a query asks for (a rule's window, an island of the backtest). The row
gains `hours` (float8[3][25], ~600 bytes), where the decoding of each hour h (0-23) of the day
starts: for h = 0..24, [1][h + 1] how many readings of the row lie before day + h hours, [2][h + 1]
the sum of their time deltas (microseconds), [3][h + 1] the sum of their value deltas (`milli`
rows; 0 otherwise). All are integers below 2^53, held exactly by float8, and the decoding adds
them as telemetry_cold_points() does (float8 sums of integers, exact): the readings decoded from
an hour's offset are bit for bit those of the whole row's decoding. The format of dts and vals is
unchanged; `hours` NULL means "not indexed" and the reader then decodes the whole row.

- telemetry_cold_hours(dts, vals, milli): the index of a row; a trigger fills `hours` on every
  INSERT that does not give it and on every UPDATE of dts, vals or milli, so every writer
  (compaction, its merge of late readings, restores, the benchmarks) keeps it right.
- telemetry_cold_range(day, dts, vals, milli, hours, from, to): the readings of a row from the
  hour of `from` to the end of the hour of `to` (callers filter ts to the exact range).
- readings() reads the cold tier through it; telemetry_in_cold() (the duplicate check of late
  readings) decodes the reading's hour only.
Existing rows are indexed here (one UPDATE per monthly partition).

Revision ID: 0010
Revises: 0011 (0011, the live engine's, landed first on 0009: one chain, 0009 -> 0011 -> 0010)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = r"""
-- The hour index of a cold row: for h = 0..24, the readings before day + h hours (the last
-- reading of the earlier hours: its place, and the cumulative sums decoding reaches there).
-- Readings past the day's end (never written by compaction) count as hour 24.
CREATE FUNCTION telemetry_cold_hours(p_dts bigint[], p_vals double precision[], p_milli boolean)
RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH last AS MATERIALIZED (  -- the last reading of each hour (one pass over the row)
        SELECT h, i, us, mv FROM (
            SELECT x.*, least(floor(x.us / 3600e6), 24) AS h,
                   lead(least(floor(x.us / 3600e6), 24)) OVER (ORDER BY x.i) AS next_h
            FROM (SELECT u.i, sum(u.d::float8) OVER w AS us,
                         CASE WHEN p_milli THEN sum(u.v) OVER w ELSE 0 END AS mv
                  FROM unnest(p_dts, p_vals) WITH ORDINALITY AS u(d, v, i)
                  WINDOW w AS (ORDER BY u.i ROWS UNBOUNDED PRECEDING)) x
        ) y WHERE next_h IS DISTINCT FROM h
    ),
    at AS (
        SELECT g.h, coalesce(l.i, 0)::float8 AS k, coalesce(l.us, 0) AS us, coalesce(l.mv, 0) AS mv
        FROM generate_series(0, 24) g(h)
        LEFT JOIN LATERAL (SELECT * FROM last WHERE last.h < g.h ORDER BY last.h DESC LIMIT 1) l ON true
    )
    SELECT ARRAY[array_agg(k ORDER BY h), array_agg(us ORDER BY h), array_agg(mv ORDER BY h)] FROM at
$$;

-- The readings of one cold row from the hour of p_from to the end of the hour of p_to (all of
-- them without an index), decoded exactly as telemetry_cold_points() decodes the whole row.
CREATE FUNCTION telemetry_cold_range(p_day timestamptz, p_dts bigint[], p_vals double precision[], p_milli boolean,
                                     p_hours double precision[], p_from timestamptz, p_to timestamptz)
RETURNS TABLE (ts timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p_day + interval '1 microsecond' * (b.us + sum(u.d::float8) OVER w),
           CASE WHEN p_milli THEN (b.mv + sum(u.v) OVER w) / 1000 ELSE u.v END
    FROM (
        SELECT CASE WHEN h.lo = 0 OR p_hours IS NULL THEN 0 ELSE CAST(p_hours[1][h.lo + 1] AS int) END AS k1,
               CASE WHEN h.lo = 0 OR p_hours IS NULL THEN 0 ELSE p_hours[2][h.lo + 1] END AS us,
               CASE WHEN h.lo = 0 OR p_hours IS NULL THEN 0 ELSE p_hours[3][h.lo + 1] END AS mv,
               CASE WHEN h.hi >= 23 OR p_hours IS NULL THEN 2147483647 ELSE CAST(p_hours[1][h.hi + 2] AS int) END AS k2
        -- the hours of the bounds, from their epoch seconds (an infinite bound: an infinite float,
        -- no error), widened by 1 ms: far more than float8's rounding of epoch microseconds
        FROM (SELECT CAST(least(greatest(floor((date_part('epoch', p_from) - date_part('epoch', p_day) - 0.001) / 3600), 0), 24) AS int) AS lo,
                     CAST(least(greatest(floor((date_part('epoch', p_to) - date_part('epoch', p_day) + 0.001) / 3600), -1), 24) AS int) AS hi) h
        OFFSET 0  -- computed once, not at every reading
    ) b
    CROSS JOIN LATERAL unnest(p_dts[b.k1 + 1:b.k2], p_vals[b.k1 + 1:b.k2]) WITH ORDINALITY AS u(d, v, i)
    WINDOW w AS (ORDER BY u.i ROWS UNBOUNDED PRECEDING)
$$;

CREATE FUNCTION telemetry_cold_index() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.hours IS NULL THEN
            NEW.hours := telemetry_cold_hours(NEW.dts, NEW.vals, NEW.milli);
        END IF;
    ELSIF NEW.dts IS DISTINCT FROM OLD.dts OR NEW.vals IS DISTINCT FROM OLD.vals OR NEW.milli IS DISTINCT FROM OLD.milli
          OR NEW.hours IS NULL THEN
        NEW.hours := telemetry_cold_hours(NEW.dts, NEW.vals, NEW.milli);
    END IF;
    RETURN NEW;
END $$;

-- THE reader of raw telemetry (0006), the cold tier now decoded from the hour asked.
CREATE OR REPLACE FUNCTION readings(p_asset_id integer, p_metric_id integer, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (asset_id integer, metric_id smallint, ts timestamptz, value double precision)
LANGUAGE sql STABLE AS $$
    SELECT t.asset_id, t.metric_id, t.ts, t.value FROM telemetry t
    WHERE t.asset_id = p_asset_id AND t.metric_id = p_metric_id AND t.ts >= p_from AND t.ts <= p_to
    UNION ALL
    SELECT c.asset_id, c.metric_id, u.ts, u.value
    FROM telemetry_cold c CROSS JOIN LATERAL telemetry_cold_range(c.day, c.dts, c.vals, c.milli, c.hours, p_from, p_to) u
    WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id
      AND c.day > p_from - interval '24 hours' AND c.day <= p_to
      AND u.ts >= p_from AND u.ts <= p_to
$$;

CREATE OR REPLACE FUNCTION telemetry_in_cold(p_asset_id integer, p_metric_id integer, p_ts timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM telemetry_cold c
        CROSS JOIN LATERAL telemetry_cold_range(c.day, c.dts, c.vals, c.milli, c.hours, p_ts, p_ts) u
        WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id
          AND c.day = date_trunc('day', p_ts, 'UTC') AND u.ts = p_ts)
$$;
"""

OLD_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION readings(p_asset_id integer, p_metric_id integer, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (asset_id integer, metric_id smallint, ts timestamptz, value double precision)
LANGUAGE sql STABLE AS $$
    SELECT t.asset_id, t.metric_id, t.ts, t.value FROM telemetry t
    WHERE t.asset_id = p_asset_id AND t.metric_id = p_metric_id AND t.ts >= p_from AND t.ts <= p_to
    UNION ALL
    SELECT c.asset_id, c.metric_id, u.ts, u.value
    FROM telemetry_cold c CROSS JOIN LATERAL telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u
    WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id
      AND c.day > p_from - interval '24 hours' AND c.day <= p_to
      AND u.ts >= p_from AND u.ts <= p_to
$$;

CREATE OR REPLACE FUNCTION telemetry_in_cold(p_asset_id integer, p_metric_id integer, p_ts timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM telemetry_cold c CROSS JOIN LATERAL telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u
        WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id
          AND c.day = date_trunc('day', p_ts, 'UTC') AND u.ts = p_ts)
$$;
"""


def upgrade() -> None:
    op.add_column("telemetry_cold", sa.Column("hours", sa.ARRAY(sa.Float(), dimensions=2), nullable=True))
    op.execute(FUNCTIONS)
    conn = op.get_bind()
    for (name,) in conn.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'telemetry_cold'::regclass ORDER BY 1")).all():
        op.execute(f"UPDATE {name} SET hours = telemetry_cold_hours(dts, vals, milli)")
    op.execute("CREATE TRIGGER telemetry_cold_index BEFORE INSERT OR UPDATE ON telemetry_cold "
               "FOR EACH ROW EXECUTE FUNCTION telemetry_cold_index()")


def downgrade() -> None:
    op.execute(OLD_FUNCTIONS)
    op.execute("DROP TRIGGER telemetry_cold_index ON telemetry_cold")
    op.execute("DROP FUNCTION telemetry_cold_index()")
    op.execute("DROP FUNCTION telemetry_cold_range(timestamptz, bigint[], double precision[], boolean, "
               "double precision[], timestamptz, timestamptz)")
    op.execute("DROP FUNCTION telemetry_cold_hours(bigint[], double precision[], boolean)")
    op.drop_column("telemetry_cold", "hours")
