"""Overload (issue 11): a burst far above what the API can take — here the writer cannot commit at
all, telemetry being locked — gets 503 with Retry-After at once for what does not fit, the
worker's memory stays bounded, every acknowledged point is stored once the database frees up,
and the simulator's gateway and the back-fill client wait and deliver everything."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import psutil
import psycopg
import pytest

from simulator import backfill
from simulator.client import Gateway
from tests.conftest import API_KEY, PROJECT, free_port

pytestmark = pytest.mark.slow

SINGLES, BATCHES = 1500, 150
MAX_QUEUED_POINTS = 20_000
MAX_INFLIGHT_REQUESTS = 64
MAX_INFLIGHT_BYTES = 8 * 1024 * 1024
BASE = datetime(2024, 1, 1, tzinfo=UTC)
METRICS = {"temp_out_air": 30.0, "temp_supply_air": 18.0, "power_kw": 12.0, "vibration_level": 2.0}


def reading(i: int, asset: str = "CAS-S1-HVAC_1") -> dict:
    return {"site_code": asset[:6], "asset_code": asset, "timestamp": (BASE + timedelta(seconds=i)).isoformat(),
            "metrics": METRICS}


@pytest.fixture
def small_api(database_url, tmp_path):
    """`uvicorn ingest.main:app`, one worker, with small overload bounds."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, INGEST_API_KEY=API_KEY, WEB_CONCURRENCY="1",
               INGEST_MAX_QUEUED_POINTS=str(MAX_QUEUED_POINTS), API_MAX_INFLIGHT_REQUESTS=str(MAX_INFLIGHT_REQUESTS),
               API_MAX_INFLIGHT_BYTES=str(MAX_INFLIGHT_BYTES), LOG_LEVEL="WARNING")
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "ingest.main:app", "--host", "127.0.0.1", "--port",
                             str(port), "--no-access-log"], cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "API did not start"
        time.sleep(0.2)
    yield url, proc
    proc.terminate()
    proc.wait(20)


class TelemetryLock:
    """Telemetry locked by another transaction: the API's writer waits, its capacity is zero."""

    def __init__(self, dsn: str):
        self.conn = psycopg.connect(dsn)
        self.conn.execute("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


async def _burst(url: str, singles: int, batches: int, batch_body: bytes,
                 answered: list[int]) -> list[tuple[int, float, dict, float]]:
    """Every request at once; returns (status, seconds, body, answered at) of each; counts the
    answers in `answered[0]` as they come."""
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=singles + batches, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url + "/api/v1", headers=headers, limits=limits, timeout=120) as client:
        async def one(path: str, body: bytes):
            start = time.monotonic()
            try:
                r = await client.post(path, content=body)
            except httpx.HTTPError as exc:  # a connection refused under the burst would count as "not accepted"
                return 0, time.monotonic() - start, {"error": repr(exc)}, time.monotonic()
            finally:
                answered[0] += 1
            return r.status_code, time.monotonic() - start, {**r.json(), "retry-after": r.headers.get("retry-after")}, \
                time.monotonic()

        tasks = [one("/telemetry", orjson.dumps(reading(10_000 + i, "CAS-S2-HVAC_1"))) for i in range(singles)]
        tasks += [one("/telemetry/batch", batch_body) for _ in range(batches)]
        return await asyncio.gather(*tasks)


def test_a_burst_far_above_capacity_gets_503_at_once_memory_stays_bounded_nothing_acknowledged_is_lost(
        small_api, database_url, pg, tmp_path):
    from db.session import libpq_url

    url, proc = small_api
    worker = psutil.Process(proc.pid)
    for i in range(50):  # warm up: catalog, connections, code paths
        assert httpx.post(url + "/api/v1/telemetry", json=reading(i), headers={"X-API-Key": API_KEY}).status_code == 200
    rss_before = worker.memory_info().rss

    # 1,500 single readings and 150 batches of 2,500 readings (~400 KB each: ~60 MB, 1.5 million
    # points) at once, against a queue of 20,000 points that cannot drain
    batch_body = orjson.dumps({"readings": [reading(100 + i) for i in range(2500)]})
    peak = [rss_before]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], worker.memory_info().rss)
            time.sleep(0.02)

    lock = TelemetryLock(libpq_url(database_url))
    sampler = threading.Thread(target=sample)
    sampler.start()
    gw = Gateway(url, API_KEY, tmp_path / "buffer", max_backoff_s=10, timeout_s=5).start()
    backfilled = []
    try:
        results: list = []
        answered = [0]
        burst = threading.Thread(
            target=lambda: results.extend(asyncio.run(_burst(url, SINGLES, BATCHES, batch_body, answered))))
        burst.start()
        for i in range(20):  # the gateway keeps readings while the API turns it away
            gw.send(reading(50_000 + i, "CAS-S2-HVAC_1"))
        bf = threading.Thread(target=lambda: backfilled.append(
            backfill._post(httpx.Client(base_url=url + "/api/v1", headers={"X-API-Key": API_KEY}, timeout=60),
                           [reading(60_000 + i, "CAS-S2-HVAC_1") for i in range(10)])))
        # nothing can be committed: every request beyond the bounds must still get its answer
        deadline = time.monotonic() + 90
        while answered[0] < SINGLES + BATCHES - MAX_INFLIGHT_REQUESTS and time.monotonic() < deadline:
            time.sleep(0.1)
        unlocked_at = time.monotonic()
        bf.start()
        time.sleep(2)
    finally:
        lock.release()
    burst.join(180)
    bf.join(120)
    assert gw_wait(gw, 30), f"{gw.buffered()} readings still in the gateway's buffer"
    gw.stop()
    sampling.set()
    sampler.join()

    statuses = [s for s, *_ in results]
    accepted = [body for s, _, body, _ in results if s == 200]
    refused = [(secs, body, at) for s, secs, body, at in results if s == 503]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    # everything beyond the bounds was refused while the writer could not commit anything: those
    # requests did not wait for capacity (nor pile up)
    assert len(refused) >= SINGLES + BATCHES - MAX_INFLIGHT_REQUESTS
    assert sum(at < unlocked_at for _, _, at in refused) >= SINGLES + BATCHES - MAX_INFLIGHT_REQUESTS
    assert all(b["retry-after"] and int(b["retry-after"]) >= 1 and "retry later" in b["detail"] for _, b, _ in refused)
    # memory: bounded by the in-flight bounds, not by the ~60 MB of bodies offered
    growth_mb = (peak[0] - rss_before) / 2**20
    assert growth_mb < 150, f"RSS grew by {growth_mb:.0f} MB"
    # every acknowledged point is stored; nothing refused is
    stored = pg.execute("SELECT count(*) FROM telemetry WHERE ts >= %s AND ts < %s",
                        (BASE + timedelta(seconds=100), BASE + timedelta(seconds=50_000))).fetchone()[0]
    assert stored == sum(b["inserted_points"] for b in accepted)
    # the gateway and the back-fill client honoured Retry-After and delivered everything
    assert pg.execute("SELECT count(*) FROM telemetry WHERE ts >= %s",
                      (BASE + timedelta(seconds=50_000),)).fetchone()[0] == 4 * 20 + 4 * 10
    assert backfilled == [40]
    print(f"{len(accepted)} accepted, {len(refused)} refused (503), RSS +{growth_mb:.0f} MB")


def gw_wait(gw: Gateway, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gw.buffered() == 0:
            return True
        time.sleep(0.2)
    return False
