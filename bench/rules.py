"""Rules benchmark (issue 3): one full evaluation of every policy over 1,000 assets, as history
grows from 1 h to 24 h of 10-second readings.

Run: .venv/bin/python bench/rules.py [--assets 1000] [--hours 1 6 24]
Uses DATABASE_URL's server or a temporary embedded one, in a throwaway database.
History is generated inside PostgreSQL (generate_series) for the metrics the policies read.
Ends with one JSON line: assets, eval_s_1h, eval_s_24h (and eval_s by hours).
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


def add_assets(dsn: str, n: int) -> None:
    with psycopg.connect(dsn) as conn:
        site = conn.execute(
            "INSERT INTO sites (code, name, city) VALUES ('BENCH', 'Bench site', 'Casablanca') RETURNING id"
        ).fetchone()[0]
        types = list(POLICY_METRICS)
        conn.execute(
            "INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
            "SELECT 'BENCH-' || i, 'bench ' || i, (%s::text[])[1 + (i %% 3)], %s, 10 FROM generate_series(1, %s) i",
            (types, site, n),
        )


def load_history(dsn: str, start: datetime, end: datetime) -> int:
    """Readings every 10 s in [start, end) for the policy metrics of every bench asset."""
    total = 0
    with psycopg.connect(dsn) as conn:
        for typ, metrics in POLICY_METRICS.items():
            for metric in metrics:
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
                    f"WHERE a.type = %(typ)s AND a.code LIKE 'BENCH-%%' AND m.name = %(metric)s",
                    {"start": start, "end": end, "typ": typ, "metric": metric, "base": base, "amp": amp,
                     "t0": NOW - timedelta(hours=48)},
                )
                total += cur.rowcount
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE telemetry")
    return total


def time_evaluation(repeats: int = 3) -> tuple[float, int, int]:
    """Median seconds of one full evaluation (rolled back, so each run sees the same state)."""
    from db.session import get_engine
    from engine.evaluate import evaluate_all
    from sqlalchemy.orm import Session

    times = []
    for _ in range(repeats):
        with Session(get_engine()) as session:
            t = time.perf_counter()
            result = evaluate_all(session, now=NOW, source="bench")
            times.append(time.perf_counter() - t)
            session.rollback()
    return statistics.median(times), result.policies, result.assets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--hours", type=int, nargs="+", default=[1, 6, 24])
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results: dict[int, float] = {}
    with throwaway_database() as url:
        dsn = libpq_url(url)
        add_assets(dsn, args.assets)
        loaded_from = NOW
        rows = 0
        time_evaluation(1)  # warm-up (imports, plans)
        for hours in sorted(args.hours):
            start = NOW - timedelta(hours=hours)
            t = time.perf_counter()
            rows += load_history(dsn, start, loaded_from)
            loaded_from = start
            load_s = time.perf_counter() - t
            secs, policies, assets = time_evaluation()
            results[hours] = secs
            print(f"{hours:>3} h of history: {rows:>12,} readings (loaded in {load_s:.0f} s) — "
                  f"one evaluation of {policies} policies over {assets} assets: {secs * 1000:.0f} ms")
    first, last = min(results), max(results)
    growth = results[last] / results[first] - 1
    print(f"{last} h vs {first} h: {growth:+.0%}")
    print(json.dumps({"assets": assets, "eval_s_1h": round(results[first], 4), "eval_s_24h": round(results[last], 4),
                      "eval_s": {str(h): round(s, 4) for h, s in results.items()}}))


if __name__ == "__main__":
    main()
