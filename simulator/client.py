"""The simulator's HTTP side, like a real gateway's: every reading goes to an on-disk buffer first
(SQLite), and a sender thread delivers it; sampling never waits on the network.

- API unreachable, 5xx, 503 overload (its Retry-After honoured), 401/403 (a key problem, not the
  readings'): nothing is dropped; the sender waits (exponential back-off capped at
  `max_backoff_s`, 10 s) and re-sends, then resumes at full speed.
- A backlog drains in batches that always carry the freshest readings too, so live values reach
  the API at once while the history catches up.
- Another 4xx is logged with its reason and those readings are not retried.
Re-sends are safe: the API stores a (asset, metric, timestamp) point once."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import orjson

log = logging.getLogger("simulator.client")

BATCH = 500  # readings per request when a backlog is drained
FRESH = 100  # of which the newest readings, so a backlog never delays live values


class Unavailable(Exception):
    """The API cannot take readings now (network error, 5xx, overload): keep them and retry."""

    def __init__(self, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def retry_after(r: httpx.Response) -> float | None:
    """The server's Retry-After in seconds (503 answers carry one), if any."""
    try:
        return float(r.headers["retry-after"])
    except (KeyError, ValueError):
        return None


class Buffer:
    """Readings on disk (SQLite, WAL), oldest dropped past `max_items`. One consumer (the sender)
    reads the newest and oldest readings and deletes them once delivered."""

    def __init__(self, directory: Path, *, max_items: int):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(Path(directory) / "readings.sqlite", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)")
        self._lock = threading.Lock()
        self.max_items = max_items
        self._count = self._db.execute("SELECT count(*) FROM readings").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def put(self, reading: dict) -> int:
        """Store one reading; returns how many old readings were dropped to make room (0 or 1)."""
        with self._lock:
            dropped = 0
            if self._count >= self.max_items:
                dropped = self._db.execute("DELETE FROM readings WHERE id = (SELECT min(id) FROM readings)").rowcount
                self._count -= dropped
            self._db.execute("INSERT INTO readings (body) VALUES (?)", (orjson.dumps(reading),))
            self._count += 1
            return dropped

    def take(self, n: int, *, fresh: int) -> list[tuple[int, dict]]:
        """Up to `n` readings, oldest first, the `fresh` newest always among them (not removed)."""
        with self._lock:
            newest = self._db.execute("SELECT id, body FROM readings ORDER BY id DESC LIMIT ?", (fresh,)).fetchall()
            if not newest:
                return []
            oldest = self._db.execute("SELECT id, body FROM readings WHERE id < ? ORDER BY id LIMIT ?",
                                      (newest[-1][0], n - len(newest))).fetchall()
        return [(i, orjson.loads(b)) for i, b in oldest + newest[::-1]]

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            removed = self._db.executemany("DELETE FROM readings WHERE id = ?", [(i,) for i in ids]).rowcount
            self._count -= removed

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Gateway:
    """Buffer + sender thread. `send()` only writes to the local buffer: it never waits on the network."""

    def __init__(self, api_url: str, api_key: str, buffer_dir: Path, *, max_buffered: int = 500_000,
                 max_backoff_s: float = 10.0, timeout_s: float = 5.0):
        self.buffer = Buffer(buffer_dir, max_items=max_buffered)
        self.http = httpx.Client(base_url=api_url.rstrip("/") + "/api/v1", headers={"X-API-Key": api_key},
                                 timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)))
        self.max_backoff_s = max_backoff_s
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0
        self._drain_s = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    # --- producer side -------------------------------------------------------------------
    def send(self, reading: dict) -> None:
        """Buffer one §7.1 reading on disk; the sender delivers it."""
        if self.buffer.put(reading):  # bounded: the oldest reading went
            self.dropped += 1
            log.warning("buffer full: dropped the oldest reading", extra={"buffered": self.buffer.max_items})
        self._wake.set()

    def buffered(self) -> int:
        return len(self.buffer)

    # --- sender side ---------------------------------------------------------------------
    def start(self) -> Gateway:
        self._thread.start()
        return self

    def stop(self, *, drain_s: float = 5.0) -> None:
        """Try to deliver what is buffered for a few seconds, then stop (the rest stays on disk)."""
        self._drain_s = drain_s
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=drain_s + self.max_backoff_s + 10)
        self.http.close()
        if not self._thread.is_alive():
            self.buffer.close()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            if delay:
                self._stop.wait(delay)
            else:
                self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
                delay = 0.0  # back at full speed
            except Unavailable as exc:
                backoff = min(self.max_backoff_s, max(0.5, delay * 2))
                delay = min(self.max_backoff_s, exc.retry_after_s) if exc.retry_after_s else backoff
                log.warning("API unavailable, readings kept on disk; retrying",
                            extra={"buffered": self.buffered(), "retry_in_s": delay, "error": str(exc)})
        self._final_flush()

    def _final_flush(self) -> None:
        if not self.buffered() or self._drain_s <= 0:
            return
        try:
            self.flush(deadline=time.monotonic() + self._drain_s)
        except Unavailable:
            pass
        if self.buffered():
            log.info("stopping with readings still buffered on disk", extra={"buffered": self.buffered()})

    def flush(self, *, deadline: float | None = None) -> int:
        """Deliver the buffer (until `deadline`, a monotonic time, if given); raise Unavailable at
        the first failure that calls for a retry."""
        sent = 0
        while deadline is None or time.monotonic() < deadline:
            items = self.buffer.take(BATCH, fresh=FRESH)
            if not items:
                break
            sent += self._post(items)
        return sent

    def _post(self, items: list[tuple[int, dict]]) -> int:
        readings = [r for _, r in items]
        try:
            if len(readings) == 1:
                r = self.http.post("/telemetry", json=readings[0])
            else:
                r = self.http.post("/telemetry/batch", json={"readings": readings})
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise Unavailable(f"HTTP {r.status_code}", retry_after_s=retry_after(r))
        if r.status_code in (401, 403):  # the key, not the readings: keep them until it is fixed
            log.error("the API refused the gateway's key (HTTP %s); readings kept", r.status_code)
            raise Unavailable(f"HTTP {r.status_code}")
        if r.status_code >= 400:
            return self._rejected(items, r)
        self.buffer.remove([i for i, _ in items])
        self.delivered += len(items)
        return len(items)

    def _rejected(self, items: list[tuple[int, dict]], r: httpx.Response) -> int:
        """A 4xx: drop the readings it names (logged); the others of a batch stay buffered."""
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
        for i in sorted(bad):
            reading = items[i][1]
            log.error("reading refused by the API (HTTP %s: %s), not retried", r.status_code, body.get("detail"),
                      extra={"asset_code": reading.get("asset_code"), "reading_ts": reading.get("timestamp")})
        self.buffer.remove([items[i][0] for i in bad])
        self.rejected += len(bad)
        return 0
