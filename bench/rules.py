"""Rules benchmark (issues 3 and 10): one evaluation run over the readings that arrived in the
last 60 s, as the fleet and the history grow; and one backtest over 30 days.

Run: .venv/bin/python bench/rules.py [--assets 1000] [--hours 1 24] [--fleet 10000]
                                      [--backtest-assets 1000] [--backtest-days 30]
                                      [--backtest-incidents 3] [--backtest-only | --eval-only]
                                      [--backtest-keep DIR]
Uses DATABASE_URL's server or a temporary embedded one, in a throwaway database. Readings are
generated inside PostgreSQL (generate_series), every 10 s, for the metrics the policies read
(sized for this machine's disk: --assets × 2 metrics × --hours, --fleet × 2 metrics × 1 h,
--backtest-assets HVAC units × 1 metric × --backtest-days).

Each evaluation figure: the previous runs have consumed the history (a warm-up run over its last
10 minutes leaves the engine's state as in steady state); 60 s of new readings arrive for every
asset; one run of every policy as the scheduler runs it (RULES_SHARDS = 2 parallel transactions),
median of --repeats (9), the state put back before each. The history lengths (--hours) each have
their own database on the same server, and their timed runs alternate (the machine's speed drifts).
The backtest (`backtest_section`): R1 over a history stored as the platform stores it (cold tier
beyond TELEMETRY_HOT_DAYS, hot day partitions, complete roll-up), normal operation below the
thresholds plus --backtest-incidents incidents per unit; best of 2; checked against a full sweep
on two units; the dense what-if (threshold 16.4) on two units.
Ends with one JSON line: assets, eval_s_1h, eval_s_24h, eval_s (by hours), fleet, eval_s_10k,
backtest_assets, backtest_days, backtest_readings, backtest_s_30d, and the backtest's secondary
keys (backtest_incidents, backtest_firings, backtest_setup_s, backtest_full_s_per_unit,
backtest_dense_*). --backtest-only skips the evaluation figures. --backtest-keep DIR (with
--backtest-only) keeps the backtest's database (an embedded server's data in DIR, or database
m40_bench_backtest on DATABASE_URL's server) and reuses its history when a later run asks for the
same units, days and incidents: the 5-8 minutes of setup are paid once (migrated to head again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from _support import bench_database, libpq_url, machine, sibling_database, using_database
from sqlalchemy import text
from sqlalchemy.engine import make_url

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHARDS = 2  # RULES_SHARDS as deployed (.env.example)
HOT_DAYS = 7  # TELEMETRY_HOT_DAYS: older days are in the cold tier (the backtest's history)
POLICY_METRICS = {
    "HVAC": ["temp_supply_air", "vibration_level"],
    "CHILLER": ["water_temp_out", "run_hours"],
    "ELEVATOR": ["motor_temp", "door_cycles"],
}
# plausible values, below every threshold: base + amplitude * sin
SHAPE = {
    "temp_supply_air": (15.0, 1.5), "vibration_level": (2.5, 0.8), "water_temp_out": (7.0, 0.8),
    "motor_temp": (50.0, 8.0), "run_hours": (0.0, 0.0), "door_cycles": (0.0, 0.0),
}


def add_assets(dsn: str, n: int, *, prefix: str, types: list[str] | None = None) -> None:
    types = types or list(POLICY_METRICS)
    with psycopg.connect(dsn) as conn:
        site = conn.execute(
            "INSERT INTO sites (code, name, city) VALUES (%s, %s, 'Casablanca') "
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name RETURNING id", (prefix, f"Bench {prefix}")
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
            "SELECT %s || '-' || i, 'bench ' || i, (%s::text[])[1 + (i %% %s)], %s, 10 FROM generate_series(1, %s) i",
            (prefix, types, len(types), site, n),
        )


def ensure_partitions(start: datetime, end: datetime) -> None:
    from db.session import session_scope
    from engine.maintenance import ensure_day_partitions

    with session_scope() as s:
        ensure_day_partitions(s, start=start, end=end)


def load(dsn: str, prefix: str, start: datetime, end: datetime, *, metrics: dict | None = None) -> int:
    """Readings every 10 s in [start, end) for the policy metrics of the assets named prefix-*."""
    total = 0
    with psycopg.connect(dsn) as conn:
        for typ, names in (metrics or POLICY_METRICS).items():
            for metric in names:
                base, amp = SHAPE[metric]
                counter = metric in ("run_hours", "door_cycles")
                value = (
                    "extract(epoch FROM ts - %(t0)s) / 3600.0 * (CASE WHEN m.name = 'door_cycles' THEN 30 ELSE 1 END)"
                    if counter else
                    "%(base)s + %(amp)s * sin(extract(epoch FROM ts) / 3600.0 + a.id) + random() * 0.2"
                )
                cur = conn.execute(
                    f"INSERT INTO telemetry (asset_id, metric_id, ts, value) "
                    f"SELECT a.id, m.id, ts, {value} FROM assets a, metrics m, "
                    f"generate_series(%(start)s, %(end)s - interval '1 second', interval '10 seconds') ts "
                    f"WHERE a.type = %(typ)s AND a.code LIKE %(like)s AND m.name = %(metric)s",
                    {"start": start, "end": end, "typ": typ, "metric": metric, "base": base, "amp": amp,
                     "t0": NOW - timedelta(hours=48), "like": prefix + "-%"},
                )
                total += cur.rowcount
        conn.commit()
    return total


def settle(dsn: str) -> None:
    """As if every earlier run had happened: arrivals consumed, newest reading times known."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry_arrivals, telemetry_dirty_hours")
        conn.execute("INSERT INTO telemetry_latest (asset_id, metric_id, last_ts) "
                     "SELECT asset_id, metric_id, max(ts) FROM telemetry GROUP BY 1, 2 "
                     "ON CONFLICT (asset_id, metric_id) DO UPDATE SET last_ts = excluded.last_ts")
        conn.execute("VACUUM ANALYZE telemetry")


def warm_up(dsn: str, minutes: int = 10) -> None:
    """As if the engine had run all along: one run over the last `minutes` of history, so every
    (asset, policy) has its stored state, as in steady state."""
    from engine.evaluate import evaluate_sharded

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO telemetry_arrivals (asset_id, metric_id, min_ts, max_ts, n) "
                     "SELECT asset_id, metric_id, min(ts), max(ts), count(*) FROM telemetry "
                     "WHERE ts > %s AND ts < %s GROUP BY 1, 2",
                     (NOW - timedelta(seconds=60) - timedelta(minutes=minutes), NOW - timedelta(seconds=60)))
    evaluate_sharded(now=NOW - timedelta(seconds=60), shards=SHARDS, source="bench")


_STATE = ("telemetry_arrivals", "telemetry_latest", "policy_evaluations")


def stage_run(dsn: str, prefix: str) -> None:
    """The minute that arrives (60 s of new readings for every asset) loaded once, and the
    engine's state before it put aside (bench_* tables) for every timed run to start from."""
    load(dsn, prefix, NOW - timedelta(seconds=60), NOW)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in _STATE:
            conn.execute(f"CREATE TABLE bench_{table} AS SELECT * FROM {table}")


def unstage_run(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in _STATE:
            conn.execute(f"DROP TABLE IF EXISTS bench_{table}")


def timed_run(dsn: str):
    """Seconds of one run (as the scheduler runs it: RULES_SHARDS parallel transactions) over the
    staged minute, the engine's state put back as it was before it; and the run's result."""
    from engine.evaluate import evaluate_sharded

    with psycopg.connect(dsn, autocommit=True) as conn:
        # DELETE, not TRUNCATE: a truncated table gets a new file, which throws away every plan that
        # reads it (the engine plans its statements once per connection, engine/evaluate.py
        # `_prepared`); in service nothing truncates these tables, autovacuum only vacuums them
        for table in _STATE:
            conn.execute(f"DELETE FROM {table}")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM alerts)").fetchone()[0]:  # none in steady state
            conn.execute("TRUNCATE alerts CASCADE")
        conn.execute("VACUUM " + ", ".join(_STATE))
        for table in _STATE:
            conn.execute(f"INSERT INTO {table} SELECT * FROM bench_{table}")
        conn.execute("VACUUM ANALYZE " + ", ".join(_STATE))
        conn.execute("CHECKPOINT")  # the minute's load and the restore written out: not timed
    t = time.perf_counter()
    result = evaluate_sharded(now=NOW, shards=SHARDS, source="bench")
    secs = time.perf_counter() - t
    assert not result.failed, result.failed
    return secs, result


def time_run(dsn: str, prefix: str, repeats: int) -> tuple[float, int, int, int]:
    """Median seconds of `repeats` runs over 60 s of new readings, each from the same state."""
    stage_run(dsn, prefix)
    try:
        times, result = [], None
        for _ in range(repeats):
            secs, result = timed_run(dsn)
            times.append(secs)
    finally:
        unstage_run(dsn)
    print(f"runs: {', '.join(f'{s * 1000:.0f}' for s in times)} ms")
    return statistics.median(times), result.policies, result.assets, result.readings


def history_section(url: str, args, out: dict) -> None:
    """1. The same run at --assets with each of --hours of history. One database per history
    length on the same server (the first is the bench's own); the timed runs alternate between
    them, so the machine's speed, which drifts by a third over minutes here, weighs on every
    length alike. Switching databases opens a new pool: a first run on it warms its connections
    (not timed), then the timed one."""
    from engine.maintenance import AHEAD_DAYS

    hours_list = sorted(args.hours)
    with ExitStack() as stack:
        urls = {hours_list[0]: url} | {h: stack.enter_context(sibling_database(f"h{h}")) for h in hours_list[1:]}
        for hours in hours_list:
            with using_database(urls[hours]) as dsn:
                # the hot day partitions the maintenance pass keeps (TELEMETRY_HOT_DAYS back, AHEAD_DAYS
                # ahead): every statement reads telemetry through them, so their number is measured too
                ensure_partitions(NOW - timedelta(days=HOT_DAYS), NOW + timedelta(days=AHEAD_DAYS))
                add_assets(dsn, args.assets, prefix="BENCH")
                t = time.perf_counter()
                rows = load(dsn, "BENCH", NOW - timedelta(hours=hours), NOW - timedelta(seconds=60))
                settle(dsn)
                warm_up(dsn)
                stage_run(dsn, "BENCH")
                print(f"{hours:>3} h of history: {rows:>12,} readings (loaded in {time.perf_counter() - t:.0f} s)")
        times: dict[int, list[float]] = {h: [] for h in hours_list}
        for _ in range(args.repeats):
            for hours in hours_list:
                with using_database(urls[hours]) as dsn:
                    timed_run(dsn)  # warms the new pool's connections
                    secs, result = timed_run(dsn)
                    times[hours].append(secs)
        with using_database(url) as dsn:
            unstage_run(dsn)
            drop_readings(dsn)
    results = {h: statistics.median(v) for h, v in times.items()}
    for hours in hours_list:
        print(f"{hours:>3} h of history — one run of {result.policies} policies over the 60 s that arrived "
              f"({result.assets} assets, {result.readings:,} readings evaluated): median {results[hours] * 1000:.0f} ms "
              f"of {len(times[hours])} ({', '.join(f'{s * 1000:.0f}' for s in times[hours])})")
    first, last = hours_list[0], hours_list[-1]
    print(f"{last} h vs {first} h: {results[last] / results[first] - 1:+.0%}")
    out.update(assets=args.assets, eval_s_1h=round(results[first], 4), eval_s_24h=round(results[last], 4),
               eval_s={str(h): round(s, 4) for h, s in results.items()})


def drop_readings(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry, telemetry_arrivals, telemetry_latest, policy_evaluations, alerts, "
                     "work_orders, audit_trail, outbox_events CASCADE")
        conn.execute("DELETE FROM assets WHERE code LIKE 'BENCH%'")


# --- 3. backtest (functions of this section only) -------------------------------------------------

BT_KEPT_DB = "m40_bench_backtest"


def bt_kept_history(dsn: str, key: str) -> bool:
    """Whether the kept database already holds the history described by `key`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_backtest_history (key text PRIMARY KEY)")
        return conn.execute("SELECT 1 FROM bench_backtest_history WHERE key = %s", (key,)).fetchone() is not None

def bt_value_sql(incidents: int, days: int) -> str:
    """temp_supply_air of HVAC unit `a` at instant k (epoch / 10), in hundredths of a degree (an
    integer, as float8): 15 ± 1.5 °C over a 6.3-hour cycle, ± 0.2 °C of noise, and `incidents`
    incidents per unit over `days` days at pseudo-random times: 20-90 min, up to 21-24 °C, 10-min
    ramps. float8 and bigint arithmetic only (numeric would be ten times slower)."""
    slot = days * 8640 // max(incidents, 1)
    x = "(15 + 1.5 * sin(k::float8 / 360 + a) + mod(hashint8(k * 7919 + a), 1000)::float8 / 5000)"
    j = f"((k - %(k0)s) / {slot})"  # bigint division: the incident's slot

    def rnd(salt: int) -> str:  # a pseudo-random number in [0, 1) per unit and slot
        return f"(mod({j} * 40503 + a * 2654435761 + {salt}, 10007)::float8 / 10007)"
    u = f"(k - %(k0)s - {j} * {slot} - floor({rnd(11)} * {slot - 1080}))"
    dur = f"(120 + floor({rnd(23)} * 420))"
    peak = f"(21 + 3 * {rnd(37)})"
    bump = (f"CASE WHEN {u} >= 0 AND {u} <= {dur} THEN "
            f"greatest(0, {peak} - {x}) * least(1, {u} / 60, ({dur} - {u}) / 60) ELSE 0 END")
    return f"round(({x} + {bump if incidents else 0}) * 100)"


def bt_store_history(dsn: str, *, prefix: str, metric_id: int, start: datetime, end: datetime, hot_from: datetime,
                     incidents: int, days: int, workers: int = 2) -> dict:
    """Store the readings of [start, end) as the platform does, generated inside PostgreSQL: UTC
    days before `hot_from` in the cold tier (one row per unit and day, the format compaction
    writes: microsecond deltas, values as deltas of value × 1000), later days in their day
    partitions (loaded without the key, then keyed and attached), and the hourly roll-up of every
    hour (rollup_until = end); vacuumed and analyzed. Returns seconds per step."""
    h = bt_value_sql(incidents, days)
    units = "(SELECT id AS a FROM assets WHERE code LIKE %(like)s)"
    p0 = {"like": prefix + "-%", "mid": metric_id, "k0": int(start.timestamp()) // 10}
    jobs = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        nxt = day + timedelta(days=1)
        k1, k2 = int(max(day, start).timestamp()) // 10, int(min(nxt, end).timestamp()) // 10 - 1
        p = {**p0, "day": day, "next": nxt, "k1": k1, "k2": k2, "dayk": int(day.timestamp()) // 10}
        if nxt <= hot_from:
            jobs.append(("cold", [(
                "INSERT INTO telemetry_cold (asset_id, metric_id, day, n, dts, vals, milli) "
                f"SELECT u.a, %(mid)s, %(day)s, x.n, x.dts, x.vals, true FROM {units} u CROSS JOIN LATERAL ("
                "  SELECT count(*)::int AS n, array_agg(CASE WHEN k = %(k1)s THEN (k - %(dayk)s) * 10000000 "
                "                                         ELSE 10000000 END ORDER BY k) AS dts,"
                "         array_agg(10 * (h - coalesce(hp, 0)) ORDER BY k) AS vals FROM ("
                "    SELECT k, h, lag(h) OVER (ORDER BY k) AS hp FROM ("
                f"      SELECT k, {h} AS h FROM generate_series(%(k1)s::bigint, %(k2)s::bigint) k) s) t) x", p)]))
        else:
            name = f"telemetry_p{day:%Y%m%d}"
            jobs.append(("hot", [
                (f"DROP TABLE IF EXISTS {name}", {}),
                (f"CREATE TABLE {name} (LIKE telemetry INCLUDING DEFAULTS)", {}),
                (f"INSERT INTO {name} (asset_id, metric_id, ts, value) SELECT u.a, %(mid)s, to_timestamp(k * 10), "
                 f"{h} / 100 FROM {units} u CROSS JOIN generate_series(%(k1)s::bigint, %(k2)s::bigint) k", p),
                (f"ALTER TABLE {name} ADD CONSTRAINT {name}_pkey PRIMARY KEY (asset_id, metric_id, ts) INCLUDE (value), "
                 f"ADD CONSTRAINT {name}_day CHECK (ts >= '{day.isoformat()}' AND ts < '{nxt.isoformat()}')", {}),
                (f"ALTER TABLE telemetry ATTACH PARTITION {name} "
                 f"FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')", {}),
                (f"ALTER TABLE {name} DROP CONSTRAINT {name}_day", {}),
            ]))
        jobs.append(("roll-up", [(
            "INSERT INTO telemetry_hourly (asset_id, metric_id, hour, n, total, min, max) "
            f"SELECT u.a, %(mid)s, to_timestamp(hh * 3600), x.n, x.total, x.mn, x.mx FROM {units} u "
            "CROSS JOIN generate_series(%(k1)s::bigint / 360, %(k2)s::bigint / 360) hh CROSS JOIN LATERAL ("
            "  SELECT count(*)::int AS n, sum(v) AS total, min(v) AS mn, max(v) AS mx FROM ("
            f"    SELECT {h} / 100 AS v FROM generate_series(greatest(hh * 360, %(k1)s), "
            "                                              least(hh * 360 + 359, %(k2)s)) k) s) x", p)]))
        day = nxt
    seconds: dict[str, float] = {}

    def run(job):
        kind, statements = job
        t = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET jit = off")
            conn.execute("SET maintenance_work_mem = '512MB'")
            for sql, p in statements:
                conn.execute(sql, p)
        seconds[kind] = seconds.get(kind, 0.0) + time.perf_counter() - t

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, jobs))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO maintenance_state (name, at) VALUES ('rollup_until', %s) "
                     "ON CONFLICT (name) DO UPDATE SET at = excluded.at", (end.replace(minute=0, second=0),))
        tables = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN ('telemetry'::regclass, 'telemetry_cold'::regclass, 'telemetry_hourly'::regclass)")]

    def vacuum(table: str) -> None:  # as autovacuum leaves a month-old history (else it runs during the timing)
        t = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        seconds["vacuum"] = seconds.get("vacuum", 0.0) + time.perf_counter() - t

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(vacuum, tables))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE telemetry, telemetry_cold, telemetry_hourly")
    return seconds


def backtest_section(dsn: str, args, out: dict) -> None:
    """R1 over --backtest-days of stored history of --backtest-assets HVAC units: the headline
    with R1 as configured; its exactness checked against a full sweep on two units; the dense
    what-if (threshold 16.4: it fires every few hours on every unit) on three units."""

    from db.session import session_scope
    from engine.backtest import backtest, islands
    from engine.maintenance import day_partitions, ensure_month_partitions

    print(f"backtest: load average before {os.getloadavg()[0]:.2f}")
    days, n = args.backtest_days, args.backtest_assets
    start, end = NOW - timedelta(days=days), NOW
    hot_from = NOW.replace(hour=0) - timedelta(days=HOT_DAYS)  # as the maintenance pass leaves it
    key = f"units={n} days={days} incidents={args.backtest_incidents}"
    reused = bool(args.backtest_keep) and bt_kept_history(dsn, key)
    if args.backtest_keep and not reused:  # another history (or a half-made one): start again
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE telemetry_cold, telemetry_hourly, bench_backtest_history")
        drop_readings(dsn)
    if not reused:
        add_assets(dsn, n, prefix="BENCHB", types=["HVAC"])
    with session_scope() as s:
        for t in ("telemetry_cold", "telemetry_hourly"):
            ensure_month_partitions(s, table=t, start=start, end=end)
        for day, name in day_partitions(s).items():  # compacted days have no partition any more
            if day < hot_from:
                s.execute(text(f"DROP TABLE {name}"))
        metric_id = s.execute(text("SELECT id FROM metrics WHERE name = 'temp_supply_air'")).scalar_one()
    t = time.perf_counter()
    if reused:
        steps = {"reused from the kept database": 0.0}
    else:
        steps = bt_store_history(dsn, prefix="BENCHB", metric_id=metric_id, start=start, end=end, hot_from=hot_from,
                                 incidents=args.backtest_incidents, days=days)
        if args.backtest_keep:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO bench_backtest_history (key) VALUES (%s)", (key,))
    setup_s = time.perf_counter() - t
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT CAST((SELECT coalesce(sum(n), 0) FROM telemetry_cold) + (SELECT count(*) FROM telemetry) AS bigint)"
                            ).fetchone()[0]
        size = {t: conn.execute(f"SELECT CAST(sum(pg_total_relation_size(c.oid)) AS bigint) FROM pg_inherits i "
                                f"JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{t}'::regclass").fetchone()[0]
                for t in ("telemetry", "telemetry_cold", "telemetry_hourly")}
        # the roll-up as engine/rollup.py computes it (from readings(), both tiers) on two units
        bad = conn.execute(
            "SELECT count(*) FROM (SELECT a.id FROM assets a WHERE a.code LIKE 'BENCHB-%%' ORDER BY a.id LIMIT 2) a "
            "CROSS JOIN LATERAL ((SELECT date_trunc('hour', r.ts, 'UTC'), count(*)::int, min(r.value), max(r.value) "
            "  FROM readings(a.id, %s, %s, %s) r GROUP BY 1) "
            " EXCEPT SELECT hour, n, min, max FROM telemetry_hourly h WHERE h.asset_id = a.id) x",
            (metric_id, start, end)).fetchone()[0]
    assert bad == 0, f"{bad} roll-up rows differ from readings()"
    cold_days = (hot_from - start).total_seconds() / 86400
    print(f"backtest history: {n:,} HVAC units × {days} days of 10-s readings = {rows:,} readings, "
          f"{args.backtest_incidents} incidents per unit over the {days} days (20-90 min, up to 21-24 °C; "
          f"otherwise 15 ± 1.5 °C), stored as the platform stores them: {cold_days:.1f} days in the cold tier "
          f"({size['telemetry_cold'] / 1e9:.2f} GB), {days - cold_days:.1f} days in hot day partitions "
          f"({size['telemetry'] / 1e9:.2f} GB), hourly roll-up complete ({size['telemetry_hourly'] / 1e6:.0f} MB); "
          f"generated in {setup_s:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in steps.items())}; 2 connections)")

    times = []
    for _ in range(2):
        with session_scope() as s:
            t = time.perf_counter()
            bt = backtest(s, code="R1", start=start, end=end)
            times.append(time.perf_counter() - t)
    with session_scope() as s:
        got = islands(s, code="R1", start=start, end=end)
        units = set(s.execute(text("SELECT id FROM assets WHERE code LIKE 'BENCHB-%'")).scalars())
    got = [g for g in got if g[0] in units]  # (the seed's two HVAC units have no history: swept whole, empty)
    share = sum((hi - lo).total_seconds() for *_, lo, hi in got) / ((end - start).total_seconds() * n)
    print(f"backtest R1 as configured (avg 15 min > 20, clears <= 19.5) over {days} days: {bt['alerts']:,} firings, "
          f"{min(times):.2f} s (best of 2: {', '.join(f'{x:.2f}' for x in times)}); {len(got):,} islands, "
          f"{share:.2%} of the unit-hours evaluated")

    def per_unit(code: str, **kw) -> tuple[dict, dict, float, float]:
        with session_scope() as s:
            t = time.perf_counter()
            fast = backtest(s, code="R1", start=start, end=end, asset_code=code, **kw)
            t_fast = time.perf_counter() - t
        with session_scope() as s:
            t = time.perf_counter()
            full = backtest(s, code="R1", start=start, end=end, asset_code=code, full_sweep=True, **kw)
            t_full = time.perf_counter() - t
        assert fast == full, f"prefiltered and full sweep differ on {code}"
        return fast, full, t_fast, t_full

    sample = [per_unit(f"BENCHB-{i}") for i in (1, 2)]
    full_s = statistics.mean(x[3] for x in sample)
    print(f"exactness: on BENCHB-1 and BENCHB-2 a full sweep of every reading gives the same firings "
          f"({sum(len(x[0]['firings']) for x in sample)}); it takes {full_s:.2f} s a unit "
          f"(≈ {full_s * n:,.0f} s for the {n:,} units)")
    dense = [per_unit(f"BENCHB-{i}", threshold=16.4) for i in (3, 4)]
    d_fast, d_full = statistics.mean(x[2] for x in dense), statistics.mean(x[3] for x in dense)
    d_firings = statistics.mean(len(x[0]["firings"]) for x in dense)
    print(f"dense what-if (threshold 16.4, below the daily peaks: {d_firings:.0f} firings a unit over {days} days, "
          f"every {days * 24 / max(d_firings, 1):.1f} h) on 2 units: {d_fast:.2f} s a unit prefiltered, "
          f"{d_full:.2f} s full sweep (same firings) — ≈ {d_fast * n:,.0f} s for {n:,} units")
    print(f"backtest: load average after {os.getloadavg()[0]:.2f}")
    out.update(backtest_assets=n, backtest_days=days, backtest_readings=rows, backtest_incidents=args.backtest_incidents,
               backtest_firings=bt["alerts"], backtest_s_30d=round(min(times), 3),
               backtest_setup_s=round(setup_s, 1), backtest_full_s_per_unit=round(full_s, 3),
               backtest_dense_threshold=16.4, backtest_dense_firings_per_unit=round(d_firings, 1),
               backtest_dense_s_per_unit=round(d_fast, 3), backtest_dense_full_s_per_unit=round(d_full, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=1000, help="assets for the history growth figures")
    ap.add_argument("--hours", type=int, nargs="+", default=[1, 24])
    ap.add_argument("--fleet", type=int, default=10000, help="assets for eval_s_10k (1 h of history)")
    ap.add_argument("--repeats", type=int, default=9, help="timed runs per evaluation figure (their median)")
    ap.add_argument("--backtest-assets", type=int, default=1000)
    ap.add_argument("--backtest-days", type=int, default=30)
    ap.add_argument("--backtest-incidents", type=int, default=3, help="incidents per unit over --backtest-days")
    ap.add_argument("--backtest-only", action="store_true", help="skip the evaluation figures (sections 1, 2)")
    ap.add_argument("--eval-only", action="store_true", help="skip the backtest (section 3)")
    ap.add_argument("--backtest-keep", type=Path, metavar="DIR",
                    help="with --backtest-only: keep the backtest's database (embedded server data in DIR) and "
                         "reuse its history in later runs")
    args = ap.parse_args()
    if args.backtest_keep and not args.backtest_only:
        ap.error("--backtest-keep: only with --backtest-only")
    if args.eval_only and args.backtest_only:
        ap.error("--eval-only and --backtest-only exclude each other")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine is shared)")
    out: dict = {}
    with bench_database(keep=(BT_KEPT_DB, args.backtest_keep) if args.backtest_keep else None) as url:
        dsn = libpq_url(url)
        if args.backtest_only:  # sections 1 and 2 skipped
            ensure_partitions(NOW - timedelta(days=args.backtest_days + 1), NOW + timedelta(days=1))
            backtest_section(dsn, args, out)
            print(json.dumps(out))
            return

        history_section(url, args, out)  # 1. (leaves the bench's database with its partitions, no readings)

        # 2. the fleet: --fleet assets, 1 h of history
        add_assets(dsn, args.fleet, prefix="BENCHF")
        t = time.perf_counter()
        rows = load(dsn, "BENCHF", NOW - timedelta(hours=1), NOW - timedelta(seconds=60))
        settle(dsn)
        warm_up(dsn)
        print(f"fleet: {args.fleet:,} assets, {rows:,} readings of history (loaded in {time.perf_counter() - t:.0f} s)")
        secs, policies, assets, readings = time_run(dsn, "BENCHF", args.repeats)
        print(f"one run of {policies} policies over the 60 s that arrived ({assets:,} assets, {readings:,} readings "
              f"evaluated): median {secs * 1000:.0f} ms")
        out.update(fleet=args.fleet, eval_s_10k=round(secs, 4))
        drop_readings(dsn)

        # 3. backtest: R1 over --backtest-days of stored history of --backtest-assets HVAC units
        if not args.eval_only:
            ensure_partitions(NOW - timedelta(days=args.backtest_days + 1), NOW + timedelta(days=1))
            backtest_section(dsn, args, out)
    print(f"load average at the end: {os.getloadavg()}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
