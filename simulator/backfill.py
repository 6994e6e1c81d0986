"""History back-fill through the batch endpoint, so charts are never empty on a new install."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from tqdm import tqdm

from simulator.client import Unavailable, retry_after
from simulator.fleet import Fleet, discover

log = logging.getLogger("simulator.backfill")
READINGS_PER_REQUEST = 5000


_backoff = wait_exponential(min=0.5, max=10)


def _wait(retry_state) -> float:
    """The server's Retry-After when it gave one (503: overloaded, database away), capped at 10 s;
    exponential back-off otherwise."""
    exc = retry_state.outcome.exception()
    if isinstance(exc, Unavailable) and exc.retry_after_s:
        return min(exc.retry_after_s, 10.0)
    return _backoff(retry_state)


@retry(retry=retry_if_exception_type(Unavailable), wait=_wait, stop=stop_after_delay(300), reraise=True)
def _post(http: httpx.Client, readings: list[dict]) -> int:
    try:
        r = http.post("/telemetry/batch", json={"readings": readings})
    except httpx.HTTPError as exc:
        raise Unavailable(str(exc)) from exc
    if r.status_code >= 500 or r.status_code == 429:
        raise Unavailable(f"HTTP {r.status_code}", retry_after_s=retry_after(r))
    r.raise_for_status()
    return r.json()["inserted_points"]


def backfill(api_url: str, api_key: str, *, hours: float, now: datetime, interval_s: float = 10.0, seed: int = 42,
             progress: bool = True) -> int:
    """Post `hours` of simulated history ending at `now` for every asset; returns points stored."""
    with httpx.Client(base_url=api_url.rstrip("/") + "/api/v1", headers={"X-API-Key": api_key}, timeout=120) as http:
        fleet = Fleet(discover(http), seed=seed, counters_from=None)
        start = now - timedelta(hours=hours)
        steps = int(hours * 3600 / interval_s)
        inserted, buf = 0, []
        bar = tqdm(total=steps * len(fleet.assets), unit="reading", desc="back-fill", disable=not progress)
        for k in range(steps):
            ts = start + timedelta(seconds=k * interval_s)
            for reading in fleet.readings(ts, faults={}):
                buf.append(reading)
            bar.update(len(fleet.assets))
            if len(buf) >= READINGS_PER_REQUEST:
                inserted += _post(http, buf)
                buf = []
        if buf:
            inserted += _post(http, buf)
        bar.close()
    log.info("back-fill done", extra={"hours": hours, "points": inserted})
    return inserted


def has_history(api_url: str, api_key: str) -> bool:
    """Whether any asset has reported already (asked through the API, like any client)."""
    with httpx.Client(base_url=api_url.rstrip("/") + "/api/v1", headers={"X-API-Key": api_key}, timeout=30) as http:
        return any(a["last_seen"] for a in discover(http))


def backfill_if_empty(api_url: str, api_key: str, *, hours: float = 24, now: datetime | None = None, **kw) -> int:
    """Back-fill only when no asset has any telemetry yet; returns points stored (0 if skipped)."""
    if has_history(api_url, api_key):
        log.info("history present: no back-fill")
        return 0
    return backfill(api_url, api_key, hours=hours, now=now or datetime.now(UTC), **kw)
