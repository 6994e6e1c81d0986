"""`python -m engine`: one active instance, a standby that takes over when the active one dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
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


def test_a_run_stuck_on_a_lock_does_not_hold_the_stop_and_loses_nothing(pg, schedulers, database_url):
    """SIGTERM while a run waits (here on a lock the test holds): the process ends within its
    grace, the run's transaction is rolled back, and what arrived is still there for the next run."""
    from datetime import UTC, datetime

    from db.session import libpq_url
    from engine.scheduler import STOP_GRACE_S
    from tests.engine.helpers import put, series

    put(pg, "CAS-S2-HVAC_1", "vibration_level", series([9.0] * 5, end=datetime.now(UTC)))
    arrivals = pg.execute("SELECT asset_id, metric_id, min_ts, max_ts FROM telemetry_arrivals ORDER BY 1, 2").fetchall()
    assert arrivals
    with psycopg.connect(libpq_url(database_url)) as blocker:  # a transaction holding the arrivals' table
        blocker.execute("LOCK TABLE telemetry_arrivals IN ACCESS EXCLUSIVE MODE")
        p = schedulers()
        assert wait_until(lambda: pg.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'telemetry_arrivals'::regclass AND NOT granted"
        ).fetchone()[0], 20), "the run did not reach the locked table"
        started = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(STOP_GRACE_S + 10)
        finally:
            stopped_after = time.monotonic() - started
            blocker.rollback()
    assert code == 0 and STOP_GRACE_S - 0.5 <= stopped_after < STOP_GRACE_S + 10
    assert "jobs still running abandoned" in p.stderr.read()
    # its statement, granted the lock now, finds its client gone: the server rolls its run back
    assert wait_until(lambda: pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state <> 'idle'").fetchone()[0] == 0, 10)
    assert pg.execute("SELECT count(*) FROM rule_runs").fetchone()[0] == 0
    assert pg.execute("SELECT asset_id, metric_id, min_ts, max_ts FROM telemetry_arrivals ORDER BY 1, 2").fetchall() == arrivals
    assert lock_holder(pg) is None
