"""`make run`: the whole platform on one machine, in the foreground.

Starts (or joins) the embedded PostgreSQL unless DATABASE_URL is set, runs `python -m db upgrade`,
then every service as its own process with the same command Docker uses, prefixes each log
line with the service name, prints the URLs, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from db.session import database_url
from db.settings import get_settings


def services(settings) -> dict[str, list[str]]:
    """name -> command; the same entry points as docker-compose.yml."""
    py = sys.executable
    return {
        "api": [py, "-m", "uvicorn", "ingest.main:app", "--host", settings.api_host, "--port", str(settings.api_port)],
    }


def _pump(name: str, stream, width: int) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"{name:<{width}} | {line}")
        sys.stdout.flush()


def main() -> int:
    settings = get_settings()
    env = dict(os.environ, DATABASE_URL=database_url(), PYTHONUNBUFFERED="1")
    print("upgrading the database …", flush=True)
    subprocess.run([sys.executable, "-m", "db", "upgrade"], env=env, check=True)

    cmds = services(settings)
    width = max(map(len, cmds))
    procs: dict[str, subprocess.Popen] = {}
    for name, cmd in cmds.items():
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        procs[name] = p
        threading.Thread(target=_pump, args=(name, p.stdout, width), daemon=True).start()

    print(
        f"\n  API        http://{settings.api_host}:{settings.api_port}/docs\n"
        f"  (Ctrl-C stops everything; data stays in {settings.pgdata_dir if not settings.database_url else 'DATABASE_URL'})\n",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                print(f"service {dead[0]} exited with {procs[dead[0]].returncode}; stopping", flush=True)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("stopping …", flush=True)
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
