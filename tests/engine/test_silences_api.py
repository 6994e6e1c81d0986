"""Dismissal and silences through the HTTP API: a dismissed alert's work order is cancelled and
its policy silenced on that asset; a silence holds firing back while it lasts (alerts already
open stay open) and a condition still true fires once it has ended. Readings are placed around the
API's clock (the routes read it), evaluations run with a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import GATEWAY_KEYS
from tests.engine.helpers import evaluate, fired, put, series

ELEVATOR, HVAC, HVAC_S2 = "CAS-S1-ELEVATOR_1", "CAS-S1-HVAC_1", "CAS-S2-HVAC_1"


def clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def overheat(pg, at: datetime) -> dict:
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=at))
    return evaluate(at, codes=["R5"]).fired[0]


def count(pg, table: str) -> int:
    return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def iso(t: datetime) -> str:
    return t.isoformat()


# --- dismiss ------------------------------------------------------------------------------------

def test_dismiss_cancels_the_work_order_and_silences_the_policy_on_that_asset_until_it_ends(pg, api):
    t0 = clock()
    f = overheat(pg, t0)
    r = api.post(f"/alerts/{f['alert_id']}/dismiss",
                 json={"actor": "amina", "reason": "capteur débranché", "silence_minutes": 30})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["resolution"], r.json()["closed_by"]) == ("closed", "dismissed", "amina")
    wo = api.get(f"/workorders/{f['work_order_id']}").json()
    assert wo["status"] == "cancelled"
    assert [a["action"] for a in api.get(f"/workorders/{f['work_order_id']}/audit").json()] == ["created", "cancelled"]
    active = api.get("/silences", params={"active": "true"}).json()
    assert [(s["asset_code"], s["policy_code"], s["site_code"]) for s in active] == [(ELEVATOR, "R5", None)]
    assert timedelta(minutes=29) < datetime.fromisoformat(active[0]["ends_at"]) - t0 < timedelta(minutes=31)

    during = t0 + timedelta(minutes=10)  # still 90 °C, inside the silence: nothing opens
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=during))
    run = evaluate(during, codes=["R5"])
    assert run.fired == [] and run.silenced > 0
    assert count(pg, "alerts") == 1 and count(pg, "work_orders") == 1

    after = t0 + timedelta(minutes=40)  # the silence is over and the condition still holds
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=after))
    assert fired(evaluate(after, codes=["R5"])) == {("R5", ELEVATOR)}
    assert count(pg, "alerts") == 2 and count(pg, "work_orders") == 2


def test_dismiss_defaults_to_a_60_minute_silence_and_0_means_none(pg, api):
    t0 = clock()
    f = overheat(pg, t0)
    assert api.post(f"/alerts/{f['alert_id']}/dismiss", json={"actor": "a", "reason": "test"}).status_code == 200
    (s,) = api.get("/silences", params={"active": "true"}).json()
    assert timedelta(minutes=59) < datetime.fromisoformat(s["ends_at"]) - t0 < timedelta(minutes=61)

    later = t0 + timedelta(minutes=90)
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=later))
    f2 = evaluate(later, codes=["R5"]).fired[0]
    r = api.post(f"/alerts/{f2['alert_id']}/dismiss", json={"actor": "a", "reason": "test", "silence_minutes": 0})
    assert r.status_code == 200 and r.json()["resolution"] == "dismissed"
    assert count(pg, "silences") == 1


@pytest.mark.parametrize("body, field", [
    ({"actor": "a"}, "reason"),
    ({"actor": "a", "reason": ""}, "reason"),
    ({"actor": "a", "reason": "   "}, "reason"),
    ({"actor": "a", "reason": "x", "silence_minutes": -1}, "silence_minutes"),
    ({"actor": "a", "reason": "x", "silence_minutes": "long"}, "silence_minutes"),
    ({"reason": "x"}, "actor"),
    ({"actor": "a", "reason": "x", "silence": 5}, "silence"),
])
def test_dismiss_with_bad_input_is_422_naming_the_field_and_changes_nothing(pg, api, body, field):
    f = overheat(pg, clock())
    r = api.post(f"/alerts/{f['alert_id']}/dismiss", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert pg.execute("SELECT status, resolution FROM alerts").fetchone() == ("open", None)
    assert pg.execute("SELECT status FROM work_orders").fetchone() == ("open",)
    assert count(pg, "silences") == 0


def test_dismiss_unknown_is_404_and_twice_is_409(pg, api):
    assert api.post("/alerts/999999/dismiss", json={"actor": "a", "reason": "x"}).status_code == 404
    f = overheat(pg, clock())
    assert api.post(f"/alerts/{f['alert_id']}/dismiss", json={"actor": "a", "reason": "x"}).status_code == 200
    r = api.post(f"/alerts/{f['alert_id']}/dismiss", json={"actor": "a", "reason": "x"})
    assert r.status_code == 409 and "already closed" in r.json()["detail"]
    assert count(pg, "silences") == 1


@pytest.mark.parametrize("key, status", [(None, 401), ("not-a-key", 401), (GATEWAY_KEYS["gw-old"], 403)])
def test_dismiss_and_silences_refuse_missing_wrong_and_gateway_keys(pg, api, live_api, key, status):
    import httpx

    f = overheat(pg, clock())
    headers = {"X-API-Key": key} if key else {}
    with httpx.Client(base_url=live_api.url + "/api/v1", headers=headers, timeout=30) as c:
        assert c.post(f"/alerts/{f['alert_id']}/dismiss", json={"actor": "a", "reason": "x"}).status_code == status
        t = clock()
        body = {"asset_code": HVAC, "starts_at": iso(t), "ends_at": iso(t + timedelta(hours=2)), "reason": "m",
                "actor": "a"}
        assert c.post("/silences", json=body).status_code == status
    assert api.post("/silences", json=body).status_code == 201
    with httpx.Client(base_url=live_api.url + "/api/v1", headers=headers, timeout=30) as c:
        sid = api.get("/silences").json()[0]["id"]
        assert c.delete(f"/silences/{sid}").status_code == status
    assert pg.execute("SELECT status FROM alerts").fetchone() == ("open",)
    assert pg.execute("SELECT ended_by FROM silences").fetchall() == [(None,)]


# --- silences -----------------------------------------------------------------------------------

def vibrate(pg, asset: str, at: datetime) -> None:
    put(pg, asset, "vibration_level", series([9.0] * 5, end=at))


def test_a_silence_holds_back_firing_in_its_scope_keeps_open_alerts_and_a_true_condition_fires_after(pg, api):
    t0 = clock()
    open_alert = overheat(pg, t0)  # already open when the silence starts
    r = api.post("/silences", json={"site_code": "CAS-S1", "starts_at": iso(t0), "ends_at": iso(t0 + timedelta(minutes=20)),
                                    "reason": "maintenance en cours", "actor": "amina"})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["id"] > 0 and (s["site_code"], s["asset_code"], s["policy_code"], s["active"]) == ("CAS-S1", None, None, True)
    assert s["created_by"] == "amina" and s["reason"] == "maintenance en cours"

    during = t0 + timedelta(minutes=5)
    vibrate(pg, HVAC, during)  # covered by the silence
    vibrate(pg, HVAC_S2, during)  # another site: not covered
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=during))
    run = evaluate(during, codes=["R2", "R5"])
    assert fired(run) == {("R2", HVAC_S2)} and run.silenced > 0
    assert api.get(f"/alerts/{open_alert['alert_id']}").json()["status"] == "open"

    after = t0 + timedelta(minutes=25)  # ended, and the S1 fan still vibrates
    vibrate(pg, HVAC, after)
    assert fired(evaluate(after, codes=["R2"])) == {("R2", HVAC)}
    assert [x["id"] for x in api.get("/silences", params={"active": "false"}).json()] == []  # ends in real time


def test_a_silence_on_one_policy_of_one_asset_lets_the_others_fire(pg, api):
    t0 = clock()
    r = api.post("/silences", json={"asset_code": HVAC, "policy_code": "R2", "starts_at": iso(t0),
                                    "ends_at": iso(t0 + timedelta(hours=2)), "reason": "roulement changé", "actor": "a"})
    assert r.status_code == 201
    at = t0 + timedelta(minutes=1)
    vibrate(pg, HVAC, at)
    put(pg, HVAC, "temp_supply_air", series([25.0] * 91, end=at))  # R1: 15 min average > 20
    run = evaluate(at, codes=["R1", "R2"])
    assert fired(run) == {("R1", HVAC)} and run.silenced > 0


def test_ending_a_silence_early_lets_the_condition_fire_and_404_409(pg, api):
    t0 = clock()
    sid = api.post("/silences", json={"asset_code": HVAC, "starts_at": iso(t0 - timedelta(minutes=1)),
                                      "ends_at": iso(t0 + timedelta(hours=2)), "reason": "m", "actor": "a"}).json()["id"]
    assert [s["id"] for s in api.get("/silences", params={"active": "true"}).json()] == [sid]
    r = api.delete(f"/silences/{sid}", params={"actor": "youssef"})
    assert r.status_code == 200, r.text
    assert (r.json()["active"], r.json()["ended_by"]) == (False, "youssef")
    assert datetime.fromisoformat(r.json()["ends_at"]) < t0 + timedelta(minutes=5)
    assert api.get("/silences", params={"active": "true"}).json() == []
    assert [s["id"] for s in api.get("/silences", params={"active": "false"}).json()] == [sid]
    assert api.delete(f"/silences/{sid}").status_code == 409
    assert api.delete("/silences/999999").status_code == 404

    at = t0 + timedelta(minutes=5)
    vibrate(pg, HVAC, at)
    assert fired(evaluate(at, codes=["R2"])) == {("R2", HVAC)}
    actions = pg.execute("SELECT action, actor FROM audit_trail WHERE entity = 'silence' ORDER BY id").fetchall()
    assert actions == [("created", "a"), ("ended", "youssef")]


def test_a_future_silence_ended_before_it_starts_is_cancelled(pg, api):
    t0 = clock()
    sid = api.post("/silences", json={"policy_code": "R2", "starts_at": iso(t0 + timedelta(hours=1)),
                                      "ends_at": iso(t0 + timedelta(hours=3)), "reason": "m", "actor": "a"}).json()["id"]
    assert api.get("/silences", params={"active": "true"}).json() == []
    r = api.delete(f"/silences/{sid}")
    assert r.status_code == 200 and r.json()["active"] is False
    assert count(pg, "silences") == 0


@pytest.mark.parametrize("change, field", [
    ({"asset_code": None}, "asset_code"),  # no scope at all
    ({"asset_code": "NOPE"}, "asset_code"),
    ({"site_code": "CAS-S2"}, "asset_code"),  # asset not on that site
    ({"policy_code": "Z9"}, "policy_code"),
    ({"site_code": "NOPE"}, "site_code"),
    ({"ends_at": "START"}, "ends_at"),  # ends when it starts
    ({"ends_at": "PAST"}, "ends_at"),
    ({"starts_at": "2026-03-02T10:00:00"}, "starts_at"),  # no zone
    ({"starts_at": "yesterday"}, "starts_at"),
    ({"reason": ""}, "reason"),
    ({"reason": "  "}, "reason"),
    ({"actor": ""}, "actor"),
    ({"until": "later"}, "until"),
])
def test_silence_with_bad_input_is_422_naming_the_field_and_writes_nothing(pg, api, change, field):
    t0 = clock()
    body = {"asset_code": HVAC, "starts_at": iso(t0), "ends_at": iso(t0 + timedelta(hours=2)), "reason": "m",
            "actor": "a", **change}
    if body["ends_at"] == "START":
        body["ends_at"] = body["starts_at"]
    if body["ends_at"] == "PAST":
        body["starts_at"], body["ends_at"] = iso(t0 - timedelta(hours=3)), iso(t0 - timedelta(hours=1))
    body = {k: v for k, v in body.items() if v is not None}
    r = api.post("/silences", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert "nothing was stored" in r.json()["detail"]
    assert count(pg, "silences") == 0 and count(pg, "audit_trail") == 0


def test_silences_query_must_be_a_boolean(api):
    r = api.get("/silences", params={"active": "maybe"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "active"
