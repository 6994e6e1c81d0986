"""Soak (issue 11): the whole platform for `--minutes` under a constant load, watching for loss,
latency and memory growth.

Runs, as deployed, on a throwaway database (DATABASE_URL's server or a temporary embedded one):
the API (`uvicorn ingest.main:app`, WEB_CONCURRENCY=2), the scheduler (`python -m engine`: rules
every RULES_INTERVAL_S, 15 s here, and its maintenance pass every 60 s), the simulator
(`python -m simulator`, every asset every 10 s) and the dashboard (`streamlit run app.py`), whose
pages a headless Chromium opens in turn (plain HTTP if Chromium is missing); plus a constant
`--rate` (1,000) single §7.1 readings per second over 16 keep-alive connections.

Run: .venv/bin/python bench/soak.py [--minutes 10] [--rate 1000]
Prints a line every 30 s and ends with one JSON line:
{"minutes", "readings_sent", "readings_stored", "lost", "p99_ms", "rss_growth_pct", "errors"}
- lost: readings acknowledged (200) but not stored; errors: answers other than 200, connection
  errors, dashboard pages that failed, platform processes that died;
- rss_growth_pct: the largest growth of one process's resident memory (API workers, scheduler,
  simulator, dashboard) between the end of the first minute and the end of the run.
Goals: lost 0, p99 < 50 ms, rss_growth_pct < 10, errors 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
from _support import ROOT, api_server, free_port, libpq_url, machine, throwaway_database

KEY = "soak-key"
ASSETS = [("CAS-S1", "CAS-S1-HVAC_1"), ("CAS-S2", "CAS-S2-HVAC_1")]
PAGES = ["", "site", "asset", "alerts", "workorders", "kpis", "simulator"]
CONNECTIONS = 16


class Load:
    """A constant rate of single readings over keep-alive connections (raw HTTP/1.1 on asyncio
    streams: the load generator must cost little CPU on a machine it shares with the platform)."""

    def __init__(self, url: str, rate: float, start_ts: datetime):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.rate = rate
        self.start_ts = start_ts
        self.slots = 0  # readings scheduled (each connection takes the next slot)
        self.sent = 0
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def body(self, i: int) -> bytes:
        site, asset = ASSETS[i % 2]
        ts = (self.start_ts + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
        return (f'{{"site_code":"{site}","asset_code":"{asset}","timestamp":"{ts}","metrics":{{"temp_out_air":32.5,'
                f'"temp_supply_air":17.8,"power_kw":12.3,"vibration_level":3.1}}}}').encode()

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def _connection(self, t0: float) -> None:
        reader = writer = None
        while not self.stop.is_set():
            i = self.slots
            self.slots += 1
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = self.body(i)
            request = (f"POST /api/v1/telemetry HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {KEY}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, int(self.port))
                start = time.perf_counter()
                writer.write(request)
                self.sent += 1
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.latencies.append(time.perf_counter() - start)
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
                self.error(type(exc).__name__)
                writer = None
                continue
            if status == 200:
                self.ok += 1
            else:
                self.error(f"HTTP {status}")

    async def run(self) -> None:
        t0 = time.monotonic()
        await asyncio.gather(*(self._connection(t0) for _ in range(CONNECTIONS)))


def poll_dashboard(url: str, stop, visits, failures) -> None:
    """Opens every dashboard page in turn in headless Chromium (or fetches it over HTTP), in a
    process of its own so the browser driver does not share the load generator's interpreter."""
    chromium = shutil.which("chromium")
    if chromium is None:
        while not stop.is_set():
            for name in PAGES:
                try:
                    httpx.get(f"{url}/{name}", timeout=30).raise_for_status()
                    visits.value += 1
                except httpx.HTTPError as exc:
                    failures.put(f"{name}: {exc}")
                stop.wait(5)
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page()
        while not stop.is_set():
            for name in PAGES:
                if stop.is_set():
                    break
                try:
                    page.goto(f"{url}/{name}", wait_until="domcontentloaded", timeout=60_000)
                    page.wait_for_selector("[data-testid='stMain']", timeout=60_000)
                    page.wait_for_timeout(3_000)  # the page's queries
                    if page.locator("[data-testid='stException']").count():
                        failures.put(f"{name or 'overview'}: exception on the page")
                    visits.value += 1
                except Exception as exc:  # noqa: BLE001 - counted as an error of the run
                    failures.put(f"{name or 'overview'}: {type(exc).__name__}")
                stop.wait(5)
        browser.close()


def rss(procs: dict[str, psutil.Process]) -> dict[str, int]:
    out = {}
    for name, p in procs.items():
        try:
            out[name] = p.memory_info().rss
        except psutil.Error:
            out[name] = 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=1000, help="single readings per second")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine is shared)")

    tmp = Path(tempfile.mkdtemp(prefix="m40-soak-"))
    with throwaway_database() as url:
        dsn = libpq_url(url)
        env = {"INGEST_API_KEY": KEY, "LOG_LEVEL": "WARNING", "RULES_INTERVAL_S": "15",
               "MAINTENANCE_INTERVAL_S": "60", "SIM_INTERVAL_S": "10", "SIM_BUFFER_DIR": str(tmp / "buffer")}
        with api_server(env) as api:
            child_env = {**os.environ, **env, "API_URL": api}
            dash_port = free_port()
            others = {
                "scheduler": [sys.executable, "-m", "engine"],
                "simulator": [sys.executable, "-m", "simulator"],
                "dashboard": [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                              "--server.port", str(dash_port), "--server.headless", "true",
                              "--browser.gatherUsageStats", "false"],
            }
            children = {n: subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL,
                                            stderr=(tmp / f"{n}.log").open("w")) for n, cmd in others.items()}
            try:
                report = soak(args, api, dsn, dash_port, children)
            finally:
                for p in children.values():
                    p.terminate()
                for p in children.values():
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report))


def soak(args, api: str, dsn: str, dash_port: int, children: dict[str, subprocess.Popen]) -> dict:
    dash_url = f"http://127.0.0.1:{dash_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(dash_url + "/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the dashboard did not start")
        time.sleep(0.5)

    port = api.rsplit(":", 1)[1]
    api_parent = next(p for p in psutil.process_iter(["cmdline"])
                      if p.info["cmdline"] and "ingest.main:app" in p.info["cmdline"] and port in p.info["cmdline"])
    workers = [c for c in api_parent.children() if "resource_tracker" not in " ".join(c.cmdline())]
    procs = {f"api-worker-{i}": w for i, w in enumerate(workers)}
    procs |= {n: psutil.Process(p.pid) for n, p in children.items()}

    start_ts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    load = Load(api, args.rate, start_ts)
    mp = multiprocessing.get_context("spawn")
    dash_stop, visits, failures_q = mp.Event(), mp.Value("i", 0), mp.Queue()
    dash_proc = mp.Process(target=poll_dashboard, args=(dash_url, dash_stop, visits, failures_q), daemon=True)
    dash_proc.start()
    loop_thread = threading.Thread(target=lambda: asyncio.run(load.run()), daemon=True)
    began = time.monotonic()
    loop_thread.start()
    duration = args.minutes * 60
    baseline = None
    last_print = began
    samples = []
    while time.monotonic() - began < duration:
        time.sleep(1)
        elapsed = time.monotonic() - began
        if baseline is None and elapsed >= min(60, duration / 2):
            baseline = rss(procs)
        if time.monotonic() - last_print >= 30:
            last_print = time.monotonic()
            lat = sorted(load.latencies[-30_000:])
            p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else 0
            mem = rss(procs)
            samples.append(mem)
            print(f"{elapsed:5.0f} s  sent {load.sent:,}  ok {load.ok:,}  p99(last 30 s) {p99:.1f} ms  "
                  f"errors {sum(load.errors.values())}  dashboard visits {visits.value}  RSS MB " +
                  " ".join(f"{n}={v / 2**20:.0f}" for n, v in mem.items()), flush=True)
    load.stop.set()
    dash_stop.set()
    loop_thread.join(30)
    dash_proc.join(90)
    dash_failures = []
    while not failures_q.empty():
        dash_failures.append(failures_q.get())
    final = rss(procs)
    time.sleep(2)  # answers in flight are counted as sent; wait for their commits
    with psycopg.connect(dsn) as conn:
        stored = conn.execute(
            "SELECT count(DISTINCT (asset_id, ts)) FROM telemetry WHERE ts >= %s AND ts < %s",
            (start_ts, start_ts + timedelta(milliseconds=load.slots))).fetchone()[0]
    died = [n for n, p in children.items() if p.poll() is not None]
    growth = {n: 100 * (final[n] - baseline[n]) / baseline[n] for n in final if baseline and baseline.get(n)}
    lat = sorted(load.latencies)
    p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else None
    errors = sum(load.errors.values()) + len(dash_failures) + len(died)
    print(f"load: {load.sent:,} sent, {load.ok:,} acknowledged, {stored:,} stored; errors {load.errors}; "
          f"p50 {statistics.median(lat) * 1000:.1f} ms; dashboard {visits.value} page visits, failures "
          f"{dash_failures[:5]}; processes died: {died}; RSS growth after the first minute (%): "
          + ", ".join(f"{n} {g:+.1f}" for n, g in growth.items()))
    return {
        "minutes": args.minutes,
        "readings_sent": load.sent,
        "readings_stored": stored,
        "lost": max(0, load.ok - stored),
        "p99_ms": round(p99, 1) if p99 is not None else None,
        "rss_growth_pct": round(max(growth.values()), 1) if growth else None,
        "errors": errors,
    }


if __name__ == "__main__":
    main()
