"""Hourly roll-up of telemetry, so a 30-day chart reads ~720 rows per metric, not 260,000.

Exact: every complete hour is rolled up once it is complete, and again whenever a reading
arrives for it later (a late reading, a back-fill, a reading of a compacted day): the statement
trigger of migration 0006 marks such hours in telemetry_dirty_hours, consumed here. Readings
come through readings(), so hot and cold days are rolled up alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

FIRST_RUN = timedelta(days=35)
ROLLUP_LOCK = 7340003  # one roll-up at a time (scheduler tick and maintenance pass)
WATERMARK = "rollup_until"

_UPSERT = (
    "INSERT INTO telemetry_hourly (asset_id, metric_id, hour, n, total, min, max) {select} "
    "ON CONFLICT (asset_id, metric_id, hour) DO UPDATE SET n = excluded.n, total = excluded.total, "
    "min = excluded.min, max = excluded.max"
)
# The UTC hour of r.ts: date_bin on the instant (no time zone lookup per reading, ~25 % cheaper
# than date_trunc('hour', r.ts, 'UTC'), same hours for every instant after the origin).
HOUR = "date_bin('1 hour', r.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
# every hour in [since, until) of every (asset, metric) of the catalog (of the assets lo..hi):
# one index range per pair
_RANGE = _UPSERT.format(select=(
    "SELECT a.id, m.id, x.hour, x.n, x.total, x.min, x.max "
    "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
    f"CROSS JOIN LATERAL (SELECT {HOUR} AS hour, count(*) AS n, sum(r.value) AS total, "
    "                           min(r.value) AS min, max(r.value) AS max "
    "                    FROM readings(a.id, m.id, :since, :until) r WHERE r.ts < :until GROUP BY 1) x "
    "WHERE a.id BETWEEN :lo AND :hi"
))
# the dirty hours before `until`, taken (deleted) and recomputed in the same statement: one
# readings() range per (asset, metric, day) that has dirty hours
_DIRTY = (
    "WITH d AS (DELETE FROM telemetry_dirty_hours WHERE hour < :until RETURNING asset_id, metric_id, hour), "
    "g AS (SELECT asset_id, metric_id, min(hour) AS lo, max(hour) + interval '1 hour' AS hi FROM d "
    "      GROUP BY asset_id, metric_id, date_trunc('day', hour, 'UTC')) "
) + _UPSERT.format(select=(
    "SELECT g.asset_id, g.metric_id, x.hour, x.n, x.total, x.min, x.max FROM g "
    f"CROSS JOIN LATERAL (SELECT {HOUR} AS hour, count(*) AS n, sum(r.value) AS total, "
    "                           min(r.value) AS min, max(r.value) AS max "
    "                    FROM readings(g.asset_id, g.metric_id, g.lo, g.hi) r WHERE r.ts < g.hi GROUP BY 1) x"
))
INT_MAX = 2**31 - 1


def _hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def pending(session: Session, *, now: datetime, since: datetime | None = None, retention_days: int = 0) -> tuple[datetime, datetime]:
    """The range [since, until) of hours the next roll_up() computes for every (asset, metric),
    its hourly partitions created (so that roll_up_assets() can run on other connections first)."""
    from engine.maintenance import ensure_month_partitions, get_state

    until = _hour(now)
    keep_since = until - timedelta(days=retention_days) if retention_days else datetime(1, 1, 1, tzinfo=UTC)
    if since is None:
        done = get_state(session, name=WATERMARK)
        since = done if done is not None else until - FIRST_RUN
    since = max(since, keep_since)
    if since < until:
        ensure_month_partitions(session, table="telemetry_hourly", start=since, end=until)
    return since, until


def roll_up_assets(session: Session, *, since: datetime, until: datetime, first: int, last: int) -> int:
    """Roll up the hours [since, until) of the assets first..last (one part of a roll-up done on
    several connections at once; the partitions exist: pending()); returns the rows written.
    Waits while a roll_up() runs (shared side of its lock)."""
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": ROLLUP_LOCK})
    return session.execute(text(_RANGE), {"since": since, "until": until, "lo": first, "hi": last}).rowcount


def roll_up(session: Session, *, now: datetime, since: datetime | None = None, retention_days: int = 0) -> int:
    """Roll up the hours completed since the last run (all of [since, …) when given; 35 days back
    on a new database) and the dirty hours; returns the rows written. Hours older than
    `retention_days` (0: none) are neither written nor kept dirty."""
    from engine.maintenance import ensure_month_partitions, get_state, set_state

    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ROLLUP_LOCK})
    until = _hour(now)
    keep_since = until - timedelta(days=retention_days) if retention_days else datetime(1, 1, 1, tzinfo=UTC)
    session.execute(text("DELETE FROM telemetry_dirty_hours WHERE hour < :k"), {"k": keep_since})
    done = get_state(session, name=WATERMARK)
    if since is None:
        since = done if done is not None else until - FIRST_RUN
    since = max(since, keep_since)
    first_dirty = session.execute(
        text("SELECT min(hour) FROM telemetry_dirty_hours WHERE hour < :until"), {"until": until}).scalar()
    low = min(since, first_dirty) if first_dirty is not None else since
    if low < until:
        ensure_month_partitions(session, table="telemetry_hourly", start=low, end=until)
    written = session.execute(text(_DIRTY), {"until": until}).rowcount
    if since < until:
        written += session.execute(text(_RANGE), {"since": since, "until": until, "lo": -INT_MAX - 1, "hi": INT_MAX}).rowcount
    if done is None or until > done:
        set_state(session, name=WATERMARK, at=until)
    return written


def rolled_until(session: Session) -> datetime | None:
    """Every complete hour before this instant is in telemetry_hourly (dirty hours aside)."""
    from engine.maintenance import get_state

    return get_state(session, name=WATERMARK)
