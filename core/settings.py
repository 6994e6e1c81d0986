"""All configuration, read once from the environment (documented in .env.example)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=PROJECT_ROOT / ".env", extra="ignore")

    # Database: unset means the embedded PostgreSQL server with its data in PGDATA_DIR.
    database_url: str | None = None
    pgdata_dir: Path = PROJECT_ROOT / ".pgdata"
    # the embedded server's buffer cache: "auto" (a quarter of the machine's memory, 128MB to 2GB)
    # or a PostgreSQL size ("512MB"); applied at its start (db/session.py). A DATABASE_URL
    # server is tuned by its operator (docs/deployment.md).
    pg_shared_buffers: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^(auto|\d+ ?(kB|MB|GB|TB))$")] = "auto"

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = "http://127.0.0.1:8000"
    ingest_api_key: str = "dev-ingest-key"  # development default; set your own in production
    # Scoped keys (X-API-Key), each "name=key,name=key": gateways write telemetry only, operators
    # act and read; INGEST_API_KEY above keeps every right. Only the name is ever logged.
    ingest_api_keys: str = ""
    operator_api_keys: str = ""
    api_reads_require_key: bool = False
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_readings: int = 20_000
    future_tolerance_s: int = 300  # timestamps further ahead than this are refused
    # Overload: telemetry points waiting for their commit, and requests in progress, per worker;
    # past either, requests get 503 with Retry-After instead of piling up in memory.
    ingest_max_queued_points: int = 200_000
    api_max_inflight_requests: int = 256
    api_max_inflight_bytes: int = 64 * 1024 * 1024
    # Database outage: how long a connection attempt (or a server gone silent) may take before
    # callers hear "database unavailable" (503 from the API); libpq's minimum is 2.
    db_connect_timeout_s: int = 2

    # Rule engine
    rules_interval_s: float = 60.0
    # a run evaluates its assets in this many parallel transactions (asset_id modulo), one per core
    rules_shards: int = 2
    # Backtest (issue 10): connections one backtest's statement is split over (the units shared
    # out, one snapshot); 1 = the caller's connection only
    backtest_workers: int = 2

    # Telemetry storage (issue 12): tiers, retention, maintenance (engine/maintenance.py)
    telemetry_hot_days: int = 7  # days kept as narrow rows; older days are compacted (cold tier)
    telemetry_retention_days: int = 0  # readings older than this are dropped; 0 = keep forever
    rollup_retention_days: int = 0  # hourly roll-ups older than this are dropped; 0 = keep forever
    maintenance_interval_s: float = 3600.0  # the scheduler's maintenance pass
    maintenance_workers: int = 2  # connections (server cores) a pass compacts a day with; 1 = serial
    metrics_max_points: int = 100_000  # GET /assets/{id}/metrics: raw up to this, else step buckets

    # Simulator
    sim_interval_s: float = 10.0
    sim_seed: int = 42
    sim_buffer_dir: Path = PROJECT_ROOT / ".sim-buffer"

    # Dashboard
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8501
    # niceness the dashboard process adds to itself: pages never delay the ingest path (0: off)
    dashboard_nice: int = 10

    # Grafana, MQTT (issue 14; all optional)
    grafana_db_password: str | None = None  # password of the read-only role grafana_reader (set by `db upgrade`)
    mqtt_url: str | None = None  # mqtt://host:1883 — unset: no MQTT anywhere (make run, simulator)
    mqtt_client_id: str = "m40-ingest-bridge"  # fixed: the broker keeps the bridge's session across restarts
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_metrics_port: int = 9101  # the bridge's Prometheus /metrics (0: off)
    mqtt_metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, for Prometheus
    sim_transport: Literal["http", "mqtt"] = "http"  # http | mqtt: how the simulator sends its readings

    # Webhooks and the GMAO (issue 15, docs/integration.md): the endpoints events are sent to
    # (comma-separated; empty: events wait in the outbox), the Standard Webhooks secret
    # ("whsec_" + base64) that signs them and checks inbound calls, the back-off in seconds.
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_retry_schedule_s: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_s: float = 15.0
    relay_interval_s: float = 1.0

    @property
    def webhook_urls(self) -> list[str]:
        return [u.strip() for u in self.webhook_url.split(",") if u.strip()]

    @property
    def webhook_retry_schedule(self) -> list[float]:
        return [float(x) for x in self.webhook_retry_schedule_s.split(",") if x.strip()]

    # Logs
    log_level: str = "INFO"
    log_format: str = "console"  # or "json"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()


@dataclass(frozen=True)
class Broker:
    """Where MQTT_URL points: the bridge and the simulator connect there."""

    host: str
    port: int
    tls: bool


def broker_of(url: str) -> Broker:
    """mqtt://host[:1883] or mqtts://host[:8883]."""
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        raise ValueError(f"MQTT_URL must look like mqtt://host:1883 (got {url!r})")
    tls = u.scheme in ("mqtts", "ssl")
    return Broker(u.hostname, u.port or (8883 if tls else 1883), tls)
