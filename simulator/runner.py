"""Real time: every asset takes a reading every SIM_INTERVAL_S, staggered over the interval.

Sampling runs on its own clock and only ever writes to the local buffer: delivering readings
(`Gateway`'s sender thread) and fetching the active faults (`FaultWatcher`'s thread, bounded
waits) happen beside it, so a slow or absent API or database never delays a reading.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import httpx

from core.settings import Settings
from simulator.client import Gateway
from simulator.fleet import Fleet, discover, fetch_faults
from simulator.mqtt import gateway
from simulator.signals import ActiveFault

log = logging.getLogger("simulator")


def wait_for_assets(http: httpx.Client, stop: threading.Event, **kw) -> list[dict]:
    """The assets to simulate, waiting for the API if it is not up yet."""
    delay = 1.0
    while not stop.is_set():
        try:
            assets = discover(http, **kw)
            if assets:
                return assets
            log.warning("the API lists no assets yet; waiting")
        except httpx.HTTPError as exc:
            log.warning("API not reachable yet (%s); waiting", exc)
        stop.wait(delay)
        delay = min(delay * 2, 10)
    return []


class FaultWatcher:
    """Polls GET /simulator/faults every `interval_s` in its own thread; `current` is the last
    answer (kept while the API is away)."""

    def __init__(self, http: httpx.Client, interval_s: float, stop: threading.Event):
        self.http = http
        self.interval_s = interval_s
        self.current: dict[str, list[ActiveFault]] = {}
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self) -> FaultWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.current = fetch_faults(self.http)
            except httpx.HTTPError as exc:
                log.debug("faults not fetched (%s); keeping the last known", exc)
            self._stop.wait(self.interval_s)


def run(settings: Settings, *, stop: threading.Event, sites: int | None = None, assets_per_type: int | None = None,
        max_ticks: int | None = None) -> Gateway:
    """Simulate until `stop` is set (or max_ticks intervals); returns the gateway (for its counts)."""
    gw = gateway(settings).start()  # SIM_TRANSPORT: the API, or MQTT (simulator/mqtt.py)
    assets = wait_for_assets(gw.http, stop, sites=sites, assets_per_type=assets_per_type)
    if sites is not None and len({a["site_code"] for a in assets}) < sites:
        log.warning("fewer sites registered than asked: register more with "
                    "`python -m db upgrade --sites N --assets-per-type N`")
    fleet = Fleet(assets, seed=settings.sim_seed)
    interval = settings.sim_interval_s
    # its own connection pool and a wait shorter than the interval: never the sender's queue
    faults_http = httpx.Client(base_url=str(gw.http.base_url), headers={"X-API-Key": settings.ingest_api_key},
                               timeout=httpx.Timeout(min(interval, 5.0), connect=min(interval, 2.0)))
    watcher = FaultWatcher(faults_http, interval, stop).start()
    log.info("simulating", extra={"assets": len(assets), "interval_s": interval, "api": settings.api_url})
    tick = 0
    next_tick = time.monotonic()
    while not stop.is_set() and (max_ticks is None or tick < max_ticks):
        for i, asset in enumerate(assets):  # staggered across the interval
            if stop.wait(max(0.0, next_tick + i * interval / len(assets) - time.monotonic())):
                break
            ts = datetime.now(UTC)
            reading = fleet.reading(asset, ts, watcher.current.get(asset["code"], []))
            if reading is None:
                log.debug("dropout", extra={"asset_code": asset["code"], "reading_ts": ts.isoformat()})
            else:
                gw.send(reading)
                log.debug("reading taken", extra={"asset_code": asset["code"], "reading_ts": reading["timestamp"],
                                                  "points": len(reading["metrics"])})
        tick += 1
        next_tick += interval
        if time.monotonic() > next_tick + interval:  # the machine stalled (suspend): resume on the clock
            next_tick = time.monotonic()
        if tick % max(1, int(60 / interval)) == 0:
            log.info("readings", extra={"delivered": gw.delivered, "buffered": gw.buffered(), "rejected": gw.rejected,
                                        "active_faults": sum(map(len, watcher.current.values()))})
    stop.set()
    gw.stop()
    faults_http.close()
    return gw
