"""The HTTP API: `uvicorn ingest.main:app`. Builds the app, wires the routes, one error handler."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from db.errors import NOTHING_STORED, DomainError, InvalidInput, PayloadTooLarge, Unavailable
from core.logs import setup_logging
from db.session import database_url, is_database_down, libpq_url
from core.settings import get_settings
from ingest.deps import ReadAccess, TelemetryPath, ingest_caller
from ingest.observability import ApiMetrics, LatencyMiddleware
from ingest.schemas import error_responses
from ingest.routes import (
    alerts, health, integrations, kpis, policies, rules, silences, simulator, sites, telemetry, workorders,
)
from ingest.routes.telemetry import store_reading
from ingest.telemetry import DATABASE_DOWN, AsyncWriter, Catalog

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# What people and integrations read and act on: reads pass `ReadAccess` (open, or a key when
# API_READS_REQUIRE_KEY); each action carries `OperatorKey` itself. Add new resources here.
ROUTERS = [sites.router, alerts.router, workorders.router, rules.router, simulator.router,
           kpis.router, integrations.router, silences.router, policies.router]
# Their own rules: telemetry needs an ingest key (`IngestKey`), health is open (probes).
OPEN_ROUTERS = [telemetry.router, health.router,
                integrations.gmao_router]  # signed with WEBHOOK_SECRET instead of a key
UNPROTECTED_PATHS = {API_PREFIX + "/health", "/metrics"}


class AdmissionMiddleware:
    """Overload: at most `max_requests` requests and `max_bytes` of request bodies in progress in
    this worker; past either, 503 with Retry-After at once, before the body is read, instead of
    piling requests up in memory. Health and metrics always pass."""

    def __init__(self, app: ASGIApp, max_requests: int, max_bytes: int):
        self.app = app
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNPROTECTED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            declared = int(dict(scope["headers"]).get(b"content-length") or 0)
        except ValueError:
            declared = 0
        if self.requests and (self.requests >= self.max_requests or self.bytes + declared > self.max_bytes):
            await _unavailable(Unavailable("the API is overloaded",
                                           retry_after_s=1))(scope, receive, send)
            return
        self.requests += 1
        self.bytes += declared
        streamed = 0  # a body without Content-Length is counted as it arrives

        async def counting_receive():
            nonlocal streamed
            message = await receive()
            if not declared and message.get("body"):
                streamed += len(message["body"])
                self.bytes += len(message["body"])
                if self.bytes > self.max_bytes:
                    raise Unavailable("the API is overloaded", retry_after_s=1)
            return message

        try:
            await self.app(scope, counting_receive, send)
        finally:
            self.requests -= 1
            self.bytes -= declared + streamed


class BodyLimitMiddleware:
    """Refuse bodies over MAX_BODY_BYTES with 413 before they are read whole."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise PayloadTooLarge(f"body: larger than {self.limit} bytes", field="body")
            return message

        await self.app(scope, counting_receive, send)


def error_response(exc: DomainError, *, method: str, metrics: ApiMetrics) -> JSONResponse:
    """The one rendering of a domain error: the documented body (a refused write says nothing
    was stored), the status, Retry-After on a 503; refused writes are counted."""
    if method != "GET":
        metrics.rejected.labels(type(exc).__name__).inc()
    if isinstance(exc, Unavailable):
        return _unavailable(exc)
    refused_write = method != "GET" and exc.status_code in (413, 422)
    return JSONResponse(exc.to_dict(refused_write=refused_write), status_code=exc.status_code)


def database_error_response(exc: Exception, *, method: str, path: str, metrics: ApiMetrics) -> JSONResponse:
    """The database unreachable (refused, lost, shutting down, pool exhausted, stale pool) is a
    503 with Retry-After on every route; any other database error is a logged 500 with the same
    body shape: nothing escapes to the server as "Exception in ASGI application"."""
    if is_database_down(exc):
        log.warning("database unavailable", extra={"path": path, "error": type(exc).__name__})
        return error_response(Unavailable(DATABASE_DOWN), method=method, metrics=metrics)
    log.error("database error", exc_info=exc, extra={"path": path})
    return JSONResponse({"detail": f"internal error; {NOTHING_STORED}"}, status_code=500)


class TelemetryFastPath:
    """POST /api/v1/telemetry served before FastAPI's routing, as a pure ASGI layer.

    Single readings are the hottest request (gateways, one reading each few seconds per asset);
    py-spy showed Starlette/FastAPI's layers, routing and dependency solving taking most of
    their CPU (docs/performance.md). This layer does the same steps with the same functions —
    `ingest_caller` (the keys, 401/403), `store_reading` (validation, catalog, writer, metrics),
    `error_response` / `database_error_response` (the error bodies) — and sets `scope["route"]`
    so the latency metric carries the route's template. It sits inside the admission, body-limit
    and latency layers, and inside FastAPI's ServerErrorMiddleware (anything unexpected is a 500
    as on every route). The FastAPI route stays: it documents the endpoint in the OpenAPI schema
    and answers identically (tests/ingest/test_telemetry_fast_path.py)."""

    def __init__(self, app: ASGIApp, *, state, route, metrics: ApiMetrics):
        self.app = app
        self.state = state  # the app's state: the telemetry path exists once the lifespan ran
        self.route = route
        self.path = API_PREFIX + route.path
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or \
                scope["path"] != scope.get("root_path", "") + self.path:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        try:
            ingest_caller(_header(scope, b"x-api-key"))
            body = await _body(receive)
            if body is None:  # the client went away before sending its body: nothing to do
                return
            response = await store_reading(self.state.telemetry, body)
        except DomainError as exc:
            response = error_response(exc, method="POST", metrics=self.metrics)
        except (psycopg.Error, SQLAlchemyError) as exc:
            response = database_error_response(exc, method="POST", path=scope["path"], metrics=self.metrics)
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header, decoded as Starlette does (latin-1)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _body(receive: Receive) -> bytes | None:
    """The whole request body (None if the client disconnected first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    err = PayloadTooLarge(f"body: larger than {limit} bytes", field="body")
    return JSONResponse(err.to_dict(refused_write=True), status_code=err.status_code)


def _unavailable(err: Unavailable) -> JSONResponse:
    return JSONResponse(err.to_dict(), status_code=503, headers={"Retry-After": str(err.retry_after_s)})


def create_app() -> FastAPI:
    """The FastAPI application with its catalog cache, group-commit writer and metrics."""
    settings = get_settings()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dsn = libpq_url(database_url())
        app.state.catalog = Catalog(dsn, connect_timeout_s=settings.db_connect_timeout_s)
        try:
            app.state.catalog.reload()
        except psycopg.Error as exc:  # starts anyway: answers 503 until the database is back
            log.warning("database unreachable at start; the catalog loads when it returns: %s", exc)
        app.state.writer = AsyncWriter(dsn, max_queued_points=settings.ingest_max_queued_points,
                                       connect_timeout_s=settings.db_connect_timeout_s)
        await app.state.writer.start()
        app.state.telemetry = TelemetryPath(app.state.catalog, app.state.writer, metrics)
        log.info("API ready", extra={"assets": len(app.state.catalog.assets)})
        try:
            yield
        finally:
            await app.state.writer.stop()

    app = FastAPI(
        title="Maintenance 4.0 API",
        version="1.0.0",
        description="Telemetry ingest, consultation and maintenance actions for the Casanearshore sites.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc, method=request.method, metrics=metrics)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        return database_error_response(exc, method=request.method, path=request.url.path, metrics=metrics)

    app.add_exception_handler(SQLAlchemyError, database_error)
    app.add_exception_handler(psycopg.Error, database_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await domain_error(request, InvalidInput.from_validation(exc.errors()))

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # every route documents the error body it really sends (not FastAPI's default 422 shape)
    # open routers first: telemetry, the hot path, is matched before every other route
    for router in OPEN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX, responses=error_responses(401, 403, 404, 409, 413, 422, 503))
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX, dependencies=[ReadAccess],
                           responses=error_responses(401, 403, 404, 409, 413, 422, 503))
    # innermost first: the fast path of POST /telemetry runs inside the three layers below
    post_one = next(r for r in telemetry.router.routes if r.path == "/telemetry" and "POST" in r.methods)
    app.add_middleware(TelemetryFastPath, state=app.state, route=post_one, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AdmissionMiddleware, max_requests=settings.api_max_inflight_requests,
                       max_bytes=settings.api_max_inflight_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


setup_logging("api")
app = create_app()
