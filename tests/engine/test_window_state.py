"""Windowed rules (threshold avg, rate_of_change) keep their window's exact sums at the last
reading they evaluated (policy_evaluations.win_*): the next run adds what arrived and takes away
what left the window. Consecutive rules keep the values of their last N - 1 readings
(win_values): the next run puts them before what arrived instead of looking them up. The sums,
values and alerts must be exactly those of a run that reads everything again — on arbitrary (not
binary-exact) values, late readings and sharded runs included."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from tests.conftest import MUTABLE_TABLES
from tests.engine.helpers import NOW, evaluate, put

START = NOW - timedelta(hours=2)
CASES = {"R1": ("CAS-S1-HVAC_1", "temp_supply_air", 15.0, 8.0), "D1": ("CAS-S1-CHILLER_1", "water_temp_out", 7.0, 6.0),
         "R2": ("CAS-S1-HVAC_1", "vibration_level", 5.0, 4.0)}
STATE = {"R1": (900, None), "D1": (1800, None), "R2": (None, 4)}  # win_seconds; consecutive: N - 1 values


def _stream(rnd: random.Random, base: float, amp: float) -> list[tuple[int, float]]:
    """Irregular readings (1-90 s apart) with values that are not exact in binary."""
    rows, t = [], 0
    while t < 2 * 3600 - 100:
        t += rnd.randint(1, 90)
        rows.append((t, round(base + amp * rnd.random() + rnd.choice([0.1, 0.3, 0.7]), 3)))
    return rows


def _state(pg, code: str):
    return pg.execute(
        "SELECT e.last_ts, e.value, e.points, e.win_seconds, e.win_n, e.win_sums, e.firing, e.win_values "
        "FROM policy_evaluations e "
        "JOIN policies p ON p.id = e.policy_id WHERE p.code = %s", (code,)).fetchall()


def _without_half(state):
    """The state without the slope's last stored sum (`half`, epoch microseconds), and that sum."""
    (row,) = state
    sums = row[5]
    return [(*row[:5], sums[:-1], *row[6:])], sums[-1]


def _assert_half_witness(rows, state, half, exact_half) -> None:
    """`half` (a run in batches) stands for the newest reading at least half a window old before
    the last reading (`exact_half`, one run over everything): it may be an older reading, but it
    must be one, and answer the slope's spread test at the last reading as the newest one does."""
    last_us = int(state[0][0].timestamp() * 1_000_000)
    times = {int((START + timedelta(seconds=t)).timestamp() * 1_000_000) for t, _ in rows}
    assert int(half) in times and int(exact_half) in times
    assert half <= exact_half <= last_us - STATE["D1"][0] * 1_000_000 // 2
    assert (half > last_us - STATE["D1"][0] * 1_000_000) == (exact_half > last_us - STATE["D1"][0] * 1_000_000)


def _without_bound(state, rows):
    """R1's state without its stored bound (win_values[1]), checked to be at least the highest
    value of the window (15 min) at the stored reading."""
    (row,) = state
    last = (row[0] - START).total_seconds()
    (bound,) = row[7]
    assert bound >= max(v for t, v in rows if last - 900 < t <= last)
    return [(*row[:7], None)]


def _alerts(pg, code: str):
    return pg.execute(
        "SELECT a.started_at, a.ended_at, a.peak FROM alerts a JOIN policies p ON p.id = a.policy_id "
        "WHERE p.code = %s ORDER BY a.started_at", (code,)).fetchall()


def _run_in_batches(pg, code: str, asset: str, metric: str, rows, cuts, *, start=START, wipe: str | None = None):
    """Deliver `rows` in batches cut at `cuts`, a run of every policy after each; the state of
    `code` after each run, and its alerts. With `wipe` (an UPDATE of policy_evaluations), the
    stored state is wiped before each run: each run reads everything again."""
    pg.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
    states = []
    for a, b in zip([0, *cuts], [*cuts, len(rows)]):
        put(pg, asset, metric, [(start + timedelta(seconds=s), v) for s, v in rows[a:b]])
        if wipe:
            pg.execute(wipe)
        evaluate(start + timedelta(seconds=rows[b - 1][0]), codes=None)
        states.append(_state(pg, code))
    return states, _alerts(pg, code)


def _used_incremental_then_full(pg, code: str, rows, cuts):
    """(state, alerts) after the stream delivered in batches (runs after each: incremental), then
    (state, alerts) after the same stream evaluated in one run with no stored sums (full)."""
    asset, metric, _, _ = CASES[code]
    (*_, incremental), inc_alerts = _run_in_batches(pg, code, asset, metric, rows, cuts)
    (full,), full_alerts = _run_in_batches(pg, code, asset, metric, rows, [])
    return (incremental, inc_alerts), (full, full_alerts)


def test_incremental_sums_equal_full_sums_on_arbitrary_values(pg):
    rnd = random.Random(7)
    for code, (_, _, base, amp) in CASES.items():
        rows = _stream(rnd, base, amp)
        cuts = sorted(rnd.sample(range(1, len(rows)), 25))
        (inc_state, inc_alerts), (full_state, full_alerts) = _used_incremental_then_full(pg, code, rows, cuts)
        if code == "D1":  # the slope's stored `half` is a witness: exact in the full run, maybe older after batches
            inc_state, inc_half = _without_half(inc_state)
            full_state, full_half = _without_half(full_state)
            _assert_half_witness(rows, inc_state, inc_half, full_half)
        if code == "R1":  # the average's stored bound: any bound of its window's values will do
            inc_state, full_state = _without_bound(inc_state, rows), _without_bound(full_state, rows)
        assert inc_state == full_state, code
        seconds, values = STATE[code]
        assert inc_state[0][4] is not None and inc_state[0][3] == seconds, code
        if values:  # the last N - 1 values as stored, oldest first
            assert inc_state[0][4] == values and inc_state[0][7] == [v for _, v in rows[-values:]]
        elif code != "R1":
            assert inc_state[0][7] is None
        assert inc_alerts == full_alerts, code
        assert inc_alerts, f"{code}: the stream should fire at least once (else this test proves little)"


def test_quiet_runs_of_an_average_equal_reading_everything(pg):
    """A run where the stored bound of R1's window and what arrived keep every average at or below
    20 takes only the newest reading (quiet). Batches that are mostly quiet, an excursion that
    fires (the bound then comes from the readings again) and returns below must give the sums,
    values and alerts of one run over everything."""
    rnd = random.Random(9)
    rows = _stream(rnd, 12.0, 6.0)  # 12.1 .. 18.7
    middle = len(rows) // 2
    hot = [i for i, (t, _) in enumerate(rows) if rows[middle][0] <= t < rows[middle][0] + 1200]
    for i in hot:  # 20 minutes at 23-26: the 15-min average passes 20
        rows[i] = (rows[i][0], round(23 + 3 * rnd.random(), 3))
    cuts = sorted(rnd.sample(range(1, len(rows)), 40))
    (inc_state, inc_alerts), (full_state, full_alerts) = _used_incremental_then_full(pg, "R1", rows, cuts)
    assert _without_bound(inc_state, rows) == _without_bound(full_state, rows)
    assert inc_alerts == full_alerts and len(inc_alerts) == 1 and inc_alerts[0][1] is not None  # fired, cleared
    (bound,) = inc_state[0][7]
    assert bound < 20  # the excursion left the window: the bound came down with it


def test_quiet_runs_of_a_consecutive_rule_equal_reading_everything(pg):
    """A run where no reading that arrived satisfies R2's condition (> 7) takes only the newest
    reading of the series (quiet: none can fire). Batches that are almost all quiet, a planted
    streak of 6 readings > 7 and a reading at 7 exactly must give the state and alerts of one run
    over everything."""
    rnd = random.Random(5)
    rows = _stream(rnd, 2.0, 4.0)  # 2.1 .. 6.7: below 7
    middle = len(rows) // 2
    rows[middle:middle + 6] = [(t, 7.5 + i / 10) for i, (t, _) in enumerate(rows[middle:middle + 6])]
    rows[middle + 20] = (rows[middle + 20][0], 7.0)  # at the threshold: not above it
    cuts = sorted(rnd.sample(range(1, len(rows)), 40))
    (inc_state, inc_alerts), (full_state, full_alerts) = _used_incremental_then_full(pg, "R2", rows, cuts)
    assert inc_state == full_state
    assert inc_state[0][7] == [v for _, v in rows[-4:]] and inc_state[0][6] is False
    assert inc_alerts == full_alerts and len(inc_alerts) == 1
    assert inc_alerts[0][2] == pytest.approx(7.6)  # peak: the worst 5 (7.6 .. 8.0) are all above 7.6


@pytest.mark.parametrize(("code", "back"), [("R1", 40), ("R2", 40), ("R2", 3)])
def test_late_reading_falls_back_to_reading_the_window(pg, code, back):
    """A reading older than the stored state's reading changes windows (or last N readings) the
    state already covers: the run reads them again (same result as if it had arrived in order).
    R2, 3 back: the late reading is among the last N - 1 values stored: they must be replaced."""
    rnd = random.Random(11)
    asset, metric, base, amp = CASES[code]
    rows = _stream(rnd, base, amp)
    late = rows.pop(len(rows) - back)  # arrives last, after newer readings were evaluated
    pg.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
    third = len(rows) // 3
    for a, b in zip([0, third, 2 * third], [third, 2 * third, len(rows)]):
        put(pg, asset, metric, [(START + timedelta(seconds=t), v) for t, v in rows[a:b]])
        evaluate(START + timedelta(seconds=rows[b - 1][0]))
    put(pg, asset, metric, [(START + timedelta(seconds=late[0]), late[1])])
    evaluate(START + timedelta(seconds=rows[-1][0] + 1))
    late_state = _state(pg, code)
    pg.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
    ordered = sorted([*rows, late])
    put(pg, asset, metric, [(START + timedelta(seconds=t), v) for t, v in ordered])
    evaluate(START + timedelta(seconds=rows[-1][0] + 1))
    in_order_state = _state(pg, code)
    # same sums and value at the same last reading (evaluated_at is the run's time: not compared)
    assert late_state == in_order_state


def test_sharded_run_equals_one_transaction(pg):
    """evaluate_sharded (the scheduler's run, RULES_SHARDS transactions) gives the same alerts
    and values as one evaluate_all over the same arrivals."""
    from db.session import session_scope
    from engine.evaluate import evaluate_all, evaluate_sharded

    rnd = random.Random(3)
    streams = {code: _stream(rnd, base, amp) for code, (_, _, base, amp) in CASES.items()}
    outcomes = []
    for run in ("one", "sharded"):
        pg.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
        for code, rows in streams.items():
            asset, metric, _, _ = CASES[code]
            put(pg, asset, metric, [(START + timedelta(seconds=t), v) for t, v in rows])
        now = START + timedelta(hours=2)
        if run == "one":
            with session_scope() as s:
                evaluate_all(s, now=now)
        else:
            result = evaluate_sharded(now=now, shards=2)
            assert result.failed == {} and result.assets == 2
        outcomes.append(({code: (_state(pg, code), _alerts(pg, code)) for code in CASES},
                         pg.execute("SELECT count(*), sum(readings) FROM rule_runs").fetchone()))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1][0] == 1  # one run record, not one per shard


def test_flat_line_buckets_equal_reading_the_whole_window(pg):
    """F1 (live) keeps its window's max, min, first reading and count by buckets of window / 6:
    run after run, the values, stored buckets and alerts must be those of runs that read the whole
    window every time (the state wiped before each run) — a sensor stuck for 50 minutes, noisy
    before and after, readings 1-90 s apart so the window's first bucket is usually partial."""
    rnd = random.Random(5)
    asset, metric = "CAS-S1-HVAC_1", "temp_supply_air"
    rows, t = [], 0
    while t < 2 * 3600 - 100:
        t += rnd.randint(1, 90)
        stuck = 40 * 60 <= t < 90 * 60
        rows.append((t, 15.123 if stuck else round(15 + 3 * rnd.random() + rnd.choice([0.1, 0.3, 0.7]), 3)))
    cuts = sorted({*rnd.sample(range(1, len(rows)), 30), next(i for i, (s, _) in enumerate(rows) if s >= 80 * 60)})
    inc_states, inc_alerts = _run_in_batches(pg, "F1", asset, metric, rows, cuts)
    full_states, full_alerts = _run_in_batches(pg, "F1", asset, metric, rows, cuts,
                                               wipe="UPDATE policy_evaluations SET win_values = NULL")
    assert [[r[:7] for r in st] for st in inc_states] == [[r[:7] for r in st] for st in full_states]
    for (inc,), (full,) in zip(inc_states, full_states):  # buckets stored by the run (the wipe removes
        assert full[7] is None or inc[7] == full[7]       # them from a row a quiet run leaves as it is)
    assert inc_alerts == full_alerts
    assert len(inc_alerts) == 1 and inc_alerts[0][1] is not None, "stuck, then cleared when it moved again"
    measured = [state for (state,) in full_states if state[7] is not None]
    quiet = [state for (state,) in inc_states if state[7] is None]  # recorded by a quiet run
    assert quiet and all(q[1] is None and q[6] is False for q in quiet)  # moving: not measured, not firing
    buckets = measured[-1][7]
    assert measured[-1][3:5] == (1800, 300) and 5 <= len(buckets) <= 6
    assert all(b[0] == buckets[0][0] for b in buckets)  # the metric, in every bucket
    assert sum(b[5] for b in buckets) <= measured[-1][2]  # whole buckets: part of the window's readings


def test_a_sensor_that_moves_is_not_measured_but_one_nearly_stuck_or_alerting_is(pg):
    """F1's quiet series: readings that arrived spreading wider than the threshold and its near
    margin (0.01 + 10 %) cannot be a stuck window; the run records them evaluated, not firing, the
    spread not measured — and, as for every row without state, far from firing and recorded less
    than 5 minutes ago, leaves the row as it is. Readings within the margin, a batch longer than
    the window, or a live alert (its clearing is measured) get the window's exact spread."""
    asset, metric = "CAS-S1-HVAC_1", "temp_supply_air"
    rows = [(10 * i, 15.0 + (i % 2) * 0.5) for i in range(1, 240)]  # moving by 0.5 every 10 s
    rows += [(10 * i, 15.0) for i in range(240, 460)]  # then stuck on 15.0 for 36 minutes
    rows += [(4600, 15.0111), (4610, 15.0)]  # a spread of 0.0111 (0.011 is the threshold's near margin)
    rows += [(4620, 15.5), (4630, 15.0)]  # moving again
    cuts = [190, 196, 230, 459, 461]
    from engine.evaluate import QUIET_REFRESH
    from tests.engine.helpers import ids

    aid, _ = ids(pg, asset, metric)  # the runs at 1,960 and 4,630 s are not in the asset's minute
    assert all((aid + int((START + timedelta(seconds=t)).timestamp()) // 60) % (QUIET_REFRESH // timedelta(minutes=1))
               for t in (1960, 4630)), "the test's times must move with the seed's asset ids"
    states, alerts = _run_in_batches(pg, "F1", asset, metric, rows, cuts)
    (first,), (soon,), (moving,), (stuck,), (margin,), (again,) = states
    assert first[1] == 0.5 and first[7] is not None  # the first batch spans more than the window: measured
    assert soon == first  # quiet, a minute after a far value was recorded: left as it is
    assert (moving[1], moving[2], moving[6], moving[7]) == (None, 34, False, None)  # 6 min later: recorded quiet
    assert moving[0] == START + timedelta(seconds=2300)  # evaluated at the newest reading
    assert stuck[1] == 0.0 and stuck[6] is True and len(alerts) == 1  # stuck: measured, firing
    assert margin[1] == pytest.approx(0.0111) and margin[6] is False and margin[7] is not None
    assert alerts[0][1] is not None  # cleared by the margin batch (a live alert is measured)
    assert again == margin  # moving, no alert, recorded 20 s before: left as it is
    ((whole,),), _ = _run_in_batches(pg, "F1", asset, metric, rows[:461], [])
    assert whole[1] == pytest.approx(0.0111)  # the same spread as one run over everything


def test_the_arrivals_carry_the_range_of_their_values_into_the_run(pg):
    """Each insert statement's arrival keeps its readings' smallest and largest value (migration
    0016); the run's range of an (asset, metric) has them for all it took — unless one of its
    arrivals reaches past the run's now (those readings wait), or one was written without them."""
    from sqlalchemy import text

    from db.session import session_scope
    from engine.evaluate import take_arrivals
    from tests.engine.helpers import ids

    asset, metric = "CAS-S1-HVAC_1", "temp_supply_air"
    aid, mid = ids(pg, asset, metric)
    put(pg, asset, metric, [(NOW - timedelta(seconds=30), 15.2), (NOW - timedelta(seconds=20), 14.9)])
    put(pg, asset, metric, [(NOW - timedelta(seconds=10), 15.4)])
    assert pg.execute("SELECT n, vmin, vmax FROM telemetry_arrivals WHERE asset_id = %s AND metric_id = %s "
                      "ORDER BY id", (aid, mid)).fetchall() == [(2, 14.9, 15.2), (1, 15.4, 15.4)]

    def taken(now):
        with session_scope() as s:
            take_arrivals(s, now=now, consume=False)
            rows = s.execute(text("SELECT n, vmin, vmax FROM run_ranges WHERE asset_id = :a AND metric_id = :m"),
                             {"a": aid, "m": mid}).all()
            s.rollback()
        return [tuple(r) for r in rows]

    assert taken(NOW) == [(3, 14.9, 15.4)]
    assert taken(NOW - timedelta(seconds=25)) == [(None, None, None)]  # an arrival past now: not all in the range
    assert taken(NOW - timedelta(seconds=15)) == [(2, 14.9, 15.2)]  # the later one wholly after now: not taken
    pg.execute("UPDATE telemetry_arrivals SET vmin = NULL, vmax = NULL WHERE n = 1")  # as written before 0016
    assert taken(NOW) == [(None, None, None)]


def test_a_flat_line_tells_a_moving_sensor_from_its_arrivals_with_the_same_outcome(pg):
    """F1's quiet test takes the spread of what arrived from the arrivals (their smallest and
    largest value) instead of reading the readings back: run after run, the same values, states
    and alerts as when the arrivals do not have it (read back from telemetry)."""
    asset, metric = "CAS-S1-HVAC_1", "temp_supply_air"
    rows = [(10 * i, 15.0 + (i % 2) * 0.5) for i in range(1, 240)]  # moving
    rows += [(10 * i, 15.0) for i in range(240, 460)]  # stuck
    rows += [(4600, 15.0111), (4610, 15.0), (4620, 15.5), (4630, 15.0)]  # within the margin, then moving
    cuts = [190, 196, 230, 300, 459, 461, 463]
    arrivals = _run_in_batches(pg, "F1", asset, metric, rows, cuts)
    read_back = _run_in_batches(pg, "F1", asset, metric, rows, cuts,
                                wipe="UPDATE telemetry_arrivals SET vmin = NULL, vmax = NULL")
    assert arrivals == read_back
    states, alerts = arrivals
    assert any(state[1] is None for (state,) in states)  # some runs were quiet
    assert len(alerts) == 1 and alerts[0][1] is not None

    # the quiet test does read the arrivals: readings changed behind them (never done by the
    # platform) are not read back for a sensor whose arrivals spread wide; read back, they are
    from tests.engine.helpers import ids

    aid, mid = ids(pg, asset, metric)
    for wipe, fires in ((None, False), ("UPDATE telemetry_arrivals SET vmin = NULL, vmax = NULL", True)):
        pg.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
        put(pg, asset, metric, [(START + timedelta(seconds=10 * i), 15.0 + (i % 2) * 0.5) for i in range(1, 200)])
        evaluate(START + timedelta(seconds=1990), codes=None)  # the first run reads its window whole
        put(pg, asset, metric, [(START + timedelta(seconds=10 * i), 15.0 + (i % 2) * 0.5) for i in range(200, 206)])
        pg.execute("UPDATE telemetry SET value = 15.0 WHERE asset_id = %s AND metric_id = %s", (aid, mid))
        pg.execute("UPDATE policy_evaluations SET win_values = NULL")  # (its buckets hold the old values)
        if wipe:
            pg.execute(wipe)
        evaluate(START + timedelta(seconds=2050), codes=None)
        (state,) = _state(pg, "F1")
        assert state[6] is fires and len(_alerts(pg, "F1")) == int(fires)


def test_a_counter_tells_what_cannot_fire_from_its_arrivals_with_the_same_outcome(pg):
    """R4 (runtime): when the arrivals say no reading that arrived can reach the threshold (the
    largest value minus the counter's baseline), the run records the newest reading from them and
    reads nothing back. Run after run — climbing to the threshold, firing, the counter reset by
    hand in the middle of a batch and after it, readings 1-90 s apart, values that dip now and
    then (the newest is not always the largest) — the same values, states,
    alerts and readings counted as when the arrivals do not have them (read back from telemetry)."""
    from tests.engine.helpers import ids

    asset, metric = "CAS-S1-CHILLER_1", "run_hours"
    aid, mid = ids(pg, asset, metric)
    rnd = random.Random(11)
    rows, t, v = [], 0, 490.0
    while t < 2 * 3600 - 100:
        t += rnd.randint(1, 90)
        v = round(v + rnd.random() * 0.8 - (0.6 if rnd.random() < 0.3 else 0), 3)  # (a glitch: the newest not the largest)
        rows.append((t, v))
    cuts = sorted(rnd.sample(range(1, len(rows)), 25))
    reset_at = rows[cuts[15] + 2][0]  # inside the 17th batch
    outcomes = []
    for wipe in (None, "UPDATE telemetry_arrivals SET vmin = NULL, vmax = NULL, vlast = NULL"):
        pg.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY")
        runs = []
        for a, b in zip([0, *cuts], [*cuts, len(rows)]):
            put(pg, asset, metric, [(START + timedelta(seconds=s), x) for s, x in rows[a:b]])
            if rows[a][0] <= reset_at <= rows[b - 1][0]:
                pg.execute("INSERT INTO counter_resets (asset_id, metric_id, reset_at, baseline, reset_by, reason) "
                           "VALUES (%s, %s, %s, %s, 't', 'test')", (aid, mid, START + timedelta(seconds=reset_at),
                                                                    dict(rows)[reset_at]))
            if wipe:
                pg.execute(wipe)
            result = evaluate(START + timedelta(seconds=rows[b - 1][0]), codes=None)
            runs.append((result.readings, _state(pg, "R4")))
        outcomes.append((runs, _alerts(pg, "R4")))
    (arrivals, alerts), (read_back, read_back_alerts) = outcomes
    assert arrivals == read_back and alerts == read_back_alerts
    values = [state[0][1] for _, state in arrivals]
    assert max(values) > 500 and values[-1] < 100  # fired, then counted again from the reset
    assert len(alerts) == 1


def test_flat_line_state_of_a_sensor_that_just_started(pg):
    """A sensor whose readings so far fill one bucket: the next run merges what arrived into that
    single stored bucket. Run after run, the buckets stored must be those of a run that reads the
    whole window (a list of buckets, never a flat array)."""
    asset, metric = "CAS-S1-HVAC_1", "temp_supply_air"
    start = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)  # a bucket's start
    # 10 s apart, over 10 minutes, within 0.011 (a wider spread is quiet: no buckets kept)
    rows = [(10 * i, 15.0 + (i % 3) * 0.004) for i in range(1, 60)]
    cuts = [6, 12, 20, 29, 40, 50]  # the first batches within the first 5-minute bucket
    incremental, _ = _run_in_batches(pg, "F1", asset, metric, rows, cuts, start=start)
    whole, _ = _run_in_batches(pg, "F1", asset, metric, rows, cuts, start=start,
                               wipe="UPDATE policy_evaluations SET win_values = NULL")
    assert incremental == whole
    assert len(incremental[1][0][7]) == 1 and len(incremental[1][0][7][0]) == 6  # one bucket, as a list of one


@pytest.mark.parametrize("code", ["R2", "R1"])
def test_quiet_series_that_just_started(pg, code):
    """A series with fewer readings than the rule holds (R2: 4 values before the newest; R1: a
    window not yet full) goes quiet from its second run: run after run, its value, points and
    stored state must be those of runs that read everything again (state wiped before each)."""
    asset, metric, _, _ = CASES[code]
    base = 3.0 if code == "R2" else 15.0  # below the threshold: every run after the first is quiet
    rows = [(10 * i, round(base + i * 0.01, 2)) for i in range(1, 40)]  # rising: the last N differ from the rest
    cuts = [2, 3, 5, 8, 13, 21, 30]
    outcomes = []
    for wipe in (None, "UPDATE policy_evaluations SET win_values = NULL, win_n = NULL, win_sums = NULL"):
        states, _ = _run_in_batches(pg, code, asset, metric, rows, cuts, wipe=wipe)
        outcomes.append([_without_bound(state, rows) if code == "R1" else state for state in states])
    incremental, whole = outcomes
    assert incremental == whole
    assert [s[0][2] for s in incremental][:3] == [2, 3, 5]  # points: the readings so far


def test_a_row_without_state_far_from_firing_is_recorded_again_in_its_minute_or_after_5_minutes(pg):
    """Rows that carry nothing for the next run (R6's counter, N1's silence) are left as they are
    while far from firing, and recorded again in their asset's minute (one in 5, by asset id) or
    once 5 minutes old; near the threshold, firing, or with a live alert they are recorded at every
    run. A row with state (R5's last values) is recorded at every run."""
    from engine.evaluate import QUIET_REFRESH
    from tests.engine.helpers import ids

    elevator = "CAS-S1-ELEVATOR_1"
    aid, _ = ids(pg, elevator, "door_cycles")
    every = QUIET_REFRESH // timedelta(minutes=1)

    def its_minute(at) -> bool:
        return (aid + int(at.timestamp()) // 60) % every == 0

    def rows():
        return {code: tuple(row) for code, *row in pg.execute(
            "SELECT p.code, e.evaluated_at, e.value, e.firing FROM policy_evaluations e "
            "JOIN policies p ON p.id = e.policy_id WHERE p.code IN ('R5', 'R6', 'N1')")}

    def run(at, cycles: float):
        put(pg, elevator, "door_cycles", [(at, cycles)])
        put(pg, elevator, "motor_temp", [(at, 40.0)])
        evaluate(at)
        return rows()

    t0 = next(NOW + timedelta(minutes=m) for m in range(every) if its_minute(NOW + timedelta(minutes=m + 2)))
    first = run(t0, 1000)
    assert first["R6"] == (t0, 1000, False) and first["R5"][0] == t0 and first["N1"][0] == t0
    t1 = t0 + timedelta(minutes=1)
    second = run(t1, 1100)
    assert second["R6"] == first["R6"] and second["N1"] == first["N1"]  # far, recorded a minute ago
    assert second["R5"][0] == t1  # state: recorded every run
    t2 = t0 + timedelta(minutes=2)  # its minute
    assert run(t2, 1200)["R6"] == (t2, 1200, False)
    t3 = t2 + timedelta(minutes=every + 1)  # not its minute, but the record is older than 5 minutes
    assert not its_minute(t3) and run(t3, 1300)["R6"] == (t3, 1300, False)
    t4 = t3 + timedelta(minutes=1)
    assert not its_minute(t4) and run(t4, 95_000)["R6"] == (t4, 95_000, False)  # within 10 % of 100,000
    t5 = t4 + timedelta(minutes=1)
    assert not its_minute(t5) and run(t5, 96_000)["R6"] == (t5, 96_000, False)  # near: every run
    t6 = t5 + timedelta(minutes=1)
    assert run(t6, 100_500)["R6"] == (t6, 100_500, True)
    assert pg.execute("SELECT count(*) FROM alerts a JOIN policies p ON p.id = a.policy_id "
                      "WHERE p.code = 'R6' AND a.status = 'open'").fetchone()[0] == 1
