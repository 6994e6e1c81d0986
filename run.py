"""`make run`: the whole platform on one machine, in the foreground.

1. Uses DATABASE_URL, or starts (or joins) the embedded PostgreSQL with its data in PGDATA_DIR.
2. `python -m db upgrade` (migrations, seed, policy file).
3. Starts the API and waits until it answers; back-fills 24 h of history when the database
   has no telemetry yet, so charts are never empty.
4. Starts the scheduler, the simulator and the dashboard — each with the same command as its
   docker-compose service — and prefixes every log line with the service's name.
5. Prints the URLs; Ctrl-C (or SIGTERM) stops every service, then the embedded server.
   A second start keeps the data.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

import httpx

from db.session import database_url
from core.settings import PROJECT_ROOT, Settings, get_settings


def services(settings: Settings) -> dict[str, list[str]]:
    """name -> command: the entry points of PRODUCT.md, as in docker-compose.yml."""
    py = sys.executable
    cmds = {
        "api": [py, "-m", "uvicorn", "ingest.main:app", "--host", settings.api_host, "--port", str(settings.api_port)],
        "scheduler": [py, "-m", "engine"],
        "simulator": [py, "-m", "simulator"],
        "dashboard": [
            py, "-m", "streamlit", "run", "app.py",
            "--server.address", settings.dashboard_host, "--server.port", str(settings.dashboard_port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
        ],
    }
    if settings.mqtt_url:  # the MQTT ingest bridge, only when a broker is configured
        cmds["mqtt"] = [py, "-m", "ingest.mqtt"]
    return cmds


def _child_setup() -> None:
    """In each child: its own session (Ctrl-C reaches only us; we stop children in order), and
    SIGTERM when we die, even by SIGKILL, so no service outlives the supervisor (Linux)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    """Starts child processes, prefixes their output, stops them all together."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.width = 9
        self.lock = threading.Lock()

    def say(self, name: str, line: str) -> None:
        with self.lock:
            sys.stdout.write(f"{name:<{self.width}} | {line.rstrip()}\n")
            sys.stdout.flush()

    def start(self, name: str, cmd: list[str]) -> None:
        p = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, preexec_fn=_child_setup,
        )
        self.procs[name] = p
        threading.Thread(target=self._pump, args=(name, p), daemon=True).start()

    def run_once(self, name: str, cmd: list[str]) -> None:
        """A one-shot step (the upgrade), its output prefixed like the services'."""
        p = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1, preexec_fn=_child_setup)
        self._pump(name, p)
        if p.wait() != 0:
            raise SystemExit(f"{name} failed (exit code {p.returncode}); see its lines above")

    def _pump(self, name: str, p: subprocess.Popen) -> None:
        for line in iter(p.stdout.readline, ""):
            self.say(name, line)

    def dead(self) -> str | None:
        return next((n for n, p in self.procs.items() if p.poll() is not None), None)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, p in self.procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("run", f"{name} did not stop in time; killing it")
                os.killpg(p.pid, signal.SIGKILL)


def wait_for_api(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the API exited during start-up (see its log above)")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the API did not answer on {url} within {timeout_s:.0f} s")


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-backfill", action="store_true", help="do not back-fill history on an empty database")
    parser.add_argument("--only", nargs="+", metavar="SERVICE", help="start only these services (api is always started)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    # Ctrl-C and SIGTERM stop everything, from the first second — SIGINT explicitly too: a shell
    # that starts us in the background leaves SIGINT ignored, and Python keeps it so unless told
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = get_settings()
    busy = [f"{name} port {host}:{port}" for name, host, port in (
        ("API", settings.api_host, settings.api_port), ("dashboard", settings.dashboard_host, settings.dashboard_port))
        if port_in_use(host, port)]
    if busy:
        print(f"{' and '.join(busy)} already in use (is the platform already running?). "
              "Stop it, or choose others: API_PORT=8010 DASHBOARD_PORT=8511 make run", file=sys.stderr)
        return 2
    sup = Supervisor({})
    sup.say("run", "starting PostgreSQL …" if not settings.database_url else "using DATABASE_URL")
    url = database_url()
    metrics_dir = tempfile.mkdtemp(prefix="m40-prometheus-")
    sup.env = dict(
        os.environ,
        DATABASE_URL=url,
        PYTHONUNBUFFERED="1",
        WEB_CONCURRENCY=os.environ.get("WEB_CONCURRENCY", "2"),
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
    )
    if stop.is_set():
        return 0
    sup.say("run", "upgrading the database …")
    sup.run_once("db", [sys.executable, "-m", "db", "upgrade"])

    cmds = services(settings)
    wanted = ["api", *[n for n in cmds if n != "api" and (not args.only or n in args.only)]]
    code = 0
    try:
        sup.start("api", cmds["api"])
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        wait_for_api(api_url, sup.procs["api"])
        if not args.no_backfill and not stop.is_set():
            from simulator.backfill import backfill_if_empty

            sup.say("run", "checking history (24 h back-fill on an empty database) …")
            backfill_if_empty(api_url, settings.ingest_api_key, hours=24, now=datetime.now(UTC),
                              interval_s=settings.sim_interval_s, seed=settings.sim_seed)
        for name in wanted[1:]:
            if not stop.is_set():
                sup.start(name, cmds[name])
        lines = [
            "",
            "  Maintenance 4.0 is running:",
            f"    Dashboard   http://{settings.dashboard_host}:{settings.dashboard_port}",
            f"    API docs    {api_url}/docs",
            f"    Metrics     {api_url}/metrics",
            f"  Data: {settings.pgdata_dir if not settings.database_url else 'DATABASE_URL'} — Ctrl-C stops everything.",
            "",
        ]
        for line in lines:
            sup.say("run", line)
        while not stop.is_set():
            dead = sup.dead()
            if dead:
                sup.say("run", f"{dead} exited with code {sup.procs[dead].returncode}; stopping everything")
                code = 1
                break
            stop.wait(0.5)
    finally:
        sup.say("run", "stopping …")
        sup.stop()
        sup.say("run", "stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
