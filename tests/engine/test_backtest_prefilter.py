"""The backtest skips what cannot fire (engine/backtest.py `_ISLANDS`) and still answers exactly
what a sweep of every reading answers: same firings (start, end, peak), whatever the roll-up
knows (complete, missing, dirty after late data, not rolled up yet), with overrides, what-if
parameters, a pending period and the other direction of condition."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from db.session import session_scope
from engine import overrides
from engine.backtest import backtest, islands
from engine.maintenance import compact_day, ensure_day_partitions, merge_late
from engine.rollup import roll_up
from tests.conftest import insert_points
from tests.engine.helpers import NOW, evaluate, ids

HVAC, HVAC_2 = "CAS-S1-HVAC_1", "CAS-S2-HVAC_1"
START = NOW - timedelta(hours=12)


def wave(pg, code: str, *, start: datetime = START, hours: float = 12, step_s: int = 30,
         bumps: tuple = (), gaps: tuple = (), base: float = 16.0) -> None:
    """temp_supply_air of one HVAC unit: a calm wave around `base`, and bumps (minute offset,
    minutes, level) where the readings ramp to `level`; no readings in the gaps (minute offset,
    minutes)."""
    aid, mid = ids(pg, code, "temp_supply_air")
    points = []
    for i in range(int(hours * 3600 / step_s)):
        ts = start + timedelta(seconds=i * step_s)
        minute = i * step_s / 60
        if any(g <= minute < g + n for g, n in gaps):
            continue
        v = base + 0.8 * math.sin(i / 40) + 0.05 * ((i * 7919) % 13) / 13
        for at, n, level in bumps:
            if at <= minute < at + n:
                ramp = min(1.0, (minute - at + 0.5) / 4, (at + n - minute) / 4)
                v += (level - v) * ramp
        points.append((aid, mid, ts, round(v, 2)))
    with pg.transaction():
        insert_points(pg, points)


def rolled(until: datetime = NOW + timedelta(hours=1)) -> None:
    """The maintenance job's roll-up: every complete hour before `until`, the dirty ones included."""
    with session_scope() as s:
        roll_up(s, now=until, since=START - timedelta(days=1))


def compacted() -> None:
    """The maintenance job's compaction: the readings of those (past) days into the cold tier."""
    day = START.replace(hour=0, minute=0, second=0, microsecond=0)
    with session_scope() as s:
        # the readings sit in the day's partition when an earlier test created it, else in
        # telemetry_late: compact whichever holds them
        if s.execute(text("SELECT to_regclass(:n)"), {"n": f"telemetry_p{day:%Y%m%d}"}).scalar() is not None:
            compact_day(s, day=day)
        merge_late(s, before=NOW + timedelta(days=1))


def both(**kw) -> dict:
    """The backtest of R1, prefiltered and as a full sweep: they must agree exactly."""
    kw = {"code": "R1", "start": START, "end": NOW, **kw}
    with session_scope() as s:
        fast = backtest(s, **kw)
    with session_scope() as s:
        full = backtest(s, full_sweep=True, **kw)
    assert fast == full
    return fast


def evaluated_hours(**kw) -> float:
    with session_scope() as s:
        got = islands(s, **{"code": "R1", "start": START, "end": NOW, **kw})
    return sum((hi - lo).total_seconds() for _, _, lo, hi in got) / 3600


def test_only_the_hours_around_an_excursion_are_evaluated_and_the_firing_is_the_same(pg):
    wave(pg, HVAC, bumps=((200, 25, 22.5),))  # 25 min up to 22.5 °C, 3 h 20 after START
    wave(pg, HVAC_2)
    rolled()
    b = both()
    assert [(f["asset_code"], round(f["peak"], 2)) for f in b["firings"]] == [(HVAC, 22.5)]
    assert b["firings"][0]["end"] is not None
    # the excursion's hour(s) and the way to the clear, not the 12 h of both units
    assert 0 < evaluated_hours() <= 3.5


def test_without_a_roll_up_everything_is_evaluated_and_the_firings_are_the_same(pg):
    wave(pg, HVAC, bumps=((100, 30, 21.0), (400, 25, 23.0)))
    assert len(both()["firings"]) == 2
    assert evaluated_hours() >= 12  # nothing vouched for: the unit's 12 h (the other has no readings)


def test_late_readings_make_their_hours_dirty_until_the_roll_up_sees_them(pg):
    wave(pg, HVAC, gaps=((300, 60),))
    wave(pg, HVAC_2)
    rolled()
    assert both()["firings"] == []
    # a back-fill of the gap, with an overheat: its hours are dirty, evaluated, and it fires
    aid, mid = ids(pg, HVAC, "temp_supply_air")
    late = [(aid, mid, START + timedelta(minutes=300, seconds=30 * i), 24.0) for i in range(60)]
    with pg.transaction():
        insert_points(pg, late)
    assert pg.execute("SELECT count(*) FROM telemetry_dirty_hours").fetchone()[0] > 0
    dirty = both()
    assert [f["asset_code"] for f in dirty["firings"]] == [HVAC]
    rolled()  # the roll-up consumes the dirty hours: now it vouches for them, same answer
    assert pg.execute("SELECT count(*) FROM telemetry_dirty_hours").fetchone()[0] == 0
    assert both() == dirty


def test_days_in_the_cold_tier_and_late_readings_beside_them(pg):
    _test_days_in_the_cold_tier(pg, with_partition=False)


def test_days_in_the_cold_tier_from_a_day_partition(pg):
    """Same, with the readings in the day's hot partition (created ahead by the maintenance job)."""
    _test_days_in_the_cold_tier(pg, with_partition=True)


def _test_days_in_the_cold_tier(pg, *, with_partition: bool):
    day = START.replace(hour=0, minute=0, second=0, microsecond=0)
    with session_scope() as s:
        if with_partition:
            ensure_day_partitions(s, start=day, end=day + timedelta(days=1))
        else:
            s.execute(text(f"DROP TABLE IF EXISTS telemetry_p{day:%Y%m%d}"))
    wave(pg, HVAC, bumps=((200, 25, 22.5), (420, 30, 21.0)))
    wave(pg, HVAC_2, bumps=((330, 50, 20.8),), step_s=10)
    compacted()
    assert pg.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 0
    rolled()
    cold = both()
    assert len(cold["firings"]) == 3
    assert evaluated_hours() < 8  # of 24 unit-hours
    # a back-fill of that (compacted) day stays hot beside the cold row until the next pass
    aid, mid = ids(pg, HVAC_2, "temp_supply_air")
    with pg.transaction():
        insert_points(pg, [(aid, mid, START + timedelta(minutes=100, seconds=5 + 10 * i), 30.0) for i in range(150)])
    rolled()
    assert len(both()["firings"]) == 4


def test_hours_before_a_unit_s_first_reading_are_not_evaluated(pg):
    wave(pg, HVAC, start=START + timedelta(hours=3), hours=9, bumps=((60, 30, 22.0),))  # commissioned at 03:00
    rolled()
    hot = both()
    assert [f["asset_code"] for f in hot["firings"]] == [HVAC]
    with session_scope() as s:
        assert all(lo >= START + timedelta(hours=4) for _, _, lo, _ in islands(s, code="R1", start=START, end=NOW))
    compacted()
    assert both() == hot
    with session_scope() as s:
        assert all(lo >= START + timedelta(hours=4) for _, _, lo, _ in islands(s, code="R1", start=START, end=NOW))


def test_hours_not_rolled_up_yet_are_evaluated(pg):
    wave(pg, HVAC, bumps=((650, 20, 22.0),))  # in the last hours, after the roll-up's watermark
    rolled(until=NOW - timedelta(hours=2))
    assert [f["asset_code"] for f in both()["firings"]] == [HVAC]


def test_overrides_and_what_if_parameters(pg):
    wave(pg, HVAC, bumps=((100, 30, 19.8), (300, 20, 20.6), (500, 40, 21.4)))
    wave(pg, HVAC_2, bumps=((100, 30, 19.8), (300, 20, 20.6), (500, 40, 21.4)))
    rolled()
    with session_scope() as s:  # HVAC_2 fires at 19.5 and clears at 19 only; HVAC at 21
        overrides.set_override(s, asset_id=ids(pg, HVAC_2, "temp_supply_air")[0], code="R1", actor="t", now=NOW,
                               threshold=19.5, clear_threshold=19.0)
        overrides.set_override(s, asset_id=ids(pg, HVAC, "temp_supply_air")[0], code="R1", actor="t", now=NOW,
                               threshold=21.0)
    by_asset = {}
    for f in both()["firings"]:
        by_asset.setdefault(f["asset_code"], []).append(f)
    assert len(by_asset[HVAC]) == 1 and len(by_asset[HVAC_2]) == 3
    # what-ifs replace every asset's threshold (the same bumps on both units)
    assert {f["asset_code"] for f in both(threshold=20.0)["firings"]} == {HVAC, HVAC_2}
    assert len(both(threshold=19.7, clear_threshold=18.0)["firings"]) >= 2
    assert len(both(threshold=18.5, window_minutes=60)["firings"]) >= 1
    assert both(threshold=30)["firings"] == []
    assert [f["asset_code"] for f in both(asset_code=HVAC)["firings"]] == [HVAC]


def test_a_value_equal_to_the_threshold_is_not_lost_to_rounding(pg):
    # the statement averages integer millionths: 19.9999996 counts as 20.000000, above a threshold
    # of 19.9999998 that no reading reaches; the hour's max (below it) must not rule them out
    aid, mid = ids(pg, HVAC, "temp_supply_air")
    points = [(aid, mid, START + timedelta(seconds=20 * i), 19.9999996 if 1000 <= i < 1200 else 15.0)
              for i in range(2000)]
    with pg.transaction():
        insert_points(pg, points)
    rolled()
    b = both(threshold=19.9999998, clear_threshold=19.0)
    assert [f["asset_code"] for f in b["firings"]] == [HVAC], "the sweep sees 20.0 > 19.9999998"


def test_a_pending_period_and_a_low_threshold_rule(pg):
    wave(pg, HVAC, bumps=((100, 12, 22.0), (200, 40, 22.0), (500, 25, 21.0)))
    wave(pg, HVAC_2, base=12.0, bumps=((300, 30, 8.0),))
    rolled()
    try:
        pg.execute("UPDATE policies SET for_minutes = 20 WHERE code = 'R1'")
        pending = both()
        assert pending["firings"] and {f["asset_code"] for f in pending["firings"]} == {HVAC}
        assert all(f["start"] > START + timedelta(minutes=190) for f in pending["firings"])  # not the 12-min bump
        # the mirror rule: fires when the average falls below 10, clears at or above 11
        pg.execute("UPDATE policies SET for_minutes = 0, condition = '<', threshold = 10, clear_condition = '>=', "
                   "clear_threshold = 11 WHERE code = 'R1'")
        low = both()
        assert [f["asset_code"] for f in low["firings"]] == [HVAC_2]
        assert evaluated_hours() < 12
    finally:
        pg.execute("UPDATE policies SET for_minutes = 0, condition = '>', threshold = 20, clear_condition = '<=', "
                   "clear_threshold = 19.5 WHERE code = 'R1'")


def test_the_live_engine_and_the_prefiltered_backtest_agree(pg):
    wave(pg, HVAC, bumps=((200, 25, 22.5), (420, 30, 21.0)))
    wave(pg, HVAC_2, bumps=((330, 50, 20.8),))
    rolled()
    evaluate(NOW, codes=["R1"])  # the live engine over the same stored readings
    live = sorted(pg.execute(
        "SELECT a.code, al.started_at, CASE WHEN al.resolution = 'condition_cleared' THEN al.ended_at END, al.peak "
        "FROM alerts al JOIN assets a ON a.id = al.asset_id").fetchall())
    b = both()
    assert len(live) == 3
    assert live == sorted((f["asset_code"], f["start"], f["end"], f["peak"]) for f in b["firings"])


# --- random histories ----------------------------------------------------------------------------

bumps = st.lists(st.tuples(st.integers(0, 700), st.integers(1, 80),
                           st.sampled_from([19.4, 19.6, 20.0, 20.01, 20.3, 21.5, 25.0])), max_size=4)
gaps = st.lists(st.tuples(st.integers(0, 700), st.integers(5, 150)), max_size=2)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=bumps, second=bumps, holes=gaps, step_s=st.sampled_from([10, 30, 90]),
    roll=st.sampled_from(["complete", "none", "until", "late"]), cold=st.booleans(), from_min=st.integers(0, 200),
    to_min=st.integers(500, 720), threshold=st.sampled_from([None, 19.5, 20.0, 21.0]),
    clear=st.sampled_from([None, 18.0, 19.95]), window=st.sampled_from([None, 1, 5, 60, 100]),
    override=st.sampled_from([None, 19.0, 22.0]),
)
def test_random_histories_prefiltered_equals_full_sweep(pg, first, second, holes, step_s, roll, cold, from_min,
                                                        to_min, threshold, clear, window, override):
    _reset(pg)
    wave(pg, HVAC, bumps=tuple(first), gaps=tuple(holes), step_s=step_s)
    wave(pg, HVAC_2, bumps=tuple(second), step_s=step_s, start=START + timedelta(seconds=7))
    if cold:
        compacted()
    if roll == "complete":
        rolled()
    elif roll == "until":
        rolled(until=START + timedelta(hours=6))
    elif roll == "late":  # rolled up, then a back-fill into an old hour
        rolled()
        aid, mid = ids(pg, HVAC_2, "temp_supply_air")
        with pg.transaction():
            insert_points(pg, [(aid, mid, START + timedelta(minutes=250, seconds=3 + 20 * i), 22.0) for i in range(30)])
    if override is not None:
        with session_scope() as s:
            overrides.set_override(s, asset_id=ids(pg, HVAC, "temp_supply_air")[0], code="R1", actor="t", now=NOW,
                                   threshold=override)
    both(start=START + timedelta(minutes=from_min), end=START + timedelta(minutes=to_min), threshold=threshold,
         clear_threshold=clear, window_minutes=window)


def _reset(pg: psycopg.Connection) -> None:
    pg.execute("TRUNCATE telemetry, telemetry_cold, telemetry_hourly, telemetry_dirty_hours, telemetry_arrivals, "
               "telemetry_latest, maintenance_state, policy_overrides, audit_trail")
