"""The HTTP API: `uvicorn ingest.main:app`. Builds the app, wires the routes, one error handler."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from db.errors import DomainError, PayloadTooLarge
from db.session import database_url, libpq_url
from db.settings import get_settings
from ingest.observability import ApiMetrics, LatencyMiddleware
from ingest.routes import alerts, health, sites, telemetry, workorders
from ingest.telemetry import Catalog, GroupCommitWriter

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
ROUTERS = [telemetry.router, sites.router, alerts.router, workorders.router, health.router]


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


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def create_app() -> FastAPI:
    """The FastAPI application with its catalog cache, group-commit writer and metrics."""
    settings = get_settings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dsn = libpq_url(database_url())
        app.state.catalog = Catalog(dsn)
        app.state.catalog.reload()
        app.state.writer = GroupCommitWriter(dsn)
        app.state.writer.start()
        log.info("API ready", extra={"assets": len(app.state.catalog.assets)})
        try:
            yield
        finally:
            app.state.writer.stop()

    app = FastAPI(
        title="Maintenance 4.0 API",
        version="1.0.0",
        description="Telemetry ingest, consultation and maintenance actions for the Casanearshore sites.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        if request.method != "GET":
            metrics.rejected.labels(type(exc).__name__).inc()
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e["loc"])), "reason": e["msg"]} for e in exc.errors()]
        metrics.rejected.labels("InvalidInput").inc()
        first = errors[0] if errors else {"field": "body", "reason": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        detail = f"{first['field']}: {first['reason']}{more}"
        if request.method != "GET":
            detail += "; nothing was stored"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


app = create_app()
