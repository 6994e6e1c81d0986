"""Every change to an alert or a work order writes its event in the transaction of the change."""

from __future__ import annotations

import pytest

from db.errors import InvalidTransition
from db.session import session_scope
from engine import alerts, workorders
from tests.engine.helpers import NOW, evaluate, put, series
from datetime import timedelta

ELEVATOR = "CAS-S1-ELEVATOR_1"


def overheat(pg) -> dict:
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5))
    return evaluate(codes=["R5"]).fired[0]


def events(pg) -> list[tuple]:
    return pg.execute("SELECT type, entity, entity_id, ordering_key, payload FROM outbox_events ORDER BY id").fetchall()


def test_a_new_alert_and_its_work_order_each_write_a_created_event(pg):
    f = overheat(pg)
    evs = events(pg)
    assert [(t, k) for t, _, _, k, _ in evs] == [
        ("alert.created", f"alert:{f['alert_id']}"), ("work_order.created", f"work_order:{f['work_order_id']}")]
    alert = evs[0][4]["data"]["alert"]
    assert (alert["id"], alert["status"], alert["severity"], alert["policy_code"], alert["asset_code"]) == (
        f["alert_id"], "open", "high", "R5", ELEVATOR)
    assert alert["work_order_id"] == f["work_order_id"] and alert["resolution"] is None
    wo = evs[1][4]["data"]["work_order"]
    assert (wo["id"], wo["status"], wo["priority"], wo["alert_id"]) == (f["work_order_id"], "open", 1, f["alert_id"])
    assert evs[1][4]["type"] == "work_order.created" and evs[1][4]["timestamp"] == "2026-03-02T12:00:00Z"


def test_each_lifecycle_step_carries_the_change_and_the_new_state(pg):
    f = overheat(pg)
    wo_id, alert_id = f["work_order_id"], f["alert_id"]
    with session_scope() as s:
        alerts.acknowledge(s, alert_id=alert_id, actor="amina", comment="seen", now=NOW + timedelta(minutes=1))
    with session_scope() as s:  # the service audits the assignment before it sets it: the event has the new one
        workorders.update(s, workorder_id=wo_id, actor="amina", assigned_to="Youssef", notes="bring a fan",
                          now=NOW + timedelta(minutes=2))
    with session_scope() as s:
        workorders.transition(s, workorder_id=wo_id, to_status="in_progress", actor="youssef",
                              now=NOW + timedelta(minutes=3))
    with session_scope() as s:
        workorders.transition(s, workorder_id=wo_id, to_status="done", actor="youssef", comment="motor cooled",
                              now=NOW + timedelta(minutes=40))
    evs = events(pg)
    assert [t for t, *_ in evs] == [
        "alert.created", "work_order.created", "alert.acknowledged", "work_order.assigned",
        "work_order.notes_changed", "work_order.status_changed", "work_order.status_changed", "alert.closed"]
    ack = evs[2][4]["data"]
    assert ack["change"] == {"action": "acknowledged", "from": "open", "to": "ack", "actor": "amina",
                             "comment": "seen", "at": "2026-03-02T12:01:00Z"}
    assert ack["alert"]["status"] == "ack" and ack["alert"]["acked_by"] == "amina"
    assigned = evs[3][4]["data"]
    assert assigned["change"]["to"] == "Youssef" and assigned["work_order"]["assigned_to"] == "Youssef"
    assert evs[4][4]["data"]["work_order"]["notes"] == "bring a fan"
    done = evs[6][4]["data"]
    assert done["change"]["from"] == "in_progress" and done["change"]["to"] == "done"
    assert done["work_order"]["status"] == "done" and done["work_order"]["closed_at"] == "2026-03-02T12:40:00Z"
    closed = evs[7][4]["data"]["alert"]
    assert closed["status"] == "closed" and closed["closed_by"] == "youssef"
    assert {k for _, _, _, k, _ in evs} == {f"alert:{alert_id}", f"work_order:{wo_id}"}


def test_a_refused_change_writes_no_event(pg):
    f = overheat(pg)
    before = len(events(pg))
    with pytest.raises(InvalidTransition):
        with session_scope() as s:
            workorders.update(s, workorder_id=f["work_order_id"], actor="x", assigned_to="Karim", now=NOW)
            workorders.transition(s, workorder_id=f["work_order_id"], to_status="done", actor="x", now=NOW)
    assert len(events(pg)) == before
    assert pg.execute("SELECT assigned_to FROM work_orders").fetchone()[0] is None


def test_a_change_rolled_back_after_the_fact_leaves_no_event_and_the_next_commit_is_clean(pg):
    f = overheat(pg)
    before = len(events(pg))
    from db.session import _sessionmaker

    s = _sessionmaker()()
    try:
        workorders.update(s, workorder_id=f["work_order_id"], actor="a", assigned_to="Karim", now=NOW)
        s.rollback()
        alerts.acknowledge(s, alert_id=f["alert_id"], actor="b", now=NOW)
        s.commit()
    finally:
        s.close()
    assert [t for t, *_ in events(pg)[before:]] == ["alert.acknowledged"]


def test_counter_resets_are_audited_but_are_no_event(pg):
    from engine.counters import reset_counter

    with session_scope() as s:
        aid = pg.execute("SELECT id FROM assets WHERE code = 'CAS-S1-CHILLER_1'").fetchone()[0]
        reset_counter(s, asset_id=aid, metric="run_hours", actor="x", reason="", now=NOW)
    assert events(pg) == []
    assert pg.execute("SELECT count(*) FROM audit_trail WHERE entity = 'counter'").fetchone()[0] == 1


def test_a_dismissed_alert_and_its_cancelled_order_each_write_their_event_with_the_resolution(pg):
    f = overheat(pg)
    with session_scope() as s:
        alerts.dismiss(s, alert_id=f["alert_id"], actor="amina", reason="sonde débranchée",
                       now=NOW + timedelta(minutes=5), silence_minutes=0)
    evs = events(pg)[2:]
    assert [t for t, *_ in evs] == ["alert.dismissed", "work_order.cancelled"]
    alert = evs[0][4]["data"]
    assert (alert["alert"]["status"], alert["alert"]["resolution"], alert["change"]["comment"]) == (
        "closed", "dismissed", "sonde débranchée")
    wo = evs[1][4]["data"]["work_order"]
    assert (wo["status"], wo["closed_at"]) == ("cancelled", "2026-03-02T12:05:00Z")
