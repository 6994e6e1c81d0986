"""Request dependencies: a session whose transaction the request owns, who is calling (scoped API
keys), and the worker's telemetry catalog, writer and metrics.

Access, by the key in `X-API-Key` (docs/deployment.md, "API keys"):

| dependency   | lets through                                               | otherwise  |
|--------------|------------------------------------------------------------|------------|
| `IngestKey`  | `INGEST_API_KEY`, a gateway key (`INGEST_API_KEYS`)          | 401 / 403  |
| `OperatorKey`| `INGEST_API_KEY`, an operator key (`OPERATOR_API_KEYS`)      | 401 / 403  |
| `ReadAccess` | anyone; with `API_READS_REQUIRE_KEY`, the keys of `OperatorKey` | 401 / 403 |

401: no key or an unknown one; 403: a valid key without that right (a gateway key on an action or,
when reads need a key, on a read). Use them as `dependencies=[OperatorKey]` on a route, or take the
caller with `caller: OperatorCaller` when its name is wanted (audit, logs). Keys are compared in
constant time (every configured key is compared, digests of equal length); only a key's name is
ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.orm import Session

from db.errors import Forbidden, Unauthorized
from db.session import session_scope
from core.settings import Settings, get_settings
from ingest.observability import ApiMetrics
from ingest.telemetry import AsyncWriter, Catalog

log = logging.getLogger("ingest.auth")


def get_session() -> Iterator[Session]:
    """One transaction per request: committed after the handler, rolled back on error."""
    with session_scope() as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a 200 means the
# change is stored (FastAPI's default would commit after answering).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# --- scoped API keys ---------------------------------------------------------------------------

class Right(StrEnum):
    telemetry = "telemetry"  # POST /telemetry, /telemetry/batch
    operate = "operate"  # actions: ack, close, dismiss, work orders, faults, silences, overrides, evaluate…
    read = "read"  # GETs, when API_READS_REQUIRE_KEY is on


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the key's name (never the key) and its rights."""

    name: str
    rights: frozenset[Right]


ALL_RIGHTS = frozenset(Right)
GATEWAY = frozenset({Right.telemetry})
OPERATOR = frozenset({Right.operate, Right.read})
ANONYMOUS = Caller("anonymous", frozenset())


def parse_keys(value: str, *, setting: str) -> list[tuple[str, str]]:
    """`name=key,name=key` -> [(name, key)]; blank entries and empty keys are ignored (so
    `front=${FRONT_API_KEY:-}` may be left unset)."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, key = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{setting}: each entry is name=key (got an entry without a name)")
        if key.strip():
            out.append((name.strip(), key.strip()))
    return out


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class Keyring:
    """Every configured key as (sha-256 digest, caller)."""

    entries: tuple[tuple[bytes, Caller], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        entries = [(_digest(settings.ingest_api_key), Caller("INGEST_API_KEY", ALL_RIGHTS))]
        entries += [(_digest(k), Caller(n, GATEWAY)) for n, k in parse_keys(settings.ingest_api_keys,
                                                                          setting="INGEST_API_KEYS")]
        entries += [(_digest(k), Caller(n, OPERATOR)) for n, k in parse_keys(settings.operator_api_keys,
                                                                           setting="OPERATOR_API_KEYS")]
        return cls(tuple(entries))

    def identify(self, key: str) -> Caller | None:
        """The caller of this key, comparing it with every key (no early exit: constant time)."""
        given = _digest(key)
        found = None
        for digest, caller in self.entries:
            if hmac.compare_digest(given, digest) and found is None:
                found = caller
        return found


_keyrings: dict[int, Keyring] = {}


def keyring() -> Keyring:
    """The keys of the current settings (parsed once per settings object)."""
    settings = get_settings()
    ring = _keyrings.get(id(settings))
    if ring is None:
        _keyrings.clear()
        ring = _keyrings[id(settings)] = Keyring.from_settings(settings)
    return ring


KeyHeader = Annotated[str | None, Header(alias="X-API-Key", description="an API key (see the API keys section)")]


def _caller(x_api_key: str | None) -> Caller:
    if x_api_key is None:
        raise Unauthorized("missing X-API-Key header", field="X-API-Key")
    caller = keyring().identify(x_api_key)
    if caller is None:
        log.warning("refused an unknown API key")
        raise Unauthorized("invalid API key", field="X-API-Key")
    return caller


def _require(caller: Caller, right: Right, what: str) -> Caller:
    if right not in caller.rights:
        log.warning("refused: key lacks the right", extra={"key_name": caller.name, "right": right.value})
        raise Forbidden(f"the key {caller.name!r} may not {what}", field="X-API-Key")
    return caller


def ingest_caller(x_api_key: str | None) -> Caller:
    """Who may write telemetry: INGEST_API_KEY or a gateway key (401 / 403 otherwise). Shared by
    `IngestKey` and the ASGI fast path of POST /telemetry (`ingest.main.TelemetryFastPath`)."""
    return _require(_caller(x_api_key), Right.telemetry, "write telemetry")


async def require_ingest(request: Request, x_api_key: KeyHeader = None) -> Caller:
    """Telemetry writes: INGEST_API_KEY or a gateway key."""
    caller = ingest_caller(x_api_key)
    request.state.caller = caller.name
    return caller


async def require_operator(request: Request, x_api_key: KeyHeader = None) -> Caller:
    """Actions: INGEST_API_KEY or an operator key (the HTTPS front passes its own after the login)."""
    caller = _require(_caller(x_api_key), Right.operate, "act (an operator key is needed)")
    request.state.caller = caller.name
    log.info("operator action", extra={"key_name": caller.name, "method": request.method,
                                       "path": request.url.path})
    return caller


async def require_read(request: Request, x_api_key: KeyHeader = None) -> Caller:
    """Reads: open, unless API_READS_REQUIRE_KEY; then INGEST_API_KEY or an operator key."""
    if not get_settings().api_reads_require_key:
        return ANONYMOUS
    caller = _require(_caller(x_api_key), Right.read, "read (an operator key is needed)")
    request.state.caller = caller.name
    return caller


IngestKey = Depends(require_ingest)
OperatorKey = Depends(require_operator)
ReadAccess = Depends(require_read)
IngestCaller = Annotated[Caller, IngestKey]
OperatorCaller = Annotated[Caller, OperatorKey]
ApiKey = OperatorKey  # the name used before scoped keys existed; new routes say OperatorKey


# --- the worker's telemetry write path ----------------------------------------------------------

# async: FastAPI runs a plain `def` dependency in a worker thread, a hand-off per request that
# cost a third of the single-reading path (py-spy, docs/performance.md)
async def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


async def get_writer(request: Request) -> AsyncWriter:
    return request.app.state.writer


async def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


@dataclass(frozen=True)
class TelemetryPath:
    """What a telemetry route needs, in one dependency (each dependency costs a few percent of
    a single reading's time): the catalog, the group-commit writer, the metrics."""

    catalog: Catalog
    writer: AsyncWriter
    metrics: ApiMetrics


async def get_telemetry_path(request: Request) -> TelemetryPath:
    return request.app.state.telemetry


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
WriterDep = Annotated[AsyncWriter, Depends(get_writer)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
TelemetryDep = Annotated[TelemetryPath, Depends(get_telemetry_path)]


# Ids in paths and filters fit their column (sites and assets: integer; alerts, work orders and
# faults: bigint): anything larger is refused with a 422 naming the parameter, before it reaches
# the database (a 40-digit id must not become a 500).
SmallId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SmallIdFilter = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
BigId = Annotated[int, Path(ge=1, le=2**63 - 1)]
