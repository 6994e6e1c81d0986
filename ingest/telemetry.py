"""The telemetry write path, shared by every way readings arrive (HTTP today, MQTT next):

1. `Catalog` resolves site and asset codes and metric names in memory (`await catalog.ensure(readings)`
   reloads it, off the event loop, when a code is unknown);
2. `to_points(catalog, readings, now=…)` checks every reading and returns the points, or raises
   InvalidInput naming each bad field (`readings[3].timestamp`); pure, no I/O;
3. `AsyncWriter.submit(points)` stores them with group commit (one COPY and one commit for every
   request waiting at that moment) and returns how many were new, once committed.

A caller is answered only after the commit that holds its points, so nothing acknowledged is ever
lost; a request with any bad reading is refused whole and writes nothing. Past
INGEST_MAX_QUEUED_POINTS waiting points, or while the database is unreachable, `submit` raises
`Unavailable` (503 with Retry-After): callers retry later instead of piling up in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import errors as pg_errors

from db.errors import InvalidInput, Unavailable
from ingest.schemas import TelemetryIn

log = logging.getLogger(__name__)

Point = tuple[int, int, datetime, float]  # asset_id, metric_id, ts, value
Key = tuple[int, int, datetime]
DATABASE_DOWN = "database unavailable"


@dataclass(frozen=True)
class AssetRef:
    id: int
    code: str
    site_code: str
    type: str


class Catalog:
    """Asset codes and metric names resolved in memory; reloaded when a request names a code it
    does not know (at most once a second), so assets added after start are seen without a query
    per reading. Starts empty: a worker started while the database is down loads it later."""

    def __init__(self, dsn: str, *, min_reload_s: float = 1.0, connect_timeout_s: int = 2):
        self._dsn = dsn
        self._min_reload_s = min_reload_s
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._failed: tuple[float, Exception] | None = None  # the last failed reload (when, why)
        self.loaded = False
        self.sites: set[str] = set()
        self.assets: dict[str, AssetRef] = {}
        self.metrics: dict[str, dict[str, int]] = {}  # asset_type -> metric name -> metric_id

    def reload(self) -> None:
        """Read sites, assets and the metric catalog (blocking: off the event loop, see `ensure`)."""
        with psycopg.connect(self._dsn, connect_timeout=self._connect_timeout_s) as conn:
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
        self.loaded = True

    def _reload_if_due(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._failed and now - self._failed[0] < self._min_reload_s:
                raise self._failed[1]  # the database was just found down: do not queue up behind it
            if now - self._loaded_at >= self._min_reload_s:
                try:
                    self.reload()
                    self._failed = None
                except psycopg.Error as exc:
                    self._failed = (now, exc)
                    raise

    def knows(self, readings: Iterable[TelemetryIn]) -> bool:
        """Every site and asset code of these readings is in memory."""
        return self.loaded and all(r["asset_code"] in self.assets and r["site_code"] in self.sites for r in readings)

    async def ensure(self, readings: Sequence[TelemetryIn]) -> None:
        """Reload (in a thread, at most once a second) when a reading names an unknown code;
        raise Unavailable when the database cannot be read."""
        if self.knows(readings):
            return
        try:
            await asyncio.to_thread(self._reload_if_due)
        except psycopg.Error as exc:
            log.warning("catalog reload failed: %s", exc)
            raise Unavailable(DATABASE_DOWN) from exc

    def asset(self, code: str) -> AssetRef | None:
        return self.assets.get(code)

    def has_site(self, code: str) -> bool:
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
    Pure (no I/O): `await catalog.ensure(readings)` first, so new codes are known.

    A point repeated inside one request is not an error: the writer stores it once.
    """
    points: list[Point] = []
    append = points.append
    latest = now + timedelta(seconds=future_tolerance_s)
    assets, metrics = catalog.assets, catalog.metrics
    # the hot loop (a batch is up to 20,000 readings; py-spy: a third of a batch's time went
    # here): local names, no per-reading comparison with `latest` (the readings' timestamps share
    # one tzinfo, so their max is cheap, while each comparison across zones calls utcoffset);
    # anything doubtful goes to the slow path, which names every error
    bad = [i for i, r in enumerate(readings) if r["timestamp"] > latest] \
        if readings and max(r["timestamp"] for r in readings) > latest else []
    for i, r in enumerate(readings):
        asset = assets.get(r["asset_code"])
        if asset is None or asset.site_code != r["site_code"]:
            bad.append(i)
            continue
        aid, ts, of_type = asset.id, r["timestamp"], metrics.get(asset.type, {})
        try:
            for name, value in r["metrics"].items():
                append((aid, of_type[name], ts, value))
        except KeyError:
            bad.append(i)
    if bad:
        errors = [e for i in sorted(set(bad)) for e in _reading_errors(catalog, readings[i], f"{prefix}[{i}]." if prefix else "",
                                                          latest, future_tolerance_s)]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first['field']}: {first['reason']}{more}", errors=errors)
    return points


def _reading_errors(catalog: Catalog, r: TelemetryIn, where: str, latest: datetime, tolerance: float) -> list[dict]:
    """What is wrong with one reading: its site, asset or timestamp, else each unknown metric."""
    asset = catalog.asset(r["asset_code"])
    if asset is None or asset.site_code != r["site_code"] or r["timestamp"] > latest:
        return [_reading_error(catalog, r, asset, where, tolerance)]
    of_type = catalog.metrics.get(asset.type, {})
    return [{"field": f"{where}metrics.{name}", "reason": f"unknown metric {name!r} for asset type {asset.type}"}
            for name in r["metrics"] if name not in of_type]


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
    "WHERE NOT telemetry_in_cold(asset_id, metric_id, ts) "  # already in the cold tier (issue 12)
    "ON CONFLICT DO NOTHING RETURNING asset_id, metric_id, ts"
)


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
    hand-offs on the hot path.

    Bounded: at most `max_queued_points` points wait (one oversized request alone is still taken);
    past that, `submit` raises Unavailable at once. While the database is unreachable, every
    waiting request hears Unavailable too (each attempt fails within the connect timeout)."""

    def __init__(self, dsn: str, *, connections: int = 2, max_points: int = 200_000,
                 max_queued_points: int = 200_000, connect_timeout_s: int = 2):
        self._dsn = dsn
        self._n = connections
        self._max_points = max_points
        self._max_queued = max_queued_points
        self._connect_timeout_s = connect_timeout_s
        self._pending: deque[tuple[list[Point], asyncio.Future]] = deque()
        self.queued_points = 0
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self.commits = 0
        self.database_ok = True  # the last attempt reached the database (for /health)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(), name=f"telemetry-writer-{i}") for i in range(self._n)]

    async def stop(self, *, drain_s: float = 10.0) -> None:
        """Finish what is queued (for at most drain_s), then close."""
        deadline = time.monotonic() + drain_s
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(Unavailable("the API is stopping"))

    async def submit(self, points: list[Point]) -> int:
        """Store points; returns how many were new, once they are committed. Raises Unavailable
        (retry later) when the queue is full or the database unreachable."""
        if not points:
            return 0
        if self.queued_points and self.queued_points + len(points) > self._max_queued:
            raise Unavailable("ingest queue full", retry_after_s=1)
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((points, fut))
        self.queued_points += len(points)
        self._wake.set()
        return await fut

    def _take(self) -> list[tuple[list[Point], asyncio.Future]]:
        batch, n = [], 0
        while self._pending and n < self._max_points:
            item = self._pending.popleft()
            batch.append(item)
            n += len(item[0])
        self.queued_points -= n
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
                try:
                    conn = await self._write_batch(conn, batch)
                except Exception as exc:  # noqa: BLE001 - a bug here must fail this batch, never stop the writer
                    log.exception("telemetry writer error")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if conn is not None:
                        await conn.close()
                    conn = None
        finally:
            if conn is not None:
                await conn.close()

    async def _write_batch(self, conn, batch, *, attempt: int = 1):
        points = batch[0][0] if len(batch) == 1 else [p for pts, _ in batch for p in pts]
        try:
            if conn is None or conn.closed:
                # autocommit: the COPY is a transaction of its own, committed when it ends — two
                # round trips a group instead of four with BEGIN and COMMIT (docs/performance.md)
                conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True,
                                                             connect_timeout=self._connect_timeout_s)
            inserted = await self._write_points(conn, points)
            self.commits += 1
            self.database_ok = True
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.TransactionRollback) as exc:
            # a deadlock or serialization failure with a concurrent writer (another worker, a
            # trigger's bookkeeping): nothing was stored; the same batch again usually succeeds
            try:
                await conn.rollback()
            except psycopg.Error:
                return await self._fail(conn, batch, exc)
            if attempt < 5:
                log.info("telemetry write retried after %s", type(exc).__name__, extra={"attempt": attempt})
                return await self._write_batch(conn, batch, attempt=attempt + 1)
            return await self._fail(conn, batch, exc)
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
            return await self._fail(conn, batch, exc)
        for (_, fut), count in zip(batch, _counts(batch, inserted), strict=True):
            if not fut.done():
                fut.set_result(count)
        return conn

    async def _fail(self, conn, batch, exc: Exception):
        """Tell every waiter of a failed batch (Unavailable when the database is away); a batch
        of several requests is first split, so one bad request cannot fail the others."""
        down = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        log.warning("telemetry write failed: %s: %s", type(exc).__name__, exc)
        if conn is not None:
            await conn.close()
        if len(batch) > 1 and not down:
            for item in batch:  # isolate: one bad request must not fail the others
                conn = await self._write_batch(None, [item])
            return conn
        if down:
            self.database_ok = False
            exc = Unavailable(DATABASE_DOWN)
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)
        return None

    @staticmethod
    async def _write_points(conn: psycopg.AsyncConnection, points: list[Point]) -> set[Key] | None:
        """Fast path: one binary COPY straight into the table, committed as it ends (the
        connection is in autocommit; returns None: every point was new). When some point is
        already there (a re-send), that COPY stored nothing and the points go through a staging
        table with ON CONFLICT DO NOTHING, in one transaction; returns the keys inserted."""
        try:
            async with conn.cursor() as cur:
                async with cur.copy(_COPY.format(table="telemetry")) as cp:
                    cp.set_types(_COPY_TYPES)
                    for p in points:
                        await cp.write_row(p)
            return None
        except pg_errors.UniqueViolation:
            pass
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute(_STAGING)
            async with cur.copy(_COPY.format(table="telemetry_in")) as cp:
                cp.set_types(_COPY_TYPES)
                for p in points:
                    await cp.write_row(p)
            await cur.execute(_MERGE)
            rows = await cur.fetchall()
            await cur.execute("TRUNCATE telemetry_in")
            return {(a, m, ts) for a, m, ts in rows}
