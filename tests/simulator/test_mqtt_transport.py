"""SIM_TRANSPORT=mqtt: the simulator publishes through Mosquitto and the bridge, with the same
store-and-forward guarantee as over HTTP: the broker away for a while, every reading still
arrives, each point once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.settings import Settings
from simulator.mqtt import MqttGateway, gateway
from tests.brokers import PASSWORD, USER
from tests.conftest import API_KEY

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
        time.sleep(0.1)
    return False


def test_broker_down_for_a_while_every_reading_arrives_exactly_once(broker, bridge, pg, live_api, tmp_path):
    gw = MqttGateway(live_api.url, API_KEY, tmp_path / "buffer", mqtt_url=broker.url, username=USER,
                     password=PASSWORD, client_id="test-simulator", max_backoff_s=2).start()
    sent = 0

    def send_for(seconds: float):
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            gw.send(reading(sent))
            sent += 1
            time.sleep(0.05)

    try:
        send_for(1)
        assert wait_until(lambda: gw.buffered() == 0, 15)
        broker.stop()  # the broker goes away while readings keep coming
        send_for(8)
        assert gw.buffered() > 100  # kept on disk
        broker.start()
        send_for(1)
        assert wait_until(lambda: gw.buffered() == 0, 60), f"{gw.buffered()} readings still buffered"
        assert wait_until(lambda: pg.execute("SELECT count(*) FROM telemetry").fetchone()[0] >= 4 * sent, 60)
    finally:
        gw.stop()
    stored = pg.execute("SELECT count(*), count(DISTINCT ts) FROM telemetry").fetchone()
    assert stored == (4 * sent, sent)  # every reading, each point once
    cycles = [v for (v,) in pg.execute(
        "SELECT value FROM telemetry t JOIN metrics m ON m.id = t.metric_id WHERE m.name = 'door_cycles' ORDER BY ts")]
    assert cycles == [1000.0 + i for i in range(sent)]
    assert gw.delivered == sent and gw.dropped == 0


def test_the_simulator_with_sim_transport_mqtt_publishes_through_the_broker(broker, bridge, pg, live_api, tmp_path):
    from simulator.runner import run

    settings = Settings(api_url=live_api.url, ingest_api_key=API_KEY, sim_buffer_dir=tmp_path / "buffer",
                        sim_interval_s=0.5, sim_transport="mqtt", mqtt_url=broker.url, mqtt_username=USER,
                        mqtt_password=PASSWORD)
    gw = run(settings, stop=threading.Event(), max_ticks=3)
    assert gw.delivered > 0 and gw.buffered() == 0
    assert wait_until(lambda: bridge.metric("m40_mqtt_points_total") == pg.execute(
        "SELECT count(*) FROM telemetry").fetchone()[0] > 0, 20), "the readings came through the bridge"
    assert type(gw) is MqttGateway


def test_sim_transport_chooses_the_gateway(tmp_path):
    from simulator.client import Gateway

    http = gateway(Settings(sim_transport="http", sim_buffer_dir=tmp_path / "a"))
    mqtt = gateway(Settings(sim_transport="mqtt", mqtt_url="mqtt://127.0.0.1:1", sim_buffer_dir=tmp_path / "b"))
    assert type(http) is Gateway and type(mqtt) is MqttGateway
    for gw in (http, mqtt):
        gw.buffer.close()
    with pytest.raises(SystemExit, match="MQTT_URL"):
        gateway(Settings(sim_transport="mqtt", mqtt_url=None, sim_buffer_dir=tmp_path / "c"))
