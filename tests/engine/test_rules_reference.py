"""Property-based: for random readings, the set-based SQL evaluation of each rule type agrees
with a plain-Python reading of PRODUCT.md's rule semantics — same firing, same reported value."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MUTABLE_TABLES
from tests.engine.helpers import NOW, evaluate, put

# (seconds before NOW, value) — some readings fall outside the windows, some in the future
readings = st.lists(
    st.tuples(st.integers(min_value=-60, max_value=3600), st.floats(min_value=-50, max_value=150, allow_nan=False)),
    max_size=25, unique_by=lambda r: r[0],
)
# example count and randomness come from the profile (tests/conftest.py); each example hits the database
SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck))


def _run(pg, asset: str, metric: str, code: str, rows: list[tuple[int, float]]) -> tuple[bool, float | None]:
    pg.execute(f"TRUNCATE {MUTABLE_TABLES}")
    put(pg, asset, metric, [(NOW - timedelta(seconds=s), v) for s, v in rows])
    fired = bool(evaluate(NOW, codes=[code]).fired)
    value = pg.execute(
        "SELECT e.value FROM policy_evaluations e JOIN policies p ON p.id = e.policy_id "
        "JOIN assets a ON a.id = e.asset_id WHERE p.code = %s AND a.code = %s", (code, asset)).fetchone()
    return fired, value[0] if value else None


def _seen(rows, window_s: int | None = None):
    """Readings at or before NOW (and inside (NOW - window, NOW]), oldest first."""
    kept = [(s, v) for s, v in rows if s >= 0 and (window_s is None or s < window_s)]
    return sorted(kept, key=lambda r: -r[0])


@given(rows=readings)
@SETTINGS
def test_threshold_avg_over_window_r1(pg, rows):
    fired, value = _run(pg, "CAS-S1-HVAC_1", "temp_supply_air", "R1", rows)
    window = _seen(rows, 15 * 60)
    expected = sum(v for _, v in window) / len(window) if window else None
    assert fired == (expected is not None and expected > 20)
    assert (value is None) == (expected is None) and (value is None or abs(value - expected) < 1e-6)


@given(rows=readings)
@SETTINGS
def test_consecutive_last_five_r5(pg, rows):
    fired, value = _run(pg, "CAS-S1-ELEVATOR_1", "motor_temp", "R5", rows)
    last = _seen(rows)[-5:]
    assert fired == (len(last) == 5 and all(v > 80 for _, v in last))
    if len(last) == 5:
        assert abs(value - min(v for _, v in last)) < 1e-6
    else:
        assert value is None  # fewer readings than the rule needs: no value to show


@given(rows=readings)
@SETTINGS
def test_rate_of_change_least_squares_d1(pg, rows):
    fired, value = _run(pg, "CAS-S1-CHILLER_1", "water_temp_out", "D1", rows)
    window = _seen(rows, 30 * 60)
    expected = None
    if len(window) >= 3:
        xs = [-s / 3600 for s, _ in window]  # hours
        ys = [v for _, v in window]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        expected = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert (value is None) == (expected is None)
    if expected is not None:
        assert abs(value - expected) < 1e-6 * max(1.0, abs(expected))
        if abs(expected - 2) > 1e-9:  # away from the boundary, where rounding could decide
            assert fired == (expected > 2)
    else:
        assert not fired


resets = st.lists(st.tuples(st.integers(min_value=-60, max_value=3600), st.floats(min_value=0, max_value=2000)),
                  max_size=3, unique_by=lambda r: r[0])


@given(rows=readings.map(lambda rs: [(s, abs(v) * 10) for s, v in rs]), resets=resets)
@SETTINGS
def test_runtime_since_the_last_reset_r4(pg, rows, resets):
    from tests.engine.helpers import ids

    pg.execute(f"TRUNCATE {MUTABLE_TABLES}")
    aid, mid = ids(pg, "CAS-S1-CHILLER_1", "run_hours")
    for s, baseline in resets:
        pg.execute("INSERT INTO counter_resets (asset_id, metric_id, reset_at, baseline, reset_by, reason) "
                   "VALUES (%s, %s, %s, %s, 'test', '')", (aid, mid, NOW - timedelta(seconds=s), baseline))
    put(pg, "CAS-S1-CHILLER_1", "run_hours", [(NOW - timedelta(seconds=s), v) for s, v in rows])
    fired = bool(evaluate(NOW, codes=["R4"]).fired)
    row = pg.execute("SELECT e.value FROM policy_evaluations e JOIN policies p ON p.id = e.policy_id "
                     "WHERE p.code = 'R4' AND e.asset_id = %s", (aid,)).fetchone()
    value = row[0] if row else None
    seen = _seen(rows)
    past_resets = sorted((r for r in resets if r[0] >= 0), key=lambda r: -r[0])  # oldest first
    baseline = past_resets[-1][1] if past_resets else 0.0
    expected = seen[-1][1] - baseline if seen else None
    assert (value is None) == (expected is None)
    assert value is None or abs(value - expected) < 1e-6
    assert fired == (expected is not None and expected > 500)
