"""Prometheus metrics of the API process, served at /metrics."""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send


class ApiMetrics:
    """The counters and histograms the API exposes (one registry per app, so tests stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.points = Counter("m40_ingest_points_total", "Telemetry points stored", registry=self.registry)
        self.duplicates = Counter(
            "m40_ingest_duplicate_points_total", "Telemetry points already stored (re-sends)", registry=self.registry
        )
        self.rejected = Counter(
            "m40_ingest_rejected_requests_total", "Write requests refused", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "m40_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def points_ingested(self, inserted: int, duplicates: int) -> None:
        self.points.inc(inserted)
        if duplicates:
            self.duplicates.inc(duplicates)

    def render(self) -> tuple[bytes, str]:
        """The exposition text; with several uvicorn workers (PROMETHEUS_MULTIPROC_DIR set), the
        sum over all of them."""
        registry = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + generate_latest(_DB_REGISTRY), CONTENT_TYPE_LATEST


class DatabaseCollector:
    """What other processes do, read from the database at scrape time: rule evaluations (by the
    scheduler or "evaluate now") and alerts fired."""

    def collect(self):
        from sqlalchemy import text

        from db.models import LIVE_PREDICATE
        from db.session import get_engine

        with get_engine().connect() as conn:
            runs, last_s, last_at = conn.execute(text(
                "SELECT count(*), (SELECT duration_s FROM rule_runs ORDER BY at DESC LIMIT 1), "
                "extract(epoch FROM max(at)) FROM rule_runs")).one()
            fired = dict(conn.execute(text("SELECT severity, count(*) FROM alerts GROUP BY severity")).all())
            live = dict(conn.execute(text(
                f"SELECT severity, count(*) FROM alerts WHERE {LIVE_PREDICATE} GROUP BY severity")).all())
        yield CounterMetricFamily("m40_rules_evaluations", "Rule evaluations run", value=runs)
        yield GaugeMetricFamily("m40_rules_last_evaluation_seconds", "Duration of the last rule evaluation",
                                value=last_s or 0.0)
        yield GaugeMetricFamily("m40_rules_last_evaluation_timestamp_seconds", "When the last evaluation ran",
                                value=float(last_at or 0))
        alerts = CounterMetricFamily("m40_alerts_fired", "Alerts created", labels=["severity"])
        open_ = GaugeMetricFamily("m40_alerts_live", "Open or acknowledged alerts", labels=["severity"])
        for sev in ("high", "medium", "low"):
            alerts.add_metric([sev], fired.get(sev, 0))
            open_.add_metric([sev], live.get(sev, 0))
        yield alerts
        yield open_


_DB_REGISTRY = CollectorRegistry()
_DB_REGISTRY.register(DatabaseCollector())


class LatencyMiddleware:
    """Times every request by its route template (pure ASGI: no per-request task overhead)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(scope["method"], path, str(status[0])).observe(time.perf_counter() - start)
