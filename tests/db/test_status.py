"""Asset status (ok / watch / alert / no data) and the site roll-up."""

from __future__ import annotations

from datetime import timedelta

from db.session import session_scope
from db.queries import asset_statuses, site_rollup
from tests.engine.helpers import NOW, evaluate, put, series


def statuses(now=NOW) -> dict[str, str]:
    with session_scope() as s:
        return {a["code"]: a["status"] for a in asset_statuses(s, now=now)}


def test_one_asset_per_status(pg):
    # alert: R5 fires (high)
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([85.0] * 5))
    # watch by proximity: avg supply air 19.0 is within 10 % of R1's 20
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([19.0] * 30))
    # ok: fresh data far from every threshold
    put(pg, "CAS-S1-CHILLER_1", "water_temp_out", series([7.0] * 30))
    # no data: the last reading is older than 3 x 10 s
    put(pg, "CAS-S2-HVAC_1", "temp_supply_air", [(NOW - timedelta(seconds=31), 15.0)])
    evaluate()
    got = statuses()
    assert got["CAS-S1-ELEVATOR_1"] == "alert"
    assert got["CAS-S1-HVAC_1"] == "watch"
    assert got["CAS-S1-CHILLER_1"] == "ok"
    assert got["CAS-S2-HVAC_1"] == "no_data"
    assert got["CAS-S2-CHILLER_1"] == "no_data"  # never reported


def test_fresh_data_at_exactly_three_cadences_is_still_fresh(pg):
    put(pg, "CAS-S1-CHILLER_1", "water_temp_out", [(NOW - timedelta(seconds=30), 7.0)])
    assert statuses()["CAS-S1-CHILLER_1"] == "ok"


def test_a_low_alert_only_is_watch(pg):
    put(pg, "CAS-S1-CHILLER_1", "run_hours", series([600.0]))
    put(pg, "CAS-S1-CHILLER_1", "water_temp_out", series([7.0]))
    evaluate()
    assert statuses()["CAS-S1-CHILLER_1"] == "watch"


def test_site_rollup_counts_and_puts_sites_at_risk_first(pg):
    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([85.0] * 5))
    put(pg, "CAS-S1-CHILLER_1", "run_hours", series([600.0]))
    evaluate()
    with session_scope() as s:
        sites = site_rollup(s, now=NOW)
    assert [x["code"] for x in sites] == ["CAS-S2", "CAS-S1"]
    s2 = sites[0]
    assert s2["at_risk"] is True
    assert s2["open_alerts"] == {"high": 1, "medium": 0, "low": 0}
    assert s2["open_work_orders"] == 1
    assert s2["assets_by_status"]["alert"] == 1
    assert sites[1]["open_alerts"] == {"high": 0, "medium": 0, "low": 1} and sites[1]["at_risk"] is False


def test_evaluations_show_value_against_threshold(pg):
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([19.4] * 30))
    evaluate()
    with session_scope() as s:
        hvac = next(a for a in asset_statuses(s, now=NOW) if a["code"] == "CAS-S1-HVAC_1")
    r1 = next(e for e in hvac["evaluations"] if e["policy_code"] == "R1")
    assert round(r1["value"], 2) == 19.4 and r1["threshold"] == 20 and r1["unit"] == "°C" and r1["firing"] is False


def test_alerts_to_handle_come_high_first_then_the_oldest_with_their_orders(pg):
    from db.queries import alerts_to_handle

    put(pg, "CAS-S1-CHILLER_1", "run_hours", series([600.0]))  # R4, low
    codes = ["R4", "R5"]  # not N1: CAS-S1-ELEVATOR_1 is silent since NOW - 10 min
    evaluate(NOW - timedelta(minutes=30), codes=codes)
    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([85.0] * 5))  # R5, high, newer
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([86.0] * 5, end=NOW - timedelta(minutes=10)))
    evaluate(NOW - timedelta(minutes=10), codes=codes)  # R5 on CAS-S1, high, older
    evaluate(NOW, codes=codes)
    pg.execute("UPDATE work_orders SET assigned_to = 'Youssef' WHERE alert_id = "
               "(SELECT a.id FROM alerts a JOIN assets s ON s.id = a.asset_id WHERE s.code = 'CAS-S1-ELEVATOR_1')")
    with session_scope() as s:
        rows = alerts_to_handle(s)
    assert [(r["asset_code"], r["policy_code"]) for r in rows] == [
        ("CAS-S1-ELEVATOR_1", "R5"), ("CAS-S2-ELEVATOR_1", "R5"), ("CAS-S1-CHILLER_1", "R4")]
    assert rows[0]["assigned_to"] == "Youssef" and rows[0]["work_order_status"] == "open"
    with session_scope() as s:
        s2 = alerts_to_handle(s, site_id=_site_id(pg, "CAS-S2"))
    assert [r["asset_code"] for r in s2] == ["CAS-S2-ELEVATOR_1"]
    pg.execute("UPDATE alerts SET status = 'closed' WHERE severity = 'high'")
    with session_scope() as s:
        assert [r["policy_code"] for r in alerts_to_handle(s)] == ["R4"]  # closed ones leave the list


def _site_id(pg, code: str) -> int:
    return pg.execute("SELECT id FROM sites WHERE code = %s", (code,)).fetchone()[0]


def test_near_a_threshold_is_the_same_in_sql_as_in_the_rules(pg):
    """The read model's "near" (SQL) agrees with engine.rules.near_threshold on both sides of a
    ">" policy (R1, 20 °C) and of its edges."""
    from engine.rules import near_threshold

    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0] * 30))
    evaluate()
    for value in (17.9, 18.0, 19.99, 20.0, 20.01, 25.0, -3.0):
        pg.execute("UPDATE policy_evaluations SET value = %s, firing = false WHERE policy_id = "
                   "(SELECT id FROM policies WHERE code = 'R1')", (value,))
        with session_scope() as s:
            hvac = next(a for a in asset_statuses(s, now=NOW) if a["code"] == "CAS-S1-HVAC_1")
        r1 = next(e for e in hvac["evaluations"] if e["policy_code"] == "R1")
        assert r1["near"] is near_threshold(">", value, 20), value
        assert (hvac["status"] == "watch") is near_threshold(">", value, 20), value
