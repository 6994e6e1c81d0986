"""KPIs against hand-computed values: alerts and work orders at known times, overlapping failure
windows, windows clipped to the period, preventive orders, false alarms, the backlog."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from db.errors import InvalidInput
from db.session import session_scope
from engine import kpis

HVAC, ELEVATOR, CHILLER = "CAS-S1-HVAC_1", "CAS-S1-ELEVATOR_1", "CAS-S1-CHILLER_1"


def T(day: int, hour: int = 0, minute: int = 0, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _id(pg, sql: str, *args) -> int:
    return pg.execute(sql, args).fetchone()[0]


def alert(pg, asset: str, policy: str, created: datetime, *, acked=None, closed=None, resolution=None) -> int:
    return _id(pg, "INSERT INTO alerts (asset_id, policy_id, created_at, started_at, severity, status, message, "
                   "acked_by, acked_at, closed_by, closed_at, resolution) "
                   "SELECT a.id, p.id, %s, %s, p.severity, %s, 'm', %s, %s, %s, %s, %s FROM assets a, policies p "
                   "WHERE a.code = %s AND p.code = %s RETURNING id",
               created, created, "closed" if closed else ("ack" if acked else "open"), acked and "x", acked,
               closed and "x", closed, resolution, asset, policy)


def order(pg, asset: str, alert_id: int | None, created: datetime, priority: int, *, status: str = "open",
          in_progress=None, closed=None, updated=None) -> int:
    wo = _id(pg, "INSERT INTO work_orders (alert_id, asset_id, title, created_at, updated_at, closed_at, status, "
                 "priority, notes) SELECT %s, id, 't', %s, %s, %s, %s, %s, '' FROM assets WHERE code = %s RETURNING id",
             alert_id, created, updated or closed or created, closed if status == "done" else None, status, priority,
             asset)
    if in_progress:
        pg.execute("INSERT INTO audit_trail (entity, entity_id, at, actor, action, from_value, to_value, comment) "
                   "VALUES ('work_order', %s, %s, 'x', 'status', 'open', 'in_progress', '')", (wo, in_progress))
    return wo


@pytest.fixture
def history(pg):
    """The week of 2026-03-02 (a Monday) to 03-09 on site CAS-S1 (times UTC):
    HVAC_1    a1 R2 high   03-01 20:00 → done 03-02 04:00 (opened before the period: 4 h inside)
              a2 R1 medium 03-03 10:00, ack 10:30, order in progress 11:00, done 16:00
              a3 R2 high   03-03 14:00, in progress 14:12, done 20:00 (overlaps a2: down 10:00–20:00)
              a5 R2 high   03-08 20:00, still open (down until the end of the period)
    ELEVATOR_1 b1 R6 medium 03-05 00:00, dismissed 01:00 (order cancelled) — false alarm
              b2 R5 high   03-06 12:00, ack 12:06, cleared by itself 13:00 (order cancelled) — false alarm
    CHILLER_1 c1 R4 low    03-04 08:00, in progress 09:00, done 12:00 (preventive)
              c2 R3 high   03-08 22:00, ack 03-09 01:00, in progress 02:00, done 03:00 (2 h inside)
              w7 a manual order (no alert) opened 01-20, priority 3, still open
    """
    a1 = alert(pg, HVAC, "R2", T(1, 20), closed=T(2, 4), resolution="work_order_done")
    order(pg, HVAC, a1, T(1, 20), 1, status="done", in_progress=T(1, 22), closed=T(2, 4))
    a2 = alert(pg, HVAC, "R1", T(3, 10), acked=T(3, 10, 30), closed=T(3, 16), resolution="work_order_done")
    order(pg, HVAC, a2, T(3, 10), 2, status="done", in_progress=T(3, 11), closed=T(3, 16))
    a3 = alert(pg, HVAC, "R2", T(3, 14), closed=T(3, 20), resolution="work_order_done")
    order(pg, HVAC, a3, T(3, 14), 1, status="done", in_progress=T(3, 14, 12), closed=T(3, 20))
    a5 = alert(pg, HVAC, "R2", T(8, 20))
    order(pg, HVAC, a5, T(8, 20), 1)
    b1 = alert(pg, ELEVATOR, "R6", T(5, 0), closed=T(5, 1), resolution="dismissed")
    order(pg, ELEVATOR, b1, T(5, 0), 2, status="cancelled", updated=T(5, 1))
    b2 = alert(pg, ELEVATOR, "R5", T(6, 12), acked=T(6, 12, 6), closed=T(6, 13), resolution="condition_cleared")
    order(pg, ELEVATOR, b2, T(6, 12), 1, status="cancelled", updated=T(6, 13))
    c1 = alert(pg, CHILLER, "R4", T(4, 8), closed=T(4, 12), resolution="work_order_done")
    order(pg, CHILLER, c1, T(4, 8), 3, status="done", in_progress=T(4, 9), closed=T(4, 12))
    c2 = alert(pg, CHILLER, "R3", T(8, 22), acked=T(9, 1), closed=T(9, 3), resolution="work_order_done")
    order(pg, CHILLER, c2, T(8, 22), 1, status="done", in_progress=T(9, 2), closed=T(9, 3))
    order(pg, CHILLER, None, T(20, month=1), 3)
    return {"site_id": _id(pg, "SELECT id FROM sites WHERE code = 'CAS-S1'"),
            "hvac": _id(pg, "SELECT id FROM assets WHERE code = %s", HVAC)}


def compute(**kw) -> dict:
    kw.setdefault("now", T(20))
    with session_scope() as s:
        return kpis.compute(s, **kw)


def test_the_week_on_one_site_matches_the_hand_computed_figures(history):
    k = compute(start=T(2), end=T(9), site_id=history["site_id"])
    assert k["period_hours"] == 168.0
    by_code = {a["asset_code"]: a for a in k["assets"]}
    # HVAC_1: a1 clipped to 00:00–04:00 (4 h), a2 ∪ a3 = 10:00–20:00 (10 h, not 6 + 6), a5 20:00–24:00 (4 h)
    assert by_code[HVAC] == {"asset_id": history["hvac"], "asset_code": HVAC, "failures": 3, "downtime_hours": 18.0,
                             "operating_hours": 150.0, "mtbf_hours": 50.0, "availability_pct": 89.3}
    # the elevator's two alerts were false alarms: no failure, no downtime
    assert {k_: by_code[ELEVATOR][k_] for k_ in ("failures", "downtime_hours", "mtbf_hours", "availability_pct")} == {
        "failures": 0, "downtime_hours": 0.0, "mtbf_hours": None, "availability_pct": 100.0}
    # CHILLER_1: c2 22:00–24:00 inside the period; the preventive c1 (low) is no failure
    assert (by_code[CHILLER]["failures"], by_code[CHILLER]["downtime_hours"], by_code[CHILLER]["mtbf_hours"],
            by_code[CHILLER]["availability_pct"]) == (1, 2.0, 166.0, 98.8)
    # the site: 3 assets × 168 h = 504 h, 20 h down, 4 failures
    assert (k["failures"], k["downtime_hours"], k["operating_hours"], k["mtbf_hours"], k["availability_pct"]) == (
        4, 20.0, 484.0, 121.0, 96.0)
    # MTTR: corrective orders done in the period — w1 8 h, w2 6 h, w3 6 h (the preventive c1 left out)
    assert (k["mttr_hours"], k["repairs"]) == (6.7, 3)
    # MTTA: a2 0.5 h (ack before in progress), a3 0.2 h (in progress, no ack), b2 0.1 h, c1 1.0 h, c2 3.0 h
    assert (k["mtta_hours"], k["answered_alerts"]) == (1.0, 5)
    # 7 alerts opened, 5 with an order that was not cancelled
    assert (k["alerts_opened"], k["alerts_converted"], k["conversion_pct"]) == (7, 5, 71.4)
    # 6 alerts closed in the period (a1, a2, a3, b1, b2, c1), 2 false alarms (b1 dismissed, b2 cleared, no work)
    assert (k["alerts_closed"], k["false_alarms"], k["false_alarm_pct"]) == (6, 2, 33.3)
    # orders created in the period and not cancelled: w2, w3, w5, wc1 (preventive), wc2
    assert (k["work_orders_created"], k["preventive"], k["corrective"], k["preventive_pct"], k["corrective_pct"]) == (
        5, 1, 4, 20.0, 80.0)
    # open at 03-09 00:00: w5 (4 h) and wc2 (2 h, done later), P1 < 1 day; w7 P3 > 30 days
    assert k["backlog"] == {"total": 3, "by_priority": {
        "1": {"lt_1d": 2, "1_7d": 0, "7_30d": 0, "gt_30d": 0},
        "2": {"lt_1d": 0, "1_7d": 0, "7_30d": 0, "gt_30d": 0},
        "3": {"lt_1d": 0, "1_7d": 0, "7_30d": 0, "gt_30d": 1}}}
    assert [a["asset_code"] for a in k["top_by_failures"]] == [HVAC, CHILLER]
    assert [(a["asset_code"], a["downtime_hours"]) for a in k["top_by_downtime"]] == [(HVAC, 18.0), (CHILLER, 2.0)]
    # one ISO week and one (clipped) month, each the same as the whole
    assert len(k["weekly"]) == len(k["monthly"]) == 1
    for bucket in (k["weekly"][0], k["monthly"][0]):
        assert (bucket["from"], bucket["to"]) == (T(2), T(9))
        assert {f: bucket[f] for f in ("failures", "downtime_hours", "mttr_hours", "mtta_hours", "availability_pct",
                                       "conversion_pct", "false_alarm_pct", "preventive_pct")} == {
            "failures": 4, "downtime_hours": 20.0, "mttr_hours": 6.7, "mtta_hours": 1.0, "availability_pct": 96.0,
            "conversion_pct": 71.4, "false_alarm_pct": 33.3, "preventive_pct": 20.0}


def test_weeks_and_month_clip_each_window_to_their_own_bounds(history):
    k = compute(start=T(1), end=T(16), site_id=history["site_id"])
    w1, w2, w3 = k["weekly"]
    assert [(w["from"], w["to"]) for w in k["weekly"]] == [(T(1), T(2)), (T(2), T(9)), (T(9), T(16))]
    # Sunday 03-01 alone (3 × 24 h): a1 opened at 20:00, down until midnight inside this bucket
    assert (w1["failures"], w1["downtime_hours"], w1["availability_pct"], w1["mttr_hours"]) == (1, 4.0, 94.4, None)
    assert (w2["failures"], w2["downtime_hours"], w2["mttr_hours"]) == (4, 20.0, 6.7)
    # 03-09 → 03-16: a5 still open (168 h), c2 00:00–03:00 (3 h); wc2 repaired in 5 h
    assert (w3["failures"], w3["downtime_hours"], w3["mtbf_hours"], w3["availability_pct"], w3["mttr_hours"]) == (
        0, 171.0, None, 66.1, 5.0)
    (m,) = k["monthly"]
    # 15 days × 3 assets = 1080 h; a1 8 h + a2∪a3 10 h + a5 172 h + c2 5 h = 195 h; 5 failures
    assert (m["from"], m["to"], m["failures"], m["downtime_hours"], m["mtbf_hours"], m["availability_pct"]) == (
        T(1), T(16), 5, 195.0, 177.0, 81.9)
    assert (k["failures"], k["downtime_hours"]) == (5, 195.0)


def test_a_period_reaching_past_now_ends_now(history):
    k = compute(start=T(2), end=T(30), now=T(9), site_id=history["site_id"])
    assert (k["effective_to"], k["period_hours"], k["downtime_hours"], k["availability_pct"]) == (T(9), 168.0, 20.0, 96.0)


def test_filters_by_asset_type_and_by_asset(history):
    k = compute(start=T(2), end=T(9), asset_type="CHILLER")  # both sites' chillers: 336 h
    assert (k["failures"], k["downtime_hours"], k["availability_pct"], k["mttr_hours"]) == (1, 2.0, 99.4, None)
    assert (k["work_orders_created"], k["preventive_pct"]) == (2, 50.0)
    assert k["backlog"]["total"] == 2
    k = compute(start=T(2), end=T(9), asset_id=history["hvac"])
    assert (len(k["assets"]), k["failures"], k["downtime_hours"], k["mtbf_hours"], k["mttr_hours"]) == (
        1, 3, 18.0, 50.0, 6.7)
    assert (k["alerts_opened"], k["conversion_pct"], k["false_alarm_pct"]) == (3, 100.0, 0.0)


def test_nothing_happened_gives_full_availability_and_no_means(pg):
    k = compute(start=T(2), end=T(9))
    assert (k["failures"], k["downtime_hours"], k["availability_pct"], k["mtbf_hours"], k["mttr_hours"],
            k["mtta_hours"], k["conversion_pct"], k["false_alarm_pct"], k["backlog"]["total"]) == (
        0, 0.0, 100.0, None, None, None, None, None, 0)


def test_a_period_must_end_after_it_starts(pg):
    with pytest.raises(InvalidInput, match="to"):
        compute(start=T(9), end=T(2))
    with pytest.raises(InvalidInput, match="from"):
        compute(start=T(25), end=T(28), now=T(20))
    with pytest.raises(InvalidInput, match="3 years"):
        compute(start=T(1, year=2020), end=T(2))


def test_the_api_answers_the_same_figures_and_refuses_a_bad_period(history, api):
    r = api.get("/kpis", params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-09T00:00:00Z",
                                 "site_id": history["site_id"]})
    assert r.status_code == 200, r.text
    k = r.json()
    assert (k["mttr_hours"], k["mtta_hours"], k["mtbf_hours"], k["availability_pct"], k["downtime_hours"]) == (
        6.7, 1.0, 121.0, 96.0, 20.0)
    assert k["backlog"]["by_priority"]["1"]["lt_1d"] == 2 and len(k["weekly"]) == 1
    r = api.get("/kpis", params={"from": "2026-03-09T00:00:00Z", "to": "2026-03-02T00:00:00Z"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to"
    assert api.get("/kpis", params={"to": "2026-03-09T00:00:00Z"}).json()["errors"][0]["field"] == "from"
    assert api.get("/kpis", params={"from": "2026-03-02T00:00:00", "to": "2026-03-09T00:00:00Z"}).status_code == 422
    assert api.get("/kpis", params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-09T00:00:00Z",
                                    "asset_type": "TRUCK"}).status_code == 422


def test_the_lifecycle_services_feed_the_figures(pg):
    """Through the real services: one alert dismissed (false alarm, order cancelled), one repaired."""
    from engine import alerts, workorders
    from tests.engine.helpers import put, series

    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=T(3, 10)))
    put(pg, HVAC, "vibration_level", series([9.0] * 5, end=T(3, 10)))
    from engine.evaluate import evaluate_all

    with session_scope() as s:
        fired = {f["policy_code"]: f for f in evaluate_all(s, now=T(3, 10), policy_codes=["R5", "R2"]).fired}
    with session_scope() as s:
        alerts.dismiss(s, alert_id=fired["R5"]["alert_id"], actor="a", reason="capteur", now=T(3, 11),
                       silence_minutes=0)
    with session_scope() as s:
        workorders.transition(s, workorder_id=fired["R2"]["work_order_id"], to_status="in_progress", actor="y",
                              now=T(3, 10, 45))
    with session_scope() as s:
        workorders.transition(s, workorder_id=fired["R2"]["work_order_id"], to_status="done", actor="y",
                              now=T(3, 14))
    k = compute(start=T(2), end=T(9))
    assert (k["alerts_opened"], k["alerts_converted"], k["conversion_pct"]) == (2, 1, 50.0)
    assert (k["alerts_closed"], k["false_alarms"], k["false_alarm_pct"]) == (2, 1, 50.0)
    # the repaired one: down 10:00–14:00; the dismissed one is no failure
    assert (k["failures"], k["downtime_hours"], k["mttr_hours"], k["mtta_hours"]) == (1, 4.0, 4.0, 0.8)
    assert (k["work_orders_created"], k["backlog"]["total"]) == (1, 0)
