"""Every insert on telemetry records what arrived (the trigger of migration 0005): the rule
engine's watermark is what arrived, not the readings' own timestamps."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.helpers import NOW, ids, put, series


def _arrivals(pg) -> list[tuple]:
    return pg.execute(
        "SELECT asset_id, metric_id, min_ts, max_ts, n FROM telemetry_arrivals ORDER BY id"
    ).fetchall()


def test_a_copy_records_one_arrival_per_asset_and_metric_with_its_time_range(pg):
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0, 16.0, 17.0]))
    aid, mid = ids(pg, "CAS-S1-HVAC_1", "temp_supply_air")
    assert _arrivals(pg) == [(aid, mid, NOW - timedelta(seconds=20), NOW, 3)]


def test_a_resent_reading_is_not_an_arrival_again(pg):
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0, 16.0]))
    # the same two readings again, plus one new: only the new one arrived (ON CONFLICT path)
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0, 16.0, 17.0], end=NOW + timedelta(seconds=10)))
    aid, mid = ids(pg, "CAS-S1-HVAC_1", "temp_supply_air")
    assert _arrivals(pg)[-1] == (aid, mid, NOW + timedelta(seconds=10), NOW + timedelta(seconds=10), 1)


def test_a_late_reading_arrives_with_its_own_old_timestamp(pg):
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0], end=NOW))
    put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([14.0], end=NOW - timedelta(hours=3)))
    assert [(r[2], r[3]) for r in _arrivals(pg)] == [(NOW, NOW), (NOW - timedelta(hours=3), NOW - timedelta(hours=3))]


def test_a_plain_insert_records_its_arrival_too(pg):
    aid, mid = ids(pg, "CAS-S1-CHILLER_1", "water_temp_out")
    pg.execute("INSERT INTO telemetry (asset_id, metric_id, ts, value) VALUES (%s, %s, %s, 7.0), (%s, %s, %s, 7.1)",
               (aid, mid, NOW, aid, mid, NOW + timedelta(seconds=10)))
    assert _arrivals(pg) == [(aid, mid, NOW, NOW + timedelta(seconds=10), 2)]
