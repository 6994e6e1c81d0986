"""Storage benchmark (issue 12): hot and cold bytes per reading, compaction speed, a one-year
chart, a retention drop, one maintenance pass for a day of a 1,000-asset fleet.

Sizing (this machine: ~60 GB of free disk, 2 cores), all generated inside PostgreSQL
(generate_series, values shaped like the simulator's: slow daily cycle + noise, rounded to 3
decimals; counters that grow), 100 assets per INSERT on 2 connections:
- the day: --assets (1,000) × 8 metrics × 8,640 readings (every 10 s) = 69 million readings
  (≈ 6.7 GB as hot rows), in its day partition, vacuumed and checkpointed (as a week-old
  partition is); one maintenance pass compacts it and rolls up its 24 hours →
  bytes_per_point_hot, bytes_per_point_cold, compact_points_per_s, maintain_s_day;
- the year: one asset × 8 metrics, one reading per minute for 365 days (4.2 million readings),
  written straight into the cold tier and rolled up; the chart reads the hourly roll-up, so its
  cost follows the 8,760 hours per metric, not the cadence → chart_1y_ms (dashboard query);
- retention: a day partition of 10,000 assets × 8 metrics, one reading per 10 minutes (11.5
  million readings, ≈ 1 GB: the 10-s day of 10,000 assets, 691 million readings, would not fit
  here), dropped by the maintenance's retention step → retention_drop_ms. A DROP unlinks files:
  its cost does not follow the rows (the day's cold partition is dropped too).
Bit-exactness is the tests' job (tests/db/test_storage.py); here a checksum of 10 assets' day
before and after the pass is compared as a sanity check.

Run: .venv/bin/python bench/storage.py [--assets 1000]   (1,000 assets: ~10 minutes, ~8 GB)
Uses DATABASE_URL's server or a temporary embedded one, in a throwaway database (dropped after).
Ends with one JSON line: bytes_per_point_hot, bytes_per_point_cold, compact_points_per_s,
chart_1y_ms, retention_drop_ms, maintain_s_day (+ details).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from _support import libpq_url, machine, throwaway_database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY = datetime(2026, 2, 20, tzinfo=UTC)  # the day compacted by the pass (older than 7 days)
RETENTION_DAY = datetime(2025, 12, 1, tzinfo=UTC)
HOT_DAYS = 7
# value of metric k (1..8) of asset a at ts: gauges (k <= 6) around a base, counters (7, 8) growing
VALUE = ("CASE WHEN k <= 6 THEN round((10 * k + 3 * sin(extract(epoch FROM ts) / 13751.0 + a) + random() * 0.2)"
         "::numeric, 3)::float8 ELSE round((extract(epoch FROM ts - '2026-01-01'::timestamptz) / 3600.0 * k)"
         "::numeric, 2)::float8 END")


def fleet(conn: psycopg.Connection, n: int, prefix: str) -> tuple[int, int]:
    """n HVAC assets with 8 metrics each (the 5 of the catalog + 3 bench ones); (first id, last id)."""
    conn.execute("INSERT INTO metrics (name, unit, kind, asset_types, label_fr, label_en) "
                 "SELECT 'bench_' || i, 'u', 'gauge', ARRAY['HVAC'], 'banc ' || i, 'bench ' || i "
                 "FROM generate_series(1, 3) i ON CONFLICT (name) DO NOTHING")
    site = conn.execute("INSERT INTO sites (code, name, city) VALUES (%s, %s, 'Casablanca') RETURNING id", (prefix, prefix)).fetchone()[0]
    ids = conn.execute(
        "INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
        "SELECT %s || '-' || i, 'bench ' || i, 'HVAC', %s, 10 FROM generate_series(1, %s) i RETURNING id",
        (prefix, site, n)).fetchall()
    return min(r[0] for r in ids), max(r[0] for r in ids)


def metric_ids(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM metrics WHERE 'HVAC' = ANY(asset_types) ORDER BY id")]


def generate_day(dsn: str, table: str, first: int, last: int, mids: list[int], day: datetime, step_s: int) -> int:
    """Readings of assets first..last, 8 metrics, every step_s over one day, straight into a
    partition: 100 assets per statement, on 2 connections at once (the machine's 2 cores)."""
    from concurrent.futures import ThreadPoolExecutor

    def part(a0: int) -> int:
        with psycopg.connect(dsn) as conn:
            cur = conn.execute(
                f"INSERT INTO {table} (asset_id, metric_id, ts, value) "
                f"SELECT a, (%(mids)s::int2[])[k], ts, {VALUE} FROM generate_series(%(a0)s::int, %(a1)s::int) a, "
                "generate_series(1, 8) k, generate_series(%(day)s::timestamptz, "
                "%(day)s::timestamptz + interval '1 day' - interval '1 microsecond', make_interval(secs => %(step)s::float8)) ts",
                {"mids": mids, "a0": a0, "a1": min(a0 + 99, last), "day": day, "step": step_s})
            conn.commit()
            return cur.rowcount

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(part, range(first, last + 1, 100)))


def load() -> str:
    return "load average " + " ".join(open("/proc/loadavg").read().split()[:3])


def server_cpu_s(dsn: str) -> float:
    """CPU seconds used so far by the server's processes (the bench's own server: this machine is
    shared, so throughput per CPU-second is reported beside wall-clock figures)."""
    import os

    with psycopg.connect(dsn) as conn:
        datadir = conn.execute("SHOW data_directory").fetchone()[0]
    postmaster = int(open(f"{datadir}/postmaster.pid").readline())
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def relation_bytes(conn, parent: str, name_like: str) -> int:
    """Bytes on disk (heap, TOAST, indexes) of the partitions of `parent` named like `name_like`."""
    return int(conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass AND c.relname LIKE %s", (parent, name_like)).fetchone()[0])


DAY_CHECKSUM = (
    "SELECT count(*), sum(hashtextextended(r.asset_id || '/' || r.metric_id || '/' || "
    "(extract(epoch FROM r.ts) * 1000000)::bigint || '/' || float8send(r.value)::text, 0)::numeric) "
    "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
    "CROSS JOIN LATERAL readings(a.id, m.id, %s, %s) r WHERE a.id BETWEEN %s AND %s"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=1000, help="assets of the compacted 10-s day (default 1000)")
    ap.add_argument("--retention-assets", type=int, default=10_000)
    args = ap.parse_args()
    print(f"machine: {machine()}; {load()}", flush=True)
    t_setup = time.perf_counter()
    with throwaway_database() as url:
        dsn = libpq_url(url)
        from db.session import session_scope
        from engine.maintenance import ensure_day_partitions, ensure_month_partitions, maintain, set_state

        with psycopg.connect(dsn) as conn:
            first, last = fleet(conn, args.assets, "DAY")
            mids = metric_ids(conn)
            conn.commit()
        with session_scope() as s:
            ensure_day_partitions(s, start=DAY, end=DAY)
            ensure_day_partitions(s, start=NOW - timedelta(days=1), end=NOW + timedelta(days=3))
        part = f"telemetry_p{DAY:%Y%m%d}"

        # --- the 10-s day: hot size, then one pass (compaction + roll-up of its 24 hours) ---
        t = time.perf_counter()
        day_points = generate_day(dsn, part, first, last, mids, DAY, 10)
        print(f"day: {day_points:,} readings ({args.assets} assets × 8 metrics × every 10 s) generated inside "
              f"PostgreSQL (generate_series, 100 assets per INSERT into the day partition, 2 connections) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        sample = (first, min(first + 9, last))  # the sanity checksum reads 10 assets (bit-exactness: the tests)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"VACUUM ANALYZE {part}")
            hot_bytes = relation_bytes(conn, "telemetry", part)
            before = conn.execute(DAY_CHECKSUM, (DAY, DAY + timedelta(days=1), *sample)).fetchone()
            conn.execute("CHECKPOINT")  # a week-old partition is on disk, not dirty in memory
        with session_scope() as s:  # every hour before the day is rolled up: the pass rolls up the day
            set_state(s, name="rollup_until", at=DAY)
        print(f"setup: VACUUM ANALYZE, sizes, checksum, CHECKPOINT in {time.perf_counter() - t:.0f} s; "
              f"hot {hot_bytes / 1e9:.2f} GB; {load()}", flush=True)
        cpu0 = server_cpu_s(dsn)
        report = maintain(now=DAY + timedelta(days=HOT_DAYS + 1), hot_days=HOT_DAYS)
        maintain_cpu_s = server_cpu_s(dsn) - cpu0
        maintain_s = report.seconds
        print("\n".join("  " + line for line in report.lines()))
        print(f"  steps (s): {report.step_seconds}; server CPU: {maintain_cpu_s:.0f} s; {load()}", flush=True)
        compact_s = report.step_seconds[f"compact {DAY:%Y-%m-%d}"] + report.step_seconds[f"drop {part}"]
        report_rollup_s = report.step_seconds["roll-up"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            cold_bytes = relation_bytes(conn, "telemetry_cold", "telemetry_cold_p%")  # this day only
            after = conn.execute(DAY_CHECKSUM, (DAY, DAY + timedelta(days=1), *sample)).fetchone()
            hours = conn.execute("SELECT count(*) FROM telemetry_hourly WHERE hour >= %s AND hour < %s",
                                 (DAY, DAY + timedelta(days=1))).fetchone()[0]
        assert after == before, "the compacted day differs from the hot day"
        assert hours == args.assets * 8 * 24, hours

        # --- the year of one asset, cold, rolled up; the dashboard's chart query ---
        with psycopg.connect(dsn) as conn:
            year_asset, _ = fleet(conn, 1, "YEAR")
            conn.commit()
        start = (NOW - timedelta(days=365)).replace(hour=0)
        with session_scope() as s:
            ensure_month_partitions(s, table="telemetry_cold", start=start, end=NOW)
        t = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO telemetry_cold (asset_id, metric_id, day, n, dts, vals, milli) "
                "SELECT %(a)s, (%(mids)s::int2[])[k], d, 1440, array_prepend(0::bigint, array_fill(60000000::bigint, "
                "ARRAY[1439])), ARRAY(SELECT round((10 * k + 3 * sin(extract(epoch FROM d + i * interval '1 minute') "
                "/ 13751.0) + random() * 0.2)::numeric, 3)::float8 FROM generate_series(0, 1439) i), false "
                "FROM generate_series(1, 8) k, generate_series(%(start)s::timestamptz, %(end)s::timestamptz, "
                "interval '1 day') d", {"a": year_asset, "mids": mids, "start": start, "end": NOW - timedelta(days=8)})
            conn.commit()
        from engine.rollup import roll_up

        with session_scope() as s:
            roll_up(s, now=NOW, since=start)
        print(f"year: one asset × 8 metrics, a reading a minute, cold and rolled up in {time.perf_counter() - t:.0f} s")
        from db import queries
        from db.session import session_scope as scope

        times = []
        for _ in range(7):
            with scope() as s:
                t = time.perf_counter()
                pts = queries.downsampled_series(s, asset_id=year_asset, start=NOW - timedelta(days=365), end=NOW)
                times.append((time.perf_counter() - t) * 1000)
        chart_ms = statistics.median(times)
        print(f"chart, one asset, one year: {len(pts)} buckets, median {chart_ms:.0f} ms")

        # --- retention: drop the day partition of 10,000 assets ---
        with psycopg.connect(dsn) as conn:
            r_first, r_last = fleet(conn, args.retention_assets, "RET")
            conn.commit()
        with session_scope() as s:
            ensure_day_partitions(s, start=RETENTION_DAY, end=RETENTION_DAY)
        rpart = f"telemetry_p{RETENTION_DAY:%Y%m%d}"
        r_points = generate_day(dsn, rpart, r_first, r_last, mids, RETENTION_DAY, 600)
        with psycopg.connect(dsn, autocommit=True) as conn:
            r_bytes = relation_bytes(conn, "telemetry", rpart)
            # a partition past retention was vacuumed long ago; a freshly written one draws
            # autovacuum now, and the drop's lock would wait deadlock_timeout (1 s) to cancel it
            conn.execute(f"VACUUM ANALYZE {rpart}")
            conn.execute("CHECKPOINT")
        with session_scope() as s:
            set_state(s, name="rollup_until", at=NOW)  # this pass is about retention
        report = maintain(now=NOW, hot_days=HOT_DAYS, telemetry_retention_days=60)
        assert rpart in report.partitions_dropped
        drop_ms = report.step_seconds[f"drop {rpart}"] * 1000
        print(f"retention: dropped {rpart} ({r_points:,} readings, {r_bytes / 1e9:.2f} GB) in {drop_ms:.0f} ms")
        from engine.maintenance import drop_partition

        t = time.perf_counter()
        with session_scope() as s:
            drop_partition(s, parent="telemetry_cold", name="telemetry_cold_p202602")
        cold_drop_ms = (time.perf_counter() - t) * 1000
        print(f"retention: dropped the cold month holding the {day_points:,}-reading day in {cold_drop_ms:.0f} ms")
    print(f"bench done in {time.perf_counter() - t_setup:.0f} s (database dropped); {load()}")

    out = {
        "bytes_per_point_hot": round(hot_bytes / day_points, 1),
        "bytes_per_point_cold": round(cold_bytes / day_points, 2),
        "compact_points_per_s": round(day_points / compact_s),
        "chart_1y_ms": round(chart_ms, 1),
        "retention_drop_ms": round(drop_ms, 1),
        "maintain_s_day": round(maintain_s, 1),
        "maintain_cpu_s_day": round(maintain_cpu_s, 1),
        "compact_s": round(compact_s, 1),
        "rollup_s": report_rollup_s,
        "assets_day": args.assets,
        "readings_day": day_points,
        "cold_drop_ms": round(cold_drop_ms, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
