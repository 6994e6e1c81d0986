"""The engine through the HTTP API: evaluate now, acknowledge, move work orders, audit, statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.engine.helpers import put, series


def _overheat_now(pg, api):
    now = datetime.now(UTC).replace(microsecond=0)
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([88.0] * 5, end=now))
    r = api.post("/rules/evaluate", json={"now": now.isoformat()})
    assert r.status_code == 200, r.text
    return r.json()


def test_evaluate_now_answers_what_fired(pg, api):
    body = _overheat_now(pg, api)
    # every enabled policy ran; one asset had new readings: 5 evaluated by R5, the newest by F1
    # (stuck sensor), and N1 (silent sensor) looked at that asset at now
    assert (body["policies"], body["assets"], body["readings"], body["failed"]) == (9, 1, 7, {})
    assert [(f["policy_code"], f["asset_code"], f["severity"]) for f in body["fired"]] == [
        ("R5", "CAS-S1-ELEVATOR_1", "high")
    ]
    assert api.post("/rules/evaluate").json()["fired"] == []  # already open: nothing new


def test_alert_ack_close_and_audit_through_the_api(pg, api):
    alert_id = _overheat_now(pg, api)["fired"][0]["alert_id"]
    r = api.post(f"/alerts/{alert_id}/ack", json={"actor": "amina", "comment": "vu"})
    assert r.status_code == 200 and r.json()["status"] == "ack" and r.json()["acked_by"] == "amina"
    r = api.post(f"/alerts/{alert_id}/ack", json={"actor": "amina"})
    assert r.status_code == 409 and "only an open alert" in r.json()["detail"]
    r = api.post(f"/alerts/{alert_id}/close", json={"actor": "amina", "comment": "ok"})
    assert r.status_code == 409 and "condition still holds" in r.json()["detail"]
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([78.0] * 5, end=later))  # below 80, above 75
    assert api.post("/rules/evaluate", json={"now": later.isoformat()}).json()["cleared"] == 0
    r = api.post(f"/alerts/{alert_id}/close", json={"actor": "amina", "comment": "ok"})
    assert (r.json()["status"], r.json()["resolution"]) == ("closed", "condition_cleared")
    trail = api.get(f"/alerts/{alert_id}/audit").json()
    assert [(t["action"], t["actor"]) for t in trail] == [("created", "engine"), ("acknowledged", "amina"), ("closed", "amina")]


def test_work_order_moves_edits_and_refuses_illegal_moves(pg, api):
    wo_id = _overheat_now(pg, api)["fired"][0]["work_order_id"]
    r = api.post(f"/workorders/{wo_id}/transition", json={"to_status": "done", "actor": "tech"})
    assert r.status_code == 409 and "cannot go from open to done" in r.json()["detail"]
    r = api.patch(f"/workorders/{wo_id}", json={"actor": "chef", "assigned_to": "Youssef", "notes": "ventilation"})
    assert r.status_code == 200 and r.json()["assigned_to"] == "Youssef"
    for to in ("in_progress", "done"):
        assert api.post(f"/workorders/{wo_id}/transition", json={"to_status": to, "actor": "tech"}).status_code == 200
    wo = api.get(f"/workorders/{wo_id}").json()
    assert wo["status"] == "done" and wo["closed_at"] is not None
    alert = api.get(f"/alerts/{wo['alert_id']}").json()
    assert alert["status"] == "closed"
    assert [t["action"] for t in api.get(f"/workorders/{wo_id}/audit").json()] == ["created", "assigned", "notes", "status", "status"]


def test_actions_need_the_api_key(pg, api, anon_api):
    alert_id = _overheat_now(pg, api)["fired"][0]["alert_id"]
    assert anon_api.post(f"/alerts/{alert_id}/ack", json={"actor": "x"}).status_code == 401
    assert anon_api.post("/rules/evaluate").status_code == 401
    assert api.get(f"/alerts/{alert_id}").json()["status"] == "open"


def test_unknown_ids_are_404(api):
    assert api.post("/alerts/999999/ack", json={"actor": "x"}).status_code == 404
    assert api.post("/workorders/999999/transition", json={"to_status": "done", "actor": "x"}).status_code == 404


def test_sites_and_assets_carry_status_and_counts(pg, api):
    _overheat_now(pg, api)
    sites = api.get("/sites").json()
    assert sites[0]["code"] == "CAS-S1" and sites[0]["at_risk"] is True
    assert sites[0]["open_alerts"] == {"high": 1, "medium": 0, "low": 0}
    assets = {a["code"]: a for a in api.get(f"/sites/{sites[0]['id']}/assets").json()}
    assert assets["CAS-S1-ELEVATOR_1"]["status"] == "alert"
    assert assets["CAS-S1-ELEVATOR_1"]["last_values"] == {"motor_temp": 88.0}
    assert assets["CAS-S1-HVAC_1"]["status"] == "no_data"


def test_counter_reset_through_the_api(pg, api):
    now = datetime.now(UTC)
    put(pg, "CAS-S1-CHILLER_1", "run_hours", [(now - timedelta(seconds=5), 612.0)])
    aid = pg.execute("SELECT id FROM assets WHERE code = 'CAS-S1-CHILLER_1'").fetchone()[0]
    r = api.post(f"/assets/{aid}/counters/run_hours/reset", json={"actor": "tech", "reason": "vidange"})
    assert r.status_code == 200 and r.json()["baseline"] == 612.0
    r = api.post(f"/assets/{aid}/counters/door_cycles/reset", json={"actor": "tech"})
    assert r.status_code == 422 and "not a counter of CHILLER" in r.json()["detail"]


def test_an_answer_comes_only_after_its_commit(pg, api, monkeypatch):
    """A 200 means stored: with a slow commit, the change is in the database when the answer
    arrives (the API runs in this process, so its commits can be slowed down here)."""
    import time

    from sqlalchemy.orm import Session

    wo_id = _overheat_now(pg, api)["fired"][0]["work_order_id"]
    commit = Session.commit

    def slow_commit(self):
        time.sleep(0.5)
        commit(self)

    monkeypatch.setattr(Session, "commit", slow_commit)
    r = api.post(f"/workorders/{wo_id}/transition", json={"to_status": "in_progress", "actor": "tech"})
    assert r.status_code == 200
    assert pg.execute("SELECT status FROM work_orders WHERE id = %s", (wo_id,)).fetchone()[0] == "in_progress"


def test_work_orders_filter_by_assignee(pg, api):
    now = datetime.now(UTC).replace(microsecond=0)
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([88.0] * 5, end=now))
    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([90.0] * 5, end=now))
    fired = api.post("/rules/evaluate", json={"now": now.isoformat()}).json()["fired"]
    first, second = sorted(f["work_order_id"] for f in fired)
    assert api.patch(f"/workorders/{first}", json={"actor": "chef", "assigned_to": "Youssef"}).status_code == 200
    ids = lambda **q: [w["id"] for w in api.get("/workorders", params=q).json()]  # noqa: E731
    assert ids(assigned_to="youssef") == [first]  # any case
    assert ids(assigned_to="") == [second]  # the unassigned
    assert ids(assigned_to="Amina") == []
    assert sorted(ids()) == [first, second]
    assert api.get("/workorders", params={"assigned_to": "a\x00b"}).status_code == 422


def test_alerts_to_handle_through_the_api(pg, api):
    now = datetime.now(UTC).replace(microsecond=0)
    put(pg, "CAS-S1-CHILLER_1", "run_hours", [(now - timedelta(seconds=5), 612.0)])  # R4, low
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([88.0] * 5, end=now))  # R5, high
    api.post("/rules/evaluate", json={"now": now.isoformat()})
    rows = api.get("/alerts/to-handle").json()
    assert [(r["policy_code"], r["work_order_status"]) for r in rows] == [("R5", "open"), ("R4", "open")]
    assert api.get("/alerts/to-handle", params={"limit": 1}).json()[0]["policy_code"] == "R5"
    assert api.get("/alerts/to-handle", params={"limit": 0}).status_code == 422
