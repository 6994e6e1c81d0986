"""Test fixtures: a real PostgreSQL (the embedded server in .pgdata-test, or TEST_DATABASE_URL),
a fresh database migrated and seeded once per run, cleaned after every test; a real uvicorn
server on 127.0.0.1 for the API."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

TEST_DB = f"m40_test_{os.getpid()}"
PROJECT = Path(__file__).resolve().parent.parent

# Hypothesis (rules against a reference, schemathesis on the API): the same examples on every
# run in CI, so a run cannot fail by chance; HYPOTHESIS_PROFILE=explore searches wider and anew.
settings.register_profile("ci", max_examples=30, derandomize=True, database=None)
settings.register_profile("explore", max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
API_KEY = "test-key-not-the-default"
# scoped keys (ingest/deps.py): two gateway keys (rotation: both valid at once), an operator key,
# and the HTTPS front's key (deploy/Caddyfile passes it after the login)
GATEWAY_KEYS = {"gw-old": "gateway-key-old-123", "gw-new": "gateway-key-new-456"}
OPERATOR_KEY = "operator-key-789"
FRONT_KEY = "front-key-abc"

MUTABLE_TABLES = (
    "telemetry, alerts, work_orders, audit_trail, counter_resets, policy_evaluations, simulator_faults, rule_runs, telemetry_hourly, "
    "telemetry_arrivals, telemetry_latest, silences, policy_overrides"
    ", outbox_events, webhook_deliveries, inbound_messages"  # issue 15
    ", telemetry_cold, telemetry_dirty_hours, maintenance_state"  # issue 12
)


def _server_url() -> str:
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    from db.session import start_embedded

    return start_embedded(PROJECT / ".pgdata-test")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated, seeded database for this test run; dropped at the end."""
    from db.session import libpq_url, normalize_url, reset_caches

    admin = libpq_url(_server_url())
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    url = normalize_url(make_url(normalize_url(admin)).set(database=TEST_DB).render_as_string(hide_password=False))
    os.environ["DATABASE_URL"] = url
    os.environ["INGEST_API_KEY"] = API_KEY
    os.environ["INGEST_API_KEYS"] = ",".join(f"{n}={k}" for n, k in GATEWAY_KEYS.items())
    os.environ["OPERATOR_API_KEYS"] = f"ops={OPERATOR_KEY},https-front={FRONT_KEY}"
    reset_caches()
    from db.upgrade import upgrade

    upgrade()
    yield url
    reset_caches()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


def insert_points(pg: psycopg.Connection, points) -> None:
    """Arrange telemetry: points (asset_id, metric_id, ts, value) in one statement, re-sends
    skipped. Tests only: the application's one writer is ingest.telemetry.AsyncWriter."""
    cols = list(zip(*points)) or [(), (), (), ()]
    pg.execute(
        "INSERT INTO telemetry (asset_id, metric_id, ts, value) "
        "SELECT * FROM unnest(%s::int4[], %s::int2[], %s::timestamptz[], %s::float8[]) ON CONFLICT DO NOTHING",
        [list(c) for c in cols],
    )


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection to the test database (for arranging and checking rows)."""
    from db.session import libpq_url

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture(autouse=True)
def _clean(request) -> Iterator[None]:
    """After each test that used the database: empty the mutable tables and restore the seed."""
    yield
    if "database_url" not in request.fixturenames:
        return
    from db.seed import seed
    from db.session import get_engine, libpq_url
    from sqlalchemy import text

    with psycopg.connect(libpq_url(os.environ["DATABASE_URL"]), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
    with get_engine().begin() as conn:
        conn.execute(text(
            "DELETE FROM assets WHERE code NOT IN (SELECT s || '-' || t || '_1' FROM unnest("
            "ARRAY['CAS-S1', 'CAS-S2']) s, unnest(ARRAY['HVAC', 'CHILLER', 'ELEVATOR']) t)"
        ))
        conn.execute(text("DELETE FROM sites WHERE code NOT IN ('CAS-S1', 'CAS-S2')"))
        seed(conn)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving the real app in a thread, on 127.0.0.1 only."""

    def __init__(self, app, port: int):
        import uvicorn

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_api(database_url: str) -> Iterator[LiveServer]:
    """The API, as deployed (uvicorn), for the whole run."""
    from ingest.main import create_app

    server = LiveServer(create_app(), free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def api(live_api: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client on the live API, carrying the API key."""
    with httpx.Client(base_url=live_api.url + "/api/v1", headers={"X-API-Key": API_KEY}, timeout=30) as client:
        yield client


@pytest.fixture
def anon_api(live_api: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client on the live API without an API key."""
    with httpx.Client(base_url=live_api.url + "/api/v1", timeout=30) as client:
        yield client


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's; test tools cannot download one here


@pytest.fixture
def browser():
    """Headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()



@pytest.fixture
def dashboard_server(database_url) -> Iterator[str]:
    """`streamlit run app.py` as deployed, on 127.0.0.1; yields its URL."""
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT, env=dict(os.environ, DATABASE_URL=database_url),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "dashboard did not start"
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(15)


# --- MQTT (issue 14): Debian's mosquitto on the deployment's config, the bridge as deployed ----

@pytest.fixture
def broker(tmp_path):
    """A mosquitto broker on a free loopback port (tests/brokers.py)."""
    from tests.brokers import Mosquitto

    b = Mosquitto(tmp_path / "mosquitto").start()
    yield b
    b.stop()


@pytest.fixture
def bridge(broker, database_url, tmp_path, request):
    """`python -m ingest.mqtt` on that broker and the test database, connected."""
    from tests.brokers import BridgeProcess

    b = BridgeProcess(broker, f"m40-test-{request.node.name[:40]}", tmp_path / "bridge.log").start()
    yield b
    b.stop()
