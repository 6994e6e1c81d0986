"""The simulator's MQTT transport (SIM_TRANSPORT=mqtt): the same on-disk buffer and sender as the
HTTP gateway (`simulator.client.Gateway`), publishing to MQTT_URL instead of posting.

Each batch taken from the buffer is published QoS 1, one message per asset, on
`telemetry/{site_code}/{asset_code}` (a JSON array of its readings, or one reading); the
readings leave the buffer only once the broker has acknowledged every message (PUBACK). Broker
unreachable or slow: the readings stay on disk and the sender backs off and re-sends, exactly as
with the API down. Re-sends are safe: a point is stored once. Readings the bridge refuses are
republished by it on `telemetry-rejected/{site_code}/{asset_code}` (see ingest/mqtt.py).

The assets to simulate and the active faults still come from the API (GET), like a real
gateway's configuration; only the readings take the MQTT path.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import Settings, broker_of
from simulator.client import Gateway, Unavailable

log = logging.getLogger("simulator.mqtt")

PUBACK_TIMEOUT_S = 10.0


class MqttGateway(Gateway):
    """Buffer + sender thread, delivering over MQTT."""

    def __init__(self, api_url: str, api_key: str, buffer_dir: Path, *, mqtt_url: str, username: str | None,
                 password: str | None, client_id: str, **kw):
        super().__init__(api_url, api_key, buffer_dir, **kw)  # its HTTP client reads assets and faults
        broker = broker_of(mqtt_url)
        # a clean session: what is not acknowledged is still in our own buffer, on disk
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                                protocol=mqtt.MQTTv311)
        if username:
            self.mqtt.username_pw_set(username, password)
        if broker.tls:
            self.mqtt.tls_set()
        self.mqtt.max_inflight_messages_set(1000)
        self.mqtt.reconnect_delay_set(min_delay=1, max_delay=int(self.max_backoff_s))
        self.mqtt.connect_async(broker.host, broker.port, keepalive=30)
        self.mqtt_url = mqtt_url

    def start(self) -> MqttGateway:
        self.mqtt.loop_start()
        super().start()
        return self

    def stop(self, *, drain_s: float = 5.0) -> None:
        super().stop(drain_s=drain_s)
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    def _post(self, items: list[tuple[int, dict]]) -> int:
        """Publish a batch (the HTTP gateway's POST): one message per asset, all acknowledged or
        Unavailable (the readings stay buffered)."""
        if not self.mqtt.is_connected():
            raise Unavailable(f"MQTT broker {self.mqtt_url} not connected")
        per_asset: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for _, reading in items:
            per_asset[(reading["site_code"], reading["asset_code"])].append(reading)
        infos = []
        for (site, asset), readings in per_asset.items():
            body = orjson.dumps(readings[0] if len(readings) == 1 else readings)
            info = self.mqtt.publish(f"telemetry/{site}/{asset}", body, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise Unavailable(f"MQTT publish refused: {mqtt.error_string(info.rc)}")
            infos.append(info)
        deadline = time.monotonic() + PUBACK_TIMEOUT_S
        for info in infos:
            try:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
                acknowledged = info.is_published()
            except (RuntimeError, ValueError) as exc:
                raise Unavailable(f"MQTT publish failed: {exc}") from exc
            if not acknowledged:
                raise Unavailable("MQTT broker did not acknowledge in time")
        self.buffer.remove([i for i, _ in items])
        self.delivered += len(items)
        return len(items)


def gateway(settings: Settings) -> Gateway:
    """The simulator's gateway for SIM_TRANSPORT: the API (http) or MQTT_URL (mqtt)."""
    if settings.sim_transport == "mqtt":
        if not settings.mqtt_url:
            raise SystemExit("SIM_TRANSPORT=mqtt needs MQTT_URL (e.g. mqtt://127.0.0.1:1883)")
        return MqttGateway(settings.api_url, settings.ingest_api_key, settings.sim_buffer_dir,
                           mqtt_url=settings.mqtt_url, username=settings.mqtt_username, password=settings.mqtt_password,
                           client_id=f"m40-simulator-{socket.gethostname()}-{os.getpid()}")
    return Gateway(settings.api_url, settings.ingest_api_key, settings.sim_buffer_dir)
