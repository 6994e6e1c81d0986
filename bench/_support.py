"""Shared plumbing of the benchmarks: a throwaway database, a real API server, tools."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.session import libpq_url, normalize_url, reset_caches, start_embedded, stop_embedded  # noqa: E402


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database, migrated and seeded, on DATABASE_URL's server or a temporary embedded one;
    dropped afterwards. Sets DATABASE_URL for this process and its children. Yields the URL."""
    with bench_database() as url:
        yield url


@contextmanager
def bench_database(*, keep: tuple[str, Path] | None = None) -> Iterator[str]:
    """A database migrated and seeded, on DATABASE_URL's server or an embedded one. Without
    `keep`: a new one (temporary embedded server), dropped afterwards. With keep = (name, pgdata):
    database `name` kept between runs (created when missing, migrated to head, never dropped),
    on an embedded server whose data stays in `pgdata` when DATABASE_URL is unset. Sets
    DATABASE_URL for this process and its children. Yields the URL."""
    from db.upgrade import upgrade

    tmpdir = pgdata = None
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        if keep:
            pgdata = keep[1].resolve()
        else:
            tmpdir = Path(tempfile.mkdtemp(prefix="m40-bench-"))
            pgdata = tmpdir / "pgdata"
        server_url = start_embedded(pgdata)
    admin = libpq_url(server_url)
    name = keep[0] if keep else f"m40_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = normalize_url(make_url(normalize_url(admin)).set(database=name).render_as_string(hide_password=False))
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    reset_caches()
    try:
        upgrade()
        yield url
    finally:
        reset_caches()
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if pgdata:
            stop_embedded(pgdata)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

@contextmanager
def sibling_database(suffix: str) -> Iterator[str]:
    """Another database, migrated and seeded, on the server of the current DATABASE_URL (inside
    bench_database); dropped afterwards. Yields its URL; DATABASE_URL is left as it was."""
    from db.upgrade import upgrade

    current = os.environ["DATABASE_URL"]
    name = f"{make_url(current).database}_{suffix}"
    with psycopg.connect(libpq_url(current), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = normalize_url(make_url(current).set(database=name).render_as_string(hide_password=False))
    try:
        with using_database(url):
            upgrade()
        yield url
    finally:
        with psycopg.connect(libpq_url(current), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def using_database(url: str) -> Iterator[str]:
    """The platform's code (engine, sessions) on `url` for a while: DATABASE_URL set and the
    cached engine forgotten, both put back afterwards (a new pool each way). Yields the libpq DSN."""
    saved = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = url
    reset_caches()
    try:
        yield libpq_url(url)
    finally:
        os.environ["DATABASE_URL"] = saved
        reset_caches()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def api_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """`uvicorn ingest.main:app` as deployed, on 127.0.0.1; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ingest.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log", ],
        cwd=ROOT,
        # as deployed: WEB_CONCURRENCY uvicorn workers (.env.example: 2)
        env={**os.environ, "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"), **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("API did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_tool(name: str, package: str | None = None) -> str | None:
    """Path of a Debian tool, apt-installing it when missing and we are root; None otherwise."""
    path = shutil.which(name)
    if path or os.geteuid() != 0:
        return path
    print(f"installing {package or name} (apt) …", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package or name], check=False, capture_output=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which(name)


def machine() -> str:
    import platform

    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
