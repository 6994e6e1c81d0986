"""What enters and leaves the API: pydantic models, separate from the ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator, with_config
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


class BucketOut(BaseModel):
    ts: datetime = Field(description="start of the bucket (buckets are aligned on UTC multiples of the step)")
    min: float
    avg: float
    max: float
    count: int = Field(description="readings in the bucket")


class MetricSeriesOut(BaseModel):
    metric: str
    unit: str
    points: list[PointOut] = Field(description="raw readings, oldest first (resolution 'raw'; empty otherwise)")
    buckets: list[BucketOut] = Field(
        default_factory=list, description="step buckets, oldest first (resolution 'step'; empty otherwise)")


class AssetMetricsOut(BaseModel):
    asset_id: int
    asset_code: str
    start: datetime
    end: datetime
    resolution: str = Field(description="'raw': every reading in `points`; 'step': min/avg/max/count per `step` in `buckets`")
    step: str | None = Field(None, description="the bucket width when resolution is 'step', e.g. '1h'")
    step_s: int | None = Field(None, description="the same in seconds")
    series: list[MetricSeriesOut]


class AlertOut(BaseModel):
    id: int
    asset_id: int
    asset_code: str
    site_code: str
    policy_code: str
    title: str
    title_en: str
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
    resolution: str | None = Field(
        description="why a closed alert ended: work_order_done, condition_cleared or dismissed (null while live)")
    started_at: datetime = Field(description="event time of the first reading of the episode")
    ended_at: datetime | None = Field(description="event time the episode ended (cleared, or last reading seen)")
    peak: float | None = Field(description="the worst value seen during the episode")


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
    external_ref: str | None = Field(default=None, description="the GMAO's own reference, once it sent one")


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
    policies: int = Field(description="policies evaluated")
    assets: int = Field(description="assets with readings that arrived since the previous run")
    readings: int = Field(description="reading instants evaluated, all policies together")
    fired: list[FiredOut]
    cleared: int = Field(description="alerts closed because their clear condition held")
    silenced: int = Field(description="firings held back by a silence")
    failed: dict[str, str] = Field(description="policy code -> error, for policies that failed")
    duration_s: float


class EvaluationOut(BaseModel):
    policy_code: str
    title: str
    metric: str | None = Field(description="null for policies watching several metrics (N1, F1)")
    unit: str | None
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


# --- dismissal, silences, per-asset overrides, backtest (issue 10) ----------------------------

Finite = Annotated[float, Field(allow_inf_nan=False)]


class DismissIn(InputModel):
    """A false alarm: close the alert as dismissed, cancel its work order, silence the policy on
    that asset for `silence_minutes` (0: no silence)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"actor": "amina", "reason": "capteur débranché pendant le nettoyage", "silence_minutes": 60}]})
    actor: str = Actor
    reason: str = Field(min_length=1, max_length=2000, description="why this is a false alarm")
    silence_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60,
                                 description="silence the policy on that asset this long (0: none)")


class SilenceIn(InputModel):
    """A maintenance window: at least one of site_code, asset_code, policy_code; all given must match."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"asset_code": "CAS-S1-CHILLER_1", "starts_at": "2026-03-02T08:00:00Z", "ends_at": "2026-03-02T10:00:00Z",
         "reason": "maintenance en cours", "actor": "amina"}]})
    site_code: str | None = Field(default=None, min_length=1, max_length=32)
    asset_code: str | None = Field(default=None, min_length=1, max_length=64)
    policy_code: str | None = Field(default=None, min_length=1, max_length=32)
    starts_at: AwareDatetime = Field(description="ISO 8601 with a zone")
    ends_at: AwareDatetime = Field(description="ISO 8601 with a zone, after starts_at and in the future")
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Actor


class SilenceOut(BaseModel):
    id: int
    site_code: str | None
    asset_id: int | None
    asset_code: str | None
    policy_code: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    ended_by: str | None = Field(description="who ended it early (null otherwise)")
    active: bool = Field(description="covers the present instant")


class OverrideIn(InputModel):
    """Tune a policy for one asset; a field left out (or null) keeps the policy's value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"threshold": 21.5, "actor": "amina"}]})
    threshold: Finite | None = None
    clear_threshold: Finite | None = None
    enabled: bool | None = None
    actor: str = Actor


class OverrideOut(BaseModel):
    threshold: float | None
    clear_threshold: float | None
    enabled: bool | None
    source: str = Field(description="'file' (db/policies.yaml overrides:) or 'api'")
    updated_by: str | None = None
    updated_at: datetime | None = None


class EffectivePolicyOut(BaseModel):
    """A policy as evaluated for one asset (its override applied)."""

    code: str
    title: str
    title_en: str
    rule_type: str
    metric: str | None
    unit: str | None
    aggregation: str | None
    condition: str
    threshold: float
    clear_condition: str | None
    clear_threshold: float | None
    enabled: bool
    window_minutes: int | None
    consecutive_points: int | None
    for_minutes: int | None
    severity: str
    policy_threshold: float = Field(description="the policy's own threshold (before the override)")
    policy_clear_threshold: float | None
    override: OverrideOut | None


class AssetOverrideOut(BaseModel):
    asset_id: int
    asset_code: str | None
    threshold: float | None
    clear_threshold: float | None
    enabled: bool | None
    source: str


class PolicyOut(BaseModel):
    code: str
    title: str
    title_en: str
    description: str | None
    description_en: str | None
    asset_type: str | None = Field(description="null: every asset type")
    metric: str | None = Field(description="null for policies watching several metrics (N1, F1)")
    metrics: list[str] = Field(description="the metrics it watches (empty: every metric, N1)")
    unit: str | None
    rule_type: str
    aggregation: str | None
    condition: str
    threshold: float
    clear_condition: str | None = Field(description="hysteresis: the alert clears when this holds (null: never by itself)")
    clear_threshold: float | None
    window_minutes: int | None
    consecutive_points: int | None
    min_points: int | None
    for_minutes: int | None = Field(description="pending period: the condition must hold this long first")
    severity: str
    enabled: bool
    auto_work_order: bool
    overrides: list[AssetOverrideOut]


class BacktestIn(InputModel):
    """The period to replay and, optionally, what-if parameters and one asset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "threshold": 21}]})
    from_: AwareDatetime = Field(alias="from", description="start of the period (ISO 8601 with a zone)")
    to: AwareDatetime = Field(description="end of the period, after `from`, at most 366 days later")
    threshold: Finite | None = None
    clear_threshold: Finite | None = None
    window_minutes: int | None = Field(default=None, ge=1, le=1440)
    consecutive_points: int | None = Field(default=None, ge=1, le=1000)
    asset_code: str | None = Field(default=None, min_length=1, max_length=64)


class FiringOut(BaseModel):
    asset_code: str
    start: datetime = Field(description="when the alert would have opened")
    end: datetime | None = Field(description="when it would have cleared (null: still firing at `to`)")
    peak: float | None = Field(description="the worst value of the episode")


class BacktestOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    policy: str
    from_: datetime = Field(alias="from")
    to: datetime
    parameters: dict[str, float | int | None] = Field(description="the parameters replayed (policy's or what-if)")
    firings: list[FiringOut]
    alerts: int = Field(description="alerts it would have opened")
    work_orders: int = Field(description="work orders it would have created")


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


# --- integrations: the GMAO and the webhook delivery log (issue 15) ---------------------------

class GmaoWorkOrderIn(InputModel):
    """What the GMAO may change on a work order (at least one of status and external_ref)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"status": "done", "external_ref": "SAMFM-2026-00417", "comment": "bearing replaced"}]})
    status: Literal["in_progress", "done"] | None = Field(default=None, description="in_progress | done")
    external_ref: str | None = Field(default=None, min_length=1, max_length=100,
                                     description="the GMAO's own reference for this work order")
    actor: str = Field(default="gmao", min_length=1, max_length=100)
    comment: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _something(self):
        if self.status is None and self.external_ref is None:
            raise ValueError("give status and/or external_ref")
        return self


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    webhook_id: str = Field(description="the webhook-id header of every attempt (the outbox event's id)")
    type: str
    entity: str
    entity_id: int
    event_created_at: datetime
    endpoint: str
    status: str = Field(description="pending | delivered | failed")
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


# --- KPIs (issue 15; definitions in docs/engine.md § KPIs) ------------------------------------

class KpiFigures(BaseModel):
    """The figures of one period (hours with one decimal, shares in % with one decimal; null when
    there is nothing to average)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    mttr_hours: float | None = Field(description="mean of created → done over corrective orders done in the period")
    repairs: int = Field(description="corrective orders done in the period (the MTTR's sample)")
    mtta_hours: float | None = Field(description="mean of opened → first acknowledgement or order in progress")
    answered_alerts: int
    failures: int = Field(description="high or medium alerts opened in the period, false alarms excluded")
    downtime_hours: float | None = Field(description="union of the failure windows, clipped to the period")
    operating_hours: float | None = Field(description="asset-hours in the period minus downtime")
    mtbf_hours: float | None = Field(description="operating hours / failures")
    availability_pct: float | None = Field(description="(period − downtime) / period")
    alerts_opened: int
    alerts_converted: int
    conversion_pct: float | None = Field(description="alerts opened with a work order not cancelled")
    alerts_closed: int
    false_alarms: int
    false_alarm_pct: float | None = Field(description="closed alerts dismissed or cleared without work")
    work_orders_created: int
    preventive: int
    corrective: int
    preventive_pct: float | None = Field(description="orders of runtime rules (R4, R6) among orders created")
    corrective_pct: float | None


class AssetKpiOut(BaseModel):
    asset_id: int
    asset_code: str
    failures: int
    downtime_hours: float | None
    operating_hours: float | None
    mtbf_hours: float | None
    availability_pct: float | None


class BacklogOut(BaseModel):
    total: int
    by_priority: dict[str, dict[str, int]] = Field(
        description="priority (1 high … 3 low) → age bucket (lt_1d, 1_7d, 7_30d, gt_30d) → open orders")


class KpisOut(KpiFigures):
    effective_to: datetime = Field(description="the end used: `to`, or now if `to` is in the future")
    period_hours: float
    scope: dict[str, int | str | None]
    assets: list[AssetKpiOut] = Field(description="MTBF and availability per asset in scope")
    top_by_failures: list[AssetKpiOut]
    top_by_downtime: list[AssetKpiOut]
    backlog: BacklogOut = Field(description="work orders open at the end of the period")
    weekly: list[KpiFigures] = Field(description="per ISO week (Monday 00:00 UTC), clipped to the period")
    monthly: list[KpiFigures] = Field(description="per calendar month (UTC), clipped to the period")
