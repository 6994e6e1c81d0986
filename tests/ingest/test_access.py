"""Scoped API keys (PRODUCT.md §HTTP API): INGEST_API_KEY keeps every right, gateway keys
(INGEST_API_KEYS) write telemetry only, operator keys (OPERATOR_API_KEYS) act and read,
API_READS_REQUIRE_KEY closes reads. 401 for no key or an unknown one, 403 for the wrong scope,
nothing written either way; only a key's name is logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi.routing import APIRoute

from core.settings import get_settings
from ingest.deps import Keyring, parse_keys, require_ingest, require_operator, require_read
from tests.conftest import API_KEY, GATEWAY_KEYS, OPERATOR_KEY

READING = {"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1", "timestamp": "2025-12-09T10:15:23Z",
           "metrics": {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}}
FAULT = {"asset_code": "CAS-S1-ELEVATOR_1", "fault": "motor_overheat", "intensity": 0.5, "duration_s": 60}
GW_OLD, GW_NEW = GATEWAY_KEYS["gw-old"], GATEWAY_KEYS["gw-new"]


def post(live_api, path: str, key: str | None, json=None) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.post(f"{live_api.url}/api/v1{path}", json=json, headers=headers, timeout=30)


def get(live_api, path: str, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.get(f"{live_api.url}/api/v1{path}", headers=headers, timeout=30)


def counts(pg) -> tuple[int, int, int]:
    return tuple(pg.execute("SELECT (SELECT count(*) FROM telemetry), (SELECT count(*) FROM simulator_faults), "
                            "(SELECT count(*) FROM rule_runs)").fetchone())


@pytest.fixture
def reads_require_key(monkeypatch) -> Iterator[None]:
    """API_READS_REQUIRE_KEY=true for one test (the live API reads its settings per request)."""
    monkeypatch.setenv("API_READS_REQUIRE_KEY", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("API_READS_REQUIRE_KEY")
    get_settings.cache_clear()


@pytest.mark.parametrize("key", [API_KEY, GW_OLD, GW_NEW], ids=["INGEST_API_KEY", "gateway old", "gateway new"])
def test_telemetry_accepts_the_main_key_and_every_gateway_key(live_api, pg, key):
    r = post(live_api, "/telemetry", key, READING)
    assert r.status_code == 200 and r.json() == {"status": "ok", "inserted_points": 4}


def test_an_operator_key_cannot_write_telemetry(live_api, pg):
    for path, body in (("/telemetry", READING), ("/telemetry/batch", {"readings": [READING]})):
        r = post(live_api, path, OPERATOR_KEY, body)
        assert r.status_code == 403, r.text
        assert r.json()["errors"][0]["field"] == "X-API-Key" and "'ops'" in r.json()["detail"]
    assert counts(pg) == (0, 0, 0)


@pytest.mark.parametrize("key", [GW_OLD, "not-a-key", None], ids=["gateway key", "wrong key", "no key"])
def test_actions_refuse_gateway_wrong_and_missing_keys_and_change_nothing(live_api, pg, api, key):
    expected = 403 if key == GW_OLD else 401
    assert post(live_api, "/rules/evaluate", key).status_code == expected
    assert post(live_api, "/simulator/faults", key, FAULT).status_code == expected
    assert post(live_api, "/alerts/1/ack", key, {"actor": "x"}).status_code == expected
    assert post(live_api, "/workorders/1/transition", key, {"to_status": "done", "actor": "x"}).status_code == expected
    assert counts(pg) == (0, 0, 0)


@pytest.mark.parametrize("key", [API_KEY, OPERATOR_KEY], ids=["INGEST_API_KEY", "operator key"])
def test_operators_act(live_api, pg, key):
    assert post(live_api, "/simulator/faults", key, FAULT).status_code == 201
    assert post(live_api, "/rules/evaluate", key).status_code == 200
    assert counts(pg)[1:] == (1, 1)


def test_reads_are_open_by_default(live_api):
    assert get(live_api, "/sites", None).status_code == 200
    assert get(live_api, "/alerts", "anything").status_code == 200


def test_reads_can_require_an_operator_key(live_api, reads_require_key):
    for path in ("/sites", "/alerts", "/workorders", "/simulator/faults", "/alerts/to-handle"):
        assert get(live_api, path, None).status_code == 401, path
        assert get(live_api, path, "not-a-key").status_code == 401, path
        assert get(live_api, path, GW_NEW).status_code == 403, path  # gateways: telemetry only
        assert get(live_api, path, OPERATOR_KEY).status_code == 200, path
        assert get(live_api, path, API_KEY).status_code == 200, path
    assert get(live_api, "/health", None).status_code == 200  # probes stay open


def test_the_key_is_never_logged_its_name_is(live_api, pg, caplog):
    caplog.set_level(logging.INFO)
    post(live_api, "/rules/evaluate", OPERATOR_KEY)
    post(live_api, "/rules/evaluate", GW_OLD)
    post(live_api, "/telemetry", "s3cret-wrong-key", READING)
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "ops" in logged and "gw-old" in logged
    for secret in (OPERATOR_KEY, GW_OLD, "s3cret-wrong-key", API_KEY):
        assert secret not in logged


def test_every_action_route_needs_an_operator_key_and_every_read_passes_read_access(live_api):
    """A guard for routes added later: each non-GET route other than telemetry carries OperatorKey
    (or is signed instead, like the GMAO's calls); each GET except health carries ReadAccess."""
    from ingest.main import OPEN_ROUTERS

    signed = {r.path for router in OPEN_ROUTERS for r in router.routes if "gmao" in r.path}
    app = live_api.server.config.app

    def calls(dependant) -> set:
        out = {dependant.call}
        for d in dependant.dependencies:
            out |= calls(d)
        return out

    def api_routes(routes, prefix: str = "", inherited: frozenset = frozenset()):
        """(path, route, dependencies of the include) of every APIRoute, also those of included
        routers (FastAPI >= 0.165 keeps them behind an _IncludedRouter, not copied into app.routes)."""
        for route in routes:
            context = getattr(route, "include_context", None)
            if context is not None:
                deps = inherited | {d.dependency for d in context.dependencies}
                yield from api_routes(context.included_router.routes, prefix + context.prefix, deps)
            elif isinstance(route, APIRoute):
                yield prefix + route.path, route, inherited

    checked = 0
    for path, route, inherited in api_routes(app.routes):
        if not path.startswith("/api/v1"):
            continue
        checked += 1
        deps = calls(route.dependant) | inherited
        route = SimpleNamespace(path=path, methods=route.methods)
        if route.path.removeprefix("/api/v1") in signed:
            continue
        if route.path.startswith("/api/v1/telemetry"):
            assert require_ingest in deps, route.path
        elif route.methods & {"POST", "PATCH", "PUT", "DELETE"}:
            assert require_operator in deps, f"{route.methods} {route.path}"
        elif route.path != "/api/v1/health":
            assert require_read in deps, route.path
    assert checked >= 30, f"only {checked} API routes found: the walk above misses the routers"


def test_key_lists_are_name_equals_key_pairs():
    assert parse_keys(" a=k1 , b=k2,,", setting="X") == [("a", "k1"), ("b", "k2")]
    assert parse_keys("front=", setting="X") == []  # an unset key is no key
    with pytest.raises(ValueError, match="X: each entry is name=key"):
        parse_keys("just-a-key", setting="X")


def test_a_key_identifies_its_caller_whatever_its_length():
    settings = get_settings().model_copy(update={"ingest_api_keys": "gw=short", "operator_api_keys": "op=" + "x" * 300})
    ring = Keyring.from_settings(settings)
    assert ring.identify("short").name == "gw"
    assert ring.identify("x" * 300).name == "op"
    assert ring.identify("x" * 299) is None and ring.identify("") is None
