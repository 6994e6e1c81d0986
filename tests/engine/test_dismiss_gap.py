"""Readings taken after the last evaluation but before the dismissal (they arrive a few seconds
late, as always) must not re-open a dismissed alert at the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.engine.helpers import evaluate, put, series

ELEVATOR = "CAS-S1-ELEVATOR_1"


def test_readings_between_the_last_run_and_the_dismissal_do_not_reopen_it(pg, api):
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=t0))
    f = evaluate(t0, codes=["R5"]).fired[0]
    # the sensor keeps sending 85 °C every 10 s; the scheduler has not run since t0
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=t0 + timedelta(seconds=50)))
    r = api.post(f"/alerts/{f['alert_id']}/dismiss", json={"actor": "a", "reason": "faux", "silence_minutes": 60})
    assert r.status_code == 200
    run = evaluate(datetime.now(UTC) + timedelta(seconds=5), codes=["R5"])
    assert run.fired == []
