"""Signal models: physical ranges, counters that never decrease, reproducible with a seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.faults import FAULTS
from simulator.signals import PHYSICAL_RANGE, ActiveFault, AssetSignals, occupancy, outside_temp

CATALOG = {
    "HVAC": {"temp_out_air", "temp_supply_air", "power_kw", "vibration_level", "run_hours"},
    "CHILLER": {"water_temp_in", "water_temp_out", "power_kw", "run_hours"},
    "ELEVATOR": {"motor_temp", "current_a", "vibration_level", "door_cycles"},
}
START = datetime(2026, 7, 13, 0, 0, tzinfo=UTC)


def run(sig: AssetSignals, hours: float, faults=(), step_s: int = 60):
    return [sig.sample(START + timedelta(seconds=step_s * i), faults) for i in range(int(hours * 3600 / step_s))]


def test_the_catalog_matches_the_seed(pg):
    rows = pg.execute("SELECT name, asset_types FROM metrics").fetchall()
    for typ, names in CATALOG.items():
        assert names == {n for n, types in rows if typ in types}


@pytest.mark.parametrize("typ", list(CATALOG))
def test_every_metric_of_the_type_stays_in_physical_range_and_counters_grow(typ):
    sig = AssetSignals(f"X-{typ}_1", typ, 7)
    readings = run(sig, 48)
    assert all(set(r) == CATALOG[typ] for r in readings)
    for r in readings:
        for k, v in r.items():
            lo, hi = PHYSICAL_RANGE[k]
            assert lo <= v <= hi, (k, v)
    for counter in ("run_hours", "door_cycles"):
        if counter in CATALOG[typ]:
            values = [r[counter] for r in readings]
            assert all(b >= a for a, b in zip(values, values[1:]))
            assert values[-1] > values[0]  # it is used, so it grows


@pytest.mark.parametrize("fault", list(FAULTS))
def test_faults_keep_values_physical_and_counters_monotonic(fault):
    typ = FAULTS[fault]["asset_type"] or "CHILLER"
    sig = AssetSignals(f"X-{typ}_1", typ, 7)
    f = [ActiveFault(fault, 1.0, START + timedelta(hours=1), 60, START + timedelta(hours=3))]
    readings = [r for r in run(sig, 4, f) if r is not None]
    for r in readings:
        for k, v in r.items():
            assert PHYSICAL_RANGE[k][0] <= v <= PHYSICAL_RANGE[k][1], (fault, k, v)
    for counter in ("run_hours", "door_cycles"):
        if counter in CATALOG[typ]:
            values = [r[counter] for r in readings]
            assert all(b >= a for a, b in zip(values, values[1:]))


def test_counters_start_below_their_policy_thresholds():
    for i in range(50):
        assert AssetSignals(f"S{i}-CHILLER_1", "CHILLER", i).counters["run_hours"] < 450
        assert AssetSignals(f"S{i}-ELEVATOR_1", "ELEVATOR", i).counters["door_cycles"] < 90_000


def test_same_seed_same_readings_other_seed_others():
    a = run(AssetSignals("CAS-S1-HVAC_1", "HVAC", 42), 1)
    b = run(AssetSignals("CAS-S1-HVAC_1", "HVAC", 42), 1)
    c = run(AssetSignals("CAS-S1-HVAC_1", "HVAC", 43), 1)
    assert a == b and a != c


def test_casablanca_climate_and_office_hours():
    summer_noon = datetime(2026, 7, 14, 14, 0, tzinfo=UTC)
    winter_dawn = datetime(2026, 1, 14, 5, 0, tzinfo=UTC)
    assert 24 < outside_temp(summer_noon) < 30
    assert 7 < outside_temp(winter_dawn) < 12
    assert occupancy(datetime(2026, 7, 14, 10, 0, tzinfo=UTC)) == 1.0  # Tuesday 11:00 local
    assert occupancy(datetime(2026, 7, 14, 23, 0, tzinfo=UTC)) < 0.1
    assert occupancy(datetime(2026, 7, 18, 10, 0, tzinfo=UTC)) < 0.2  # Saturday


def test_dropout_silences_and_flatline_freezes():
    sig = AssetSignals("X-HVAC_1", "HVAC", 1)
    drop = [ActiveFault("dropout", 1.0, START, 0, START + timedelta(hours=1))]
    assert sig.sample(START + timedelta(minutes=5), drop) is None
    flat = [ActiveFault("flatline", 1.0, START, 0, START + timedelta(hours=1))]
    r1 = sig.sample(START + timedelta(minutes=10), flat)
    r2 = sig.sample(START + timedelta(minutes=20), flat)
    assert r1["temp_supply_air"] == r2["temp_supply_air"] and r1["power_kw"] == r2["power_kw"]
    assert r2["run_hours"] >= r1["run_hours"]
