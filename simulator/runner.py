"""Real time: every asset posts its reading every SIM_INTERVAL_S, staggered over the interval."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import httpx

from db.settings import Settings
from simulator.client import Gateway
from simulator.fleet import Fleet, discover, fetch_faults

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
        delay = min(delay * 2, 30)
    return []


def run(settings: Settings, *, stop: threading.Event, sites: int | None = None, assets_per_type: int | None = None,
        max_ticks: int | None = None) -> Gateway:
    """Simulate until `stop` is set (or max_ticks intervals); returns the gateway (for its counts)."""
    gw = Gateway(settings.api_url, settings.ingest_api_key, settings.sim_buffer_dir).start()
    assets = wait_for_assets(gw.http, stop, sites=sites, assets_per_type=assets_per_type)
    if sites is not None and len({a["site_code"] for a in assets}) < sites:
        log.warning("fewer sites registered than asked: register more with "
                    "`python -m db upgrade --sites N --assets-per-type N`")
    fleet = Fleet(assets, seed=settings.sim_seed)
    interval = settings.sim_interval_s
    log.info("simulating", extra={"assets": len(assets), "interval_s": interval, "api": settings.api_url})
    faults: dict = {}
    tick = 0
    next_tick = time.monotonic()
    while not stop.is_set() and (max_ticks is None or tick < max_ticks):
        try:
            faults = fetch_faults(gw.http)
        except httpx.HTTPError:
            pass  # keep the last known faults while the API is away
        for i, asset in enumerate(assets):  # staggered across the interval
            if stop.wait(max(0.0, next_tick + i * interval / len(assets) - time.monotonic())):
                break
            reading = fleet.reading(asset, datetime.now(UTC), faults.get(asset["code"], []))
            if reading is not None:
                gw.send(reading)
        tick += 1
        next_tick += interval
        if tick % max(1, int(60 / interval)) == 0:
            log.info("readings", extra={"delivered": gw.delivered, "buffered": gw.buffered(),
                                        "rejected": gw.rejected, "active_faults": sum(map(len, faults.values()))})
    gw.stop()
    return gw
