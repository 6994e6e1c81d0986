"""The MQTT ingest path end to end: Debian's mosquitto running deploy/mosquitto/mosquitto.conf,
the bridge as deployed (`python -m ingest.mqtt`, a separate process), the real database."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.brokers import PASSWORD, USER, BridgeProcess, Mosquitto

HVAC = {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def publisher(broker: Mosquitto, client_id: str = "test-publisher") -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.username_pw_set(USER, PASSWORD)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def publish(c: mqtt.Client, topic: str, payload) -> mqtt.MQTTMessageInfo:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    info = c.publish(topic, body, qos=1)
    return info


def stored(pg) -> int:
    return pg.execute("SELECT count(*) FROM telemetry").fetchone()[0]


def bridge_sessions(pg) -> int:
    return pg.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                      (BridgeProcess.APPLICATION_NAME,)).fetchone()[0]


def wait_for(condition, timeout_s: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_published_readings_arrive_in_the_database(broker, bridge, pg):
    c = publisher(broker)
    try:
        # the §7.1 payload without the codes (the topic gives them) …
        publish(c, "telemetry/CAS-S1/CAS-S1-HVAC_1", {"timestamp": T0.isoformat(), "metrics": HVAC}).wait_for_publish(5)
        # … and an array of readings that repeat them (matching the topic)
        batch = [{"site_code": "CAS-S2", "asset_code": "CAS-S2-ELEVATOR_1",
                  "timestamp": (T0 + timedelta(seconds=10 * i)).isoformat(),
                  "metrics": {"motor_temp": 60.0 + i, "current_a": 20.5}} for i in range(3)]
        publish(c, "telemetry/CAS-S2/CAS-S2-ELEVATOR_1", batch).wait_for_publish(5)
    finally:
        c.loop_stop()
        c.disconnect()
    wait_for(lambda: stored(pg) == 4 + 6, what="10 points stored")
    rows = pg.execute(
        "SELECT a.code, m.name, t.ts, t.value FROM telemetry t JOIN assets a ON a.id = t.asset_id "
        "JOIN metrics m ON m.id = t.metric_id ORDER BY 1, 2, 3").fetchall()
    assert ("CAS-S1-HVAC_1", "temp_supply_air", T0, 17.8) in rows
    assert [r[3] for r in rows if r[1] == "motor_temp"] == [60.0, 61.0, 62.0]
    wait_for(lambda: bridge.metric("m40_mqtt_unacked_messages") == 0, what="every message acknowledged")
    assert bridge.metric("m40_mqtt_messages_total") == 2
    assert bridge.metric("m40_mqtt_points_total") == 10


def test_a_malformed_message_lands_on_the_rejected_topic_and_the_stream_goes_on(broker, bridge, pg):
    rejected: list[tuple[str, dict]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-watcher", protocol=mqtt.MQTTv311)
    watcher.username_pw_set(USER, PASSWORD)
    subscribed = threading.Event()
    watcher.on_message = lambda c, u, m: rejected.append((m.topic, orjson.loads(m.payload)))
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("telemetry-rejected/#", qos=1)
    watcher.loop_start()
    assert subscribed.wait(10)
    c = publisher(broker)
    try:
        publish(c, "telemetry/CAS-S1/CAS-S1-HVAC_1", {"timestamp": T0.isoformat(), "metrics": HVAC})
        publish(c, "telemetry/CAS-S1/CAS-S1-HVAC_1", b'{"timestamp": "2026-01-05T08:00:10Z", "metrics": ')
        publish(c, "telemetry/CAS-S1/CAS-S1-HVAC_1",  # codes that contradict the topic
                {"site_code": "CAS-S2", "timestamp": T0.isoformat(), "metrics": HVAC})
        publish(c, "telemetry/CAS-S1/CAS-S1-CHILLER_1",  # a metric the asset does not have
                [{"timestamp": T0.isoformat(), "metrics": {"water_temp_out": 7.0}},
                 {"timestamp": T0.isoformat(), "metrics": {"door_cycles": 3.0}}])
        publish(c, "telemetry/CAS-S1/CAS-S1-HVAC_1",
                {"timestamp": (T0 + timedelta(seconds=20)).isoformat(), "metrics": HVAC}).wait_for_publish(5)
        wait_for(lambda: len(rejected) == 3, what="3 rejections")
        wait_for(lambda: stored(pg) == 8, what="the two good readings stored")
    finally:
        c.loop_stop()
        c.disconnect()
        watcher.loop_stop()
        watcher.disconnect()
    by_reason = {body["errors"][0]["field"]: (topic, body) for topic, body in rejected}
    topic, body = by_reason["payload"]
    assert topic == "telemetry-rejected/CAS-S1/CAS-S1-HVAC_1" and "not JSON" in body["detail"]
    assert body["payload"].startswith('{"timestamp": "2026-01-05T08:00:10Z"')
    topic, body = by_reason["site_code"]
    assert "does not match the topic's 'CAS-S1'" in body["errors"][0]["reason"]
    topic, body = by_reason["payload[1].metrics.door_cycles"]
    assert topic == "telemetry-rejected/CAS-S1/CAS-S1-CHILLER_1" and "nothing was stored" in body["detail"]
    # all or nothing per message, like a batch request: the chiller's good reading is not stored
    assert pg.execute("SELECT count(*) FROM telemetry t JOIN assets a ON a.id = t.asset_id "
                      "WHERE a.code = 'CAS-S1-CHILLER_1'").fetchone()[0] == 0
    wait_for(lambda: bridge.metric("m40_mqtt_unacked_messages") == 0, what="every message acknowledged")
    assert bridge.metric("m40_mqtt_rejected_messages_total", 'reason="InvalidInput"') == 3
    assert bridge.metric("m40_mqtt_messages_total") == 5


def test_the_bridge_killed_mid_stream_loses_nothing_and_stores_nothing_twice(broker, bridge, pg):
    n = 3000  # messages of one reading (4 points) each, published while the bridge dies and returns
    c = publisher(broker)
    infos = []
    try:
        for i in range(n):
            site, asset = ("CAS-S1", "CAS-S1-HVAC_1") if i % 2 else ("CAS-S2", "CAS-S2-HVAC_1")
            infos.append(publish(c, f"telemetry/{site}/{asset}",
                                 {"timestamp": (T0 + timedelta(seconds=i)).isoformat(), "metrics": HVAC}))
            if i == n // 3:
                wait_for(lambda: stored(pg) > 0, what="the first readings stored")
                assert bridge_sessions(pg) > 0  # the bridge's sessions are the ones waited for below
                bridge.kill()  # SIGKILL: no drain, no goodbye; the broker keeps the session
                # a COPY the bridge had already sent whole still commits: wait until the server has
                # noticed the dead client and closed its sessions, then nothing more may arrive
                wait_for(lambda: bridge_sessions(pg) == 0, what="the dead bridge's sessions closed")
                killed_at = stored(pg)
        for info in infos:
            info.wait_for_publish(30)  # the broker took every message while the bridge was away
        assert stored(pg) == killed_at, "nothing is written while the bridge is dead"
        bridge.start()  # same client id: the broker re-delivers what was not acknowledged
        wait_for(lambda: stored(pg) >= 4 * n, timeout_s=60, what="every reading stored")
        wait_for(lambda: bridge.metric("m40_mqtt_unacked_messages") == 0, what="every message acknowledged")
    finally:
        c.loop_stop()
        c.disconnect()
    assert stored(pg) == 4 * n
    assert pg.execute("SELECT count(DISTINCT (asset_id, metric_id, ts)) FROM telemetry").fetchone()[0] == 4 * n
    assert pg.execute("SELECT count(DISTINCT ts) FROM telemetry").fetchone()[0] == n


def test_a_message_is_acknowledged_only_after_its_commit(broker, bridge, pg, database_url):
    """The write is held up by a lock; the bridge dies meanwhile: the broker still has the
    message (never acknowledged) and gives it to the next bridge, which stores it."""
    import psycopg

    from db.session import libpq_url

    with psycopg.connect(libpq_url(database_url)) as locker:
        locker.execute("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")
        c = publisher(broker)
        try:
            publish(c, "telemetry/CAS-S1/CAS-S1-HVAC_1", {"timestamp": T0.isoformat(), "metrics": HVAC}).wait_for_publish(5)
        finally:
            c.loop_stop()
            c.disconnect()
        wait_for(lambda: pg.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                    "AND relation = 'telemetry'::regclass").fetchone()[0] > 0,
                 what="the bridge's write waiting for the lock")
        assert bridge.metric("m40_mqtt_unacked_messages") == 1
        bridge.kill()
        locker.rollback()
    assert stored(pg) == 0
    bridge.start()
    wait_for(lambda: stored(pg) == 4, what="the re-delivered message stored")
    wait_for(lambda: bridge.metric("m40_mqtt_unacked_messages") == 0, what="the message acknowledged")
