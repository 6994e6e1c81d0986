"""The simulator's HTTP side, like a real gateway's: every reading goes to an on-disk buffer first
(persist-queue, SQLite), and a sender thread delivers the buffer in order. When the API is
unreachable or answers 5xx, nothing is dropped: the sender backs off (tenacity) and re-sends.
A 4xx is logged with its reason and not retried. Re-sends are safe: the API stores a
(asset, metric, timestamp) point once."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
import persistqueue
from tenacity import Retrying, retry_if_exception_type, wait_exponential

log = logging.getLogger("simulator.client")

BATCH = 500  # readings per request when a backlog is drained


class Unavailable(Exception):
    """The API cannot take readings now (network error or 5xx): keep them and retry."""


class Gateway:
    """Buffer + sender. `send()` never blocks on the network."""

    def __init__(self, api_url: str, api_key: str, buffer_dir: Path, *, max_buffered: int = 500_000,
                 max_backoff_s: float = 30.0, timeout_s: float = 10.0):
        Path(buffer_dir).mkdir(parents=True, exist_ok=True)
        self.queue = persistqueue.SQLiteAckQueue(str(buffer_dir), auto_commit=True, multithreading=True)
        self.http = httpx.Client(base_url=api_url.rstrip("/") + "/api/v1", headers={"X-API-Key": api_key},
                                 timeout=timeout_s)
        self.max_buffered = max_buffered
        self.max_backoff_s = max_backoff_s
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    # --- producer side -------------------------------------------------------------------
    def send(self, reading: dict) -> None:
        """Buffer one §7.1 reading on disk; the sender delivers it."""
        if self.queue.qsize() >= self.max_buffered:  # bounded: the oldest reading goes first
            oldest = self.queue.get(block=False)
            self.queue.ack_failed(oldest)
            self.dropped += 1
            log.warning("buffer full: dropped the oldest reading", extra={"buffered": self.max_buffered})
        self.queue.put(reading)
        self._wake.set()

    def buffered(self) -> int:
        return self.queue.qsize()

    # --- sender side ---------------------------------------------------------------------
    def start(self) -> Gateway:
        self._thread.start()
        return self

    def stop(self, *, drain_s: float = 5.0) -> None:
        """Try to deliver what is buffered for a few seconds, then stop (the rest stays on disk)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=drain_s + self.max_backoff_s)
        self.queue.clear_acked_data()
        self.http.close()

    def _run(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(Unavailable),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self.max_backoff_s),
            before_sleep=lambda rs: log.warning(
                "API unavailable, readings kept on disk; retrying",
                extra={"buffered": self.buffered(), "retry_in_s": round(rs.next_action.sleep, 1),
                       "error": str(rs.outcome.exception())},
            ),
            sleep=lambda s: self._stop.wait(s),
        )
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                for attempt in retrying:
                    with attempt:
                        if self._stop.is_set() and attempt.retry_state.attempt_number > 1:
                            return
                        self.flush()
            except Unavailable:
                pass
        try:
            self.flush()
        except Unavailable:
            log.info("stopping with readings still buffered on disk", extra={"buffered": self.buffered()})

    def flush(self) -> int:
        """Deliver the buffer in order; raise Unavailable at the first network/5xx failure."""
        sent = 0
        while True:
            items = []
            while len(items) < BATCH:
                try:
                    items.append(self.queue.get(block=False))
                except persistqueue.Empty:
                    break
            if not items:
                return sent
            sent += self._post(items)

    def _post(self, items: list[dict]) -> int:
        try:
            if len(items) == 1:
                r = self.http.post("/telemetry", json=items[0])
            else:
                r = self.http.post("/telemetry/batch", json={"readings": items})
        except httpx.HTTPError as exc:
            self._put_back(items)
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code >= 500 or r.status_code in (408, 429):
            self._put_back(items)
            raise Unavailable(f"HTTP {r.status_code}")
        if r.status_code >= 400:
            return self._rejected(items, r)
        for item in items:
            self.queue.ack(item)
        self.delivered += len(items)
        return len(items)

    def _put_back(self, items: list[dict]) -> None:
        for item in items:
            self.queue.nack(item)

    def _rejected(self, items: list[dict], r: httpx.Response) -> int:
        """A 4xx: drop the readings it names (logged), re-queue the others of a batch."""
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text[:200]}
        bad = set()
        if len(items) > 1:
            for e in body.get("errors", []):
                field = e.get("field", "")
                if field.startswith("readings["):
                    bad.add(int(field[len("readings["): field.index("]")]))
        if len(items) == 1 or not bad:
            bad = set(range(len(items)))
        for i, item in enumerate(items):
            if i in bad:
                self.queue.ack_failed(item)
                log.error("reading refused by the API (HTTP %s: %s), not retried", r.status_code, body.get("detail"),
                          extra={"asset_code": item.get("asset_code"), "timestamp": item.get("timestamp")})
            else:
                self.queue.nack(item)
        self.rejected += len(bad)
        return 0
