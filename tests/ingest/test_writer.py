"""The group-commit writer under concurrency: a deadlock or serialization failure with another
writer (another API worker, the bridge, a trigger's bookkeeping) is retried, not turned into an
error for the clients."""

from __future__ import annotations

import pytest

READING = {"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1", "timestamp": "2025-12-09T10:15:23Z",
           "metrics": {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}}


@pytest.fixture
def deadlock_once(pg):
    """The next insert into telemetry fails once with deadlock_detected (40P01), as PostgreSQL
    reports a real one (a sequence counts the attempts: it is not rolled back with them)."""
    pg.execute("CREATE SEQUENCE test_writer_attempts")
    pg.execute("""
        CREATE FUNCTION test_writer_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('test_writer_attempts') = 1 THEN
                RAISE EXCEPTION 'deadlock detected (simulated)' USING ERRCODE = '40P01';
            END IF;
            RETURN NULL;
        END $$""")
    pg.execute("CREATE TRIGGER test_writer_deadlock AFTER INSERT ON telemetry "
               "FOR EACH STATEMENT EXECUTE FUNCTION test_writer_deadlock()")
    try:
        yield
    finally:
        pg.execute("DROP TRIGGER test_writer_deadlock ON telemetry")
        pg.execute("DROP FUNCTION test_writer_deadlock()")
        pg.execute("DROP SEQUENCE test_writer_attempts")


def test_a_deadlock_with_another_writer_is_retried_and_the_reading_stored_once(api, pg, deadlock_once):
    r = api.post("/telemetry", json=READING)
    assert r.status_code == 200 and r.json()["inserted_points"] == 4
    assert pg.execute("SELECT last_value FROM test_writer_attempts").fetchone()[0] == 2  # failed, then retried
    assert pg.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 4
