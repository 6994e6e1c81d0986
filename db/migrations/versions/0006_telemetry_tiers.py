"""telemetry tiers: daily time partitions (hot), a compact cold table, dirty hours, readings()

`telemetry` becomes range-partitioned by `ts` (one partition per UTC day, `telemetry_pYYYYMMDD`,
created ahead by the maintenance job, plus the DEFAULT partition `telemetry_late` for readings of
days that have no partition: days already compacted, or not created yet). Every reading already
stored is copied into its day's partition; the triggers of the old table (0005's arrivals
trigger) are recreated on the new parent, after the copy, so old readings are not "arrivals".
`telemetry_hourly` becomes range-partitioned by month (retention drops whole months).

`telemetry_cold` holds compacted days: one row per (asset, metric, UTC day), timestamps as
microsecond deltas (bigint[]: the first from the day's start, then from the previous reading) and
values as float8[] (when every value of the day has at most 3 decimals, `milli`: the deltas of
value × 1000, small integers that compress far better), compressed by PostgreSQL (TOAST);
partitioned by month.

`readings(asset_id, metric_id, from, to)` reads both tiers: the one reader of raw telemetry.
See docs/architecture.md ("Telemetry tiers").

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD_DAYS = 3  # partitions created ahead at migration time (the maintenance job keeps this up)

FUNCTIONS = r"""
-- The readings of one cold row, decoded: cumulative microsecond deltas from the day's start;
-- values as stored, or (p_milli) cumulative deltas of value × 1000, integers held exactly by
-- float8, divided by 1000 as the compaction checked (every sum stays below 2^53: exact).
CREATE FUNCTION telemetry_cold_points(p_day timestamptz, p_dts bigint[], p_vals double precision[], p_milli boolean)
RETURNS TABLE (ts timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p_day + interval '1 microsecond' * sum(u.d::float8) OVER w,
           CASE WHEN p_milli THEN sum(u.v) OVER w / 1000 ELSE u.v END
    FROM unnest(p_dts, p_vals) WITH ORDINALITY AS u(d, v, i)
    WINDOW w AS (ORDER BY u.i ROWS UNBOUNDED PRECEDING)
$$;

-- THE reader of raw telemetry: the readings of one (asset, metric) with from <= ts <= to, from
-- the hot partitions and the cold tier alike (no order: callers ORDER BY). An SQL function that
-- PostgreSQL inlines into the caller's query: index range scans on both tiers.
CREATE FUNCTION readings(p_asset_id integer, p_metric_id integer, p_from timestamptz, p_to timestamptz)
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

-- The p_n latest readings of one (asset, metric) at or before p_at, from both tiers, newest
-- first (the "last N points" and "latest value" rules). Reads cold days only when needed.
CREATE FUNCTION latest_readings(p_asset_id integer, p_metric_id integer, p_at timestamptz, p_n integer)
RETURNS TABLE (asset_id integer, metric_id smallint, ts timestamptz, value double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    oldest timestamptz := 'infinity';
    counted bigint := 0;
    d record;
BEGIN
    FOR d IN SELECT c.day, c.n FROM telemetry_cold c
             WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id AND c.day <= p_at
             ORDER BY c.day DESC LOOP
        oldest := d.day;
        IF d.day + interval '24 hours' <= p_at THEN
            counted := counted + d.n;  -- a whole day before p_at: all its readings count
        END IF;
        EXIT WHEN counted >= p_n;
    END LOOP;
    RETURN QUERY
    SELECT x.asset_id, x.metric_id, x.ts, x.value FROM (
        (SELECT t.asset_id, t.metric_id, t.ts, t.value FROM telemetry t
         WHERE t.asset_id = p_asset_id AND t.metric_id = p_metric_id AND t.ts <= p_at
         ORDER BY t.ts DESC LIMIT p_n)
        UNION ALL
        SELECT c.asset_id, c.metric_id, u.ts, u.value
        FROM telemetry_cold c CROSS JOIN LATERAL telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u
        WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id AND c.day >= oldest AND c.day <= p_at
          AND u.ts <= p_at
    ) x ORDER BY x.ts DESC LIMIT p_n;
END $$;

-- Is this reading already in the cold tier? (late re-sends must not be stored twice)
CREATE FUNCTION telemetry_in_cold(p_asset_id integer, p_metric_id integer, p_ts timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM telemetry_cold c CROSS JOIN LATERAL telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u
        WHERE c.asset_id = p_asset_id AND c.metric_id = p_metric_id
          AND c.day = date_trunc('day', p_ts, 'UTC') AND u.ts = p_ts)
$$;

-- On the partitions that receive readings of compacted days only (telemetry_late, and a day's
-- partition between its compaction and its drop): a reading already in the cold tier is a
-- duplicate, refused like a primary-key conflict, so the writer's ON CONFLICT path skips it.
CREATE FUNCTION telemetry_refuse_cold_duplicates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF telemetry_in_cold(NEW.asset_id, NEW.metric_id, NEW.ts) THEN
        RAISE EXCEPTION 'reading (%, %, %) is already stored in the cold tier', NEW.asset_id, NEW.metric_id, NEW.ts
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;

-- Readings stored for an hour that is already complete (late data, back-fill): mark the hour
-- dirty, so the roll-up recomputes it. Readings of the current hour are rolled up once it is
-- complete: nothing to mark (the ingest's usual case costs one scan of the batch), except in
-- its last 2 minutes, so a transaction that commits just after the hour is not missed.
CREATE FUNCTION telemetry_mark_dirty_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO telemetry_dirty_hours (asset_id, metric_id, hour)
    SELECT DISTINCT n.asset_id, n.metric_id, date_trunc('hour', n.ts, 'UTC') FROM new_rows n
    WHERE n.ts < date_trunc('hour', statement_timestamp() + interval '2 minutes', 'UTC')
    ORDER BY 1, 2, 3  -- every writer locks the same keys in the same order: no deadlock between them
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
"""

DROP_FUNCTIONS = (
    "telemetry_mark_dirty_hours()", "telemetry_refuse_cold_duplicates()",
    "telemetry_in_cold(integer, integer, timestamptz)", "latest_readings(integer, integer, timestamptz, integer)",
    "readings(integer, integer, timestamptz, timestamptz)",
    "telemetry_cold_points(timestamptz, bigint[], double precision[], boolean)",
)


def _day(d: datetime) -> datetime:
    return d.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _month(d: datetime) -> datetime:
    return _day(d).replace(day=1)


def _next_month(m: datetime) -> datetime:
    return (m + timedelta(days=32)).replace(day=1)


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    # The user triggers of the old table (0005: arrivals), recreated on the new parent below.
    triggers = [r[0] for r in conn.execute(sa.text(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'telemetry'::regclass AND NOT tgisinternal "
        "ORDER BY tgname"))]

    # --- telemetry: daily partitions + the default one, every reading copied ---
    op.execute("ALTER TABLE telemetry RENAME TO telemetry_unpartitioned")
    op.execute("ALTER INDEX telemetry_pkey RENAME TO telemetry_unpartitioned_pkey")
    op.execute(
        "CREATE TABLE telemetry (asset_id integer NOT NULL, metric_id smallint NOT NULL, "
        "ts timestamptz NOT NULL, value double precision NOT NULL, "
        "CONSTRAINT telemetry_pkey PRIMARY KEY (asset_id, metric_id, ts)) PARTITION BY RANGE (ts)"
    )
    op.execute("CREATE TABLE telemetry_late PARTITION OF telemetry DEFAULT")
    days = {_day(now) + timedelta(days=i) for i in range(-1, AHEAD_DAYS + 1)}
    days |= {r[0] for r in conn.execute(sa.text(
        "SELECT DISTINCT date_trunc('day', ts, 'UTC') FROM telemetry_unpartitioned"))}
    for day in sorted(days):
        op.execute(
            f"CREATE TABLE telemetry_p{day:%Y%m%d} PARTITION OF telemetry "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )
    op.execute("INSERT INTO telemetry SELECT asset_id, metric_id, ts, value FROM telemetry_unpartitioned")

    # --- telemetry_hourly: monthly partitions ---
    op.execute("ALTER TABLE telemetry_hourly RENAME TO telemetry_hourly_unpartitioned")
    op.execute("ALTER INDEX telemetry_hourly_pkey RENAME TO telemetry_hourly_unpartitioned_pkey")
    op.execute(
        "CREATE TABLE telemetry_hourly (asset_id integer NOT NULL, metric_id smallint NOT NULL, "
        "hour timestamptz NOT NULL, n integer NOT NULL, total double precision NOT NULL, "
        "min double precision NOT NULL, max double precision NOT NULL, "
        "CONSTRAINT telemetry_hourly_pkey PRIMARY KEY (asset_id, metric_id, hour)) PARTITION BY RANGE (hour)"
    )
    months = {_month(now), _next_month(_month(now))}
    months |= {_month(r[0]) for r in conn.execute(sa.text(
        "SELECT DISTINCT date_trunc('month', hour, 'UTC') FROM telemetry_hourly_unpartitioned"))}
    for m in sorted(months):
        op.execute(
            f"CREATE TABLE telemetry_hourly_p{m:%Y%m} PARTITION OF telemetry_hourly "
            f"FOR VALUES FROM ('{m.isoformat()}') TO ('{_next_month(m).isoformat()}')"
        )
    op.execute("INSERT INTO telemetry_hourly SELECT * FROM telemetry_hourly_unpartitioned")
    op.execute("DROP TABLE telemetry_hourly_unpartitioned")

    # --- the cold tier, dirty hours, maintenance state ---
    op.execute(
        "CREATE TABLE telemetry_cold (asset_id integer NOT NULL, metric_id smallint NOT NULL, "
        "day timestamptz NOT NULL, n integer NOT NULL, dts bigint[] NOT NULL, vals double precision[] NOT NULL, "
        "milli boolean NOT NULL, "
        "CONSTRAINT telemetry_cold_pkey PRIMARY KEY (asset_id, metric_id, day)) PARTITION BY RANGE (day)"
    )
    op.create_table(
        "telemetry_dirty_hours",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.SmallInteger(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "metric_id", "hour"),
    )
    op.create_table(
        "maintenance_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # Hours of the history that the roll-up never saw (it started 35 days back): rolled up by the
    # first maintenance pass, so long-range charts cover the whole history.
    op.execute(
        "INSERT INTO telemetry_dirty_hours (asset_id, metric_id, hour) "
        "SELECT t.asset_id, t.metric_id, date_trunc('hour', t.ts, 'UTC') FROM telemetry_unpartitioned t "
        "WHERE t.ts < date_trunc('hour', now(), 'UTC') "
        "EXCEPT SELECT asset_id, metric_id, hour FROM telemetry_hourly"
    )
    op.execute("DROP TABLE telemetry_unpartitioned")

    op.execute(FUNCTIONS)
    op.execute(
        "CREATE TRIGGER telemetry_late_refuse_cold_duplicates BEFORE INSERT ON telemetry_late "
        "FOR EACH ROW EXECUTE FUNCTION telemetry_refuse_cold_duplicates()"
    )
    op.execute(
        "CREATE TRIGGER telemetry_dirty_hours AFTER INSERT ON telemetry REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION telemetry_mark_dirty_hours()"
    )
    for definition in triggers:  # on the new parent now: same name, same function
        op.execute(definition)


def downgrade() -> None:
    conn = op.get_bind()
    triggers = [r[0] for r in conn.execute(sa.text(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'telemetry'::regclass AND NOT tgisinternal "
        "AND tgname <> 'telemetry_dirty_hours' ORDER BY tgname"))]
    op.execute(
        "CREATE TABLE telemetry_flat (asset_id integer NOT NULL, metric_id smallint NOT NULL, "
        "ts timestamptz NOT NULL, value double precision NOT NULL)"
    )
    op.execute(
        "INSERT INTO telemetry_flat SELECT asset_id, metric_id, ts, value FROM telemetry UNION ALL "
        "SELECT c.asset_id, c.metric_id, u.ts, u.value FROM telemetry_cold c, "
        "telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u"
    )
    op.execute(
        "CREATE TABLE telemetry_hourly_flat (asset_id integer NOT NULL, metric_id smallint NOT NULL, "
        "hour timestamptz NOT NULL, n integer NOT NULL, total double precision NOT NULL, "
        "min double precision NOT NULL, max double precision NOT NULL)"
    )
    op.execute("INSERT INTO telemetry_hourly_flat SELECT * FROM telemetry_hourly")
    op.execute("DROP TABLE telemetry, telemetry_hourly, telemetry_cold, telemetry_dirty_hours, maintenance_state")
    for f in DROP_FUNCTIONS:
        op.execute(f"DROP FUNCTION {f}")
    op.execute("ALTER TABLE telemetry_flat RENAME TO telemetry")
    op.execute("ALTER TABLE telemetry ADD CONSTRAINT telemetry_pkey PRIMARY KEY (asset_id, metric_id, ts)")
    op.execute("ALTER TABLE telemetry_hourly_flat RENAME TO telemetry_hourly")
    op.execute("ALTER TABLE telemetry_hourly ADD CONSTRAINT telemetry_hourly_pkey PRIMARY KEY (asset_id, metric_id, hour)")
    for definition in triggers:
        op.execute(definition)
