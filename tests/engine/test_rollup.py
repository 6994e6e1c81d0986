"""Hourly roll-up and long-range charts: the same answer as raw readings, far fewer rows."""

from __future__ import annotations

from datetime import timedelta

from db.queries import downsampled_series
from db.session import session_scope
from engine.rollup import roll_up
from tests.engine.helpers import NOW, put, series

ASSET = "CAS-S1-CHILLER_1"


def test_roll_up_matches_the_raw_readings_and_is_idempotent(pg):
    values = [float(i % 37) for i in range(6 * 360)]  # 6 h of 10-s readings
    put(pg, ASSET, "water_temp_out", series(values, end=NOW - timedelta(seconds=10)))
    with session_scope() as s:
        roll_up(s, now=NOW, since=NOW - timedelta(days=1))
    with session_scope() as s:
        roll_up(s, now=NOW, since=NOW - timedelta(days=1))  # again: same rows
    raw = pg.execute(
        "SELECT date_trunc('hour', ts), count(*), sum(value), min(value), max(value) FROM telemetry "
        "GROUP BY 1 ORDER BY 1").fetchall()
    rolled = pg.execute("SELECT hour, n, total, min, max FROM telemetry_hourly ORDER BY hour").fetchall()
    assert rolled == raw and len(rolled) == 6


def test_roll_up_leaves_the_current_hour_to_raw_reads(pg):
    put(pg, ASSET, "water_temp_out", series([7.0] * 10, end=NOW + timedelta(minutes=20)))
    with session_scope() as s:
        roll_up(s, now=NOW + timedelta(minutes=30))
    assert pg.execute("SELECT count(*) FROM telemetry_hourly WHERE hour >= %s", (NOW,)).fetchone()[0] == 0


def test_a_30_day_chart_uses_the_roll_up_and_agrees_with_raw_data(pg):
    # 30 days at 10 min, value = day number, then 30 minutes not yet rolled up
    readings = [(NOW - timedelta(days=30) + timedelta(minutes=10 * i), float(i // 144)) for i in range(30 * 144)]
    put(pg, ASSET, "water_temp_out", readings)
    with session_scope() as s:
        roll_up(s, now=NOW - timedelta(hours=1))
    put(pg, ASSET, "water_temp_out", [(NOW - timedelta(minutes=5), 99.0)])
    aid = pg.execute("SELECT id FROM assets WHERE code = %s", (ASSET,)).fetchone()[0]
    with session_scope() as s:
        pts = downsampled_series(s, asset_id=aid, start=NOW - timedelta(days=30), end=NOW)
    assert len(pts) <= 600 and pts[0]["bucket_s"] == 7200
    assert sum(p["n"] for p in pts) == 30 * 144 + 1  # every reading counted once, rolled or raw
    assert max(p["max"] for p in pts) == 99.0  # the recent, not yet rolled-up reading is there
    day10 = [p for p in pts if p["ts"] == NOW - timedelta(days=20)]
    assert day10 and day10[0]["avg"] == 10.0


def test_the_scheduled_roll_up_waits_for_a_complete_hour_and_refolds_the_last_one(pg):
    put(pg, ASSET, "water_temp_out", series([7.0] * 360, end=NOW - timedelta(seconds=10)))  # 11:00–12:00
    with session_scope() as s:
        assert roll_up(s, now=NOW + timedelta(minutes=5)) > 0  # first run: everything complete
    with session_scope() as s:
        assert roll_up(s, now=NOW + timedelta(minutes=30)) == 0  # no new complete hour yet
    put(pg, ASSET, "water_temp_out", [(NOW - timedelta(minutes=30, seconds=5), 100.0)])  # a late reading
    put(pg, ASSET, "water_temp_out", series([7.0] * 10, end=NOW + timedelta(minutes=50)))
    with session_scope() as s:
        roll_up(s, now=NOW + timedelta(hours=1, minutes=1))
    row = pg.execute("SELECT n, max FROM telemetry_hourly WHERE hour = %s", (NOW - timedelta(hours=1),)).fetchone()
    assert row == (361, 100.0)


def test_a_roll_up_split_in_asset_ranges_writes_the_same_rows_as_one(pg):
    """The maintenance pass rolls up asset ranges on several connections (roll_up_assets), then
    roll_up() takes the dirty hours and moves the watermark: same rows as one roll_up()."""
    from engine.rollup import pending, roll_up_assets, rolled_until

    for i, (asset, metric) in enumerate((("CAS-S1-CHILLER_1", "water_temp_out"), ("CAS-S2-HVAC_1", "power_kw"),
                                         ("CAS-S1-ELEVATOR_1", "motor_temp"))):
        put(pg, asset, metric, series([float((i + 1) * (k % 29)) for k in range(5 * 360)], end=NOW - timedelta(seconds=10)))
    with session_scope() as s:
        roll_up(s, now=NOW, since=NOW - timedelta(days=1))
    whole = pg.execute("SELECT asset_id, metric_id, hour, n, total, min, max FROM telemetry_hourly ORDER BY 1, 2, 3").fetchall()
    pg.execute("TRUNCATE telemetry_hourly")
    pg.execute("DELETE FROM maintenance_state")
    ids = [r[0] for r in pg.execute("SELECT id FROM assets ORDER BY id")]
    with session_scope() as s:
        since, until = pending(s, now=NOW, since=NOW - timedelta(days=1))
    for first, last in ((ids[0], ids[len(ids) // 2 - 1]), (ids[len(ids) // 2], ids[-1])):
        with session_scope() as s:
            roll_up_assets(s, since=since, until=until, first=first, last=last)
    with session_scope() as s:
        assert roll_up(s, now=NOW, since=until) == 0  # nothing dirty, nothing left in the range
        assert rolled_until(s) == until
    parts = pg.execute("SELECT asset_id, metric_id, hour, n, total, min, max FROM telemetry_hourly ORDER BY 1, 2, 3").fetchall()
    assert parts == whole and len({r[0] for r in whole}) == 3
