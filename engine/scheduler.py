"""The rule scheduler: an APScheduler job every RULES_INTERVAL_S, active on one instance only.

Leadership is a PostgreSQL session advisory lock held on a dedicated connection: a second
instance is a standby that tries the lock at every tick and takes over as soon as the active
one's connection dies (process killed, server restarted, network cut). While the database is
unreachable every tick fails fast (connect timeout, keepalives) and logs one warning; the first
tick after it returns re-acquires the lock (or a standby's does), so evaluation resumes within
two intervals without a restart.

SIGTERM or SIGINT stops it within STOP_GRACE_S: a job still running then (a run waiting on a lock,
a long maintenance step) is abandoned with the process. Nothing is lost: a run commits its
results with the arrivals it consumed, and each maintenance step is its own transaction, so the
server rolls back the one under way and the next instance redoes it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from apscheduler.schedulers.blocking import BlockingScheduler

from db.session import connect_args, database_url, is_database_down, libpq_url, session_scope
from core.settings import get_settings
from engine.evaluate import EvaluationResult, evaluate_all, evaluate_sharded
from engine.maintenance import maintain
from engine.rollup import roll_up

log = logging.getLogger("engine.scheduler")

LOCK_KEY = 7340002  # the advisory lock that makes one scheduler active
STOP_GRACE_S = 5.0  # after SIGTERM, how long running jobs may take to finish (docker stop waits 10 s)


class Leadership:
    """Holds (or tries to take) the advisory lock on its own connection."""

    def __init__(self, dsn: str, name: str):
        self._dsn = dsn
        self._name = name
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()  # the evaluation and maintenance jobs both ask

    def ensure(self) -> bool:
        """True while this instance holds the lock (checked on the live connection)."""
        with self._lock:
            try:
                if self._conn is not None and not self._conn.closed:
                    self._conn.execute("SELECT 1")
                    return True
            except psycopg.Error:
                log.warning("lost the scheduler lock: connection died")
                self._close()
            try:
                conn = psycopg.connect(self._dsn, autocommit=True, application_name=self._name, **connect_args())
            except psycopg.Error as exc:
                log.warning("database unreachable: %s", exc)
                return False
            try:
                held = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            except psycopg.Error as exc:
                log.warning("database unreachable: %s", exc)
                held = False
            if held:
                self._conn = conn
                log.info("became the active scheduler")
                return True
            conn.close()
            return False

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def release(self) -> None:
        self._close()


def run_once(*, now: datetime | None = None, source: str = "scheduler") -> EvaluationResult:
    """One evaluation of every policy (in RULES_SHARDS parallel transactions), logged in one line."""
    shards = get_settings().rules_shards
    if shards > 1:
        result = evaluate_sharded(now=now or datetime.now(UTC), shards=shards, source=source)
    else:
        with session_scope() as session:
            result = evaluate_all(session, now=now or datetime.now(UTC), source=source)
    log.info(
        "rules evaluated",
        extra={"policies": result.policies, "assets": result.assets, "readings": result.readings,
               "fired": len(result.fired), "cleared": len(result.cleared), "silenced": result.silenced,
               "failed": len(result.failed), "duration_ms": round(result.duration_s * 1000, 1)},
    )
    for f in result.fired:
        log.info("alert raised", extra={k: f[k] for k in ("alert_id", "asset_code", "policy_code", "severity")} | {"alert_message": f["message"]})
    for c in result.cleared:
        log.info("alert cleared", extra={k: c[k] for k in ("alert_id", "work_order_id")} | {"at": c["cleared_at"].isoformat()})
    for code, error in result.failed.items():
        log.error("policy failed; the others ran", extra={"policy_code": code, "error": error})
    return result


def _log_failure(what: str, exc: Exception) -> None:
    if is_database_down(exc):
        log.warning("%s skipped: database unavailable; the next run will try again", what,
                    extra={"error": type(exc).__name__})
    else:
        log.exception("%s failed; the next run will try again", what)


def serve() -> None:
    """Run until SIGTERM/SIGINT: evaluate every RULES_INTERVAL_S while holding the lock."""
    settings = get_settings()
    name = f"m40-scheduler-{os.getpid()}"
    leader = Leadership(libpq_url(database_url()), name)
    scheduler = BlockingScheduler(timezone="UTC")
    standby_logged = threading.Event()
    running = _Running()

    @running.job("evaluate")
    def tick() -> None:
        if not leader.ensure():
            if not standby_logged.is_set():
                log.info("standby: another scheduler is active")
                standby_logged.set()
            return
        standby_logged.clear()
        try:
            run_once()
        except Exception as exc:  # noqa: BLE001 - one failed run must not stop the next
            _log_failure("rule evaluation", exc)
        try:
            with session_scope() as session:
                roll_up(session, now=datetime.now(UTC), retention_days=settings.rollup_retention_days)
        except Exception as exc:  # noqa: BLE001
            _log_failure("telemetry roll-up", exc)

    scheduler.add_job(
        tick, "interval", seconds=settings.rules_interval_s, id="evaluate", coalesce=True, max_instances=1,
        next_run_time=datetime.now(UTC), misfire_grace_time=None,
    )

    @running.job("maintain")
    def maintenance_tick() -> None:  # storage maintenance (engine/maintenance.py), same leadership
        if not leader.ensure():
            return
        try:
            maintain(now=datetime.now(UTC), hot_days=settings.telemetry_hot_days,
                     telemetry_retention_days=settings.telemetry_retention_days,
                     rollup_retention_days=settings.rollup_retention_days)
        except Exception as exc:  # noqa: BLE001 - the next pass finishes the work
            _log_failure("storage maintenance", exc)

    scheduler.add_job(
        maintenance_tick, "interval", seconds=settings.maintenance_interval_s, id="maintain", coalesce=True,
        max_instances=1, next_run_time=datetime.now(UTC), misfire_grace_time=None,
    )

    def stop(signum, _frame) -> None:
        log.info("stopping (signal %s)", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started", extra={"interval_s": settings.rules_interval_s, "instance": name})
    try:
        scheduler.start()
    finally:
        unfinished = running.wait(STOP_GRACE_S)
        if unfinished:  # their transactions die with the connections: the server rolls them back
            log.warning("scheduler stopped; jobs still running abandoned (rolled back, redone by the next run)",
                        extra={"jobs": unfinished})
            logging.shutdown()
            os._exit(0)
        leader.release()
        log.info("scheduler stopped")


class _Running:
    """The jobs under way, so that a stop can wait for them, for a bounded time."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._changed = threading.Condition()

    @contextmanager
    def job(self, name: str) -> Iterator[None]:
        with self._changed:
            self._names.append(name)
        try:
            yield
        finally:
            with self._changed:
                self._names.remove(name)
                self._changed.notify_all()

    def wait(self, timeout_s: float) -> list[str]:
        """Wait up to timeout_s for every job to end; the names of those still running."""
        with self._changed:
            self._changed.wait_for(lambda: not self._names, timeout_s)
            return list(self._names)
