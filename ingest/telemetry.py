"""The telemetry write path: resolve codes through a cache, validate every reading, and store
points with group commit (one COPY and one commit for all the requests waiting at that moment).

A request is answered only after the commit that holds its points, so nothing acknowledged is
ever lost; a request with any bad reading is refused whole and writes nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import errors as pg_errors

from db.errors import InvalidInput
from ingest.schemas import TelemetryIn

log = logging.getLogger(__name__)

Point = tuple[int, int, datetime, float]  # asset_id, metric_id, ts, value
Key = tuple[int, int, datetime]


@dataclass(frozen=True)
class AssetRef:
    id: int
    code: str
    site_code: str
    type: str


class Catalog:
    """Asset codes and metric names resolved in memory; reloaded on a miss (at most once a
    second), so assets added after start are seen without a query per reading."""

    def __init__(self, dsn: str, *, min_reload_s: float = 1.0):
        self._dsn = dsn
        self._min_reload_s = min_reload_s
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self.sites: set[str] = set()
        self.assets: dict[str, AssetRef] = {}
        self.metrics: dict[tuple[str, str], int] = {}  # (asset_type, metric name) -> metric_id

    def reload(self) -> None:
        """Read sites, assets and the metric catalog."""
        with psycopg.connect(self._dsn) as conn:
            sites = {r[0] for r in conn.execute("SELECT code FROM sites")}
            assets = {
                code: AssetRef(aid, code, site, typ)
                for aid, code, site, typ in conn.execute(
                    "SELECT a.id, a.code, s.code, a.type FROM assets a JOIN sites s ON s.id = a.site_id"
                )
            }
            metrics = {
                (typ, name): mid
                for mid, name, types in conn.execute("SELECT id, name, asset_types FROM metrics")
                for typ in types
            }
        self.sites, self.assets, self.metrics = sites, assets, metrics
        self._loaded_at = time.monotonic()

    def _reload_on_miss(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at >= self._min_reload_s:
                self.reload()

    def asset(self, code: str) -> AssetRef | None:
        ref = self.assets.get(code)
        if ref is None:
            self._reload_on_miss()
            ref = self.assets.get(code)
        return ref

    def has_site(self, code: str) -> bool:
        if code not in self.sites:
            self._reload_on_miss()
        return code in self.sites


def to_points(
    catalog: Catalog,
    readings: Sequence[TelemetryIn],
    *,
    now: datetime,
    future_tolerance_s: float,
    prefix: str = "",
) -> list[Point]:
    """Check every reading and turn them into points; raise InvalidInput naming each bad field.

    A point repeated inside the request (same asset, metric and timestamp) is kept once.
    """
    errors: list[dict] = []
    points: dict[Key, float] = {}
    latest = now + timedelta(seconds=future_tolerance_s)
    metrics = catalog.metrics
    for i, r in enumerate(readings):
        where = f"{prefix}[{i}]." if prefix else ""
        asset = catalog.asset(r.asset_code)
        if asset is None:
            if not catalog.has_site(r.site_code):
                errors.append({"field": f"{where}site_code", "reason": f"unknown site {r.site_code!r}"})
            else:
                errors.append({"field": f"{where}asset_code", "reason": f"unknown asset {r.asset_code!r}"})
            continue
        if asset.site_code != r.site_code:
            reason = (
                f"asset {r.asset_code!r} is not on site {r.site_code!r} (it is on {asset.site_code})"
                if catalog.has_site(r.site_code)
                else f"unknown site {r.site_code!r}"
            )
            field_name = "asset_code" if catalog.has_site(r.site_code) else "site_code"
            errors.append({"field": f"{where}{field_name}", "reason": reason})
            continue
        if r.timestamp > latest:
            errors.append(
                {
                    "field": f"{where}timestamp",
                    "reason": f"timestamp {r.timestamp.isoformat()} is more than {future_tolerance_s:g} s in the future",
                }
            )
            continue
        for name, value in r.metrics.items():
            mid = metrics.get((asset.type, name))
            if mid is None:
                errors.append(
                    {"field": f"{where}metrics.{name}", "reason": f"unknown metric {name!r} for asset type {asset.type}"}
                )
                continue
            points.setdefault((asset.id, mid, r.timestamp), float(value))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first['field']}: {first['reason']}{more}; nothing was stored", errors=errors)
    return [(a, m, ts, v) for (a, m, ts), v in points.items()]


_COPY_TYPES = ["int4", "int2", "timestamptz", "float8"]


def _copy(cur: psycopg.Cursor, table: str, points: Iterable[Point]) -> None:
    with cur.copy(f"COPY {table} (asset_id, metric_id, ts, value) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(_COPY_TYPES)
        for p in points:
            cp.write_row(p)


def write_points(conn: psycopg.Connection, points: Sequence[Point]) -> set[Key] | None:
    """Store points inside the caller's transaction; already-stored points are skipped.

    Fast path: one binary COPY straight into the table (returns None: every point was new).
    When some point is already there (a re-send), the COPY is undone to its savepoint and the
    points go through a staging table with ON CONFLICT DO NOTHING; returns the keys inserted.
    """
    if not points:
        return set()
    try:
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, "telemetry", points)
        return None
    except pg_errors.UniqueViolation:
        pass
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS telemetry_in "
            "(asset_id int4, metric_id int2, ts timestamptz, value float8) ON COMMIT DELETE ROWS"
        )
        cur.execute("TRUNCATE telemetry_in")
        _copy(cur, "telemetry_in", points)
        cur.execute(
            "INSERT INTO telemetry (asset_id, metric_id, ts, value) "
            "SELECT asset_id, metric_id, ts, value FROM telemetry_in "
            "ON CONFLICT DO NOTHING RETURNING asset_id, metric_id, ts"
        )
        return {(a, m, ts) for a, m, ts in cur.fetchall()}


@dataclass
class _Submission:
    points: list[Point]
    future: Future = field(default_factory=Future)


class GroupCommitWriter:
    """One thread, one connection: every submission waiting when a write starts goes into the
    same COPY and the same commit; each submitter gets its own count of newly stored points."""

    def __init__(self, dsn: str, *, max_points: int = 200_000):
        self._dsn = dsn
        self._max_points = max_points
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="telemetry-writer", daemon=True)
        self._conn: psycopg.Connection | None = None
        self.commits = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def submit(self, points: list[Point]) -> Future:
        """Queue points; the future resolves to the number newly stored, after the commit."""
        sub = _Submission(points)
        if not points:
            sub.future.set_result(0)
        else:
            self._queue.put(sub)
        return sub.future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch, n = [first], len(first.points)
            while n < self._max_points:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
                n += len(nxt.points)
            self._write_batch(batch)
        if self._conn is not None:
            self._conn.close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn)
        return self._conn

    def _write_batch(self, batch: list[_Submission]) -> None:
        try:
            counts = self._write(batch)
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
            log.warning("telemetry write failed: %s", exc)
            if self._conn is not None:
                try:
                    self._conn.rollback()
                except psycopg.Error:
                    self._conn.close()
            if len(batch) > 1:  # isolate: one bad submission must not fail the others
                for sub in batch:
                    self._write_batch([sub])
                return
            batch[0].future.set_exception(exc)
            return
        for sub, count in zip(batch, counts, strict=True):
            sub.future.set_result(count)

    def _write(self, batch: list[_Submission]) -> list[int]:
        conn = self._connection()
        if len(batch) == 1:
            points = batch[0].points
            owner = None
        else:  # the same point in two waiting requests counts for the first one
            owner: dict[Key, int] = {}
            points = []
            for i, sub in enumerate(batch):
                for p in sub.points:
                    k = (p[0], p[1], p[2])
                    if k not in owner:
                        owner[k] = i
                        points.append(p)
        inserted = write_points(conn, points)
        conn.commit()
        self.commits += 1
        if inserted is None:  # all new
            if owner is None:
                return [len(points)]
            counts = [0] * len(batch)
            for i in owner.values():
                counts[i] += 1
            return counts
        if owner is None:
            return [len(inserted)]
        counts = [0] * len(batch)
        for k in inserted:
            counts[owner[k]] += 1
        return counts
