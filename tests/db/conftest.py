"""Fixtures of the storage tests: a scratch database, an older PostgreSQL server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from db.session import libpq_url, normalize_url
from tests.conftest import free_port


@pytest.fixture
def scratch_db(database_url: str) -> Iterator[str]:
    """An empty database on the test server, dropped afterwards (SQLAlchemy URL)."""
    name = f"m40_scratch_{os.getpid()}"
    admin = libpq_url(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield normalize_url(make_url(normalize_url(admin)).set(database=name).render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def oldest_system_postgres() -> Path | None:
    """The bin dir of the oldest Debian PostgreSQL server installed (`make tools` installs one)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(dirs[0]).parent if dirs else None


@pytest.fixture
def older_server() -> Iterator[tuple[str, int]]:
    """A throwaway server of Debian's PostgreSQL (15 on Debian 12), on a Unix socket only;
    yields (libpq URL of its `postgres` database, major version)."""
    bindir = oldest_system_postgres()
    if bindir is None:
        pytest.fail("no Debian PostgreSQL server: `make tools` installs it (apt-get install postgresql)")
    major = int(bindir.parent.name)
    root = Path(tempfile.mkdtemp(prefix="m40-pg-old-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *a: subprocess.run([*as_user, *a], check=True, capture_output=True, text=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres")
    run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-w", "-l", str(root / "log"),
        "-o", f"-k {root} -c listen_addresses= -p {port}", "start")
    try:
        yield f"postgresql://postgres@/postgres?host={root}&port={port}", major
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
