"""Rule semantics of PRODUCT.md for R1–R6 and the drift policy D1, with a fixed clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.rules import near_threshold, satisfies
from tests.engine.helpers import NOW, evaluate, fired, put, series

HVAC, CHILLER, ELEVATOR = "CAS-S1-HVAC_1", "CAS-S1-CHILLER_1", "CAS-S1-ELEVATOR_1"


# --- pure logic -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value,cond,thr,expected",
    [(20.0, ">", 20, False), (20.01, ">", 20, True), (20.0, ">=", 20, True), (5, "<", 5, False),
     (4.9, "<", 5, True), (5, "<=", 5, True), (None, ">", 20, False)],
)
def test_condition(value, cond, thr, expected):
    assert satisfies(value, cond, thr) is expected


def test_near_threshold_is_on_the_firing_side_only():
    assert near_threshold(">", 18.5, 20) is True
    assert near_threshold(">", 17.9, 20) is False
    assert near_threshold(">", 21, 20) is False  # firing, not "near"
    assert near_threshold("<", 5.4, 5) is True
    assert near_threshold("<", 4.6, 5) is False  # below a "<" threshold is firing


# --- R1: avg(temp_supply_air) over 15 min > 20 ------------------------------------------------

def test_r1_does_not_fire_at_exactly_20(pg):
    put(pg, HVAC, "temp_supply_air", series([20.0] * 90))
    assert fired(evaluate(codes=["R1"])) == set()


def test_r1_fires_just_past_20(pg):
    put(pg, HVAC, "temp_supply_air", series([20.01] * 90))
    result = evaluate(codes=["R1"])
    assert fired(result) == {("R1", HVAC)}
    msg = result.fired[0]["message"]
    assert msg.startswith("avg temp_supply_air 20.01 °C over 15 min > 20"), msg
    msg_fr = result.fired[0]["message_fr"]
    assert msg_fr == "Température air soufflé : moyenne 20,01 °C sur 15 min > 20 (90 mesures)", msg_fr


def _episode(pg, code: str, asset: str) -> tuple:
    return pg.execute(
        "SELECT a.started_at, a.ended_at, a.status, a.resolution FROM alerts a JOIN policies p ON p.id = a.policy_id "
        "JOIN assets x ON x.id = a.asset_id WHERE p.code = %s AND x.code = %s ORDER BY a.id", (code, asset)).fetchall()


def _recorded(pg, code: str, asset: str) -> tuple:
    return pg.execute(
        "SELECT e.value, e.points, e.last_ts FROM policy_evaluations e JOIN policies p ON p.id = e.policy_id "
        "JOIN assets a ON a.id = e.asset_id WHERE p.code = %s AND a.code = %s", (code, asset)).fetchone()


def test_r1_window_excludes_a_reading_exactly_15_min_old(pg):
    # 500 °C at now - 15 min fires there (its own window); at now, the window (now - 15 min, now]
    # no longer holds it: the alert clears exactly at now, not one reading later
    old = [(NOW - timedelta(minutes=15), 500.0)]
    put(pg, HVAC, "temp_supply_air", old + series([19.0] * 10))
    assert fired(evaluate(codes=["R1"])) == {("R1", HVAC)}
    assert _episode(pg, "R1", HVAC) == [(NOW - timedelta(minutes=15), NOW, "closed", "condition_cleared")]
    assert _recorded(pg, "R1", HVAC) == (19.0, 10, NOW)


def test_r1_window_includes_a_reading_just_inside(pg):
    inside = [(NOW - timedelta(minutes=15) + timedelta(seconds=1), 500.0)]
    put(pg, HVAC, "temp_supply_air", inside + series([19.0] * 10))
    assert fired(evaluate(codes=["R1"])) == {("R1", HVAC)}


def test_r1_ignores_readings_after_now(pg):
    put(pg, HVAC, "temp_supply_air", series([19.0] * 10) + [(NOW + timedelta(seconds=10), 900.0)])
    assert fired(evaluate(codes=["R1"])) == set()


def test_r1_no_data_no_firing_and_nothing_recorded(pg):
    assert fired(evaluate(codes=["R1"])) == set()
    assert _recorded(pg, "R1", HVAC) is None


# --- R2 / R5: the N most recent readings each beyond the threshold ----------------------------

@pytest.mark.parametrize("code,asset,metric,thr", [("R2", HVAC, "vibration_level", 7), ("R5", ELEVATOR, "motor_temp", 80)])
def test_consecutive_fires_just_past_threshold(pg, code, asset, metric, thr):
    put(pg, asset, metric, series([thr + 0.01] * 5))
    assert fired(evaluate(codes=[code])) == {(code, asset)}


@pytest.mark.parametrize("code,asset,metric,thr", [("R2", HVAC, "vibration_level", 7), ("R5", ELEVATOR, "motor_temp", 80)])
def test_consecutive_one_reading_at_threshold_breaks_the_run(pg, code, asset, metric, thr):
    put(pg, asset, metric, series([thr + 5, thr + 5, thr, thr + 5, thr + 5]))
    assert fired(evaluate(codes=[code])) == set()


@pytest.mark.parametrize("code,asset,metric,thr", [("R2", HVAC, "vibration_level", 7), ("R5", ELEVATOR, "motor_temp", 80)])
def test_consecutive_fewer_than_n_readings_never_fires(pg, code, asset, metric, thr):
    put(pg, asset, metric, series([thr + 10] * 4))
    assert fired(evaluate(codes=[code])) == set()


def test_r5_only_the_five_most_recent_count(pg):
    put(pg, ELEVATOR, "motor_temp", series([50.0, 50.0, 81, 82, 83, 84, 85]))
    result = evaluate(codes=["R5"])
    assert fired(result) == {("R5", ELEVATOR)}
    assert "lowest 81" in result.fired[0]["message"]
    assert "5 dernières mesures > 80 °C (la plus basse 81 °C)" in result.fired[0]["message_fr"]


def test_r5_an_older_cool_reading_within_the_last_five_prevents_firing(pg):
    put(pg, ELEVATOR, "motor_temp", series([90, 79.9, 90, 90, 90]))
    assert fired(evaluate(codes=["R5"])) == set()


# --- R3: avg(water_temp_out) over 10 min > 14 -------------------------------------------------

def test_r3_boundary_and_window(pg):
    put(pg, CHILLER, "water_temp_out", series([14.0] * 60))
    assert fired(evaluate(codes=["R3"])) == set()
    # one hot reading 10 min old fires at its own time and is outside (now - 10 min, now]: the
    # alert clears exactly at now (avg 13.4 <= 13.5), not before
    other = "CAS-S2-CHILLER_1"
    put(pg, other, "water_temp_out", [(NOW - timedelta(minutes=10), 40.0)] + series([13.4] * 5))
    assert fired(evaluate(codes=["R3"])) == {("R3", other)}
    assert _episode(pg, "R3", other) == [(NOW - timedelta(minutes=10), NOW, "closed", "condition_cleared")]


def test_r3_fires_just_past_14(pg):
    put(pg, CHILLER, "water_temp_out", series([14.05] * 60))
    assert fired(evaluate(codes=["R3"])) == {("R3", CHILLER)}


# --- R4 / R6: counters since the last reset ---------------------------------------------------

def test_r4_at_500_does_not_fire_and_just_past_fires(pg):
    put(pg, CHILLER, "run_hours", series([499.0, 500.0]))
    assert fired(evaluate(codes=["R4"])) == set()
    put(pg, CHILLER, "run_hours", [(NOW + timedelta(seconds=10), 500.5)])
    assert fired(evaluate(NOW + timedelta(seconds=10), codes=["R4"])) == {("R4", CHILLER)}


def test_runtime_records_the_latest_reading(pg):
    put(pg, CHILLER, "run_hours", series([499.0]))
    evaluate(codes=["R4"])
    put(pg, CHILLER, "run_hours", [(NOW + timedelta(seconds=10), 10.0)])  # a counter replaced
    assert fired(evaluate(NOW + timedelta(seconds=10), codes=["R4"])) == set()
    assert _recorded(pg, "R4", CHILLER) == (10.0, 1, NOW + timedelta(seconds=10))


def test_r6_door_cycles(pg):
    put(pg, ELEVATOR, "door_cycles", series([100_000.0]))
    assert fired(evaluate(codes=["R6"])) == set()
    put(pg, "CAS-S2-ELEVATOR_1", "door_cycles", series([100_001.0]))
    result = evaluate(codes=["R6"])
    assert fired(result) == {("R6", "CAS-S2-ELEVATOR_1")}
    assert result.fired[0]["severity"] == "medium"


def test_runtime_no_data_no_firing(pg):
    assert fired(evaluate(codes=["R4", "R6"])) == set()


# --- D1: water_temp_out rising faster than 2 °C/h over 30 min ---------------------------------

def _ramp(per_hour: float, n: int = 30, step_s: int = 60) -> list[float]:
    return [10.0 + per_hour * (i * step_s) / 3600 for i in range(n)]


def test_d1_slow_rise_below_2_per_hour_does_not_fire(pg):
    put(pg, CHILLER, "water_temp_out", series(_ramp(1.9), step_s=60))
    assert fired(evaluate(codes=["D1"])) == set()


def test_d1_rise_just_past_2_per_hour_fires(pg):
    put(pg, CHILLER, "water_temp_out", series(_ramp(2.1), step_s=60))
    result = evaluate(codes=["D1"])
    assert fired(result) == {("D1", CHILLER)}
    assert "+2.10 °C/h" in result.fired[0]["message"]
    assert "tendance +2,10 °C/h sur 30 min > 2 °C/h" in result.fired[0]["message_fr"]


def test_d1_needs_three_points(pg):
    put(pg, CHILLER, "water_temp_out", series([10.0, 30.0], step_s=60))
    assert fired(evaluate(codes=["D1"])) == set()


def test_d1_ignores_the_rise_before_its_window(pg):
    # steep rise 40–31 min ago, flat since: the rise fired; at now only the flat
    # part is in the 30-min window, so the slope recorded at now is 0
    steep = [(NOW - timedelta(minutes=40 - i), 10.0 + i) for i in range(10)]
    flat = series([20.0] * 30, step_s=60)
    put(pg, CHILLER, "water_temp_out", steep + flat)
    assert fired(evaluate(codes=["D1"])) == {("D1", CHILLER)}
    value, points, last_ts = _recorded(pg, "D1", CHILLER)
    assert (abs(value), points, last_ts) == (0.0, 30, NOW)
    (started, ended, status, resolution), = _episode(pg, "D1", CHILLER)
    # the first reading whose window holds readings spread over 15 min (half the window): 25 min ago
    assert started == NOW - timedelta(minutes=25)
    assert (status, resolution) == ("closed", "condition_cleared") and ended < NOW
