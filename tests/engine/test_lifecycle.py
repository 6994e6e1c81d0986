"""Firing without duplicates (even racing), work orders, the lifecycle and its audit trail."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from db.errors import InvalidTransition
from db.session import session_scope
from engine import alerts, workorders
from engine.evaluate import evaluate_all
from tests.engine.helpers import NOW, evaluate, fired, put, series

ELEVATOR, CHILLER = "CAS-S1-ELEVATOR_1", "CAS-S1-CHILLER_1"


def overheat(pg):
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5))
    return evaluate(codes=["R5"]).fired[0]


def settle(pg, at):
    """Readings of 78 °C up to `at`, evaluated: R5 no longer fires (not > 80) and has not cleared
    either (not <= 75) — the alert stays, and a person may close it."""
    put(pg, ELEVATOR, "motor_temp", series([78.0] * 5, end=at))
    assert evaluate(at, codes=["R5"]).cleared == []


def count(pg, table: str) -> int:
    return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_firing_creates_alert_and_work_order_with_priority_from_severity(pg):
    f = overheat(pg)
    alert = pg.execute("SELECT severity, status, observed_value FROM alerts WHERE id = %s", (f["alert_id"],)).fetchone()
    assert alert == ("high", "open", 85.0)
    wo = pg.execute("SELECT alert_id, status, priority, title FROM work_orders WHERE id = %s", (f["work_order_id"],)).fetchone()
    assert wo[:3] == (f["alert_id"], "open", 1)
    assert wo[3] == "Surchauffe moteur ascenseur — CAS-S1-ELEVATOR_1"
    actions = pg.execute("SELECT entity, action, actor FROM audit_trail ORDER BY id").fetchall()
    assert actions == [("alert", "created", "engine"), ("work_order", "created", "engine")]


def test_re_evaluation_creates_no_duplicate(pg):
    overheat(pg)
    later = NOW + timedelta(minutes=1)
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=later))
    assert evaluate(later, codes=["R5"]).fired == []
    assert count(pg, "alerts") == 1 and count(pg, "work_orders") == 1


def test_an_acknowledged_alert_still_blocks_a_new_one(pg):
    f = overheat(pg)
    with session_scope() as s:
        alerts.acknowledge(s, alert_id=f["alert_id"], actor="manager", now=NOW)
    assert evaluate(NOW + timedelta(seconds=1), codes=["R5"]).fired == []


def test_after_close_the_policy_can_fire_again(pg):
    f = overheat(pg)
    settle(pg, NOW + timedelta(minutes=1))
    with session_scope() as s:
        alerts.close(s, alert_id=f["alert_id"], actor="manager", comment="fixed", now=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=2)
    put(pg, ELEVATOR, "motor_temp", series([86.0] * 5, end=later))
    again = evaluate(later, codes=["R5"])
    assert fired(again) == {("R5", ELEVATOR)}
    assert count(pg, "alerts") == 2


def test_close_is_refused_while_the_condition_holds_and_changes_nothing(pg):
    f = overheat(pg)
    with pytest.raises(InvalidTransition, match="still holds; dismiss it"), session_scope() as s:
        alerts.close(s, alert_id=f["alert_id"], actor="manager", comment="fixed", now=NOW)
    assert pg.execute("SELECT status, resolution FROM alerts").fetchone() == ("open", None)
    assert count(pg, "audit_trail") == 2  # alert and work order created, nothing else


def test_alert_numbers_stay_consecutive_across_re_evaluations(pg):
    f = overheat(pg)
    for minutes in (1, 2, 3):  # still firing while the alert is live: nothing new, no number spent
        later = NOW + timedelta(minutes=minutes)
        put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=later))
        assert evaluate(later, codes=["R5"]).fired == []
    settle(pg, NOW + timedelta(minutes=4))
    with session_scope() as s:
        alerts.close(s, alert_id=f["alert_id"], actor="manager", comment="fixed", now=NOW + timedelta(minutes=4))
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=NOW + timedelta(minutes=5)))
    again = evaluate(NOW + timedelta(minutes=5), codes=["R5"]).fired
    assert [a["alert_id"] for a in again] == [f["alert_id"] + 1]


def test_two_evaluations_racing_on_two_connections_create_one_alert(pg):
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5))
    first_done, results = threading.Event(), {}
    with session_scope() as a:
        results["a"] = evaluate_all(a, now=NOW, policy_codes=["R5"])

        def other():  # blocks on the unique index until the first transaction ends
            with session_scope() as b:
                results["b"] = evaluate_all(b, now=NOW, policy_codes=["R5"])
            first_done.set()

        t = threading.Thread(target=other)
        t.start()
        assert not first_done.wait(0.5)  # still waiting on the first, uncommitted, alert
    t.join(10)
    assert len(results["a"].fired) + len(results["b"].fired) == 1
    assert count(pg, "alerts") == 1 and count(pg, "work_orders") == 1


def test_ack_then_close_is_audited_with_who_and_comment(pg):
    f = overheat(pg)
    with session_scope() as s:
        alerts.acknowledge(s, alert_id=f["alert_id"], actor="amina", comment="je regarde", now=NOW)
    settle(pg, NOW + timedelta(minutes=1))
    with session_scope() as s:
        alerts.close(s, alert_id=f["alert_id"], actor="amina", comment="ventilation réparée", now=NOW)
    row = pg.execute("SELECT status, acked_by, closed_by FROM alerts").fetchone()
    assert row == ("closed", "amina", "amina")
    trail = pg.execute(
        "SELECT action, from_value, to_value, comment FROM audit_trail WHERE entity = 'alert' ORDER BY id"
    ).fetchall()
    assert trail[1:] == [("acknowledged", "open", "ack", "je regarde"), ("closed", "ack", "closed", "ventilation réparée")]


@pytest.mark.parametrize("first,second", [("acknowledge", "acknowledge"), ("close", "acknowledge"), ("close", "close")])
def test_illegal_alert_transitions_are_refused(pg, first, second):
    f = overheat(pg)
    settle(pg, NOW + timedelta(minutes=1))
    with session_scope() as s:
        getattr(alerts, first)(s, alert_id=f["alert_id"], actor="x", now=NOW)
    with pytest.raises(InvalidTransition), session_scope() as s:
        getattr(alerts, second)(s, alert_id=f["alert_id"], actor="x", now=NOW)


def _move(wo_id: int, *steps: str) -> None:
    for to in steps:
        with session_scope() as s:
            workorders.transition(s, workorder_id=wo_id, to_status=to, actor="tech", now=NOW)


@pytest.mark.parametrize(
    "path,illegal",
    [((), "done"), ((), "open"), (("in_progress",), "in_progress"), (("in_progress", "done"), "open"),
     (("in_progress", "done"), "in_progress")],
)
def test_illegal_work_order_transitions_are_refused_and_change_nothing(pg, path, illegal):
    f = overheat(pg)
    _move(f["work_order_id"], *path)
    before = pg.execute("SELECT status, updated_at FROM work_orders").fetchone()
    with pytest.raises(InvalidTransition, match="cannot go from"):
        _move(f["work_order_id"], illegal)
    assert pg.execute("SELECT status, updated_at FROM work_orders").fetchone() == before


def test_in_progress_can_go_back_to_open(pg):
    f = overheat(pg)
    _move(f["work_order_id"], "in_progress", "open")
    assert pg.execute("SELECT status, closed_at FROM work_orders").fetchone() == ("open", None)


def test_done_closes_the_alert(pg):
    f = overheat(pg)
    _move(f["work_order_id"], "in_progress", "done")
    assert pg.execute("SELECT status, closed_by FROM alerts").fetchone() == ("closed", "tech")
    assert pg.execute("SELECT closed_at FROM work_orders").fetchone()[0] == NOW


def test_assign_and_notes_are_persisted_and_audited(pg):
    f = overheat(pg)
    with session_scope() as s:
        workorders.update(s, workorder_id=f["work_order_id"], actor="chef", assigned_to="Youssef",
                          notes="Vérifier ventilation", now=NOW)
    assert pg.execute("SELECT assigned_to, notes FROM work_orders").fetchone() == ("Youssef", "Vérifier ventilation")
    actions = [r[0] for r in pg.execute("SELECT action FROM audit_trail WHERE entity='work_order' ORDER BY id")]
    assert actions == ["created", "assigned", "notes"]


def test_r4_done_resets_the_counter_so_it_refires_only_500_h_later(pg):
    put(pg, CHILLER, "run_hours", series([500.5]))
    f = evaluate(codes=["R4"]).fired[0]
    assert f["severity"] == "low" and f["policy_code"] == "R4"
    _move(f["work_order_id"], "in_progress", "done")
    assert pg.execute("SELECT status FROM alerts").fetchone()[0] == "closed"
    assert pg.execute("SELECT baseline FROM counter_resets").fetchone()[0] == 500.5

    t1 = NOW + timedelta(hours=1)
    put(pg, CHILLER, "run_hours", [(t1, 501.5)])  # just above the old value
    assert evaluate(t1, codes=["R4"]).fired == []
    t2 = NOW + timedelta(hours=2)
    put(pg, CHILLER, "run_hours", [(t2, 1000.6)])  # 500.1 h past the reset
    assert fired(evaluate(t2, codes=["R4"])) == {("R4", CHILLER)}


def test_manual_counter_reset(pg):
    from db.errors import InvalidInput
    from engine.counters import reset_counter

    put(pg, "CAS-S1-ELEVATOR_1", "door_cycles", series([100_500.0]))
    aid = pg.execute("SELECT id FROM assets WHERE code = 'CAS-S1-ELEVATOR_1'").fetchone()[0]
    with session_scope() as s:
        reset_counter(s, asset_id=aid, metric="door_cycles", actor="tech", reason="inspection faite", now=NOW)
    assert evaluate(NOW, codes=["R6"]).fired == []
    with pytest.raises(InvalidInput, match="not a counter"), session_scope() as s:
        reset_counter(s, asset_id=aid, metric="motor_temp", actor="tech", now=NOW)


def test_firing_keeps_working_after_many_runs_on_one_connection(pg):
    """psycopg prepares a statement after a few runs; the partial-index conflict target must survive it."""
    from sqlalchemy import text

    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5))
    with session_scope() as s:
        for i in range(12):
            s.execute(text("SELECT 1"))
            result = evaluate_all(s, now=NOW + timedelta(seconds=i), policy_codes=["R5"])
            assert len(result.fired) == (1 if i == 0 else 0)
            if i == 0:
                s.execute(text("UPDATE alerts SET status = 'closed'"))  # so the next runs insert again
                s.execute(text("UPDATE alerts SET status = 'open'"))
