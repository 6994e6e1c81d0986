"""POST /api/v1/telemetry is served by an ASGI fast path before FastAPI's routing
(`ingest.main.TelemetryFastPath`, for speed). It must answer exactly as the FastAPI route it
shortcuts: same statuses, bodies and Retry-After, same rows stored, same metrics. Each request
below goes to two servers on the same database — the app as deployed, and the same app without
the fast path — and the answers, the table and the counters are compared."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from db.errors import Unavailable
from ingest.telemetry import AsyncWriter
from tests.conftest import API_KEY, GATEWAY_KEYS, OPERATOR_KEY, LiveServer, free_port

READING = {"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1", "timestamp": "2025-12-09T10:15:23Z",
           "metrics": {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}}
JSON = {"Content-Type": "application/json"}


def _json(reading: dict) -> bytes:
    import orjson

    return orjson.dumps(reading)


# (name, headers, body): every kind of answer the endpoint gives
CASES = [
    ("stored", {"X-API-Key": API_KEY}, _json(READING)),
    ("re-sent: stored once", {"X-API-Key": API_KEY}, _json(READING)),
    ("gateway key", {"X-API-Key": GATEWAY_KEYS["gw-new"]}, _json({**READING, "timestamp": "2025-12-09T10:15:33Z"})),
    ("no key", {}, _json(READING)),
    ("unknown key", {"X-API-Key": "not-a-key"}, _json(READING)),
    ("operator key: wrong scope", {"X-API-Key": OPERATOR_KEY}, _json(READING)),
    ("malformed JSON", {"X-API-Key": API_KEY}, b'{"site_code": '),
    ("unknown asset", {"X-API-Key": API_KEY}, _json({**READING, "asset_code": "CAS-S1-HVAC_9"})),
    ("unknown metric", {"X-API-Key": API_KEY}, _json({**READING, "metrics": {"motor_temp": 1.0}})),
    ("string value", {"X-API-Key": API_KEY}, _json({**READING, "metrics": {"power_kw": "1"}})),
    ("unexpected field", {"X-API-Key": API_KEY}, _json({**READING, "extra": 1})),
    ("empty body", {"X-API-Key": API_KEY}, b""),
]


@pytest.fixture(scope="module")
def servers(database_url) -> Iterator[tuple[LiveServer, LiveServer]]:
    """(the app as deployed, the same app without the fast path), each with its own writer,
    catalog and metrics."""
    from ingest.main import TelemetryFastPath, create_app

    fast = LiveServer(create_app(), free_port()).start()
    plain_app = create_app()
    plain_app.user_middleware = [m for m in plain_app.user_middleware if m.cls is not TelemetryFastPath]
    plain = LiveServer(plain_app, free_port()).start()
    yield fast, plain
    fast.stop()
    plain.stop()


def _answer(server: LiveServer, headers: dict, body: bytes) -> tuple:
    r = httpx.post(f"{server.url}/api/v1/telemetry", content=body, headers={**JSON, **headers}, timeout=30)
    return r.status_code, r.headers.get("content-type"), r.headers.get("retry-after"), r.json()


def _stored(pg) -> list[tuple]:
    return pg.execute("SELECT asset_id, metric_id, ts, value FROM telemetry ORDER BY 1, 2, 3").fetchall()


def _counters(server: LiveServer) -> dict[str, float]:
    """The ingest counters and the telemetry route's latency count, from /metrics."""
    text = httpx.get(server.url + "/metrics").text
    wanted = re.compile(r'^(m40_ingest_\w+_total(\{[^}]*\})?|m40_http_request_duration_seconds_count'
                        r'\{method="POST",route="/telemetry",status="\d+"\}) ([0-9.e+]+)$', re.M)
    return {m.group(1): float(m.group(3)) for m in wanted.finditer(text)}


def test_the_fast_path_answers_stores_and_counts_as_the_fastapi_route(servers, pg):
    fast, plain = servers
    plain_answers = [_answer(plain, h, b) for _, h, b in CASES]  # the FastAPI route, on an empty table…
    plain_rows = _stored(pg)
    pg.execute("TRUNCATE telemetry")
    fast_answers = [_answer(fast, h, b) for _, h, b in CASES]  # …then the fast path, the same way
    for (name, *_), expected, got in zip(CASES, plain_answers, fast_answers, strict=True):
        assert got == expected, name
    assert _stored(pg) == plain_rows and len(plain_rows) == 8
    statuses = [a[0] for a in fast_answers]
    assert statuses == [200, 200, 200, 401, 401, 403, 422, 422, 422, 422, 422, 422]
    assert [a[3]["inserted_points"] for a in fast_answers[:3]] == [4, 0, 4]
    # the same counters: points, duplicates, refusals by reason, latency by route and status
    assert _counters(fast) == _counters(plain)
    assert _counters(fast)['m40_http_request_duration_seconds_count{method="POST",route="/telemetry",status="422"}'] == 6


@pytest.mark.parametrize("failure", ["queue full", "database down", "other database error"])
def test_the_fast_path_renders_write_failures_as_the_fastapi_route(servers, pg, monkeypatch, failure):
    """503 with Retry-After when the writer refuses (queue full, database away), the logged 500
    body for any other database error; nothing stored."""
    raised = {"queue full": Unavailable("ingest queue full", retry_after_s=1),
              "database down": psycopg.OperationalError("connection refused"),
              "other database error": psycopg.errors.DataError("bad data")}[failure]

    async def failing_submit(self, points):
        raise raised

    monkeypatch.setattr(AsyncWriter, "submit", failing_submit)
    fast, plain = servers
    body = _json({**READING, "timestamp": "2025-12-09T11:00:00Z"})
    expected = _answer(plain, {"X-API-Key": API_KEY}, body)
    assert _answer(fast, {"X-API-Key": API_KEY}, body) == expected
    status, _, retry_after, answer = expected
    if failure == "other database error":
        assert status == 500 and answer == {"detail": "internal error; nothing was stored"}
    else:
        assert status == 503 and int(retry_after) >= 1 and "retry later" in answer["detail"]
    assert _stored(pg) == []


def test_other_methods_and_paths_still_go_to_fastapi(servers):
    fast, _ = servers
    assert httpx.get(f"{fast.url}/api/v1/telemetry").status_code == 405
    r = httpx.post(f"{fast.url}/api/v1/telemetry/batch", json={"readings": [READING]}, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json()["points"] == 4
