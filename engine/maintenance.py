"""Storage maintenance: the pass that keeps years of telemetry small and readable.

One pass (`maintain`, run by the scheduler every MAINTENANCE_INTERVAL_S and by
`python -m db maintain`): create the day partitions ahead, apply retention (drop whole
partitions), compact the days older than TELEMETRY_HOT_DAYS into the cold tier, fold late
readings of compacted days into it, and roll up complete and dirty hours.

Every step is its own short transaction and checks the catalog before acting, so a pass is
idempotent and safe to interrupt (kill -9 rolls back the step under way; the next pass redoes
it). Steps that need an exclusive lock on a parent table (create or drop a partition) wait at
most LOCK_TIMEOUT, then leave the work to the next pass instead of stalling the ingest.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger("engine.maintenance")

AHEAD_DAYS = 3  # day partitions kept ready ahead of today
MAINTENANCE_LOCK = 7340004  # one pass at a time (scheduler, command line)
PARTITION_LOCK = 7340005  # one creator of partitions at a time (maintenance and the roll-up run concurrently)
LOCK_TIMEOUT = "2s"
DAY_PARTITION = re.compile(r"^telemetry_p(\d{8})$")
MONTH_PARTITION = re.compile(r"^(telemetry_hourly|telemetry_cold)_p(\d{6})$")

# One cold row per (asset, metric) of `src` (rows of one UTC day): microsecond deltas, and the
# values, or, when every value has at most 3 decimals (checked: v = round(v * 1000) / 1000, not
# -0, |v| < 1e12), the deltas of value × 1000 (`milli`), small integers that compress ~3 times
# better. Grouped by hashing (no sort of the whole day), each (asset, metric) sorted alone.
# The row's hour index (migration 0010) is computed here too, in the encoding workers: the
# trigger that would compute it at the move (one connection) then has nothing to do.
_ENCODE = (
    "INSERT INTO {target} (asset_id, metric_id, day, n, dts, vals, milli, hours) "
    "SELECT g.asset_id, g.metric_id, CAST(:day AS timestamptz), cardinality(g.t), x.dts, "
    "       CASE WHEN x.milli THEN x.mvals ELSE x.vals END, x.milli, "
    "       telemetry_cold_hours(x.dts, CASE WHEN x.milli THEN x.mvals ELSE x.vals END, x.milli) "
    "FROM (SELECT asset_id, metric_id, array_agg(ts) AS t, array_agg(value) AS v FROM {src} s "
    "      GROUP BY asset_id, metric_id) g "
    "CROSS JOIN LATERAL (SELECT array_agg(y.d ORDER BY y.ts) AS dts, array_agg(y.v ORDER BY y.ts) AS vals, "
    "                           array_agg(y.dm ORDER BY y.ts) AS mvals, bool_and(y.ok) AS milli FROM ("
    "    SELECT u.ts, u.v, "
    "           (date_part('epoch', u.ts - coalesce(lag(u.ts) OVER w, CAST(:day AS timestamptz))) * 1000000)::bigint AS d, "
    "           round(u.v * 1000) - coalesce(lag(round(u.v * 1000)) OVER w, 0) AS dm, "
    "           abs(u.v) < 1e12 AND round(u.v * 1000) / 1000 = u.v AND (u.v <> 0 OR u.v::text = '0') AS ok "
    "    FROM unnest(g.t, g.v) AS u(ts, v) WINDOW w AS (ORDER BY u.ts)) y) x"
)

# Compaction of a day partition, in parallel: the day is cut into ranges of assets ("chunks"),
# encoded by COMPACT_WORKERS connections that read the partition in the compacting transaction's
# snapshot and write the cold rows into STAGE (UNLOGGED: no WAL for this transient copy; emptied
# by a crash, which is fine: a compaction that did not commit is redone). The compacting
# transaction then moves the staged rows into telemetry_cold (already compressed: a copy, ~1 %
# of the time) and empties the partition, in one commit: kill -9 at any moment loses nothing.
STAGE = "telemetry_cold_stage"
CHUNK_READINGS = 16_000_000  # readings per encoding statement at most: ~600 MB of hash table
ENCODE_WORK_MEM = "512MB"  # × hash_mem_multiplier (2): a chunk's hash table stays in memory


def day_start(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(t: datetime) -> datetime:
    return day_start(t).replace(day=1)


def next_month(m: datetime) -> datetime:
    return (m.replace(day=1) + timedelta(days=32)).replace(day=1)


def get_state(session: Session, *, name: str) -> datetime | None:
    """A named instant of the maintenance state, or None."""
    return session.execute(text("SELECT at FROM maintenance_state WHERE name = :n"), {"n": name}).scalar()


def set_state(session: Session, *, name: str, at: datetime) -> None:
    """Set a named instant of the maintenance state."""
    session.execute(
        text("INSERT INTO maintenance_state (name, at) VALUES (:n, :at) ON CONFLICT (name) DO UPDATE SET at = :at"),
        {"n": name, "at": at},
    )


def partitions(session: Session, *, table: str) -> list[str]:
    """The partitions of a partitioned table, by name."""
    return list(session.execute(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = CAST(:t AS regclass) ORDER BY 1"), {"t": table}).scalars())


def day_partitions(session: Session) -> dict[datetime, str]:
    """The hot day partitions of telemetry, by their UTC day."""
    out = {}
    for name in partitions(session, table="telemetry"):
        if m := DAY_PARTITION.match(name):
            out[datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC)] = name
    return out


def month_partitions(session: Session, *, table: str) -> dict[datetime, str]:
    """The monthly partitions of telemetry_hourly or telemetry_cold, by their first day."""
    out = {}
    for name in partitions(session, table=table):
        if (m := MONTH_PARTITION.match(name)) and m.group(1) == table:
            out[datetime.strptime(m.group(2), "%Y%m").replace(tzinfo=UTC)] = name
    return out


def _lock_timeout(session: Session) -> None:
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def _serialize_creation(session: Session) -> None:
    """Before creating a partition: wait for any other transaction creating partitions (held to
    the end of this one). The caller then reads the partitions again: what the other created is
    committed and listed, not created twice (a DuplicateTable error)."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK})


def _days(start: datetime, end: datetime) -> list[datetime]:
    out, day = [], day_start(start)
    while day <= end:
        out.append(day)
        day += timedelta(days=1)
    return out


def _months(start: datetime, end: datetime) -> list[datetime]:
    out, m = [], month_start(start)
    while m <= end:
        out.append(m)
        m = next_month(m)
    return out


def ensure_day_partitions(session: Session, *, start: datetime, end: datetime) -> list[str]:
    """Create the missing day partitions of telemetry for the UTC days of [start, end]; readings
    of those days already in telemetry_late move into them. Returns the names created."""
    have = day_partitions(session)
    if any(d not in have for d in _days(start, end)):
        _serialize_creation(session)
        have = day_partitions(session)
    created = []
    for day in _days(start, end):
        if day not in have:
            _lock_timeout(session)
            name, nxt = f"telemetry_p{day:%Y%m%d}", day + timedelta(days=1)
            session.execute(text("CREATE TEMP TABLE IF NOT EXISTS telemetry_moving (LIKE telemetry) ON COMMIT DROP"))
            session.execute(text(
                "WITH d AS (DELETE FROM telemetry_late WHERE ts >= :d AND ts < :n RETURNING *) "
                "INSERT INTO telemetry_moving SELECT * FROM d"), {"d": day, "n": nxt})
            session.execute(text(
                f"CREATE TABLE {name} PARTITION OF telemetry FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')"))
            # straight into the partition: these readings are not new arrivals
            session.execute(text(f"INSERT INTO {name} SELECT * FROM telemetry_moving"))
            session.execute(text("TRUNCATE telemetry_moving"))
            created.append(name)
    return created


def ensure_month_partitions(session: Session, *, table: str, start: datetime, end: datetime) -> list[str]:
    """Create the missing monthly partitions of telemetry_hourly or telemetry_cold for [start, end]."""
    assert table in ("telemetry_hourly", "telemetry_cold")
    have = month_partitions(session, table=table)
    if any(m not in have for m in _months(start, end)):
        _serialize_creation(session)
        have = month_partitions(session, table=table)
    created = []
    for m in _months(start, end):
        if m not in have:
            _lock_timeout(session)
            name = f"{table}_p{m:%Y%m}"
            session.execute(text(
                f"CREATE TABLE {name} PARTITION OF {table} "
                f"FOR VALUES FROM ('{m.isoformat()}') TO ('{next_month(m).isoformat()}')"))
            created.append(name)
    return created


def _fold_into_cold(session: Session, *, src: str, day: datetime) -> int:
    """Fold the readings of table `src` of one UTC day into the cold tier; returns how many were
    taken. Usually no cold row exists yet for those (asset, metric, day): one INSERT … SELECT.
    Otherwise (late readings of a compacted day) the cold rows are decoded, merged and rewritten;
    a reading already in the cold tier keeps its stored value."""
    p = {"day": day, "next": day + timedelta(days=1)}
    rows = f"(SELECT * FROM {src} WHERE ts >= :day AND ts < :next)"
    session.execute(text("SAVEPOINT fold"))
    try:
        taken = session.execute(text(f"WITH ins AS ({_ENCODE.format(target='telemetry_cold', src=rows)} RETURNING n) "
                                     "SELECT coalesce(sum(n), 0) FROM ins"), p).scalar()
        session.execute(text("RELEASE SAVEPOINT fold"))
        return int(taken)
    except IntegrityError:  # some (asset, metric) of that day is in the cold tier already
        session.execute(text("ROLLBACK TO SAVEPOINT fold"))
    session.execute(text("DROP TABLE IF EXISTS cold_merge"))
    session.execute(text(
        "CREATE TEMP TABLE cold_merge ON COMMIT DROP AS "
        "SELECT DISTINCT ON (asset_id, metric_id, ts) asset_id, metric_id, ts, value FROM ("
        "  SELECT c.asset_id, c.metric_id, u.ts, u.value, 0 AS pri "
        "  FROM telemetry_cold c CROSS JOIN LATERAL telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u "
        f" WHERE c.day = :day AND (c.asset_id, c.metric_id) IN (SELECT s.asset_id, s.metric_id FROM {rows} s) "
        f" UNION ALL SELECT s.asset_id, s.metric_id, s.ts, s.value, 1 FROM {rows} s"
        ") x ORDER BY asset_id, metric_id, ts, pri"), p)
    session.execute(text(
        "DELETE FROM telemetry_cold c WHERE c.day = :day AND (c.asset_id, c.metric_id) IN "
        "(SELECT asset_id, metric_id FROM cold_merge)"), p)
    session.execute(text(_ENCODE.format(target="telemetry_cold", src="cold_merge")), p)
    return session.execute(text(f"SELECT count(*) FROM {rows} s"), p).scalar()


def asset_chunks(session: Session, *, table: str, readings: float, chunks: int) -> list[tuple[int, int]]:
    """The assets of `table` (a day partition) cut into at least `chunks` ranges (first, last) of
    as many assets each, more when the day holds more than CHUNK_READINGS per range. The asset ids
    are read from the primary key (one index probe per asset), not from the rows."""
    ids = session.execute(text(
        f"WITH RECURSIVE a AS (SELECT min(asset_id) AS id FROM {table} UNION ALL "
        f"SELECT (SELECT min(t.asset_id) FROM {table} t WHERE t.asset_id > a.id) FROM a WHERE a.id IS NOT NULL) "
        "SELECT id FROM a WHERE id IS NOT NULL")).scalars().all()
    if not ids:
        return []
    n = min(len(ids), max(chunks, -(-int(readings) // CHUNK_READINGS)))
    if n > chunks:  # whole rounds of the workers
        n = min(len(ids), -(-n // chunks) * chunks)
    bounds = [i * len(ids) // n for i in range(n + 1)]
    return [(ids[bounds[i]], ids[bounds[i + 1] - 1]) for i in range(n)]


def _encode_chunks(session: Session, *, name: str, day: datetime, chunks: list[tuple[int, int]], workers: int) -> None:
    """Encode the chunks of partition `name` into STAGE: in `session` when workers <= 1, else on
    `workers` connections of the session's engine that import its snapshot (so they read exactly
    what it locked), each in one transaction; their commits only fill STAGE."""
    encode = text(_ENCODE.format(target=STAGE, src=f"(SELECT * FROM {name} WHERE asset_id BETWEEN :lo AND :hi)"))
    settings = [f"SET LOCAL work_mem = '{ENCODE_WORK_MEM}'", "SET LOCAL enable_indexscan = off"]
    if workers <= 1 or len(chunks) <= 1:
        for q in settings:
            session.execute(text(q))
        for lo, hi in chunks:
            session.execute(encode, {"day": day, "lo": lo, "hi": hi})
        return
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar()
    todo = list(reversed(chunks))
    lock = threading.Lock()
    failed = threading.Event()

    def work() -> None:
        with session.get_bind().connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))  # first statement of its transaction
            for q in settings:
                conn.execute(text(q))
            while not failed.is_set():
                with lock:
                    if not todo:
                        break
                    lo, hi = todo.pop()
                try:
                    conn.execute(encode, {"day": day, "lo": lo, "hi": hi})
                except BaseException:
                    failed.set()
                    raise
            conn.commit()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compact") as pool:
        for f in [pool.submit(work) for _ in range(min(workers, len(chunks)))]:
            f.result()


def compact_day(session: Session, *, day: datetime, workers: int = 1) -> int:
    """Move the hot partition of one UTC day into the cold tier; returns the readings moved. The
    partition is emptied (not dropped: that needs a lock on the parent, `drop_compacted`) and
    from then on refuses readings already in the cold tier. With workers > 1 the encoding runs on
    that many connections at once (asset ranges); the move itself is this session's transaction."""
    name = f"telemetry_p{day:%Y%m%d}"
    with session.get_bind().connect() as conn:  # the working table, committed before anyone uses it
        conn.execute(text(f"CREATE UNLOGGED TABLE IF NOT EXISTS {STAGE} (LIKE telemetry_cold)"))
        # a stage made before migration 0010 lacks the hour index the encoding now writes (looked
        # up first: an ALTER would wait for this very transaction when it compacts a second day)
        if conn.execute(text(f"SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{STAGE}'::regclass "
                             "AND attname = 'hours' AND NOT attisdropped)")).scalar():
            conn.execute(text(f"ALTER TABLE {STAGE} ADD COLUMN hours double precision[]"))
        conn.commit()
    # writers of that (old) day wait until the commit; readers go on
    session.execute(text(f"LOCK TABLE {name} IN SHARE MODE"))
    ensure_month_partitions(session, table="telemetry_cold", start=day, end=day)
    session.execute(text(f"DELETE FROM {STAGE}"))  # what a killed pass left
    readings = session.execute(text(
        "SELECT CASE WHEN reltuples > 0 THEN reltuples ELSE pg_relation_size(oid) / 50 END FROM pg_class "
        "WHERE oid = CAST(:n AS regclass)"), {"n": name}).scalar()
    chunks = asset_chunks(session, table=name, readings=readings, chunks=max(workers, 1))
    _encode_chunks(session, name=name, day=day, chunks=chunks, workers=workers)
    session.execute(text("SAVEPOINT move"))
    try:
        moved = session.execute(text(
            "WITH ins AS (INSERT INTO telemetry_cold (asset_id, metric_id, day, n, dts, vals, milli, hours) "
            f"SELECT asset_id, metric_id, day, n, dts, vals, milli, hours FROM {STAGE} RETURNING n) "
            "SELECT coalesce(sum(n), 0) FROM ins")).scalar()
        session.execute(text("RELEASE SAVEPOINT move"))
    except IntegrityError:  # some (asset, metric) of that day is in the cold tier already: merge
        session.execute(text("ROLLBACK TO SAVEPOINT move"))
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        moved = _fold_into_cold(session, src=name, day=day)
    # the stage by DELETE, not TRUNCATE: no lock that would block a next compaction's workers
    # if the caller compacts another day in the same transaction
    session.execute(text(f"DELETE FROM {STAGE}"))
    session.execute(text(f"TRUNCATE {name}"))
    session.execute(text(
        f"CREATE OR REPLACE TRIGGER {name}_refuse_cold_duplicates BEFORE INSERT ON {name} "
        "FOR EACH ROW EXECUTE FUNCTION telemetry_refuse_cold_duplicates()"))
    return int(moved)


def drop_compacted(session: Session, *, day: datetime) -> int:
    """Drop the (emptied) partition of a compacted day, folding into the cold tier any reading
    that arrived for that day since; returns those readings."""
    name = f"telemetry_p{day:%Y%m%d}"
    _lock_timeout(session)
    session.execute(text("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE"))
    late = _fold_into_cold(session, src=name, day=day)
    session.execute(text(f"DROP TABLE {name}"))
    return late


def merge_late(session: Session, *, before: datetime) -> int:
    """Fold the readings of telemetry_late older than `before` (days already compacted) into the
    cold tier; returns how many."""
    session.execute(text("LOCK TABLE telemetry_late IN SHARE MODE"))  # its writers wait; short
    days = session.execute(text(
        "SELECT DISTINCT date_trunc('day', ts, 'UTC') FROM telemetry_late WHERE ts < :b ORDER BY 1"), {"b": before}
    ).scalars().all()
    merged = 0
    for day in days:
        ensure_month_partitions(session, table="telemetry_cold", start=day, end=day)
        merged += _fold_into_cold(session, src="telemetry_late", day=day)
    if days:
        session.execute(text("DELETE FROM telemetry_late WHERE ts < :b"), {"b": before})
    return merged


@dataclass
class MaintenanceReport:
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    days_compacted: int = 0
    points_compacted: int = 0
    late_points_merged: int = 0
    hours_rolled_up: int = 0
    postponed: list[str] = field(default_factory=list)  # lock not obtained: next pass
    step_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"partitions created: {len(self.partitions_created)} {' '.join(self.partitions_created)}".rstrip(),
            f"days compacted: {self.days_compacted} ({self.points_compacted:,} readings to the cold tier)",
            f"late readings folded into the cold tier: {self.late_points_merged:,}",
            f"hourly roll-up rows written: {self.hours_rolled_up:,}",
            f"partitions dropped by retention: {len(self.partitions_dropped)} {' '.join(self.partitions_dropped)}".rstrip(),
            *([f"postponed to the next pass (table busy): {', '.join(self.postponed)}"] if self.postponed else []),
            f"done in {self.seconds:.1f} s",
        ]


def retention_targets(session: Session, *, now: datetime, telemetry_days: int, rollup_days: int) -> list[tuple[str, str]]:
    """(parent, partition) pairs entirely older than the retention periods (0: keep forever)."""
    out = []
    if telemetry_days:
        cutoff = day_start(now) - timedelta(days=telemetry_days)
        out += [("telemetry", n) for d, n in sorted(day_partitions(session).items()) if d + timedelta(days=1) <= cutoff]
        out += [("telemetry_cold", n) for m, n in sorted(month_partitions(session, table="telemetry_cold").items())
                if next_month(m) <= cutoff]
    if rollup_days:
        cutoff = day_start(now) - timedelta(days=rollup_days)
        out += [("telemetry_hourly", n) for m, n in sorted(month_partitions(session, table="telemetry_hourly").items())
                if next_month(m) <= cutoff]
    return out


def drop_partition(session: Session, *, parent: str, name: str) -> None:
    """Retention: drop one whole partition (never a DELETE of its rows)."""
    _lock_timeout(session)
    session.execute(text(f"LOCK TABLE {parent} IN ACCESS EXCLUSIVE MODE"))
    session.execute(text(f"DROP TABLE IF EXISTS {name}"))


def maintain(
    *,
    now: datetime,
    hot_days: int,
    telemetry_retention_days: int = 0,
    rollup_retention_days: int = 0,
    progress: bool = False,
    workers: int | None = None,
) -> MaintenanceReport | None:
    """One maintenance pass; None when another pass holds the lock. Each step commits alone.
    `workers`: connections that compact in parallel (default: MAINTENANCE_WORKERS)."""
    from core.settings import get_settings
    from db.session import database_url, libpq_url, session_scope
    from engine.rollup import pending, roll_up, roll_up_assets

    if workers is None:
        workers = get_settings().maintenance_workers

    t0 = time.perf_counter()
    report = MaintenanceReport()
    with psycopg.connect(libpq_url(database_url()), autocommit=True) as lock_conn:
        if not lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (MAINTENANCE_LOCK,)).fetchone()[0]:
            log.info("another maintenance pass is running")
            return None

        def step(what: str, fn):
            t = time.perf_counter()
            try:
                with session_scope() as s:
                    return fn(s)
            except OperationalError as exc:
                if "lock timeout" not in str(exc) and "LockNotAvailable" not in type(exc.orig).__name__:
                    raise
                log.warning("maintenance step postponed (table busy)", extra={"step": what})
                report.postponed.append(what)
                return None
            finally:
                report.step_seconds[what] = round(time.perf_counter() - t, 3)

        today = day_start(now)
        report.partitions_created += step("create partitions", lambda s: ensure_day_partitions(
            s, start=today - timedelta(days=hot_days), end=today + timedelta(days=AHEAD_DAYS))) or []
        for table in ("telemetry_hourly", "telemetry_cold"):
            report.partitions_created += step(f"create {table} partitions", lambda s, t=table: ensure_month_partitions(
                s, table=t, start=now, end=next_month(month_start(now)))) or []

        with session_scope() as s:
            targets = retention_targets(s, now=now, telemetry_days=telemetry_retention_days,
                                        rollup_days=rollup_retention_days)
        for parent, name in targets:
            if step(f"drop {name}", lambda s, p=parent, n=name: drop_partition(s, parent=p, name=n) or True):
                report.partitions_dropped.append(name)
        if telemetry_retention_days:
            cutoff = today - timedelta(days=telemetry_retention_days)
            step("retention of late readings", lambda s: s.execute(
                text("DELETE FROM telemetry_late WHERE ts < :c"), {"c": cutoff}))

        horizon = today - timedelta(days=hot_days)
        with session_scope() as s:
            days = [d for d in sorted(day_partitions(s)) if d + timedelta(days=1) <= horizon]
        from tqdm import tqdm

        for day in tqdm(days, desc="compacting days", unit="day", disable=not progress or len(days) < 2):
            moved = step(f"compact {day:%Y-%m-%d}", lambda s, d=day: compact_day(s, day=d, workers=workers))
            if moved is None:
                continue
            report.days_compacted += 1
            report.points_compacted += moved
            late = step(f"drop telemetry_p{day:%Y%m%d}", lambda s, d=day: drop_compacted(s, day=d))
            report.points_compacted += late or 0
        report.late_points_merged = step("fold late readings", lambda s: merge_late(s, before=horizon)) or 0
        t = time.perf_counter()
        since = None  # roll_up() computes the hours since its watermark, and the dirty hours
        if workers > 1:  # the hours since the watermark first, asset ranges on `workers` connections
            span = step("roll-up partitions", lambda s: pending(s, now=now, retention_days=rollup_retention_days))
            if span and span[0] < span[1]:
                with session_scope() as s:
                    ids = s.execute(text("SELECT id FROM assets ORDER BY id")).scalars().all()
                bounds = [i * len(ids) // workers for i in range(workers + 1)]
                ranges = [(ids[bounds[i]], ids[bounds[i + 1] - 1]) for i in range(workers) if bounds[i] < bounds[i + 1]]

                def part(first: int, last: int) -> int:
                    with session_scope() as s:
                        return roll_up_assets(s, since=span[0], until=span[1], first=first, last=last)

                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roll-up") as pool:
                    report.hours_rolled_up += sum(f.result() for f in [pool.submit(part, *r) for r in ranges])
                since = span[1]
        report.hours_rolled_up += step("roll-up", lambda s: roll_up(
            s, now=now, since=since, retention_days=rollup_retention_days)) or 0
        report.step_seconds["roll-up"] = round(time.perf_counter() - t, 3)
        lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MAINTENANCE_LOCK,))
    report.seconds = time.perf_counter() - t0
    log.info("maintenance pass", extra={
        "partitions_created": len(report.partitions_created), "dropped": len(report.partitions_dropped),
        "days_compacted": report.days_compacted, "points_compacted": report.points_compacted,
        "late_points": report.late_points_merged, "hours_rolled_up": report.hours_rolled_up,
        "postponed": len(report.postponed), "seconds": round(report.seconds, 2)})
    return report
