"""The telemetry write path: resolve codes through a cache, validate every reading, and store
points with group commit (one COPY and one commit for all the requests waiting at that moment).

A request is answered only after the commit that holds its points, so nothing acknowledged is
ever lost; a request with any bad reading is refused whole and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
        self.metrics: dict[str, dict[str, int]] = {}  # asset_type -> metric name -> metric_id

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
            metrics: dict[str, dict[str, int]] = {}
            for mid, name, types in conn.execute("SELECT id, name, asset_types FROM metrics"):
                for typ in types:
                    metrics.setdefault(typ, {})[name] = mid
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

    A point repeated inside one request is not an error: the writer stores it once.
    """
    errors: list[dict] = []
    points: list[Point] = []
    latest = now + timedelta(seconds=future_tolerance_s)
    metrics = catalog.metrics
    for i, r in enumerate(readings):
        asset = catalog.asset(r["asset_code"])
        ts = r["timestamp"]
        if asset is None or asset.site_code != r["site_code"] or ts > latest:
            errors.append(_reading_error(catalog, r, asset, f"{prefix}[{i}]." if prefix else "", future_tolerance_s))
            continue
        aid, typ = asset.id, asset.type
        of_type = metrics.get(typ, {})
        for name, value in r["metrics"].items():
            mid = of_type.get(name)
            if mid is None:
                where = f"{prefix}[{i}]." if prefix else ""
                errors.append({"field": f"{where}metrics.{name}", "reason": f"unknown metric {name!r} for asset type {typ}"})
                continue
            points.append((aid, mid, ts, value))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first['field']}: {first['reason']}{more}; nothing was stored", errors=errors)
    return points


def _reading_error(catalog: Catalog, r: TelemetryIn, asset: AssetRef | None, where: str, tolerance: float) -> dict:
    """The error of a reading whose site, asset or timestamp is wrong."""
    site, code = r["site_code"], r["asset_code"]
    if not catalog.has_site(site):
        return {"field": f"{where}site_code", "reason": f"unknown site {site!r}"}
    if asset is None:
        return {"field": f"{where}asset_code", "reason": f"unknown asset {code!r}"}
    if asset.site_code != site:
        return {
            "field": f"{where}asset_code",
            "reason": f"asset {code!r} is not on site {site!r} (it is on {asset.site_code})",
        }
    return {
        "field": f"{where}timestamp",
        "reason": f"timestamp {r['timestamp'].isoformat()} is more than {tolerance:g} s in the future",
    }


_COPY_TYPES = ["int4", "int2", "timestamptz", "float8"]
_COPY = "COPY {table} (asset_id, metric_id, ts, value) FROM STDIN (FORMAT BINARY)"
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS telemetry_in "
    "(asset_id int4, metric_id int2, ts timestamptz, value float8) ON COMMIT DELETE ROWS"
)
_MERGE = (
    "INSERT INTO telemetry (asset_id, metric_id, ts, value) "
    "SELECT asset_id, metric_id, ts, value FROM telemetry_in "
    "ON CONFLICT DO NOTHING RETURNING asset_id, metric_id, ts"
)


def write_points(conn: psycopg.Connection, points: Sequence[Point]) -> set[Key] | None:
    """Store points inside the caller's transaction; already-stored points are skipped.

    Fast path: one binary COPY straight into the table (returns None: every point was new).
    When some point is already there (a re-send), the COPY is undone to its savepoint and the
    points go through a staging table with ON CONFLICT DO NOTHING; returns the keys inserted.
    (`AsyncWriter._write_points` is the same two steps on an async connection.)
    """
    if not points:
        return set()
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY.format(table="telemetry")) as cp:
            cp.set_types(_COPY_TYPES)
            for p in points:
                cp.write_row(p)
        return None
    except pg_errors.UniqueViolation:
        pass
    with conn.cursor() as cur:
        cur.execute(_STAGING)
        with cur.copy(_COPY.format(table="telemetry_in")) as cp:
            cp.set_types(_COPY_TYPES)
            for p in points:
                cp.write_row(p)
        cur.execute(_MERGE)
        rows = cur.fetchall()
        cur.execute("TRUNCATE telemetry_in")
        return {(a, m, ts) for a, m, ts in rows}


def _counts(batch: list[tuple[list[Point], asyncio.Future]], inserted: set[Key] | None) -> list[int]:
    """How many points each waiting request newly stored; a point sent by two of them counts
    for the first."""
    if inserted is None:  # the fast path: every point was new
        return [len(points) for points, _ in batch]
    unclaimed = set(inserted)
    counts = []
    for points, _ in batch:
        n = 0
        for a, m, ts, _v in points:
            if (a, m, ts) in unclaimed:
                unclaimed.discard((a, m, ts))
                n += 1
        counts.append(n)
    return counts


class AsyncWriter:
    """Group commit on the event loop: every request waiting when a connection is free goes into
    one COPY and one commit, and is answered with its own count after that commit. Two
    connections, so one group is copied while the previous one commits. No threads: no GIL
    hand-offs on the hot path."""

    def __init__(self, dsn: str, *, connections: int = 2, max_points: int = 200_000):
        self._dsn = dsn
        self._n = connections
        self._max_points = max_points
        self._pending: list[tuple[list[Point], asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self.commits = 0

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(), name=f"telemetry-writer-{i}") for i in range(self._n)]

    async def stop(self) -> None:
        """Finish what is queued, then close."""
        while self._pending:
            await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, points: list[Point]) -> int:
        """Store points; returns how many were new, once they are committed."""
        if not points:
            return 0
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((points, fut))
        self._wake.set()
        return await fut

    def _take(self) -> list[tuple[list[Point], asyncio.Future]]:
        batch, n = [], 0
        while self._pending and n < self._max_points:
            item = self._pending.pop(0)
            batch.append(item)
            n += len(item[0])
        return batch

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection | None = None
        try:
            while True:
                batch = self._take()
                if not batch:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._pending:
                    self._wake.set()  # more waiting: let the other connection take it
                conn = await self._write_batch(conn, batch)
        finally:
            if conn is not None:
                await conn.close()

    async def _write_batch(self, conn, batch):
        points = batch[0][0] if len(batch) == 1 else [p for pts, _ in batch for p in pts]
        try:
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(self._dsn)
            inserted = await self._write_points(conn, points)
            await conn.commit()
            self.commits += 1
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
            log.warning("telemetry write failed: %s", exc)
            if conn is not None:
                await conn.close()
            if len(batch) > 1 and not isinstance(exc, psycopg.OperationalError):
                for item in batch:  # isolate: one bad request must not fail the others
                    conn = await self._write_batch(None, [item])
                return conn
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return None
        for (_, fut), count in zip(batch, _counts(batch, inserted), strict=True):
            if not fut.done():
                fut.set_result(count)
        return conn

    @staticmethod
    async def _write_points(conn: psycopg.AsyncConnection, points: list[Point]) -> set[Key] | None:
        try:
            async with conn.transaction(), conn.cursor() as cur:
                async with cur.copy(_COPY.format(table="telemetry")) as cp:
                    cp.set_types(_COPY_TYPES)
                    for p in points:
                        await cp.write_row(p)
            return None
        except pg_errors.UniqueViolation:
            pass
        async with conn.cursor() as cur:
            await cur.execute(_STAGING)
            async with cur.copy(_COPY.format(table="telemetry_in")) as cp:
                cp.set_types(_COPY_TYPES)
                for p in points:
                    await cp.write_row(p)
            await cur.execute(_MERGE)
            rows = await cur.fetchall()
            await cur.execute("TRUNCATE telemetry_in")
            return {(a, m, ts) for a, m, ts in rows}
