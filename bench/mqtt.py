"""MQTT ingest benchmark (issue 14): readings per second through Mosquitto → bridge → PostgreSQL,
against the HTTP batch path measured in the same run on the same database.

  (a) MQTT, one reading per message (the §7.1 payload on telemetry/{site}/{asset})
  (a') the same, the messages queued in the broker while the bridge is stopped, then drained:
      the bridge alone (one Python publisher is the limit of (a) on this machine)
  (b) MQTT, 100 readings per message (a JSON array)
  (c) HTTP, POST /api/v1/telemetry/batch, 5,000 readings (20,000 points) per request, 4 in flight
      (bench/ingest.py's batch phase)
Each reading is one HVAC asset at one instant with 4 metrics (4 points). A figure is the time
from the first message published (request sent) to the last point committed in PostgreSQL.

The broker is Debian's mosquitto running deploy/mosquitto/mosquitto.conf (tests/brokers.py), the
bridge `python -m ingest.mqtt` as deployed, the API `uvicorn ingest.main:app` (2 workers).

Run: .venv/bin/python bench/mqtt.py [--single 20000] [--batched 200000]
Ends with one JSON line: mqtt_readings_per_s_single, mqtt_readings_per_s_batched,
mqtt_readings_per_s_single_backlog, http_batch_readings_per_s, batched_vs_http (goal ≥ 0.5).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg
from _support import ROOT, api_server, libpq_url, machine, throwaway_database
from paho.mqtt.enums import CallbackAPIVersion

from tests.brokers import PASSWORD, USER, BridgeProcess, Mosquitto

KEY = "bench-key"
HVAC = [("CAS-S1", "CAS-S1-HVAC_1"), ("CAS-S2", "CAS-S2-HVAC_1")]
METRICS = {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}


def _bench_ingest():
    """bench/ingest.py (its batch phase), loaded by path: `ingest` is also the project's package."""
    spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).with_name("ingest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry, telemetry_arrivals")
        conn.execute("CHECKPOINT")


def messages(n_readings: int, per_message: int, base: datetime) -> list[tuple[str, bytes]]:
    """(topic, payload) for n_readings readings, per_message readings per message, alternating
    between the two HVAC assets (each message holds one asset's readings)."""
    out = []
    per_asset = {a: [] for a in HVAC}
    for k in range(n_readings):
        site, asset = HVAC[k % 2]
        per_asset[(site, asset)].append({"timestamp": (base + timedelta(seconds=k // 2)).isoformat(),
                                         "metrics": METRICS})
        if len(per_asset[(site, asset)]) == per_message:
            batch = per_asset[(site, asset)]
            out.append((f"telemetry/{site}/{asset}", orjson.dumps(batch[0] if per_message == 1 else batch)))
            per_asset[(site, asset)] = []
    for (site, asset), batch in per_asset.items():
        if batch:
            out.append((f"telemetry/{site}/{asset}", orjson.dumps(batch[0] if len(batch) == 1 else batch)))
    return out


def committed(bridge: BridgeProcess) -> int:
    """Points the bridge has committed (its own counter: polling count(*) would load the database)."""
    return int((bridge.metric("m40_mqtt_points_total") or 0) + (bridge.metric("m40_mqtt_duplicate_points_total") or 0))


def through_mqtt(broker: Mosquitto, bridge: BridgeProcess, dsn: str, msgs: list[tuple[str, bytes]],
                 expected_points: int, timeout_s: float) -> dict:
    truncate(dsn)
    bridge.stop()  # a fresh bridge: its counters start at 0
    bridge.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv311)
    client.username_pw_set(USER, PASSWORD)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in msgs]
    deadline = time.monotonic() + timeout_s
    while committed(bridge) < expected_points and time.monotonic() < deadline:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    stored = count(dsn)  # checked once, at the end
    published = sum(1 for i in infos if i.is_published())
    client.loop_stop()
    client.disconnect()
    return {"messages": len(msgs), "published": published, "points": stored, "seconds": elapsed,
            "readings_per_s": stored / 4 / elapsed, "complete": stored >= expected_points}


def backlog_drain(broker: Mosquitto, bridge: BridgeProcess, dsn: str, msgs: list[tuple[str, bytes]],
                  expected_points: int, timeout_s: float) -> dict:
    """The bridge alone: the messages are queued in its session while it is stopped, then it is
    started; the rate is the span of its commits (telemetry_arrivals.arrived_at)."""
    truncate(dsn)
    bridge.stop()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv311)
    client.username_pw_set(USER, PASSWORD)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for info in [client.publish(topic, payload, qos=1) for topic, payload in msgs]:
        info.wait_for_publish(timeout_s)
    client.loop_stop()
    client.disconnect()
    bridge.start()
    deadline = time.monotonic() + timeout_s
    while committed(bridge) < expected_points and time.monotonic() < deadline:
        time.sleep(0.02)
    with psycopg.connect(dsn) as conn:
        points, span = conn.execute("SELECT (SELECT count(*) FROM telemetry), "
                                    "extract(epoch FROM max(arrived_at) - min(arrived_at)) FROM telemetry_arrivals").fetchone()
    span = max(float(span or 0), 1e-3)
    return {"points": points, "seconds": span, "readings_per_s": points / 4 / span,
            "complete": points >= expected_points}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single", type=int, default=20_000, help="readings sent one per message")
    ap.add_argument("--batched", type=int, default=200_000, help="readings sent 100 per message")
    ap.add_argument("--http", type=int, default=200_000, help="readings sent through the HTTP batch endpoint")
    ap.add_argument("--timeout", type=float, default=180, help="seconds allowed per phase")
    args = ap.parse_args()
    bench_ingest = _bench_ingest()

    print(f"machine: {machine()}")
    with throwaway_database() as url, tempfile.TemporaryDirectory(prefix="m40-bench-mqtt-") as tmp:
        dsn = libpq_url(url)
        with api_server({"INGEST_API_KEY": KEY, "LOG_LEVEL": "WARNING"}) as api:
            bodies, _ = bench_ingest.batch_bodies(4 * args.http, 20_000)
            print(f"(c) HTTP batch endpoint: {len(bodies)} requests of 5,000 readings, 4 in flight …", flush=True)
            c = bench_ingest.batch(api, bodies, dsn)
            c_rps = c["points"] / 4 / c["seconds"]
            print(f"    {c_rps:,.0f} readings/s ({c['points']:,} points in {c['seconds']:.2f} s)")
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        os.environ.update(LOG_LEVEL="WARNING")
        bridge = BridgeProcess(broker, "bench-bridge", Path(tmp) / "bridge.log").start()
        try:
            base = datetime(2022, 1, 1, tzinfo=UTC)
            print(f"(a) MQTT, 1 reading per message: {args.single:,} messages …", flush=True)
            a = through_mqtt(broker, bridge, dsn, messages(args.single, 1, base), 4 * args.single, args.timeout)
            print(f"    {a['readings_per_s']:,.0f} readings/s ({a['points']:,} points in {a['seconds']:.2f} s)"
                  + ("" if a["complete"] else " — INCOMPLETE at the time limit"))
            print(f"(a') the same {args.single:,} messages queued while the bridge is stopped, then drained …",
                  flush=True)
            d = backlog_drain(broker, bridge, dsn, messages(args.single, 1, base), 4 * args.single, args.timeout)
            print(f"    {d['readings_per_s']:,.0f} readings/s (the bridge's commits spanned {d['seconds']:.2f} s)"
                  + ("" if d["complete"] else " — INCOMPLETE at the time limit"))
            print(f"(b) MQTT, 100 readings per message: {args.batched // 100:,} messages …", flush=True)
            b = through_mqtt(broker, bridge, dsn, messages(args.batched, 100, base), 4 * args.batched, args.timeout)
            print(f"    {b['readings_per_s']:,.0f} readings/s ({b['points']:,} points in {b['seconds']:.2f} s)"
                  + ("" if b["complete"] else " — INCOMPLETE at the time limit"))
        finally:
            bridge.stop()
            broker.stop()
    ratio = b["readings_per_s"] / c_rps
    print(f"MQTT batched / HTTP batch = {ratio:.0%} (goal ≥ 50 %)")
    print(json.dumps({
        "mqtt_readings_per_s_single": round(a["readings_per_s"]),
        "mqtt_readings_per_s_batched": round(b["readings_per_s"]),
        "mqtt_readings_per_s_single_backlog": round(d["readings_per_s"]),
        "http_batch_readings_per_s": round(c_rps),
        "batched_vs_http": round(ratio, 3),
    }))


if __name__ == "__main__":
    main()
