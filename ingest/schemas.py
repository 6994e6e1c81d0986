"""What enters and leaves the API: pydantic models, separate from the ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, with_config
from typing_extensions import TypedDict

# A metric value: a JSON number (not a string, not a boolean), finite.
MetricValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]


@with_config(
    ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "site_code": "CAS-S1",
                    "asset_code": "CAS-S1-HVAC_1",
                    "timestamp": "2025-12-09T10:15:23Z",
                    "metrics": {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1},
                }
            ]
        },
    )
)
class TelemetryIn(TypedDict):
    """One reading of one asset: the payload of the requirements, §7.1."""

    # A TypedDict, not a model: validated from JSON bytes into plain dicts, a third faster than
    # building model instances on the batch path (docs/performance.md).

    site_code: Annotated[str, Field(min_length=1, max_length=32)]
    asset_code: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: Annotated[AwareDatetime, Field(description="ISO 8601 with a zone (Z or ±hh:mm)")]
    metrics: Annotated[dict[str, MetricValue], Field(min_length=1, max_length=64, description="metric name → value")]


def inline_schema(adapter: TypeAdapter) -> dict:
    """The JSON schema with its nested definitions inlined (for openapi_extra)."""
    schema = adapter.json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


@with_config(ConfigDict(extra="forbid"))
class TelemetryBatchIn(TypedDict):
    """Many readings of many assets in one request (gateways, back-fill)."""

    readings: Annotated[list[TelemetryIn], Field(min_length=1)]


TELEMETRY_IN = TypeAdapter(TelemetryIn)
TELEMETRY_BATCH_IN = TypeAdapter(TelemetryBatchIn)


class IngestOut(BaseModel):
    status: str = "ok"
    inserted_points: int = Field(description="points newly stored (a re-sent point is not counted twice)")


class BatchIngestOut(IngestOut):
    readings: int
    points: int
    duplicates: int = Field(description="points already stored before this request")


class SiteOut(BaseModel):
    id: int
    code: str
    name: str
    city: str
    latitude: float | None
    longitude: float | None
    assets: int
    open_alerts: dict[str, int] = Field(description="live (open or ack) alerts by severity")


class AssetOut(BaseModel):
    id: int
    code: str
    name: str
    type: str
    site_id: int
    site_code: str
    last_seen: datetime | None
    last_values: dict[str, float] = Field(default_factory=dict)


class PointOut(BaseModel):
    ts: datetime
    value: float


class MetricSeriesOut(BaseModel):
    metric: str
    unit: str
    points: list[PointOut]


class AssetMetricsOut(BaseModel):
    asset_id: int
    asset_code: str
    start: datetime
    end: datetime
    series: list[MetricSeriesOut]


class AlertOut(BaseModel):
    id: int
    asset_id: int
    asset_code: str
    site_code: str
    policy_code: str
    title: str
    created_at: datetime
    severity: str
    status: str
    message: str = Field(description='what was observed, e.g. "avg temp_supply_air 21.3 °C over 15 min > 20"')
    message_fr: str = Field(description="the same, in French (what the dashboard shows)")
    observed_value: float | None
    acked_by: str | None
    acked_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None


class AlertToHandleOut(AlertOut):
    work_order_id: int | None
    work_order_status: str | None
    assigned_to: str | None


class WorkOrderOut(BaseModel):
    id: int
    alert_id: int | None
    asset_id: int
    asset_code: str
    site_code: str
    title: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    status: str
    priority: int
    assigned_to: str | None
    notes: str


class HealthOut(BaseModel):
    status: str
    database: str


# --- rule engine and lifecycle ---------------------------------------------------------------

Actor = Field(min_length=1, max_length=100, description="who does it (name or login)")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


# Text PostgreSQL can store: a NUL character is refused here with a 422 rather than failing in
# the database. Every request body's text (InputModel) and text query parameters use it.
Text = Annotated[str, AfterValidator(_no_nul)]


class InputModel(BaseModel):
    """A request body: unknown fields refused, and every text field checked as `Text`."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, value):
        return _no_nul(value) if isinstance(value, str) else value


class AlertAction(InputModel):
    actor: str = Actor
    comment: str = Field(default="", max_length=2000)


class WorkOrderTransition(InputModel):
    to_status: str = Field(description="open | in_progress | done")
    actor: str = Actor
    comment: str = Field(default="", max_length=2000)


class WorkOrderPatch(InputModel):
    actor: str = Actor
    assigned_to: str | None = Field(default=None, max_length=100, description="empty string unassigns")
    notes: str | None = Field(default=None, max_length=10000)


class CounterResetIn(InputModel):
    actor: str = Actor
    reason: str = Field(default="", max_length=2000)


class CounterResetOut(BaseModel):
    id: int
    asset_id: int
    metric: str
    reset_at: datetime
    baseline: float


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_value: str | None
    to_value: str | None
    comment: str


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: AwareDatetime | None = Field(default=None, description="evaluate as of this time (default: now)")


class FiredOut(BaseModel):
    alert_id: int
    asset_id: int
    asset_code: str
    policy_code: str
    severity: str
    message: str
    message_fr: str
    work_order_id: int | None


class EvaluateOut(BaseModel):
    policies: int
    assets: int
    fired: list[FiredOut]
    duration_s: float


class EvaluationOut(BaseModel):
    policy_code: str
    title: str
    metric: str
    unit: str
    condition: str
    threshold: float
    value: float | None
    evaluated_at: datetime
    firing: bool


class AssetStatusOut(AssetOut):
    status: str = Field(description="ok | watch | alert | no_data")
    live_alerts: int
    evaluations: list[EvaluationOut]


class SiteRollupOut(SiteOut):
    assets_by_status: dict[str, int]
    open_work_orders: int
    at_risk: bool


# --- simulator faults ------------------------------------------------------------------------

class FaultIn(InputModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"asset_code": "CAS-S1-ELEVATOR_1", "fault": "motor_overheat", "intensity": 1.0, "duration_s": 600}]})
    asset_code: str
    fault: str
    intensity: float = Field(ge=0, le=1)
    duration_s: int = Field(ge=1, le=86400)
    ramp_s: int | None = Field(default=None, ge=0)
    actor: str = Field(default="api", max_length=100)


class FaultOut(BaseModel):
    id: int
    asset_id: int
    asset_code: str
    asset_type: str
    site_code: str
    fault: str
    intensity: float
    ramp_s: int
    duration_s: int
    started_at: datetime
    ends_at: datetime
    stopped_at: datetime | None
    active: bool
    policy: str | None
    description: str


class FieldErrorOut(BaseModel):
    field: str = Field(description="the offending field, e.g. readings[3].timestamp")
    reason: str


class ErrorOut(BaseModel):
    """Every refusal (4xx) and the 503 of an unreachable database."""

    detail: str = Field(description="what was wrong, in words (a refused write also says nothing was stored)")
    errors: list[FieldErrorOut] = Field(default_factory=list, description="one entry per bad field")


def error_responses(*codes: int) -> dict:
    """OpenAPI `responses` documenting our error body for these status codes."""
    return {code: {"model": ErrorOut} for code in codes}
