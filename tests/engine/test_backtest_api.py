"""Per-asset overrides and the backtest through the HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.engine.helpers import NOW, evaluate, fired, ids, put, series

ELEVATOR, ELEVATOR_S2, HVAC = "CAS-S1-ELEVATOR_1", "CAS-S2-ELEVATOR_1", "CAS-S1-HVAC_1"


def asset_id(pg, code: str) -> int:
    return ids(pg, code, "motor_temp" if "ELEVATOR" in code else "temp_supply_air")[0]


def count(pg, table: str) -> int:
    return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- overrides ----------------------------------------------------------------------------------

def test_an_override_changes_what_fires_for_that_asset_only(pg, api):
    aid = asset_id(pg, ELEVATOR)
    r = api.put(f"/assets/{aid}/policies/R5", json={"threshold": 90, "actor": "amina"})
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["code"], p["threshold"], p["policy_threshold"], p["clear_threshold"]) == ("R5", 90, 80, 75)
    assert p["override"]["threshold"] == 90 and p["override"]["updated_by"] == "amina"

    for code in (ELEVATOR, ELEVATOR_S2):
        put(pg, code, "motor_temp", series([85.0] * 5))
    assert fired(evaluate(NOW, codes=["R5"])) == {("R5", ELEVATOR_S2)}
    later = NOW + timedelta(minutes=1)
    put(pg, ELEVATOR, "motor_temp", series([91.0] * 5, end=later))
    assert fired(evaluate(later, codes=["R5"])) == {("R5", ELEVATOR)}  # above its own threshold


def test_an_override_can_disable_a_policy_for_one_asset_and_an_empty_one_restores_it(pg, api):
    aid = asset_id(pg, ELEVATOR)
    assert api.put(f"/assets/{aid}/policies/R5", json={"enabled": False, "actor": "a"}).json()["enabled"] is False
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5))
    assert evaluate(NOW, codes=["R5"]).fired == []
    restored = api.put(f"/assets/{aid}/policies/R5", json={"actor": "a"}).json()
    assert (restored["enabled"], restored["threshold"]) == (True, 80)
    later = NOW + timedelta(minutes=1)
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=later))
    assert fired(evaluate(later, codes=["R5"])) == {("R5", ELEVATOR)}


def test_effective_policies_of_an_asset_and_the_policy_list_show_the_overrides(pg, api):
    aid = asset_id(pg, ELEVATOR)
    api.put(f"/assets/{aid}/policies/R5", json={"threshold": 82.5, "clear_threshold": 70, "actor": "a"})
    mine = {p["code"]: p for p in api.get(f"/assets/{aid}/policies").json()}
    assert {"R5", "R6", "N1"} <= set(mine) and "R1" not in mine  # only what applies to an elevator
    assert (mine["R5"]["threshold"], mine["R5"]["clear_threshold"]) == (82.5, 70)
    assert mine["R6"]["override"] is None
    other = {p["code"]: p for p in api.get(f"/assets/{asset_id(pg, ELEVATOR_S2)}/policies").json()}
    assert other["R5"]["threshold"] == 80 and other["R5"]["override"] is None
    policies = {p["code"]: p for p in api.get("/policies").json()}
    assert {"R1", "R2", "R3", "R4", "R5", "R6", "N1", "F1"} <= set(policies)
    r5 = policies["R5"]
    assert (r5["threshold"], r5["clear_condition"], r5["clear_threshold"], r5["consecutive_points"]) == (80, "<=", 75, 5)
    assert [(o["asset_code"], o["threshold"], o["clear_threshold"], o["source"]) for o in r5["overrides"]] == [
        (ELEVATOR, 82.5, 70, "api")]
    assert policies["R1"]["overrides"] == []


@pytest.mark.parametrize("path, body, status, field", [
    ("R5", {"threshold": "hot", "actor": "a"}, 422, "threshold"),
    ("R5", {"threshold": 90}, 422, "actor"),
    ("R5", {"threshold": 90, "actor": "a", "severity": "low"}, 422, "severity"),
    ("R5", {"enabled": "perhaps", "actor": "a"}, 422, "enabled"),
    ("R1", {"threshold": 21, "actor": "a"}, 422, "code"),  # an HVAC policy on an elevator
    ("R6", {"clear_threshold": 1, "actor": "a"}, 422, "clear_threshold"),  # R6 never clears by itself
    ("Z9", {"threshold": 1, "actor": "a"}, 404, "code"),
])
def test_bad_overrides_are_refused_naming_the_field_and_change_nothing(pg, api, path, body, status, field):
    r = api.put(f"/assets/{asset_id(pg, ELEVATOR)}/policies/{path}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["errors"][0]["field"] == field
    assert count(pg, "policy_overrides") == 0 and count(pg, "audit_trail") == 0


def test_override_of_an_unknown_asset_is_404_and_needs_a_key(pg, api, anon_api):
    assert api.put("/assets/999999/policies/R5", json={"threshold": 1, "actor": "a"}).status_code == 404
    assert api.get("/assets/999999/policies").status_code == 404
    r = anon_api.put(f"/assets/{asset_id(pg, ELEVATOR)}/policies/R5", json={"threshold": 1, "actor": "a"})
    assert r.status_code == 401
    assert count(pg, "policy_overrides") == 0


# --- backtest -----------------------------------------------------------------------------------

def history(pg) -> tuple[datetime, datetime]:
    """On ELEVATOR: an overheat that cools down to 70 °C, then one still going at the end; on
    ELEVATOR_S2 a short overheat at 84 °C. (A streak's value is its coolest reading: the peak of
    an R5 episode is the best 5-reading minimum.)"""
    first = NOW - timedelta(hours=2)
    put(pg, ELEVATOR, "motor_temp", series([78, 86, 88, 87, 86, 85, 70, 70, 70, 70, 70, 78], end=first))
    put(pg, ELEVATOR, "motor_temp", series([85, 86, 87, 88, 89, 90], end=NOW))
    put(pg, ELEVATOR_S2, "motor_temp", series([84, 84, 84, 84, 84, 79, 74, 74, 74, 74, 74], end=first))
    return NOW - timedelta(hours=3), NOW


def test_backtest_answers_the_firings_with_their_start_end_and_peak(pg, api):
    start, end = history(pg)
    r = api.post("/policies/R5/backtest", json={"from": start.isoformat(), "to": end.isoformat()})
    assert r.status_code == 200, r.text
    b = r.json()
    assert (b["policy"], b["alerts"], b["work_orders"]) == ("R5", 3, 3)
    got = [(f["asset_code"], f["end"] is None, f["peak"]) for f in b["firings"]]
    assert sorted(got) == sorted([(ELEVATOR, False, 85.0), (ELEVATOR, True, 86.0), (ELEVATOR_S2, False, 84.0)])
    ended = [f for f in b["firings"] if f["end"] is not None]
    assert all(datetime.fromisoformat(f["start"]) < datetime.fromisoformat(f["end"]) for f in ended)
    assert b["parameters"]["threshold"] == 80 and datetime.fromisoformat(b["from"]) == start
    assert count(pg, "alerts") == 0 and count(pg, "work_orders") == 0  # a backtest writes nothing


def test_backtest_agrees_with_the_live_engine_on_the_same_readings(pg, api):
    start, end = history(pg)
    evaluate(end, codes=["R5"])  # the live engine over the same stored readings
    b = api.post("/policies/R5/backtest", json={"from": start.isoformat(), "to": end.isoformat()}).json()
    alerts = pg.execute("SELECT a.code, al.started_at, al.resolution, al.ended_at, al.peak FROM alerts al "
                        "JOIN assets a ON a.id = al.asset_id").fetchall()
    live = sorted((c, t, e if r == "condition_cleared" else None, p) for c, t, r, e, p in alerts)
    assert len(live) == 3
    assert live == sorted((f["asset_code"], datetime.fromisoformat(f["start"]),
                           datetime.fromisoformat(f["end"]) if f["end"] else None, f["peak"]) for f in b["firings"])
    assert count(pg, "work_orders") == b["work_orders"]


def test_backtest_what_if_parameters_and_one_asset(pg, api):
    start, end = history(pg)
    base = {"from": start.isoformat(), "to": end.isoformat()}
    assert api.post("/policies/R5/backtest", json={**base, "threshold": 86}).json()["alerts"] == 0
    b = api.post("/policies/R5/backtest", json={**base, "consecutive_points": 3, "threshold": 86}).json()
    assert [(f["asset_code"], f["peak"]) for f in b["firings"]] == [(ELEVATOR, 88.0)]
    assert b["parameters"]["consecutive_points"] == 3
    only = api.post("/policies/R5/backtest", json={**base, "asset_code": ELEVATOR_S2}).json()
    assert [f["asset_code"] for f in only["firings"]] == [ELEVATOR_S2]
    # a lower clear threshold: the first overheat never clears (70 > 65), so it is one long episode
    long = api.post("/policies/R5/backtest", json={**base, "asset_code": ELEVATOR, "clear_threshold": 65}).json()
    assert [(f["end"], f["peak"]) for f in long["firings"]] == [(None, 86.0)]


@pytest.mark.parametrize("code, change, status, field", [
    ("R5", {"from": None}, 422, "from"),
    ("R5", {"from": "2026-03-02T10:00:00"}, 422, "from"),  # no zone
    ("R5", {"to": "FROM"}, 422, "to"),  # empty period
    ("R5", {"to": "2028-01-01T00:00:00Z"}, 422, "to"),  # more than 366 days
    ("R5", {"threshold": "high"}, 422, "threshold"),
    ("R5", {"window_minutes": 30}, 422, "window_minutes"),  # R5 has no window
    ("R1", {"consecutive_points": 3}, 422, "consecutive_points"),  # R1 is not consecutive
    ("R5", {"consecutive_points": 0}, 422, "consecutive_points"),
    ("R5", {"asset_code": "NOPE"}, 422, "asset_code"),
    ("R5", {"asset_code": HVAC}, 422, "asset_code"),  # not an elevator
    ("R4", {"clear_threshold": 1}, 422, "clear_threshold"),
    ("R5", {"since": "x"}, 422, "since"),
    ("Z9", {}, 404, "code"),
])
def test_backtest_bad_input_is_refused_naming_the_field(pg, api, code, change, status, field):
    body = {"from": (NOW - timedelta(hours=3)).isoformat(), "to": NOW.isoformat(), **change}
    if body["to"] == "FROM":
        body["to"] = body["from"]
    body = {k: v for k, v in body.items() if v is not None}
    r = api.post(f"/policies/{code}/backtest", json=body)
    assert r.status_code == status, r.text
    assert r.json()["errors"][0]["field"] == field


def test_backtest_needs_an_operator_key(anon_api):
    r = anon_api.post("/policies/R5/backtest", json={"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"})
    assert r.status_code == 401


def test_backtest_of_a_slope_over_a_day_long_window(pg, api):
    # 8,640 readings in one window: their times summed in epoch microseconds pass bigint's range
    # (a slope's sums of x stay numeric); a drift of 0.5 °C/h for a day fires a 0.4 °C/h what-if
    chiller = "CAS-S1-CHILLER_1"
    start = NOW - timedelta(days=1)
    put(pg, chiller, "water_temp_out", series([6.0 + 0.5 * i * 10 / 3600 for i in range(8640)], end=NOW - timedelta(seconds=10)))
    base = {"from": (start + timedelta(hours=6)).isoformat(), "to": NOW.isoformat(), "asset_code": chiller}
    r = api.post("/policies/D1/backtest", json={**base, "window_minutes": 1440, "threshold": 0.4, "clear_threshold": 0.1})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["alerts"] == 1 and b["firings"][0]["asset_code"] == chiller
    assert b["firings"][0]["peak"] == pytest.approx(0.5, rel=1e-6)
    # not above 0.6 °C/h anywhere
    assert api.post("/policies/D1/backtest", json={**base, "window_minutes": 1440, "threshold": 0.6}).json()["alerts"] == 0
