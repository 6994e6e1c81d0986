"""`python -m engine`: one active instance, a standby that takes over when the active one dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.scheduler import LOCK_KEY
from tests.conftest import PROJECT


def lock_holder(pg) -> str | None:
    row = pg.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted", (LOCK_KEY,)
    ).fetchone()
    return row[0] if row else None


def wait_until(fn, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    return None


@pytest.fixture
def schedulers(database_url):
    env = dict(os.environ, DATABASE_URL=database_url, RULES_INTERVAL_S="1", LOG_FORMAT="json")
    procs = []

    def start():
        p = subprocess.Popen([sys.executable, "-m", "engine"], cwd=PROJECT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


def test_standby_takes_over_when_the_active_scheduler_dies(pg, schedulers):
    first = schedulers()
    assert wait_until(lambda: lock_holder(pg) == f"m40-scheduler-{first.pid}", 20)
    second = schedulers()
    time.sleep(2.5)  # the standby ticks without taking the lock
    assert lock_holder(pg) == f"m40-scheduler-{first.pid}"
    runs_before = pg.execute("SELECT count(*) FROM rule_runs").fetchone()[0]
    assert runs_before >= 2

    first.send_signal(signal.SIGKILL)  # dies without cleaning up: its connection drops
    assert wait_until(lambda: lock_holder(pg) == f"m40-scheduler-{second.pid}", 20)
    n = pg.execute("SELECT count(*) FROM rule_runs").fetchone()[0]
    assert wait_until(lambda: pg.execute("SELECT count(*) FROM rule_runs").fetchone()[0] > n, 10)


def test_scheduler_stops_cleanly_on_sigterm(pg, schedulers):
    p = schedulers()
    assert wait_until(lambda: lock_holder(pg) == f"m40-scheduler-{p.pid}", 20)
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert "scheduler stopped" in p.stderr.read()
    assert lock_holder(pg) is None
