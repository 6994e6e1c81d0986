"""POST /api/v1/telemetry and /telemetry/batch: the requirements' payload, re-sends, bad input."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

EXAMPLE = {  # §7.1 of the requirements, verbatim
    "site_code": "CAS-S1",
    "asset_code": "CAS-S1-HVAC_1",
    "timestamp": "2025-12-09T10:15:23Z",
    "metrics": {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1},
}


def count_points(pg) -> int:
    return pg.execute("SELECT count(*) FROM telemetry").fetchone()[0]


def asset_id(api, code: str) -> int:
    site = code.rsplit("-", 1)[0]
    sites = {s["code"]: s["id"] for s in api.get("/sites").json()}
    return next(a["id"] for a in api.get(f"/sites/{sites[site]}/assets").json() if a["code"] == code)


def test_example_payload_stores_four_points_readable_through_metrics_endpoint(api, pg):
    r = api.post("/telemetry", json=EXAMPLE)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "inserted_points": 4}

    aid = asset_id(api, "CAS-S1-HVAC_1")
    r = api.get(f"/assets/{aid}/metrics", params={"from": "2025-12-09T10:00:00Z", "to": "2025-12-09T10:30:00Z"})
    assert r.status_code == 200, r.text
    got = {s["metric"]: [(p["ts"], p["value"]) for p in s["points"]] for s in r.json()["series"]}
    assert got["temp_supply_air"] == [("2025-12-09T10:15:23Z", 17.8)]
    assert got["temp_out_air"] == [("2025-12-09T10:15:23Z", 32.5)]
    assert got["power_kw"] == [("2025-12-09T10:15:23Z", 12.3)]
    assert got["vibration_level"] == [("2025-12-09T10:15:23Z", 3.1)]
    assert got["run_hours"] == []  # in the catalog for HVAC, not sent
    units = {s["metric"]: s["unit"] for s in r.json()["series"]}
    assert units["temp_supply_air"] == "°C" and units["vibration_level"] == "mm/s"


def test_metrics_endpoint_filters_by_metric(api):
    api.post("/telemetry", json=EXAMPLE)
    aid = asset_id(api, "CAS-S1-HVAC_1")
    r = api.get(
        f"/assets/{aid}/metrics",
        params={"from": "2025-12-09T10:00:00Z", "to": "2025-12-09T10:30:00Z", "metric": ["power_kw"]},
    )
    assert [s["metric"] for s in r.json()["series"]] == ["power_kw"]


def test_resend_stores_nothing_new(api, pg):
    assert api.post("/telemetry", json=EXAMPLE).json()["inserted_points"] == 4
    r = api.post("/telemetry", json=EXAMPLE)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "inserted_points": 0}
    assert count_points(pg) == 4


def test_partial_resend_counts_only_new_points(api, pg):
    api.post("/telemetry", json=EXAMPLE)
    again = copy.deepcopy(EXAMPLE)
    again["metrics"]["temp_out_air"] = 99.0  # same key: the first value stays
    again["metrics"].pop("power_kw")
    r = api.post(
        "/telemetry/batch",
        json={"readings": [again, {**EXAMPLE, "timestamp": "2025-12-09T10:15:33Z"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["inserted_points"] == 4 and r.json()["duplicates"] == 3
    assert count_points(pg) == 8
    stored = pg.execute(
        "SELECT value FROM telemetry t JOIN metrics m ON m.id = t.metric_id "
        "WHERE m.name = 'temp_out_air' AND ts = '2025-12-09T10:15:23Z'"
    ).fetchone()[0]
    assert stored == 32.5


def test_timestamp_with_offset_is_stored_in_utc(api, pg):
    api.post("/telemetry", json={**EXAMPLE, "timestamp": "2025-12-09T11:15:23+01:00"})
    ts = pg.execute("SELECT min(ts) FROM telemetry").fetchone()[0]
    assert ts == datetime(2025, 12, 9, 10, 15, 23, tzinfo=UTC)


def test_batch_of_many_assets_is_stored(api, pg):
    base = datetime(2025, 12, 9, 10, 0, tzinfo=UTC)
    readings = []
    for i in range(50):
        ts = (base + timedelta(seconds=10 * i)).isoformat()
        readings.append({**EXAMPLE, "timestamp": ts})
        readings.append(
            {
                "site_code": "CAS-S2",
                "asset_code": "CAS-S2-ELEVATOR_1",
                "timestamp": ts,
                "metrics": {"motor_temp": 55.0, "current_a": 20.5, "vibration_level": 1.2, "door_cycles": 1000 + i},
            }
        )
    r = api.post("/telemetry/batch", json={"readings": readings})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "inserted_points": 400, "readings": 100, "points": 400, "duplicates": 0}
    assert count_points(pg) == 400


def _bad(mutate):
    payload = copy.deepcopy(EXAMPLE)
    mutate(payload)
    return payload


def _future(p):
    p["timestamp"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()


BAD_INPUTS = {
    "unknown site": (_bad(lambda p: p.update(site_code="CAS-S9")), "site_code", "unknown site"),
    "asset not on that site": (_bad(lambda p: p.update(site_code="CAS-S2")), "asset_code", "not on site"),
    "unknown asset": (_bad(lambda p: p.update(asset_code="CAS-S1-HVAC_9")), "asset_code", "unknown asset"),
    "unknown metric for that asset type": (
        _bad(lambda p: p["metrics"].update(motor_temp=50.0)),
        "metrics.motor_temp",
        "unknown metric 'motor_temp' for asset type HVAC",
    ),
    "string value": (_bad(lambda p: p["metrics"].update(power_kw="12.3")), "metrics.power_kw", "valid number"),
    "boolean value": (_bad(lambda p: p["metrics"].update(power_kw=True)), "metrics.power_kw", "valid number"),
    "timestamp without zone": (
        _bad(lambda p: p.update(timestamp="2025-12-09T10:15:23")),
        "timestamp",
        "timezone",
    ),
    "timestamp far in the future": (_bad(_future), "timestamp", "in the future"),
    "empty metrics": (_bad(lambda p: p.update(metrics={})), "metrics", "at least 1"),
    "missing field": (_bad(lambda p: p.pop("asset_code")), "asset_code", "required"),
    "unexpected field": (_bad(lambda p: p.update(extra=1)), "extra", "not permitted"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(api, pg, case):
    payload, field, reason = BAD_INPUTS[case]
    r = api.post("/telemetry", json=payload)
    assert r.status_code == 422, r.text
    body = r.json()
    assert any(e["field"] == field and reason in e["reason"] for e in body["errors"]), body
    assert field in body["detail"]
    assert count_points(pg) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_number_is_refused(api, pg, literal):
    body = (
        '{"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1", "timestamp": "2025-12-09T10:15:23Z", '
        f'"metrics": {{"power_kw": 1.0, "temp_supply_air": {literal}}}}}'
    )
    r = api.post("/telemetry", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(e["field"] == "metrics.temp_supply_air" and "finite" in e["reason"] for e in r.json()["errors"])
    assert count_points(pg) == 0


def test_malformed_json_is_refused(api, pg):
    r = api.post("/telemetry", content=b'{"site_code": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert count_points(pg) == 0


def test_oversized_body_is_refused_with_413(api, pg):
    from core.settings import get_settings

    big = "x" * (get_settings().max_body_bytes + 1)
    r = api.post("/telemetry", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "larger than" in r.json()["detail"]
    assert count_points(pg) == 0


def test_batch_with_one_bad_reading_is_refused_whole_naming_its_index(api, pg):
    good = [{**EXAMPLE, "timestamp": f"2025-12-09T10:{m:02d}:00Z"} for m in range(5)]
    bad = _bad(lambda p: p.update(asset_code="CAS-S2-HVAC_1"))  # asset not on CAS-S1
    r = api.post("/telemetry/batch", json={"readings": good[:3] + [bad] + good[3:]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "readings[3].asset_code"
    assert count_points(pg) == 0


def test_batch_validation_error_names_index(api, pg):
    readings = [EXAMPLE, _bad(lambda p: p.update(timestamp="yesterday"))]
    r = api.post("/telemetry/batch", json={"readings": readings})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "readings[1].timestamp"
    assert count_points(pg) == 0


def test_empty_batch_is_refused(api):
    r = api.post("/telemetry/batch", json={"readings": []})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "readings"


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}], ids=["missing key", "wrong key"])
def test_write_without_valid_key_gets_401_and_writes_nothing(anon_api, pg, headers):
    r = anon_api.post("/telemetry", json=EXAMPLE, headers=headers)
    assert r.status_code == 401
    assert "API key" in r.json()["detail"] or "X-API-Key" in r.json()["detail"]
    r = anon_api.post("/telemetry/batch", json={"readings": [EXAMPLE]}, headers=headers)
    assert r.status_code == 401
    assert count_points(pg) == 0


def test_api_key_never_appears_in_logs(anon_api, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    anon_api.post("/telemetry", json=EXAMPLE, headers={"X-API-Key": "s3cret-wrong-key"})
    assert "s3cret-wrong-key" not in caplog.text


def test_asset_added_later_is_accepted_without_restart(api, pg):
    pg.execute(
        "INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
        "SELECT 'CAS-S1-HVAC_2', 'CTA 2', 'HVAC', id, 10 FROM sites WHERE code = 'CAS-S1'"
    )
    import time

    time.sleep(1.1)  # the catalog reloads on a miss at most once a second
    r = api.post("/telemetry", json={**EXAMPLE, "asset_code": "CAS-S1-HVAC_2"})
    assert r.status_code == 200, r.text
    assert r.json()["inserted_points"] == 4


def test_concurrent_requests_each_get_their_own_count(api, live_api, pg):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    base = datetime(2025, 12, 9, 10, 0, tzinfo=UTC)

    def send(i: int) -> int:
        with httpx.Client(base_url=live_api.url + "/api/v1", headers=api.headers) as c:
            ts = (base + timedelta(seconds=i)).isoformat()
            return c.post("/telemetry", json={**EXAMPLE, "timestamp": ts}).json()["inserted_points"]

    with ThreadPoolExecutor(16) as pool:
        first = list(pool.map(send, range(64)))
        again = list(pool.map(send, range(64)))
    assert first == [4] * 64
    assert again == [0] * 64
    assert count_points(pg) == 256
