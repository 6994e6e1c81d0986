"""Ingest benchmark (issue 2): the real HTTP server against raw COPY on the same PostgreSQL.

  (a) single-reading requests (§7.1 payload) at concurrency 16, load from `wrk`: requests/s, p50, p99
  (b) the batch endpoint: points/s
  (c) raw binary COPY of the same rows into the telemetry table: rows/s, and (b)/(c)

Run: .venv/bin/python bench/ingest.py [--seconds 10] [--batch-points 1000000]
Uses DATABASE_URL's server or a temporary embedded one, in a throwaway database.
Ends with one JSON line: single_rps, single_p99_ms, batch_points_per_s, copy_rows_per_s, batch_vs_copy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import psycopg
from _support import api_server, ensure_tool, libpq_url, machine, throwaway_database

KEY = "bench-key"
HVAC = [("CAS-S1", "CAS-S1-HVAC_1"), ("CAS-S2", "CAS-S2-HVAC_1")]

WRK_SCRIPT = r"""
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
local counter = 0
local assets = { {"CAS-S1", "CAS-S1-HVAC_1"}, {"CAS-S2", "CAS-S2-HVAC_1"} }
local base = 1577836800  -- 2020-01-01T00:00:00Z
request = function()
  counter = counter + 1
  local a = assets[(counter % 2) + 1]
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", base + tid * 20000000 + counter)
  local body = string.format('{"site_code":"%s","asset_code":"%s","timestamp":"%s","metrics":' ..
    '{"temp_out_air":32.5,"temp_supply_air":17.8,"power_kw":12.3,"vibration_level":3.1}}', a[1], a[2], ts)
  return wrk.format("POST", "/api/v1/telemetry",
    {["Content-Type"] = "application/json", ["X-API-Key"] = "__KEY__"}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d,"non2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry")
        conn.execute("CHECKPOINT")


def single(url: str, seconds: int, dsn: str) -> dict:
    wrk = ensure_tool("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed for the single-request load (apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT.replace("__KEY__", KEY))
    # warm-up, then the measured run
    subprocess.run([wrk, "-t2", "-c16", "-d2s", "-s", f.name, url], capture_output=True, text=True)
    time.sleep(1)  # let the warm-up's last requests finish before the table is emptied
    truncate(dsn)
    out = subprocess.run(
        [wrk, "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    res = json.loads(re.search(r"RESULT (\{.*\})", out).group(1))
    stored = count(dsn)
    ok = res["requests"] - res["non2xx"] - res["errors"]
    return {
        "requests": res["requests"],
        "failed": res["non2xx"] + res["errors"],
        "rps": res["requests"] / (res["duration_us"] / 1e6),
        "p50_ms": res["p50_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "stored_points": stored,
        "expected_points": 4 * ok,
    }


def batch_bodies(total_points: int, per_request: int) -> tuple[list[bytes], list[tuple]]:
    """Request bodies of `per_request` points (4 metrics per reading) and the same rows for COPY."""
    base = datetime(2021, 1, 1, tzinfo=UTC)
    metrics = {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}
    readings_per_request = per_request // 4
    bodies, n = [], 0
    i = 0
    while n < total_points:
        readings = []
        for _ in range(readings_per_request):
            site, asset = HVAC[i % 2]
            ts = base + timedelta(seconds=i // 2)
            readings.append({"site_code": site, "asset_code": asset, "timestamp": ts.isoformat(), "metrics": metrics})
            i += 1
        bodies.append(orjson.dumps({"readings": readings}))
        n += 4 * len(readings)
    return bodies, [(i, base)]


def batch(url: str, bodies: list[bytes], dsn: str, concurrency: int = 4) -> dict:
    truncate(dsn)
    headers = {"Content-Type": "application/json", "X-API-Key": KEY}

    def send(body: bytes) -> int:
        with httpx.Client(timeout=120) as c:
            r = c.post(url + "/api/v1/telemetry/batch", content=body, headers=headers)
            r.raise_for_status()
            return r.json()["inserted_points"]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        inserted = sum(pool.map(send, bodies))
    elapsed = time.perf_counter() - start
    return {"points": inserted, "seconds": elapsed, "points_per_s": inserted / elapsed, "stored": count(dsn)}


def copy_rows(dsn: str, n_readings: int, per_request: int) -> dict:
    """The same rows as the batch phase, by binary COPY in chunks of the same size, one commit each."""
    truncate(dsn)
    with psycopg.connect(dsn) as conn:
        ids = dict(conn.execute("SELECT code, id FROM assets").fetchall())
        mids = dict(conn.execute("SELECT name, id FROM metrics").fetchall())
    base = datetime(2021, 1, 1, tzinfo=UTC)
    order = ["temp_out_air", "temp_supply_air", "power_kw", "vibration_level"]
    values = [32.5, 17.8, 12.3, 3.1]
    rows = []
    for i in range(n_readings):
        aid = ids[HVAC[i % 2][1]]
        ts = base + timedelta(seconds=i // 2)
        rows.extend((aid, mids[m], ts, v) for m, v in zip(order, values))
    chunks = [rows[k : k + per_request] for k in range(0, len(rows), per_request)]
    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for chunk in chunks:
            with conn.cursor() as cur, cur.copy(
                "COPY telemetry (asset_id, metric_id, ts, value) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["int4", "int2", "timestamptz", "float8"])
                for r in chunk:
                    cp.write_row(r)
            conn.commit()
    elapsed = time.perf_counter() - start
    return {"rows": len(rows), "seconds": elapsed, "rows_per_s": len(rows) / elapsed, "stored": count(dsn)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="duration of the single-request load")
    ap.add_argument("--batch-points", type=int, default=1_000_000, help="points sent through the batch endpoint")
    ap.add_argument("--points-per-request", type=int, default=20_000)
    args = ap.parse_args()

    print(f"machine: {machine()}")
    with throwaway_database() as url:
        dsn = libpq_url(url)
        with api_server({"INGEST_API_KEY": KEY, "LOG_LEVEL": "WARNING"}) as api:
            print(f"(a) single readings, concurrency 16, {args.seconds} s (wrk) …", flush=True)
            a = single(api, args.seconds, dsn)
            print(f"    {a['rps']:,.0f} requests/s, p50 {a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms, "
                  f"{a['failed']} failed; {a['stored_points']:,} points stored for {a['expected_points']:,} acknowledged "
                  "(requests still in flight when wrk stopped are stored too)")
            bodies, _ = batch_bodies(args.batch_points, args.points_per_request)
            print(f"(b) batch endpoint: {len(bodies)} requests of {args.points_per_request:,} points, 4 in flight …",
                  flush=True)
            b = batch(api, bodies, dsn)
            print(f"    {b['points_per_s']:,.0f} points/s ({b['points']:,} points in {b['seconds']:.2f} s; "
                  f"stored {b['stored']:,})")
        n_readings = b["points"] // 4
        print("(c) raw binary COPY of the same rows, same chunking …", flush=True)
        c = copy_rows(dsn, n_readings, args.points_per_request)
        print(f"    {c['rows_per_s']:,.0f} rows/s ({c['rows']:,} rows in {c['seconds']:.2f} s)")
    ratio = b["points_per_s"] / c["rows_per_s"]
    print(f"batch / COPY = {ratio:.0%}")
    print(json.dumps({
        "single_rps": round(a["rps"], 1),
        "single_p99_ms": round(a["p99_ms"], 2),
        "batch_points_per_s": round(b["points_per_s"]),
        "copy_rows_per_s": round(c["rows_per_s"]),
        "batch_vs_copy": round(ratio, 3),
    }))


if __name__ == "__main__":
    main()
