"""Issue 10 on the real PostgreSQL: no event missed (short, late, back-filled), alerts that clear
with hysteresis, pending periods, silent and stuck sensors, silences, dismissal, overrides, one
failing policy, and the backtest equal to the live engine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db.session import session_scope
from engine import alerts, overrides, silences, workorders
from engine.backtest import backtest
from tests.engine.helpers import NOW, evaluate, fired, ids, put, series

HVAC, CHILLER, ELEVATOR = "CAS-S1-HVAC_1", "CAS-S1-CHILLER_1", "CAS-S1-ELEVATOR_1"
R5 = ["R5"]


def episodes(pg, code: str, asset: str | None = None) -> list[tuple]:
    return pg.execute(
        "SELECT a.started_at, a.ended_at, a.status, a.resolution, a.peak FROM alerts a "
        "JOIN policies p ON p.id = a.policy_id JOIN assets x ON x.id = a.asset_id "
        "WHERE p.code = %s AND (%s::text IS NULL OR x.code = %s) ORDER BY a.id", (code, asset, asset)).fetchall()


def wo_status(pg) -> list[str]:
    return [r[0] for r in pg.execute("SELECT status FROM work_orders ORDER BY id")]


# --- no event missed ------------------------------------------------------------------------------

def test_a_short_overheat_that_ended_before_the_run_fires_and_clears(pg):
    # 5 readings > 80 °C (50 s), then 5 at 70 °C: at the run, the last five are cool
    put(pg, ELEVATOR, "motor_temp", series([85.0, 86.0, 88.0, 86.0, 85.0, 70.0, 70.0, 70.0, 70.0, 70.0]))
    result = evaluate(codes=R5)
    assert fired(result) == {("R5", ELEVATOR)} and len(result.cleared) == 1
    assert episodes(pg, "R5") == [(NOW - timedelta(seconds=50), NOW, "closed", "condition_cleared", 85.0)]
    # the work order is not discarded: it waits for the technician, with a word in its history
    assert wo_status(pg) == ["open"]
    comment = pg.execute("SELECT comment FROM audit_trail WHERE entity = 'work_order' AND action = 'condition_cleared'"
                         ).fetchone()[0]
    assert comment.startswith(f"condition cleared at {NOW:%Y-%m-%d %H:%M:%S} UTC")


def test_a_streak_back_filled_after_an_outage_fires_with_its_own_times(pg):
    # the gateway sends fresh readings first, then its buffer of the outage (the overheat)
    put(pg, ELEVATOR, "motor_temp", series([60.0] * 6, end=NOW))
    assert evaluate(codes=R5).fired == []
    outage = series([90.0] * 5 + [60.0] * 5, end=NOW - timedelta(minutes=5))
    put(pg, ELEVATOR, "motor_temp", outage)
    result = evaluate(NOW + timedelta(seconds=30), codes=R5)
    assert fired(result) == {("R5", ELEVATOR)}
    started = NOW - timedelta(minutes=5, seconds=50)
    assert episodes(pg, "R5")[0][:2] == (started, NOW - timedelta(minutes=5))  # cleared at 60 °C x 5


def test_a_run_evaluates_only_what_arrived_since_the_previous_one(pg):
    put(pg, HVAC, "temp_supply_air", series([15.0] * 30))
    first = evaluate()
    put(pg, HVAC, "temp_supply_air", series([15.0] * 6, end=NOW + timedelta(minutes=1)))
    second = evaluate(NOW + timedelta(minutes=1))
    # R1 evaluates each reading of the HVAC's supply air; F1 (stuck sensor) its newest; N1 looks at
    # each reporting asset once
    assert (first.readings, second.readings) == (30 + 1 + 1, 6 + 1 + 1)
    assert evaluate(NOW + timedelta(minutes=1)).readings == 1  # nothing new: only N1's look


def test_readings_stamped_after_now_wait_for_a_later_run(pg):
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=NOW + timedelta(seconds=60)))
    assert evaluate(codes=R5).fired == []
    assert fired(evaluate(NOW + timedelta(seconds=60))) >= {("R5", ELEVATOR)}


# --- lifecycle: hysteresis, counters, pending ------------------------------------------------------

def test_r1_clears_only_at_or_below_19_5_not_just_below_20(pg):
    put(pg, HVAC, "temp_supply_air", series([21.0] * 90))
    evaluate(codes=["R1"])
    later = NOW + timedelta(minutes=20)
    put(pg, HVAC, "temp_supply_air", series([19.8] * 120, end=later))  # below 20, above 19.5
    assert evaluate(later, codes=["R1"]).cleared == []
    assert episodes(pg, "R1")[0][2] == "open"
    latest = NOW + timedelta(minutes=40)
    put(pg, HVAC, "temp_supply_air", series([19.0] * 120, end=latest))
    assert len(evaluate(latest, codes=["R1"]).cleared) == 1
    (_, ended, status, resolution, peak), = episodes(pg, "R1")
    assert (status, resolution, peak) == ("closed", "condition_cleared", 21.0)
    assert later < ended <= latest


def test_r4_never_clears_by_itself_only_its_work_order_done(pg):
    put(pg, CHILLER, "run_hours", series([600.0]))
    wo = evaluate(codes=["R4"]).fired[0]["work_order_id"]
    put(pg, CHILLER, "run_hours", series([601.0, 602.0], end=NOW + timedelta(minutes=1)))
    assert evaluate(NOW + timedelta(minutes=1), codes=["R4"]).cleared == []
    for to in ("in_progress", "done"):
        with session_scope() as s:
            workorders.transition(s, workorder_id=wo, to_status=to, actor="tech", now=NOW + timedelta(minutes=2))
    assert episodes(pg, "R4")[0][2:4] == ("closed", "work_order_done")
    put(pg, CHILLER, "run_hours", series([603.0], end=NOW + timedelta(minutes=3)))
    assert evaluate(NOW + timedelta(minutes=3), codes=["R4"]).fired == []  # counter reset: 1 h since


def test_a_pending_period_opens_only_after_the_condition_held_that_long(pg):
    pg.execute("UPDATE policies SET for_minutes = 2 WHERE code = 'R5'")
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 10))  # firing from the 5th reading, -50 s
    assert evaluate(codes=R5).fired == []
    later = NOW + timedelta(seconds=80)
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 8, end=later))
    result = evaluate(later, codes=R5)
    assert fired(result) == {("R5", ELEVATOR)}
    # the episode starts where the condition began (-50 s): it opened at +70 s, 2 min later
    assert episodes(pg, "R5")[0][0] == NOW - timedelta(seconds=50)


def test_a_pending_period_broken_by_one_cool_reading_starts_again(pg):
    pg.execute("UPDATE policies SET for_minutes = 2 WHERE code = 'R5'")
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 10 + [78.0] + [90.0] * 10))
    assert evaluate(codes=R5).fired == []  # two streaks of under 2 minutes


# --- silent and stuck sensors ----------------------------------------------------------------------

def test_n1_a_silent_metric_opens_a_low_alert_and_data_clears_it(pg):
    put(pg, CHILLER, "water_temp_out", series([7.0, 7.2]))
    put(pg, CHILLER, "run_hours", series([10.0]))
    evaluate(NOW)
    later = NOW + timedelta(minutes=10)
    put(pg, CHILLER, "run_hours", series([10.1], end=later))  # water_temp_out silent for 10 min
    result = evaluate(later)
    assert ("N1", CHILLER) in fired(result)
    assert result.fired[[f["policy_code"] for f in result.fired].index("N1")]["severity"] == "low"
    with session_scope() as s:
        from db.queries import asset_statuses

        assert {a["code"]: a["status"] for a in asset_statuses(s, now=later)}[CHILLER] == "no_data"
    latest = later + timedelta(minutes=1)
    put(pg, CHILLER, "water_temp_out", series([7.1], end=latest))
    put(pg, CHILLER, "run_hours", series([10.2], end=latest))
    assert len([c for c in evaluate(latest).cleared]) == 1
    assert episodes(pg, "N1", CHILLER)[0][2:4] == ("closed", "condition_cleared")


def test_f1_a_stuck_sensor_over_30_minutes_fires_and_moving_data_clears_it(pg):
    put(pg, ELEVATOR, "motor_temp", series([55.0] * 25, step_s=75))  # 30 min flat, 25 readings
    assert ("F1", ELEVATOR) in fired(evaluate())
    later = NOW + timedelta(minutes=2)
    put(pg, ELEVATOR, "motor_temp", series([55.5], end=later))
    assert len(evaluate(later).cleared) == 1


def test_f1_does_not_fire_on_ten_equal_readings_of_a_sensor_that_just_started(pg):
    put(pg, ELEVATOR, "motor_temp", series([55.0] * 12))  # 2 minutes of data
    assert ("F1", ELEVATOR) not in fired(evaluate())


# --- silences, dismissal, overrides ------------------------------------------------------------------

def test_a_silence_holds_alerts_back_and_a_condition_still_true_fires_when_it_ends(pg):
    with session_scope() as s:
        silences.create(s, asset_code=ELEVATOR, starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(minutes=2),
                        reason="maintenance en cours", actor="amina", now=NOW - timedelta(hours=1))
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    result = evaluate(codes=R5)
    assert result.fired == [] and result.silenced == 1
    assert episodes(pg, "R5") == [] and wo_status(pg) == []
    after = NOW + timedelta(minutes=3)
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5, end=after))
    assert fired(evaluate(after, codes=R5)) == {("R5", ELEVATOR)}
    assert episodes(pg, "R5")[0][0] >= NOW + timedelta(minutes=2)


def test_a_silence_of_another_site_or_policy_changes_nothing(pg):
    with session_scope() as s:
        silences.create(s, site_code="CAS-S2", starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=1),
                        reason="maintenance", actor="amina", now=NOW - timedelta(hours=1))
        silences.create(s, asset_code=ELEVATOR, policy_code="R6", starts_at=NOW - timedelta(hours=1),
                        ends_at=NOW + timedelta(hours=1), reason="portes", actor="amina", now=NOW - timedelta(hours=1))
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    assert fired(evaluate(codes=R5)) == {("R5", ELEVATOR)}


def test_an_alert_open_before_a_silence_stays_open(pg):
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    evaluate(codes=R5)
    with session_scope() as s:
        silences.create(s, asset_code=ELEVATOR, starts_at=NOW, ends_at=NOW + timedelta(hours=2),
                        reason="maintenance", actor="amina", now=NOW)
    put(pg, ELEVATOR, "motor_temp", series([91.0] * 5, end=NOW + timedelta(minutes=1)))
    evaluate(NOW + timedelta(minutes=1), codes=R5)
    assert [e[2] for e in episodes(pg, "R5")] == ["open"]


def test_dismissing_cancels_the_order_and_silences_the_policy_on_that_asset(pg):
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    alert_id = evaluate(codes=R5).fired[0]["alert_id"]
    with session_scope() as s:
        alerts.dismiss(s, alert_id=alert_id, actor="amina", reason="sonde débranchée", now=NOW, silence_minutes=30)
    assert episodes(pg, "R5")[0][2:4] == ("closed", "dismissed") and wo_status(pg) == ["cancelled"]
    soon = NOW + timedelta(minutes=1)
    put(pg, ELEVATOR, "motor_temp", series([92.0] * 5, end=soon))
    assert evaluate(soon, codes=R5).fired == []  # silenced
    after = NOW + timedelta(minutes=31)
    put(pg, ELEVATOR, "motor_temp", series([92.0] * 5, end=after))
    assert fired(evaluate(after, codes=R5)) == {("R5", ELEVATOR)}
    actions = [r[0] for r in pg.execute("SELECT action FROM audit_trail WHERE entity = 'work_order' ORDER BY id")]
    assert "cancelled" in actions


def test_a_dismissal_needs_a_reason_and_changes_nothing_without(pg):
    from db.errors import InvalidInput

    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    alert_id = evaluate(codes=R5).fired[0]["alert_id"]
    with pytest.raises(InvalidInput), session_scope() as s:
        alerts.dismiss(s, alert_id=alert_id, actor="amina", reason="  ", now=NOW)
    assert episodes(pg, "R5")[0][2] == "open" and wo_status(pg) == ["open"]


def test_an_override_tunes_one_asset_only(pg):
    other = "CAS-S2-ELEVATOR_1"
    with session_scope() as s:
        aid = ids(pg, ELEVATOR, "motor_temp")[0]
        eff = overrides.set_override(s, asset_id=aid, code="R5", threshold=95, actor="amina", now=NOW)
    assert (eff["threshold"], eff["policy_threshold"]) == (95, 80)
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    put(pg, other, "motor_temp", series([90.0] * 5))
    assert fired(evaluate(codes=R5)) == {("R5", other)}


def test_an_override_can_disable_a_policy_for_one_asset(pg):
    with session_scope() as s:
        overrides.set_override(s, asset_id=ids(pg, ELEVATOR, "motor_temp")[0], code="R5", enabled=False,
                               actor="amina", now=NOW)
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    assert evaluate(codes=R5).fired == []


def test_overrides_in_the_policy_file_are_loaded_and_replaced(pg, tmp_path):
    from db.seed import POLICY_FILE, seed
    from db.session import get_engine

    text_ = POLICY_FILE.read_text(encoding="utf-8").replace(
        "overrides: {}", "overrides:\n  CAS-S1-ELEVATOR_1:\n    R5: {threshold: 85}\n")
    path = tmp_path / "policies.yaml"
    path.write_text(text_, encoding="utf-8")
    with get_engine().begin() as conn:
        seed(conn, policy_file=path)
    assert pg.execute("SELECT threshold, source FROM policy_overrides").fetchall() == [(85.0, "file")]
    with get_engine().begin() as conn:
        seed(conn)  # the file without it: the file's override goes
    assert pg.execute("SELECT count(*) FROM policy_overrides").fetchone()[0] == 0


# --- one failing policy ------------------------------------------------------------------------------

def test_one_failing_policy_is_counted_and_the_others_run(pg, monkeypatch):
    import engine.evaluate as ev

    real = ev.statement

    def broken_for_r3(policy, **kw):  # R3's statement fails in PostgreSQL, the others are real
        return "SELECT 1/0" if policy.code == "R3" else real(policy, **kw)

    monkeypatch.setattr(ev, "statement", broken_for_r3)
    put(pg, ELEVATOR, "motor_temp", series([90.0] * 5))
    put(pg, CHILLER, "water_temp_out", series([20.0] * 5))
    result = evaluate()
    assert ("R5", ELEVATOR) in fired(result) and ("R3", CHILLER) not in fired(result)
    assert list(result.failed) == ["R3"] and "DivisionByZero" in result.failed["R3"]
    assert result.policies == 8
    assert pg.execute("SELECT failed, errors ? 'R3' FROM rule_runs").fetchone() == (1, True)


# --- backtest = live engine --------------------------------------------------------------------------

def _stream(minutes: int = 120) -> list:
    """A supply-air curve with two excursions above 20 °C (one short), every 10 s."""
    out = []
    for i in range(minutes * 6):
        m = i / 6
        v = 16.0 + (8.0 if 20 <= m < 45 else 0.0) + (40.0 if 70 <= m < 74 else 0.0) + (i % 7) * 0.1
        out.append((NOW - timedelta(minutes=minutes) + timedelta(seconds=10 * i), v))
    return out


def test_the_backtest_equals_the_live_engine_over_the_same_stream(pg):
    data = _stream()
    # live: delivered in 1-minute batches, a full run after each
    for start in range(0, len(data), 6):
        batch = data[start:start + 6]
        put(pg, HVAC, "temp_supply_air", batch)
        evaluate(batch[-1][0])
    live = [(s, e, round(p, 9)) for s, e, _, _, p in episodes(pg, "R1", HVAC)]
    assert len(live) == 2
    with session_scope() as s:
        bt = backtest(s, code="R1", start=data[0][0], end=data[-1][0], asset_code=HVAC)
    assert [(f["start"], f["end"], round(f["peak"], 9)) for f in bt["firings"]] == live
    assert (bt["alerts"], bt["work_orders"]) == (2, 2)


def test_a_backtest_with_another_threshold_says_what_it_would_have_fired(pg):
    put(pg, HVAC, "temp_supply_air", _stream())
    with session_scope() as s:
        strict = backtest(s, code="R1", start=NOW - timedelta(hours=2), end=NOW, threshold=25)
        lax = backtest(s, code="R1", start=NOW - timedelta(hours=2), end=NOW, threshold=17, clear_threshold=16.5)
    assert strict["alerts"] == 1  # only the short 56 °C excursion averages above 25
    assert lax["alerts"] >= 1 and lax["firings"][0]["start"] < strict["firings"][0]["start"]
    assert pg.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0  # a backtest writes nothing


def test_backtest_refuses_bad_parameters_naming_the_field(pg):
    from db.errors import InvalidInput, NotFound

    with session_scope() as s:
        with pytest.raises(InvalidInput) as e:
            backtest(s, code="R1", start=NOW, end=NOW - timedelta(hours=1))
        assert e.value.field == "to"
        with pytest.raises(InvalidInput) as e:
            backtest(s, code="R1", start=NOW - timedelta(hours=1), end=NOW, consecutive_points=3)
        assert e.value.field == "consecutive_points"
        with pytest.raises(InvalidInput) as e:
            backtest(s, code="R1", start=NOW - timedelta(hours=1), end=NOW, asset_code=ELEVATOR)
        assert e.value.field == "asset_code"
        with pytest.raises(InvalidInput) as e:  # no_data's window is its threshold: a what-if it would not use
            backtest(s, code="N1", start=NOW - timedelta(hours=1), end=NOW, window_minutes=30)
        assert e.value.field == "window_minutes"
        with pytest.raises(NotFound):
            backtest(s, code="R9", start=NOW - timedelta(hours=1), end=NOW)


def test_backtest_of_n1_finds_the_gaps(pg):
    put(pg, CHILLER, "water_temp_out", series([7.0] * 6, end=NOW - timedelta(minutes=30)) + series([7.0] * 6))
    with session_scope() as s:
        bt = backtest(s, code="N1", start=NOW - timedelta(hours=1), end=NOW, asset_code=CHILLER)
    (f,) = bt["firings"]
    gap_start = NOW - timedelta(minutes=30)
    assert (f["start"], f["end"]) == (gap_start + timedelta(minutes=10), NOW - timedelta(seconds=50))
    assert abs(f["peak"] - (30 - 50 / 60)) < 1e-9
