"""The HTTP API: `uvicorn ingest.main:app`. Builds the app, wires the routes, one error handler."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from db.errors import DomainError, InvalidInput, PayloadTooLarge
from db.logs import setup_logging
from db.session import database_url, libpq_url
from db.settings import get_settings
from ingest.observability import ApiMetrics, LatencyMiddleware
from ingest.schemas import error_responses
from ingest.routes import alerts, health, rules, simulator, sites, telemetry, workorders
from ingest.telemetry import AsyncWriter, Catalog

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
ROUTERS = [
    telemetry.router, sites.router, alerts.router, workorders.router, rules.router, simulator.router, health.router
]


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


def _too_large(limit: int) -> JSONResponse:
    err = PayloadTooLarge(f"body: larger than {limit} bytes; nothing was stored", field="body")
    return JSONResponse(err.to_dict(), status_code=err.status_code)


def create_app() -> FastAPI:
    """The FastAPI application with its catalog cache, group-commit writer and metrics."""
    settings = get_settings()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dsn = libpq_url(database_url())
        app.state.catalog = Catalog(dsn)
        app.state.catalog.reload()
        app.state.writer = AsyncWriter(dsn)
        await app.state.writer.start()
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
        body = exc.to_dict()
        if request.method != "GET":
            metrics.rejected.labels(type(exc).__name__).inc()
            if exc.status_code in (413, 422) and "nothing was stored" not in body["detail"]:
                body["detail"] += "; nothing was stored"
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            {"detail": "database unavailable; nothing was stored, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await domain_error(request, InvalidInput.from_validation(exc.errors()))

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # every route documents the error body it really sends (not FastAPI's default 422 shape)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX, responses=error_responses(401, 404, 409, 413, 422, 503))
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


setup_logging("api")
app = create_app()
