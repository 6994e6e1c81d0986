"""With the API stopped for 30 s during a run, every reading arrives exactly once afterwards;
a 4xx is dropped with its reason and not retried."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from ingest.main import create_app
from simulator.client import Gateway
from tests.conftest import API_KEY, LiveServer, free_port

pytestmark = pytest.mark.slow
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def reading(i: int) -> dict:
    return {"site_code": "CAS-S2", "asset_code": "CAS-S2-ELEVATOR_1",
            "timestamp": (BASE + timedelta(seconds=10 * i)).isoformat(),
            "metrics": {"motor_temp": 40.0 + i % 7, "current_a": 12.0, "vibration_level": 1.1, "door_cycles": 1000 + i}}


def wait_until(fn, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.2)
    return False


def test_api_down_for_30_s_every_reading_arrives_exactly_once(pg, database_url, tmp_path):
    port = free_port()
    server = LiveServer(create_app(), port).start()
    gw = Gateway(f"http://127.0.0.1:{port}", API_KEY, tmp_path / "buffer", max_backoff_s=2, timeout_s=2).start()
    sent = 0

    def send_for(seconds: float):
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            gw.send(reading(sent))
            sent += 1
            time.sleep(0.1)

    send_for(2)
    assert wait_until(lambda: gw.buffered() == 0, 10)
    server.stop()  # the API goes away for 30 s while readings keep coming
    send_for(30)
    assert gw.buffered() > 200  # kept on disk, in order
    server = LiveServer(create_app(), port).start()
    send_for(2)
    assert wait_until(lambda: gw.buffered() == 0, 30), f"{gw.buffered()} readings still buffered"
    gw.stop()
    server.stop()

    stored = pg.execute("SELECT count(*), count(DISTINCT ts) FROM telemetry").fetchone()
    assert stored == (4 * sent, sent)  # every reading, each point once
    cycles = [v for (v,) in pg.execute(
        "SELECT value FROM telemetry t JOIN metrics m ON m.id = t.metric_id WHERE m.name = 'door_cycles' ORDER BY ts")]
    assert cycles == [1000.0 + i for i in range(sent)]


def test_a_reading_refused_with_4xx_is_logged_and_not_retried(pg, live_api, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="simulator.client")
    gw = Gateway(live_api.url, API_KEY, tmp_path / "buffer", max_backoff_s=1).start()
    bad = {**reading(0), "asset_code": "CAS-S2-HVAC_9"}
    gw.send(bad)
    gw.send(reading(1))
    assert wait_until(lambda: gw.buffered() == 0, 10)
    gw.stop()
    assert gw.rejected == 1
    assert "unknown asset" in caplog.text
    assert pg.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 4


def test_the_buffer_survives_a_restart_of_the_simulator(pg, live_api, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gw = Gateway(dead, API_KEY, tmp_path / "buffer", max_backoff_s=1, timeout_s=1).start()
    for i in range(20):
        gw.send(reading(i))
    gw.stop(drain_s=0)
    again = Gateway(live_api.url, API_KEY, tmp_path / "buffer", max_backoff_s=1).start()
    again.send(reading(20))
    assert wait_until(lambda: again.buffered() == 0, 15)
    again.stop()
    assert pg.execute("SELECT count(DISTINCT ts) FROM telemetry").fetchone()[0] == 21
