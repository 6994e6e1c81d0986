"""Rules benchmark (issues 3 and 10): one evaluation run over the readings that arrived in the
last 60 s, as the fleet and the history grow; and one backtest over 30 days.

Run: .venv/bin/python bench/rules.py [--assets 1000] [--hours 1 24] [--fleet 10000]
                                      [--backtest-assets 1000] [--backtest-days 30]
Uses DATABASE_URL's server or a temporary embedded one, in a throwaway database. Readings are
generated inside PostgreSQL (generate_series), every 10 s, for the metrics the policies read
(sized for this machine's disk: --assets × 2 metrics × --hours, --fleet × 2 metrics × 1 h,
--backtest-assets HVAC units × 1 metric × --backtest-days).

Each evaluation figure: the previous runs have consumed the history (a warm-up run over its last
10 minutes leaves the engine's state as in steady state); 60 s of new readings arrive for every
asset; one run of every policy as the scheduler runs it (RULES_SHARDS = 2 parallel transactions),
median of 3, the state put back before each.
Ends with one JSON line: assets, eval_s_1h, eval_s_24h, eval_s (by hours), fleet, eval_s_10k,
backtest_assets, backtest_days, backtest_readings, backtest_s_30d.
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
SHARDS = 2  # RULES_SHARDS as deployed (.env.example)
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


def time_run(dsn: str, prefix: str, repeats: int = 3) -> tuple[float, int, int, int]:
    """Median seconds of one run (as the scheduler runs it: RULES_SHARDS parallel transactions)
    over 60 s of new readings; before each, the engine's state is put back as it was."""
    from engine.evaluate import evaluate_sharded

    load(dsn, prefix, NOW - timedelta(seconds=60), NOW)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in _STATE:
            conn.execute(f"CREATE TABLE bench_{table} AS SELECT * FROM {table}")
    times = []
    try:
        for _ in range(repeats):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE " + ", ".join(_STATE) + ", alerts CASCADE")
                for table in _STATE:
                    conn.execute(f"INSERT INTO {table} SELECT * FROM bench_{table}")
                conn.execute("VACUUM ANALYZE " + ", ".join(_STATE))
            t = time.perf_counter()
            result = evaluate_sharded(now=NOW, shards=SHARDS, source="bench")
            times.append(time.perf_counter() - t)
            assert not result.failed, result.failed
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for table in _STATE:
                conn.execute(f"DROP TABLE IF EXISTS bench_{table}")
    return statistics.median(times), result.policies, result.assets, result.readings


def drop_readings(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry, telemetry_arrivals, telemetry_latest, policy_evaluations, alerts, "
                     "work_orders, audit_trail, outbox_events CASCADE")
        conn.execute("DELETE FROM assets WHERE code LIKE 'BENCH%'")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=1000, help="assets for the history growth figures")
    ap.add_argument("--hours", type=int, nargs="+", default=[1, 24])
    ap.add_argument("--fleet", type=int, default=10000, help="assets for eval_s_10k (1 h of history)")
    ap.add_argument("--backtest-assets", type=int, default=1000)
    ap.add_argument("--backtest-days", type=int, default=30)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    out: dict = {}
    with throwaway_database() as url:
        dsn = libpq_url(url)
        ensure_partitions(NOW - timedelta(days=args.backtest_days + 1), NOW + timedelta(days=1))

        # 1. history growth at --assets
        add_assets(dsn, args.assets, prefix="BENCH")
        results: dict[int, float] = {}
        loaded_from, rows = NOW - timedelta(seconds=60), 0
        for hours in sorted(args.hours):
            start = NOW - timedelta(hours=hours)
            t = time.perf_counter()
            rows += load(dsn, "BENCH", start, loaded_from)
            loaded_from = start
            settle(dsn)
            warm_up(dsn)
            load_s = time.perf_counter() - t
            secs, policies, assets, readings = time_run(dsn, "BENCH")
            results[hours] = secs
            print(f"{hours:>3} h of history: {rows:>12,} readings (loaded in {load_s:.0f} s) — one run of "
                  f"{policies} policies over the 60 s that arrived ({assets} assets, {readings:,} readings "
                  f"evaluated): {secs * 1000:.0f} ms")
            with psycopg.connect(dsn, autocommit=True) as conn:  # the next load starts from scratch again
                conn.execute("DELETE FROM telemetry WHERE ts >= %s", (NOW - timedelta(seconds=60),))
                # and so does the engine's state: its window sums counted the minute just deleted
                conn.execute("TRUNCATE policy_evaluations")
        first, last = min(results), max(results)
        print(f"{last} h vs {first} h: {results[last] / results[first] - 1:+.0%}")
        out.update(assets=args.assets, eval_s_1h=round(results[first], 4), eval_s_24h=round(results[last], 4),
                   eval_s={str(h): round(s, 4) for h, s in results.items()})
        drop_readings(dsn)

        # 2. the fleet: --fleet assets, 1 h of history
        add_assets(dsn, args.fleet, prefix="BENCHF")
        t = time.perf_counter()
        rows = load(dsn, "BENCHF", NOW - timedelta(hours=1), NOW - timedelta(seconds=60))
        settle(dsn)
        warm_up(dsn)
        print(f"fleet: {args.fleet:,} assets, {rows:,} readings of history (loaded in {time.perf_counter() - t:.0f} s)")
        secs, policies, assets, readings = time_run(dsn, "BENCHF")
        print(f"one run of {policies} policies over the 60 s that arrived ({assets:,} assets, {readings:,} readings "
              f"evaluated): {secs * 1000:.0f} ms")
        out.update(fleet=args.fleet, eval_s_10k=round(secs, 4))
        drop_readings(dsn)

        # 3. backtest: R1 over --backtest-days for --backtest-assets HVAC units
        from db.session import session_scope
        from engine.backtest import backtest

        add_assets(dsn, args.backtest_assets, prefix="BENCHB", types=["HVAC"])
        t = time.perf_counter()
        start = NOW - timedelta(days=args.backtest_days)
        rows = 0
        for d in range(args.backtest_days):  # a day at a time: bounded transactions
            rows += load(dsn, "BENCHB", start + timedelta(days=d), start + timedelta(days=d + 1),
                         metrics={"HVAC": ["temp_supply_air"]})
        settle(dsn)
        print(f"backtest data: {args.backtest_assets:,} HVAC units × {args.backtest_days} days = {rows:,} readings "
              f"(loaded in {time.perf_counter() - t:.0f} s)")
        times = []
        for _ in range(2):
            with session_scope() as s:
                t = time.perf_counter()
                bt = backtest(s, code="R1", start=start, end=NOW, threshold=16.4)  # below the peaks: it fires
                times.append(time.perf_counter() - t)
        print(f"backtest R1 (threshold 16.4) over {args.backtest_days} days: {bt['alerts']:,} firings, "
              f"{min(times):.2f} s (best of 2)")
        out.update(backtest_assets=args.backtest_assets, backtest_days=args.backtest_days, backtest_readings=rows,
                   backtest_s_30d=round(min(times), 3))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
