"""`python -m ingest.mqtt`: the MQTT ingest bridge (Mosquitto → PostgreSQL), beside the HTTP API.

It subscribes to `telemetry/+/+` (`telemetry/{site_code}/{asset_code}`) with QoS 1 in a persistent
session (fixed client id MQTT_CLIENT_ID, clean session off): while it is down, the broker keeps
its messages. A payload is the §7.1 JSON reading, or a JSON array of them; `site_code` and
`asset_code` may be omitted (the topic gives them) but must match the topic when given.

Every message goes through the same validation (`ingest.schemas.TelemetryIn`,
`ingest.telemetry.to_points`) and the same group-commit writer (`ingest.telemetry.AsyncWriter`)
as `POST /api/v1/telemetry`. A message is acknowledged (manual PUBACK, in the order received)
only after the commit that holds its points: killed at any moment, the bridge loses nothing, and
the broker's re-delivery stores nothing twice (a point is keyed by asset, metric and timestamp).
A refused message is acknowledged too, counted in /metrics and republished with its error on
`telemetry-rejected/{site_code}/{asset_code}`: it never blocks the stream. While the database is
unreachable, nothing is acknowledged and the writes are retried.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import time
from collections import deque
from datetime import UTC, datetime

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from pydantic import TypeAdapter, ValidationError

from core.settings import broker_of
from db.errors import DomainError, InvalidInput, PayloadTooLarge, Unavailable
from ingest.schemas import TelemetryIn
from ingest.telemetry import AsyncWriter, Catalog, Point, to_points

log = logging.getLogger("ingest.mqtt")

SUBSCRIPTION = "telemetry/+/+"
REJECTED = "telemetry-rejected/{site}/{asset}"
READINGS = TypeAdapter(list[TelemetryIn])
MAX_IN_FLIGHT_POINTS = 100_000  # submitted to the writer and not committed yet (its queue holds 200,000)
ONE_READING = TypeAdapter(TelemetryIn)


# --- what a message means (pure: no I/O) ------------------------------------------------------

def readings_of(topic: str, payload: bytes, *, max_readings: int) -> tuple[list[TelemetryIn], str]:
    """The readings of one message, checked like the HTTP API's bodies; the prefix that names
    their fields in errors ("" for one reading, "payload" for an array: `payload[3].timestamp`).
    Raises InvalidInput / PayloadTooLarge naming the field."""
    site, asset = topic_codes(topic)
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"payload: not JSON ({exc})", field="payload") from None
    one = isinstance(data, dict)
    items = [data] if one else data
    if not isinstance(items, list) or not items:
        raise InvalidInput("payload: a JSON object (one reading) or a non-empty array of readings", field="payload")
    if len(items) > max_readings:
        raise PayloadTooLarge(f"payload: {len(items)} readings, at most {max_readings} per message", field="payload")
    errors = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue  # pydantic names it below
        where = "" if one else f"payload[{i}]."
        for key, expected in (("site_code", site), ("asset_code", asset)):
            given = item.setdefault(key, expected)
            if given != expected:
                errors.append({"field": f"{where}{key}", "reason": f"{given!r} does not match the topic's {expected!r}"})
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{errors[0]['field']}: {errors[0]['reason']}{more}", errors=errors)
    try:
        if one:
            return [ONE_READING.validate_python(items[0])], ""
        return READINGS.validate_python(items), "payload"
    except ValidationError as exc:
        raise InvalidInput.from_validation(
            [{**e, "loc": (("payload",) if not one else ()) + tuple(e["loc"])} for e in exc.errors()], prefix_fields=()
        ) from None


def topic_codes(topic: str) -> tuple[str, str]:
    """('CAS-S1', 'CAS-S1-HVAC_1') from 'telemetry/CAS-S1/CAS-S1-HVAC_1'."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "telemetry" or not parts[1] or not parts[2]:
        raise InvalidInput(f"topic: {topic!r} is not telemetry/{{site_code}}/{{asset_code}}", field="topic")
    return parts[1], parts[2]


def rejected_topic(topic: str) -> str:
    parts = topic.split("/")
    site, asset = (parts[1], parts[2]) if len(parts) == 3 else ("_", "_")
    return REJECTED.format(site=site, asset=asset)


def rejection(topic: str, payload: bytes, error: DomainError) -> bytes:
    """What is republished on telemetry-rejected/…: the error, and the message as received."""
    body = error.to_dict(refused_write=True)
    body["topic"] = topic
    body["payload"] = payload[:65536].decode("utf-8", errors="replace")
    return orjson.dumps(body)


# --- metrics ------------------------------------------------------------------------------------

class BridgeMetrics:
    """What the bridge exports on its own /metrics (MQTT_METRICS_PORT)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("m40_mqtt_messages_total", "MQTT messages received", registry=r)
        self.rejected = Counter("m40_mqtt_rejected_messages_total", "MQTT messages refused (republished on "
                                "telemetry-rejected/…)", ["reason"], registry=r)
        self.points = Counter("m40_mqtt_points_total", "Telemetry points stored from MQTT", registry=r)
        self.duplicates = Counter("m40_mqtt_duplicate_points_total", "Points already stored (re-deliveries)", registry=r)
        self.retries = Counter("m40_mqtt_write_retries_total", "Writes retried (database unavailable)", registry=r)
        self.pending = Gauge("m40_mqtt_unacked_messages", "Messages received, not yet acknowledged", registry=r)
        self.connected = Gauge("m40_mqtt_connected", "1 while connected to the broker", registry=r)
        self.latency = Histogram(
            "m40_mqtt_commit_seconds", "From a message's arrival to its acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10), registry=r)


# --- the bridge ---------------------------------------------------------------------------------

class Bridge:
    """Messages from paho's network thread are handed to the event loop; each is validated and
    submitted to the group-commit writer at once (so many messages share a commit), and an
    acknowledger sends the PUBACKs in arrival order, each after its message is settled."""

    def __init__(self, client: mqtt.Client, *, catalog: Catalog, writer: AsyncWriter, metrics: BridgeMetrics,
                 future_tolerance_s: float, max_readings: int, retry_s: float = 1.0):
        self.client = client
        self.catalog = catalog
        self.writer = writer
        self.metrics = metrics
        self.future_tolerance_s = future_tolerance_s
        self.max_readings = max_readings
        self.retry_s = retry_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._order: deque[tuple[mqtt.MQTTMessage, asyncio.Task, float]] = deque()
        self._room = asyncio.Condition()
        self._in_flight_points = 0
        self._inbox: list[mqtt.MQTTMessage] = []  # from paho's thread, in arrival order
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False
        self._wake = asyncio.Event()
        self._published: dict[int, asyncio.Future] = {}
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish

    # paho's network thread -> the event loop
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connection refused: %s", reason_code)
            return
        client.subscribe(SUBSCRIPTION, qos=1)
        self.metrics.connected.set(1)
        log.info("connected to the broker; subscribed to %s", SUBSCRIPTION,
                 extra={"session_present": flags.session_present})

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.metrics.connected.set(0)
        log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        # one wake-up of the loop for a burst of messages, not one each (a wake-up is a syscall)
        with self._inbox_lock:
            self._inbox.append(message)
            if self._inbox_scheduled:
                return
            self._inbox_scheduled = True
        self.loop.call_soon_threadsafe(self._receive_all)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.loop.call_soon_threadsafe(self._publish_done, mid)

    # the event loop
    def _receive_all(self) -> None:
        with self._inbox_lock:
            messages, self._inbox = self._inbox, []
            self._inbox_scheduled = False
        for message in messages:
            self._receive(message)

    def _receive(self, message: mqtt.MQTTMessage) -> None:
        self.metrics.messages.inc()
        self.metrics.pending.inc()
        task = self.loop.create_task(self._settle(message))
        self._order.append((message, task, time.perf_counter()))
        self._wake.set()

    def _publish_done(self, mid: int) -> None:
        fut = self._published.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _settle(self, message: mqtt.MQTTMessage) -> None:
        """Store the message's points, or republish it as refused; returns when either is done."""
        try:
            readings, prefix = readings_of(message.topic, message.payload, max_readings=self.max_readings)
        except DomainError as exc:
            await self._reject(message, exc)
            return
        while True:  # new codes: the catalog reloads; the database away: keep the message, retry
            try:
                await self.catalog.ensure(readings)
                break
            except Unavailable as exc:
                self.metrics.retries.inc()
                log.warning("database unavailable, message kept unacknowledged; retrying: %s", exc.message)
                await asyncio.sleep(self.retry_s)
        try:
            points = to_points(self.catalog, readings, now=datetime.now(UTC),
                               future_tolerance_s=self.future_tolerance_s, prefix=prefix)
        except DomainError as exc:
            await self._reject(message, exc)
            return
        await self._store(message, points)

    async def _store(self, message: mqtt.MQTTMessage, points: list[Point]) -> None:
        # flow control: the broker may hand over 1,000 messages at once; submitting them all would
        # overflow the writer's bounded queue (refused, retried a second later). Wait for room.
        async with self._room:
            await self._room.wait_for(
                lambda: not self._in_flight_points or self._in_flight_points + len(points) <= MAX_IN_FLIGHT_POINTS)
            self._in_flight_points += len(points)
        try:
            await self._submit(message, points)
        finally:
            async with self._room:
                self._in_flight_points -= len(points)
                self._room.notify_all()

    async def _submit(self, message: mqtt.MQTTMessage, points: list[Point]) -> None:
        while True:
            try:
                inserted = await self.writer.submit(points)
                break
            except (Unavailable, psycopg.OperationalError) as exc:  # database away, queue full: keep it, retry
                self.metrics.retries.inc()
                log.warning("database unavailable, message kept unacknowledged; retrying: %s", exc)
                await asyncio.sleep(self.retry_s)
            except Exception as exc:  # noqa: BLE001 - a message the database refuses must not block the stream
                log.exception("message refused by the database", extra={"topic": message.topic})
                await self._reject(message, InvalidInput(f"payload: refused by the database ({exc})", field="payload"))
                return
        self.metrics.points.inc(inserted)
        if len(points) > inserted:
            self.metrics.duplicates.inc(len(points) - inserted)

    async def _reject(self, message: mqtt.MQTTMessage, error: DomainError) -> None:
        self.metrics.rejected.labels(type(error).__name__).inc()
        log.warning("MQTT message refused: %s", error.message, extra={"topic": message.topic})
        topic = rejected_topic(message.topic)
        body = rejection(message.topic, message.payload, error)
        while True:  # the notice is delivered (PUBACK) before the message is acknowledged
            fut = self.loop.create_future()
            info = self.client.publish(topic, body, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                await asyncio.sleep(self.retry_s)
                continue
            self._published[info.mid] = fut  # registered before on_publish can run here
            try:
                await asyncio.wait_for(fut, timeout=30)
                return
            except TimeoutError:
                self._published.pop(info.mid, None)
                log.warning("rejection notice not confirmed by the broker yet; publishing again")

    async def acknowledge(self) -> None:
        """PUBACK every message, in arrival order, once it is settled."""
        while True:
            if not self._order:
                self._wake.clear()
                await self._wake.wait()
                continue
            message, task, arrived = self._order[0]
            await task
            self._order.popleft()
            self.client.ack(message.mid, message.qos)
            self.metrics.pending.dec()
            self.metrics.latency.observe(time.perf_counter() - arrived)

    async def drain(self, timeout_s: float) -> None:
        """Wait until every received message is settled and acknowledged (for a clean stop)."""
        deadline = time.monotonic() + timeout_s
        while self._order and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def make_client(settings) -> mqtt.Client:
    """The paho client of the bridge: persistent session, manual acknowledgements."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id, clean_session=False,
                         protocol=mqtt.MQTTv311, manual_ack=True)
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
    broker = broker_of(settings.mqtt_url)
    if broker.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.connect_async(broker.host, broker.port, keepalive=30)
    return client


async def run(settings, *, stop: asyncio.Event, metrics: BridgeMetrics | None = None) -> None:
    """The bridge until `stop` is set: connect, store, acknowledge; then drain and leave."""
    from db.session import database_url, libpq_url

    dsn = libpq_url(database_url())
    catalog = Catalog(dsn)
    catalog.reload()
    writer = AsyncWriter(dsn)
    await writer.start()
    metrics = metrics or BridgeMetrics()
    client = make_client(settings)
    bridge = Bridge(client, catalog=catalog, writer=writer, metrics=metrics,
                    future_tolerance_s=settings.future_tolerance_s, max_readings=settings.max_batch_readings)
    bridge.loop = asyncio.get_running_loop()
    acker = asyncio.create_task(bridge.acknowledge(), name="mqtt-acknowledge")
    client.loop_start()
    log.info("MQTT bridge started", extra={"broker": settings.mqtt_url, "client_id": settings.mqtt_client_id,
                                           "assets": len(catalog.assets)})
    try:
        await stop.wait()
    finally:
        await bridge.drain(timeout_s=10)
        client.disconnect()
        client.loop_stop()
        acker.cancel()
        await writer.stop()
        log.info("MQTT bridge stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ingest.mqtt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    from core.logs import setup_logging
    from core.settings import get_settings

    settings = get_settings()
    setup_logging("mqtt")
    if not settings.mqtt_url:
        parser.error("MQTT_URL is not set (e.g. MQTT_URL=mqtt://127.0.0.1:1883)")
    metrics = BridgeMetrics()
    if settings.mqtt_metrics_port:
        start_http_server(settings.mqtt_metrics_port, addr=settings.mqtt_metrics_host, registry=metrics.registry)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop=stop, metrics=metrics)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
