"""Dashboard benchmark (issue 5): the service calls behind each page, with a month of history.

Sizing (this machine's disk and time budget): 10 sites × 6 assets = 60 assets, 30 days of every
catalog metric at one reading per 60 s (≈ 11 million readings), generated inside PostgreSQL.
10-s readings for 30 days would be ≈ 67 million rows (≈ 6 GB with the index): too much here;
the chart query reads a time range of one asset through the primary key, so its cost follows the
rows in that range — we also time it on a 10-s asset (30 days × 8,640 × 4 metrics ≈ 1 million rows).

Ranges over 2 days read the hourly roll-up the scheduler maintains (engine/rollup.py), plus the
raw readings of the hours not rolled up yet.

Run: .venv/bin/python bench/dashboard.py [--days 30]
Ends with one JSON line: page_ms (page -> median ms), chart_30d_ms, chart_30d_10s_ms, readings.
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


def load(dsn: str, days: int) -> int:
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1")
        for n in range(3, 11):
            conn.execute("INSERT INTO sites (code, name, city) VALUES (%s, %s, 'Casablanca')",
                         (f"CAS-S{n}", f"Tour {n} – Casanearshore"))
        conn.execute(
            "INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
            "SELECT s.code || '-' || t || '_' || k, t || ' ' || k, t, s.id, 60 "
            "FROM sites s, unnest(ARRAY['HVAC', 'CHILLER', 'ELEVATOR']) t, generate_series(1, 2) k "
            "WHERE NOT EXISTS (SELECT 1 FROM assets a WHERE a.code = s.code || '-' || t || '_' || k)"
        )
        conn.execute("UPDATE assets SET expected_cadence_s = 60")
        start = NOW - timedelta(days=days)
        cur = conn.execute(
            "INSERT INTO telemetry (asset_id, metric_id, ts, value) "
            "SELECT a.id, m.id, ts, 20 + 5 * sin(extract(epoch FROM ts) / 3600.0 + a.id + m.id) "
            "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types), "
            "generate_series(%s::timestamptz, %s::timestamptz, interval '60 seconds') ts "
            "WHERE m.kind = 'gauge'",
            (start, NOW),
        )
        rows = cur.rowcount
        cur = conn.execute(  # counters grow slowly and stay under their thresholds
            "INSERT INTO telemetry (asset_id, metric_id, ts, value) "
            "SELECT a.id, m.id, ts, 100 + extract(epoch FROM ts - %s::timestamptz) / 36000.0 "
            "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types), "
            "generate_series(%s::timestamptz, %s::timestamptz, interval '60 seconds') ts WHERE m.kind = 'counter'",
            (start, start, NOW),
        )
        rows += cur.rowcount
        # one asset at 10 s for the whole month: the heaviest chart
        cur = conn.execute(
            "INSERT INTO telemetry (asset_id, metric_id, ts, value) "
            "SELECT a.id, m.id, ts, 40 + 5 * sin(extract(epoch FROM ts) / 3600.0) "
            "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types), "
            "generate_series(%s::timestamptz, %s::timestamptz, interval '10 seconds') ts "
            "WHERE a.code = 'CAS-S1-ELEVATOR_1' AND extract(second FROM ts)::int %% 60 <> 0 AND m.kind = 'gauge'",
            (start, NOW),
        )
        rows += cur.rowcount
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return rows


def median_ms(fn, repeats: int = 7) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with throwaway_database() as url:
        dsn = libpq_url(url)
        t = time.perf_counter()
        readings = load(dsn, args.days)
        print(f"loaded {readings:,} readings in {time.perf_counter() - t:.0f} s")

        from db import queries
        from db.models import AlertStatus, WorkOrderStatus
        from db.queries import asset_statuses, site_rollup
        from db.session import session_scope
        from engine.evaluate import evaluate_all
        from engine.faults import list_faults
        from engine.rollup import roll_up

        t = time.perf_counter()
        with session_scope() as s:  # what the scheduler does (the first run covers 35 days)
            rolled = roll_up(s, now=NOW)
        print(f"hourly roll-up of the month: {rolled:,} rows in {time.perf_counter() - t:.1f} s")
        with session_scope() as s:
            evaluate_all(s, now=NOW, source="bench")
            assets = {a["code"]: a for a in asset_statuses(s, now=NOW)}
            site = assets["CAS-S1-ELEVATOR_1"]["site_id"]
            elevator, other = assets["CAS-S1-ELEVATOR_1"]["id"], assets["CAS-S1-HVAC_1"]["id"]

        def call(fn):
            def run():
                with session_scope() as s:
                    fn(s)
            return run

        pages = {
            "overview": call(lambda s: (site_rollup(s, now=NOW), queries.freshness(s, now=NOW),
                                        queries.alerts_to_handle(s))),
            "site": call(lambda s: (asset_statuses(s, now=NOW, site_id=site),
                                    queries.list_alerts(s, status=list(AlertStatus.LIVE), site_id=site))),
            "asset_24h": call(lambda s: (asset_statuses(s, now=NOW),
                                         queries.downsampled_series(s, asset_id=other, start=NOW - timedelta(days=1), end=NOW),
                                         queries.list_alerts(s, asset_id=other), queries.list_workorders(s, asset_id=other))),
            "alerts": call(lambda s: queries.list_alerts(s, status=list(AlertStatus.LIVE), since=NOW - timedelta(days=7))),
            "workorders": call(lambda s: (queries.list_workorders(s, status=list(WorkOrderStatus.ACTIVE)), asset_statuses(s, now=NOW))),
            "simulator": call(lambda s: (list_faults(s, now=NOW), asset_statuses(s, now=NOW, site_id=site))),
        }
        page_ms = {name: round(median_ms(fn), 1) for name, fn in pages.items()}
        for name, ms in page_ms.items():
            print(f"  {name:<11} {ms:7.1f} ms")
        month = NOW - timedelta(days=args.days)
        chart = round(median_ms(call(lambda s: queries.downsampled_series(s, asset_id=other, start=month, end=NOW))), 1)
        chart10 = round(median_ms(call(lambda s: queries.downsampled_series(s, asset_id=elevator, start=month, end=NOW))), 1)
        with session_scope() as s:
            pts = queries.downsampled_series(s, asset_id=elevator, start=month, end=NOW)
        print(f"  30-day chart, 60-s asset: {chart:.1f} ms; 10-s asset: {chart10:.1f} ms "
              f"({len(pts)} points sent for {len({p['metric'] for p in pts})} metrics)")
    print(json.dumps({"page_ms": page_ms, "chart_30d_ms": chart, "chart_30d_10s_ms": chart10, "readings": readings}))


if __name__ == "__main__":
    main()
