"""Soak (issue 11): the whole platform for `--minutes` under a constant load, watching for loss,
latency and memory growth.

Runs, as deployed, on a throwaway database (DATABASE_URL's server or a temporary embedded one):
the API (`uvicorn ingest.main:app`, WEB_CONCURRENCY=2), the scheduler (`python -m engine`: rules
every RULES_INTERVAL_S, 15 s here, and its maintenance pass every 60 s), the simulator
(`python -m simulator`, every asset every 10 s) and the dashboard (`streamlit run app.py`), whose
pages a headless Chromium opens in turn (plain HTTP if Chromium is missing); plus a constant
`--rate` (1,000) single §7.1 readings per second from a load generator in its own process
(`Load`: open loop, pre-encoded HTTP/1.1 requests on 16 keep-alive connections, more when all are
busy), each reading's latency counted from the moment it was due, not from when it was sent.

Run: .venv/bin/python bench/soak.py [--minutes 10] [--rate 1000]
Prints a line every 30 s and ends with one JSON line:
{"minutes", "readings_sent", "readings_stored", "lost", "p99_ms", "rss_growth_pct", "errors"}
- readings_sent: requests written (--rate × the run's seconds when the generator keeps up);
- lost: readings acknowledged (200) but not stored; errors: answers other than 200, connection
  errors, dashboard pages that failed, platform processes that died;
- rss_growth_pct: the largest growth of one process's resident memory (API workers, scheduler,
  simulator, dashboard) between the end of the first minute and the end of the run.
Goals: lost 0, p99 < 50 ms, rss_growth_pct < 10, errors 0.

Before the JSON line, the diagnostics of the slow readings (> 50 ms, `worst_seconds`): the
seconds in which the slowest were due, each with the dashboard page open then, what the
database's backends were doing (pg_stat_activity every 0.1 s, each process naming its
connections by PGAPPNAME), a new WAL segment, the disk (MB/s written, the slowest fdatasync of
an 8-kB probe) and the machine's busy cores; then, for each kind of activity, the share of the
seconds it covered against the share of the slow readings due in them; and the machine's
busiest processes over the run (other work on a shared machine shows there).
`--dashboard-client http` opens the pages without a browser (their scripts do not run): a
diagnostic run without the dashboard's work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

import httpx
import psutil
import psycopg
from _support import ROOT, api_server, free_port, libpq_url, machine, throwaway_database

KEY = "soak-key"
# the load's own site and assets (the simulator keeps the seeded ones: `--sites 2`), so what the
# load stored is counted exactly
SITE = "SOAK"
ASSETS = [(SITE, f"{SITE}-HVAC_1"), (SITE, f"{SITE}-HVAC_2")]
PAGES = ["", "site", "asset", "alerts", "workorders", "kpis", "simulator"]
CONNECTIONS = 16  # keep-alive connections of the load generator at start …
MAX_CONNECTIONS = 64  # … and at most, when every one is busy (the due readings wait: counted in their latency)
CONTENT_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")
SLOW_S = 0.05  # a reading slower than the p99 goal (50 ms) is "slow" in the per-second diagnostics


class Load:
    """A constant rate of single readings, open loop: reading i is due at t0 + i / rate whatever
    the answers do, and its latency is counted from that due time, so a stall of the API shows
    in full instead of slowing the sender down (no coordinated omission). Requests are
    pre-encoded HTTP/1.1 bytes written on keep-alive connections (asyncio streams, uvloop when
    installed): one `write` and two reads per request. When every connection is busy the due
    readings queue (their latency grows) and one more connection is opened, up to
    MAX_CONNECTIONS. Runs in a process of its own (`run_load`), so it does not share an
    interpreter with the supervision loop."""

    def __init__(self, host: str, port: int, rate: float, seconds: float, shared):
        self.host, self.port = host, port
        self.rate = rate
        self.seconds = seconds
        self.shared = shared  # multiprocessing Values: sent, ok, errors, connections, recent latency
        self.start_epoch = 0.0  # the wall-clock time of reading 0 (set by `run`)
        self.errors: dict[str, int] = {}
        self.latencies = array("d")
        # per second of due time (reading i is due in second i // rate): the readings slower
        # than SLOW_S and the largest latency, to tell when the slow ones were due (`worst_seconds`)
        self.slow_per_s = array("i", [0]) * (int(seconds) + 1)
        self.max_per_s = array("d", [0.0]) * (int(seconds) + 1)
        self.slots = 0
        self.connections = 0
        heads = {}
        for site, asset in ASSETS:
            # every body has the same length: the timestamp always has 6 decimals
            body_len = len(self._body(site, asset, "2000-01-01T00:00:00.000000Z"))
            heads[asset] = (f"POST /api/v1/telemetry HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
                            f'{{"site_code":"{site}","asset_code":"{asset}","timestamp":"').encode()
        self.heads = [heads[a] for _, a in ASSETS]
        self.tail = (b'","metrics":{"temp_out_air":32.5,"temp_supply_air":17.8,"power_kw":12.3,'
                     b'"vibration_level":3.1}}')

    @staticmethod
    def _body(site: str, asset: str, ts: str) -> bytes:
        return (f'{{"site_code":"{site}","asset_code":"{asset}","timestamp":"{ts}","metrics":{{"temp_out_air":32.5,'
                f'"temp_supply_air":17.8,"power_kw":12.3,"vibration_level":3.1}}}}').encode()

    def request(self, i: int) -> bytes:
        """Reading i: asset i % 2, stamped with the moment it is due, as a gateway stamps its
        samples (each (asset, ts) once, to the microsecond)."""
        us = round((self.start_epoch + i / self.rate) * 1e6)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000)) + f".{us % 1_000_000:06d}Z"
        return self.heads[i % 2] + ts.encode() + self.tail

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
        self.shared["errors"].value += 1

    async def _connection(self, queue: asyncio.Queue, t0: float) -> None:
        loop = asyncio.get_running_loop()
        reader = writer = None
        self.connections += 1
        self.shared["connections"].value = self.connections
        while (i := await queue.get()) is not None:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self.request(i))
                self.shared["sent"].value += 1
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = int(CONTENT_LENGTH.search(head).group(1))
                await reader.readexactly(length)
                latency = loop.time() - (t0 + i / self.rate)
                self.latencies.append(latency)
                second = int(i / self.rate)
                if latency > SLOW_S:
                    self.slow_per_s[second] += 1
                if latency > self.max_per_s[second]:
                    self.max_per_s[second] = latency
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, AttributeError,
                    ValueError) as exc:
                self.error(type(exc).__name__)
                if writer is not None:
                    writer.close()
                writer = None
                continue
            if status == 200:
                self.shared["ok"].value += 1
            else:
                self.error(f"HTTP {status}")
        if writer is not None:
            writer.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        t0 = loop.time() + 0.05
        self.start_epoch = time.time() + 0.05
        tasks = [asyncio.create_task(self._connection(queue, t0)) for _ in range(CONNECTIONS)]
        watch = asyncio.create_task(self._watch())
        total = int(self.seconds * self.rate)
        while self.slots < total:
            if queue.qsize() and len(tasks) < MAX_CONNECTIONS:  # readings still waiting: all busy
                tasks.append(asyncio.create_task(self._connection(queue, t0)))
            due = min(total, int((loop.time() - t0) * self.rate) + 1)
            while self.slots < due:
                queue.put_nowait(self.slots)
                self.slots += 1
            await asyncio.sleep(max(0.0, t0 + self.slots / self.rate - loop.time()))
        for _ in tasks:
            queue.put_nowait(None)
        await asyncio.wait(tasks, timeout=30)  # the answers in flight
        watch.cancel()

    async def _watch(self) -> None:
        """The p99 and the maximum of the last 10 s, for the progress lines."""
        seen = 0
        while True:
            await asyncio.sleep(10)
            recent = sorted(self.latencies[seen:])
            seen += len(recent)
            if recent:
                self.shared["p99_recent"].value = recent[int(0.99 * (len(recent) - 1))]
                self.shared["max_recent"].value = recent[-1]


def run_load(url: str, rate: float, seconds: float, shared, results) -> None:
    """The load generator's process: runs `Load` for `seconds`, then puts its results."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    load = Load(host, int(port), rate, seconds, shared)
    try:
        import uvloop
    except ImportError:
        asyncio.run(load.run())
    else:
        uvloop.run(load.run())
    results.put({"slots": load.slots, "start_epoch": load.start_epoch, "errors": load.errors, "latencies": load.latencies.tobytes(),
                 "connections": load.connections, "slow_per_s": load.slow_per_s.tobytes(),
                 "max_per_s": load.max_per_s.tobytes()})


def poll_dashboard(url: str, stop, visits, failures, nice: int, spans=None, client: str = "chromium") -> None:
    """Opens every dashboard page in turn in headless Chromium (or fetches it over HTTP), in a
    process of its own so the browser driver does not share the load generator's interpreter.
    The browser stands for the users' machines, not for the platform: with `--browser-nice`
    (default 19) it gets only the CPU the platform leaves, as if it ran elsewhere."""
    chromium = shutil.which("chromium") if client == "chromium" else None
    os.nice(nice)
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
        lower_browser(nice)
        page = browser.new_page()
        while not stop.is_set():
            for name in PAGES:
                if stop.is_set():
                    break
                began = time.time()
                try:
                    page.goto(f"{url}/{name}", wait_until="domcontentloaded", timeout=60_000)
                    page.wait_for_selector("[data-testid='stMain']", timeout=60_000)
                    page.wait_for_timeout(3_000)  # the page's queries
                    if page.locator("[data-testid='stException']").count():
                        failures.put(f"{name or 'overview'}: exception on the page")
                    visits.value += 1
                except Exception as exc:  # noqa: BLE001 - counted as an error of the run
                    failures.put(f"{name or 'overview'}: {type(exc).__name__}")
                if spans is not None:  # when each page was open (the diagnostics)
                    spans.put((name or "overview", began, time.time()))
                stop.wait(5)
        browser.close()


class Activity(threading.Thread):
    """What the database was doing, for the diagnostics: every 0.1 s, the backends of
    pg_stat_activity that are not idle (each platform process names its connections by
    PGAPPNAME: api, scheduler, simulator, dashboard), with what they wait for."""

    def __init__(self, dsn: str, probe_dir: Path):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.probe_dir = probe_dir
        self.samples: list[tuple[float, list[tuple]]] = []
        # the disk: (time, sectors written by every disk so far, the slowest fdatasync of an 8-kB write
        # since the previous sample), as PostgreSQL's commits sync its WAL on the same file system
        self.disk: list[tuple[float, int, float]] = []
        self.cpu: list[tuple[float, float, int]] = []  # (time, machine busy CPU seconds so far, runnable tasks)
        self.segments: list[float] = []  # when the WAL moved to a new 16-MB segment
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="soak-activity") as conn:
            segment = None
            threading.Thread(target=self._probe, daemon=True).start()
            while not self.stop.wait(0.1):
                self.disk.append((time.time(), _sectors_written(), self._probe_max))
                self.cpu.append((time.time(), *_machine_cpu()))
                self._probe_max = 0.0
                now_segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()[0]
                if segment is not None and now_segment != segment:
                    self.segments.append(time.time())
                segment = now_segment
                rows = conn.execute(
                    "SELECT application_name, state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 70), "
                    "extract(epoch FROM clock_timestamp() - query_start) FROM pg_stat_activity "
                    "WHERE state <> 'idle' AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall()
                self.samples.append((time.time(), rows))


    _probe_max = 0.0

    def _probe(self) -> None:
        """An 8-kB write and fdatasync every 20 ms, like a commit's WAL flush."""
        fd = os.open(self.probe_dir / "fsync-probe", os.O_WRONLY | os.O_CREAT, 0o600)
        block = b"x" * 8192
        try:
            while not self.stop.wait(0.02):
                t = time.perf_counter()
                os.pwrite(fd, block, 0)
                os.fdatasync(fd)
                self._probe_max = max(self._probe_max, time.perf_counter() - t)
        finally:
            os.close(fd)


def _machine_cpu() -> tuple[float, int]:
    """CPU seconds the whole machine spent busy since boot (user, nice, system, irq, steal) and the
    tasks runnable now."""
    busy, running = 0.0, 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
            elif line.startswith("procs_running"):
                running = int(line.split()[1])
    return busy, running


def _sectors_written() -> int:
    """Sectors written by the whole disks (not their partitions) since boot."""
    total = 0
    with open("/proc/diskstats") as f:
        for line in f:
            parts = line.split()
            if re.fullmatch(r"(vd|sd|xvd|nvme\d+n)[a-z0-9]*", parts[2]) and not re.search(r"\dp?\d+$|[a-z]\d+$", parts[2]):
                total += int(parts[9])
    return total


def worst_seconds(out: dict, activity: Activity, spans: list[tuple[str, float, float]], n: int = 12) -> None:
    """Prints when the slow readings (> SLOW_S) were due: the worst seconds, with the dashboard
    page open then and what the database was doing (other than the ingest's COPY), and for each
    kind of activity the share of the run's time it covered against the share of the slow
    readings due meanwhile (the correlation)."""
    slow = array("i", out["slow_per_s"])
    worst = array("d", out["max_per_s"])
    t0 = out["start_epoch"]
    total_slow = sum(slow)
    seconds = len(slow)

    def busy(t: float, t2: float) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for when, rows in activity.samples:
            if t <= when < t2:
                for app, state, wtype, wevent, query, age in rows:
                    if app == "api" and query.startswith("COPY") and not wtype:
                        continue
                    what = f"{query[:50]}" + (f" WAITING {wtype}:{wevent}" if wtype else "")
                    seen.setdefault(app or "?", set()).add(what)
        return seen

    print(f"slow readings (> {SLOW_S * 1000:.0f} ms): {total_slow:,} in {sum(1 for c in slow if c)} of {seconds} seconds")
    order = sorted(range(seconds), key=lambda i: worst[i], reverse=True)[:n]
    for i in sorted(order):
        if not slow[i]:
            continue
        t = t0 + i
        pages = [name for name, a, b in spans if a <= t + 1 and b >= t]
        switch = [f"{w - t:+.1f} s" for w in activity.segments if t - 1 <= w <= t + 2 + worst[i]]
        window = [d for d in activity.disk if t - 0.5 <= d[0] < t + 1 + worst[i]]
        disk = (f"disk {(window[-1][1] - window[0][1]) * 512 / 2**20 / (window[-1][0] - window[0][0]):.1f} MB/s, "
                f"slowest fdatasync {max(d[2] for d in window) * 1000:.0f} ms" if len(window) > 1 else "")
        c = [x for x in activity.cpu if t - 0.5 <= x[0] < t + 1 + worst[i]]
        load = (f"; machine busy {(c[-1][1] - c[0][1]) / (c[-1][0] - c[0][0]):.1f} of {os.cpu_count()} cores, "
                f"runnable tasks {statistics.mean(x[2] for x in c):.1f}" if len(c) > 1 else "")
        print(f"  {time.strftime('%H:%M:%S', time.gmtime(t))} (s {i}): {slow[i]} slow, max {worst[i] * 1000:.0f} ms; "
              f"page {pages or '-'}; new WAL segment {switch or '-'}; {disk}{load}")
        for app, what in sorted(busy(t - 0.5, t + 1 + worst[i]).items()):
            print(f"      {app}: " + " | ".join(sorted(what)[:4]))
    # correlation: per kind of activity, time covered vs slow readings due meanwhile
    kinds: dict[str, array] = {}
    for when, rows in activity.samples:
        i = int(when - t0)
        if 0 <= i < seconds:
            for app, _state, wtype, _e, query, _age in rows:
                if app == "api" and query.startswith("COPY") and not wtype:
                    continue
                kinds.setdefault(app or "?", array("b", [0]) * seconds)[i] = 1
                if wtype == "Lock":
                    kinds.setdefault("lock wait", array("b", [0]) * seconds)[i] = 1
    page_on = array("b", [0]) * seconds
    for _name, a, b in spans:
        for i in range(max(0, int(a - t0)), min(seconds, int(b - t0) + 1)):
            page_on[i] = 1
    kinds["dashboard page open"] = page_on
    switched = array("b", [0]) * seconds
    for w in activity.segments:  # a new WAL segment in this second or the next (the readings due before it wait)
        for i in (int(w - t0) - 1, int(w - t0)):
            if 0 <= i < seconds:
                switched[i] = 1
    kinds["new WAL segment (that second or the next)"] = switched
    slow_sync = array("b", [0]) * seconds
    for when, _sectors, longest in activity.disk:
        if longest > SLOW_S and 0 <= int(when - t0) < seconds:
            slow_sync[int(when - t0)] = 1
    kinds[f"an fdatasync of 8 kB slower than {SLOW_S * 1000:.0f} ms"] = slow_sync
    if len(activity.cpu) > 1:
        c = activity.cpu
        print(f"  the machine over the run: {(c[-1][1] - c[0][1]) / (c[-1][0] - c[0][0]):.2f} of {os.cpu_count()} cores busy, "
              f"runnable tasks {statistics.mean(x[2] for x in c):.1f} on average")
    if len(activity.disk) > 1:
        syncs = sorted(d[2] for d in activity.disk)
        print(f"  the disk over the run: {(activity.disk[-1][1] - activity.disk[0][1]) * 512 / 2**20 / (activity.disk[-1][0] - activity.disk[0][0]):.1f} MB/s written; "
              f"slowest fdatasync of 8 kB per 0.1 s: median {syncs[len(syncs) // 2] * 1000:.1f} ms, "
              f"p99 {syncs[int(0.99 * (len(syncs) - 1))] * 1000:.0f} ms, max {syncs[-1] * 1000:.0f} ms")
    for name, on in sorted(kinds.items()):
        covered = sum(on)
        hit = sum(c for c, x in zip(slow, on, strict=True) if x)
        print(f"  {name}: active in {100 * covered / seconds:.0f} % of the seconds, "
              f"which hold {100 * hit / max(1, total_slow):.0f} % of the slow readings")


def lower_browser(nice: int) -> None:
    """Give the browser the priority `--browser-nice` asks for. `os.nice` in the poller is not
    enough: Playwright starts Chromium in a session of its own (setsid), and with the kernel's
    autogroup scheduling (sched_autogroup_enabled = 1, the default of desktop and many server
    kernels) a session is a scheduling group of its own that gets a fair share of the CPU against
    the platform's group, whatever its processes' nice values; Chromium also resets its
    processes' nice (-8 for the browser, 0 or 5 for the others). So the group itself is niced
    (/proc/PID/autogroup; the renderers started later join it), and each process too."""
    me = os.getsid(0)
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getsid(child.pid) != me:  # the browser's session
                with open(f"/proc/{child.pid}/autogroup", "w") as f:
                    f.write(str(nice))
            child.nice(nice)
        except (OSError, psutil.Error):
            pass


def cpu(procs: dict[str, psutil.Process], *, children: bool = False) -> dict[str, float]:
    """CPU seconds (user + system) of each process; of the browser, with its children."""
    out = {}
    for name, p in procs.items():
        try:
            family = [p] + (p.children(recursive=True) if name == "browser" and children else [])
            out[name] = sum(sum(q.cpu_times()[:2]) for q in family if q.is_running())
        except psutil.Error:
            out[name] = 0.0
    return out


def _all_cpu() -> dict[tuple[int, float], tuple[float, str]]:
    """CPU seconds of every process of the machine, by (pid, start time)."""
    out = {}
    for p in psutil.process_iter(["cpu_times", "create_time", "cmdline", "name"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[(p.pid, p.info["create_time"])] = (t.user + t.system, " ".join(p.info["cmdline"] or [p.info["name"] or "?"]))
    return out


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
    ap.add_argument("--dashboard-client", choices=["chromium", "http"], default="chromium",
                    help="how the dashboard's pages are opened: headless Chromium (when installed) or plain HTTP "
                         "(the page's script then does not run: a diagnostic)")
    ap.add_argument("--browser-nice", type=int, default=19,
                    help="niceness of the browser that polls the dashboard (0: the platform's priority)")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine is shared)")

    tmp = Path(tempfile.mkdtemp(prefix="m40-soak-"))
    with throwaway_database() as url:
        dsn = libpq_url(url)
        with psycopg.connect(dsn) as conn:  # the load's site: two HVAC units, a reading every 2 ms each
            conn.execute("INSERT INTO sites (code, name, city) VALUES (%s, 'Soak load', 'Casablanca')", (SITE,))
            conn.execute("INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
                         "SELECT a, a, 'HVAC', s.id, 1 FROM sites s, unnest(%s::text[]) a WHERE s.code = %s",
                         ([a for _, a in ASSETS], SITE))
        env = {"INGEST_API_KEY": KEY, "LOG_LEVEL": "WARNING", "RULES_INTERVAL_S": "15",
               "MAINTENANCE_INTERVAL_S": "60", "SIM_INTERVAL_S": "10", "SIM_BUFFER_DIR": str(tmp / "buffer")}
        with api_server(env | {"PGAPPNAME": "api"}) as api:
            child_env = {**os.environ, **env, "API_URL": api}
            dash_port = free_port()
            others = {
                "scheduler": [sys.executable, "-m", "engine"],
                "simulator": [sys.executable, "-m", "simulator", "--sites", "2"],  # the seeded sites
                "dashboard": [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                              "--server.port", str(dash_port), "--server.headless", "true",
                              "--browser.gatherUsageStats", "false"],
            }
            children = {n: subprocess.Popen(cmd, cwd=ROOT, env=child_env | {"PGAPPNAME": n}, stdout=subprocess.DEVNULL,
                                            stderr=(tmp / f"{n}.log").open("w")) for n, cmd in others.items()}
            try:
                report = soak(args, api, dsn, dash_port, children, tmp)
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


def soak(args, api: str, dsn: str, dash_port: int, children: dict[str, subprocess.Popen], probe_dir: Path) -> dict:
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

    duration = args.minutes * 60
    mp = multiprocessing.get_context("spawn")
    dash_stop, visits, failures_q, spans_q = mp.Event(), mp.Value("i", 0), mp.Queue(), mp.Queue()
    dash_proc = mp.Process(target=poll_dashboard, args=(dash_url, dash_stop, visits, failures_q, args.browser_nice,
                                                        spans_q, args.dashboard_client), daemon=True)
    dash_proc.start()
    shared = {"sent": mp.Value("q", 0, lock=False), "ok": mp.Value("q", 0, lock=False),
              "errors": mp.Value("q", 0, lock=False), "connections": mp.Value("i", 0, lock=False),
              "p99_recent": mp.Value("d", 0.0, lock=False), "max_recent": mp.Value("d", 0.0, lock=False)}
    results = mp.Queue()
    load_proc = mp.Process(target=run_load, args=(api, args.rate, duration, shared, results), daemon=True)
    load_proc.start()
    load_ps = psutil.Process(load_proc.pid)
    activity = Activity(dsn, probe_dir)
    activity.start()
    cpu0 = cpu(procs | {"browser": psutil.Process(dash_proc.pid)}, children=True)
    everyone0 = _all_cpu()
    began = time.monotonic()
    baseline = None
    last_print = began
    load_cpu = 0.0
    while time.monotonic() - began < duration:
        time.sleep(1)
        elapsed = time.monotonic() - began
        try:
            load_cpu = sum(load_ps.cpu_times()[:2])
        except psutil.Error:
            pass
        if baseline is None and elapsed >= min(60, duration / 2):
            baseline = rss(procs)
        if time.monotonic() - last_print >= 30:
            last_print = time.monotonic()
            mem = rss(procs)
            print(f"{elapsed:5.0f} s  sent {shared['sent'].value:,} ({shared['sent'].value / elapsed:,.0f}/s)  "
                  f"ok {shared['ok'].value:,}  p99(last 10 s) {shared['p99_recent'].value * 1000:.1f} ms "
                  f"max {shared['max_recent'].value * 1000:.0f} ms  errors {shared['errors'].value}  "
                  f"connections {shared['connections'].value}  dashboard visits {visits.value}  "
                  f"load avg {os.getloadavg()[0]:.2f}  RSS MB " +
                  " ".join(f"{n}={v / 2**20:.0f}" for n, v in mem.items()), flush=True)
    out = results.get(timeout=60)  # the generator ends its schedule, then waits for the answers in flight
    load_proc.join(30)
    final = rss(procs)
    used = cpu(procs | {"browser": psutil.Process(dash_proc.pid)}, children=True)
    everyone = _all_cpu()
    dash_stop.set()
    dash_proc.join(90)
    activity.stop.set()
    dash_failures, spans = [], []
    while not failures_q.empty():
        dash_failures.append(failures_q.get())
    while not spans_q.empty():
        spans.append(spans_q.get())
    sent, ok = shared["sent"].value, shared["ok"].value
    time.sleep(2)  # answers that timed out in the generator may still commit
    with psycopg.connect(dsn) as conn:
        stored = conn.execute(  # readings, not points: each of 4 metrics
            "SELECT count(DISTINCT (t.asset_id, t.ts)) FROM telemetry t JOIN assets a ON a.id = t.asset_id "
            "JOIN sites s ON s.id = a.site_id WHERE s.code = %s", (SITE,)).fetchone()[0]
    died = [n for n, p in children.items() if p.poll() is not None]
    growth = {n: 100 * (final[n] - baseline[n]) / baseline[n] for n in final if baseline and baseline.get(n)}
    lat = sorted(array("d", out["latencies"]))
    p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else None
    errors = sum(out["errors"].values()) + len(dash_failures) + len(died)
    print(f"load: {out['slots']:,} readings due in {duration:.0f} s ({out['slots'] / duration:,.0f}/s), "
          f"{sent:,} sent, {ok:,} acknowledged, {stored:,} stored; errors {out['errors']}; latency from each "
          f"reading's due time: p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99:.1f} ms, "
          f"max {lat[-1] * 1000:.0f} ms; connections used {out['connections']}; the generator used "
          f"{load_cpu / duration:.2f} of a core; dashboard {visits.value} page visits, failures "
          f"{dash_failures[:5]}; processes died: {died}; RSS growth after the first minute (%): "
          + ", ".join(f"{n} {g:+.1f}" for n, g in growth.items()))
    print("CPU used over the run, in cores: " + ", ".join(f"{n} {(used[n] - cpu0.get(n, 0.0)) / duration:.2f}"
                                                        for n in used) + f", generator {load_cpu / duration:.2f}")
    ours = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}
    busiest = sorted(((v - everyone0.get(k, (0.0, ""))[0], k, name) for k, (v, name) in everyone.items()), reverse=True)
    print("the busiest processes of the machine over the run (cores; * = not started by the soak: PostgreSQL's "
          "server and its backends, the browser, anything else running): " + ", ".join(
        f"{'' if k[0] in ours else '*'}{name[:40]} {d / duration:.2f}" for d, k, name in busiest[:8]))
    worst_seconds(out, activity, spans)
    print(f"load average at the end: {os.getloadavg()}")
    return {
        "minutes": args.minutes,
        "readings_sent": sent,
        "readings_stored": stored,
        "lost": max(0, ok - stored),
        "p99_ms": round(p99, 1) if p99 is not None else None,
        "rss_growth_pct": round(max(growth.values()), 1) if growth else None,
        "errors": errors,
    }


if __name__ == "__main__":
    main()
