"""The embedded server gets the buffer cache PG_SHARED_BUFFERS asks for (PostgreSQL's 128MB
default would leave a fleet's recent readings out of it)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from core.settings import get_settings
from db.session import configure_embedded, libpq_url, shared_buffers_wanted, start_embedded, stop_embedded


@pytest.fixture
def pgdata():
    path = Path(tempfile.mkdtemp(prefix="m40-embedded-"))  # (not pytest's: pruned by concurrent runs)
    yield path / "pgdata"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_buffers(monkeypatch):
    def set_(value: str) -> None:
        monkeypatch.setenv("PG_SHARED_BUFFERS", value)
        get_settings.cache_clear()

    yield set_
    get_settings.cache_clear()


def setting(url: str) -> tuple[str, bool]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute("SELECT setting::int * 8 / 1024 || 'MB', pending_restart FROM pg_settings "
                            "WHERE name = 'shared_buffers'").fetchone()


def test_the_embedded_server_runs_with_the_configured_buffer_cache_from_its_first_start(pgdata, shared_buffers):
    shared_buffers("200MB")
    try:
        url = start_embedded(pgdata)  # a new cluster: applied at once (restarted before anyone uses it)
        assert setting(url) == ("200MB", False)
    finally:
        stop_embedded(pgdata)
    shared_buffers("160MB")
    try:
        url = start_embedded(pgdata)  # an existing cluster, a new size
        assert setting(url) == ("160MB", False)
        with psycopg.connect(libpq_url(url)):  # someone is connected: not restarted under them
            shared_buffers("144 MB")
            assert configure_embedded(url) is False
            deadline = time.monotonic() + 10  # (the configuration is reloaded in the background)
            while setting(url) != ("160MB", True) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert setting(url) == ("160MB", True)  # applies at the next start
    finally:
        stop_embedded(pgdata)
    url = start_embedded(pgdata)
    try:
        assert setting(url) == ("144MB", False)
    finally:
        stop_embedded(pgdata)


def test_auto_is_a_quarter_of_the_memory_within_bounds_and_a_bad_size_is_refused(shared_buffers):
    import os

    shared_buffers("auto")
    quarter = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4 // 2**20
    assert shared_buffers_wanted() == f"{min(max(quarter, 128), 2048)}MB"
    shared_buffers("1GB")
    assert shared_buffers_wanted() == "1GB"
    shared_buffers("1GB; DROP TABLE x")
    with pytest.raises(ValueError, match="pg_shared_buffers"):
        get_settings()
