"""The domain model (PRODUCT.md §Domain model) as typed SQLAlchemy 2 tables.

The schema itself exists only through the Alembic migrations in db/migrations.
Statuses and kinds are Python enums stored as text with CHECK constraints.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class StrEnum(str, enum.Enum):
    def __str__(self) -> str:  # so f-strings show the value
        return self.value


class AssetType(StrEnum):
    HVAC = "HVAC"
    CHILLER = "CHILLER"
    ELEVATOR = "ELEVATOR"


class MetricKind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"


class RuleType(StrEnum):
    THRESHOLD = "threshold"
    CONSECUTIVE = "consecutive"
    RUNTIME = "runtime"
    RATE_OF_CHANGE = "rate_of_change"
    NO_DATA = "no_data"
    FLAT_LINE = "flat_line"


class Aggregation(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACK = "ack"
    CLOSED = "closed"
    # live: someone still has to act (at most one per asset and policy; counted by statuses)
    LIVE = enum.nonmember((OPEN, ACK))


# The live alerts' predicate, literal: the partial unique index and the inserts that target it
# (ON CONFLICT ... WHERE) must spell it the same way.
LIVE_PREDICATE = "status IN (" + ", ".join(f"'{s}'" for s in AlertStatus.LIVE) + ")"


class Resolution(StrEnum):
    """Why a closed alert ended."""

    WORK_ORDER_DONE = "work_order_done"
    CONDITION_CLEARED = "condition_cleared"
    DISMISSED = "dismissed"


class WorkOrderStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"
    # active: still to be done (counted as open work orders, listed by default)
    ACTIVE = enum.nonmember((OPEN, IN_PROGRESS))


class FaultKind(StrEnum):
    SUPPLY_AIR_DRIFT = "supply_air_drift"
    FAN_VIBRATION = "fan_vibration"
    COOLING_LOSS = "cooling_loss"
    RUN_HOURS_JUMP = "run_hours_jump"
    MOTOR_OVERHEAT = "motor_overheat"
    DOOR_CYCLES_JUMP = "door_cycles_jump"
    SLOW_DRIFT = "slow_drift"
    DROPOUT = "dropout"
    FLATLINE = "flatline"


CONDITIONS = (">", "<", ">=", "<=")
PRIORITY_BY_SEVERITY = {Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


def _check_in(column: str, enum_cls: type[enum.Enum], name: str) -> CheckConstraint:
    values = ", ".join(f"'{e.value}'" for e in enum_cls)
    return CheckConstraint(f"{column} IN ({values})", name=name)


TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    pass


# Partitions of the tiered tables (telemetry_p20261126, telemetry_late, telemetry_cold_p202611…)
# are created and dropped by the maintenance job, which also creates the compaction's working
# table (telemetry_cold_stage, UNLOGGED, empty between compactions): not declared here.
PARTITION_NAME = re.compile(r"^(telemetry|telemetry_hourly|telemetry_cold)_(p\d{6}|p\d{8}|late|stage)$")


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's filter: the schema compared with these models, without the partitions."""
    return not (type_ == "table" and name is not None and PARTITION_NAME.match(name))


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100), default="Casablanca")
    address: Mapped[str | None] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)

    assets: Mapped[list[Asset]] = relationship(back_populates="site", lazy="raise")


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (_check_in("type", AssetType, "assets_type_check"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    # How often the asset is expected to report; "no data" is 3 x this without telemetry.
    expected_cadence_s: Mapped[int] = mapped_column(Integer, default=10)

    site: Mapped[Site] = relationship(back_populates="assets", lazy="raise")


class Metric(Base):
    """The metric catalog: one row per metric name, with the asset types that report it."""

    __tablename__ = "metrics"
    __table_args__ = (_check_in("kind", MetricKind, "metrics_kind_check"),)

    id: Mapped[int] = mapped_column(SmallInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    unit: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    asset_types: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    label_fr: Mapped[str] = mapped_column(String(100))
    label_en: Mapped[str] = mapped_column(String(100))


class Telemetry(Base):
    """One reading: (asset, metric, timestamp) is the key, so a re-sent reading is stored once.

    No foreign keys on purpose: their per-row triggers make COPY six times slower (measured in
    bench/ingest.py's setting), and every point is checked against the catalog before it is
    written (ingest/telemetry.py). Assets and metrics are never deleted.
    """

    __tablename__ = "telemetry"
    # One partition per UTC day (telemetry_pYYYYMMDD) + telemetry_late (DEFAULT): migration 0006,
    # engine/maintenance.py. Read raw telemetry through readings() (both tiers), not this table.
    __table_args__ = {"postgresql_partition_by": "RANGE (ts)"}

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class TelemetryHourly(Base):
    """Hourly roll-up of telemetry (count, sum, min, max) for long-range charts; maintained by the
    scheduler (engine/rollup.py). Complete hours only; recent hours are read from telemetry."""

    __tablename__ = "telemetry_hourly"
    __table_args__ = {"postgresql_partition_by": "RANGE (hour)"}  # monthly: telemetry_hourly_pYYYYMM

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    hour: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)


class TelemetryCold(Base):
    """The cold tier: one compacted UTC day of one (asset, metric). `dts` are microsecond deltas
    (the first from `day`, then from the previous reading), `vals` the values (or, `milli`, the deltas of value × 1000), compressed by
    PostgreSQL; decoded by telemetry_cold_points(), read through readings(). Monthly partitions."""

    __tablename__ = "telemetry_cold"
    __table_args__ = {"postgresql_partition_by": "RANGE (day)"}

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    day: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    dts: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    vals: Mapped[list[float]] = mapped_column(ARRAY(Float))
    milli: Mapped[bool] = mapped_column(Boolean)  # vals are deltas of value × 1000 (≤ 3 decimals)
    # where each hour's decoding starts (migration 0010, telemetry_cold_hours(); filled by a trigger)
    hours: Mapped[list | None] = mapped_column(ARRAY(Float, dimensions=2), nullable=True)


class TelemetryDirtyHour(Base):
    """An hour whose roll-up must be recomputed (readings stored after it was complete); written
    by a statement trigger on telemetry, consumed by engine/rollup.py."""

    __tablename__ = "telemetry_dirty_hours"

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    hour: Mapped[datetime] = mapped_column(TZ, primary_key=True)


class MaintenanceState(Base):
    """Named instants of the maintenance job (e.g. rollup_until: every hour before it is rolled up)."""

    __tablename__ = "maintenance_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(TZ)


class Policy(Base):
    """A maintenance policy, loaded from db/policies.yaml by `python -m db upgrade`."""

    __tablename__ = "policies"
    __table_args__ = (
        _check_in("asset_type", AssetType, "policies_asset_type_check"),
        _check_in("rule_type", RuleType, "policies_rule_type_check"),
        _check_in("severity", Severity, "policies_severity_check"),
        CheckConstraint("condition IN ('>', '<', '>=', '<=')", name="policies_condition_check"),
        CheckConstraint(
            "aggregation IS NULL OR aggregation IN ('avg', 'min', 'max')",
            name="policies_aggregation_check",
        ),
        CheckConstraint("clear_condition IS NULL OR clear_condition IN ('>', '<', '>=', '<=')",
                        name="policies_clear_condition_check"),
        CheckConstraint("metric_id IS NOT NULL OR rule_type IN ('no_data', 'flat_line')", name="policies_metric_check"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    asset_type: Mapped[str | None] = mapped_column(String(16))  # None: every asset type
    # One metric, except no_data / flat_line policies, which watch metric_ids (None: every
    # metric of the asset's type)
    metric_id: Mapped[int | None] = mapped_column(ForeignKey("metrics.id"))
    metric_ids: Mapped[list[int] | None] = mapped_column(ARRAY(SmallInteger))
    rule_type: Mapped[str] = mapped_column(String(16))
    aggregation: Mapped[str | None] = mapped_column(String(8))
    condition: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    window_minutes: Mapped[int | None] = mapped_column(Integer)
    consecutive_points: Mapped[int | None] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    title_en: Mapped[str] = mapped_column(String(200), default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_work_order: Mapped[bool] = mapped_column(Boolean, default=True)
    # Hysteresis: the alert closes by itself (condition_cleared) only when the value, computed
    # like the firing one, satisfies clear_condition clear_threshold. None: never by itself.
    clear_condition: Mapped[str | None] = mapped_column(String(2))
    clear_threshold: Mapped[float | None] = mapped_column(Float)
    for_minutes: Mapped[int] = mapped_column(Integer, default=0)  # pending period before opening
    min_points: Mapped[int | None] = mapped_column(Integer)  # flat_line: readings the window needs

    metric: Mapped[Metric | None] = relationship(lazy="raise")


class CounterReset(Base):
    """A reset of a counter (run_hours, door_cycles): later runtime rules count from `baseline`."""

    __tablename__ = "counter_resets"
    __table_args__ = (Index("ix_counter_resets_asset_metric_at", "asset_id", "metric_id", "reset_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id"))
    reset_at: Mapped[datetime] = mapped_column(TZ)
    baseline: Mapped[float] = mapped_column(Float)
    reset_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")


class PolicyEvaluation(Base):
    """The last evaluated value of each (asset, policy), for "R1: 19.4 / 20 °C" and statuses."""

    __tablename__ = "policy_evaluations"

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(TZ)
    value: Mapped[float | None] = mapped_column(Float)
    points: Mapped[int] = mapped_column(Integer, default=0)
    firing: Mapped[bool] = mapped_column(Boolean, default=False)
    last_ts: Mapped[datetime | None] = mapped_column(TZ)  # event time of the last reading evaluated
    firing_since: Mapped[datetime | None] = mapped_column(TZ)  # start of the current firing streak
    # windowed sums at last_ts (threshold avg, rate_of_change; migration 0009): the window length
    # they cover, the readings in it and their exact sums Σy, Σx, Σx², Σxy (x: epoch seconds)
    win_seconds: Mapped[int | None] = mapped_column(Integer)
    win_n: Mapped[int | None] = mapped_column(Integer)
    win_sums: Mapped[list[Decimal] | None] = mapped_column(ARRAY(Numeric))
    # consecutive rules (migration 0011): the values of the N - 1 readings up to last_ts, oldest
    # first, with win_n = N - 1
    win_values: Mapped[list[float] | None] = mapped_column(ARRAY(Float))


class RuleRun(Base):
    """One evaluation of the policies (scheduler or "evaluate now"): for /metrics and the overview."""

    __tablename__ = "rule_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(TZ, index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    policies: Mapped[int] = mapped_column(Integer)
    assets: Mapped[int] = mapped_column(Integer)
    fired: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    readings: Mapped[int] = mapped_column(Integer, default=0)  # reading instants evaluated
    cleared: Mapped[int] = mapped_column(Integer, default=0)
    silenced: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[dict | None] = mapped_column(JSONB)  # policy code -> error, for failed policies


class TelemetryArrival(Base):
    """What one insert statement on telemetry brought for one (asset, metric): written by a
    trigger (migration 0005), consumed by the rule engine (engine/evaluate.py)."""

    __tablename__ = "telemetry_arrivals"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer)
    metric_id: Mapped[int] = mapped_column(SmallInteger)
    min_ts: Mapped[datetime] = mapped_column(TZ)
    max_ts: Mapped[datetime] = mapped_column(TZ)
    n: Mapped[int] = mapped_column(Integer)
    # the smallest and largest value that arrived (migration 0016; NULL in rows written before)
    vmin: Mapped[float | None] = mapped_column(Float)
    vmax: Mapped[float | None] = mapped_column(Float)
    vlast: Mapped[float | None] = mapped_column(Float)  # the newest reading's value (migration 0017)
    arrived_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())


class TelemetryLatest(Base):
    """The newest reading time per (asset, metric), kept by the rule engine from the arrivals."""

    __tablename__ = "telemetry_latest"

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    last_ts: Mapped[datetime] = mapped_column(TZ)


class Silence(Base):
    """A maintenance window: no alert and no work order for the (asset, policy) pairs it covers.
    Every scope given must match (site, asset, policy); at least one is given."""

    __tablename__ = "silences"
    __table_args__ = (
        CheckConstraint("site_id IS NOT NULL OR asset_id IS NOT NULL OR policy_id IS NOT NULL",
                        name="silences_scope_check"),
        CheckConstraint("ends_at > starts_at", name="silences_period_check"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("policies.id"))
    starts_at: Mapped[datetime] = mapped_column(TZ)
    ends_at: Mapped[datetime] = mapped_column(TZ, index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(TZ)
    ended_by: Mapped[str | None] = mapped_column(String(100))  # who ended it early


class PolicyOverride(Base):
    """A policy tuned for one asset: threshold, clear threshold, enabled (None: the policy's)."""

    __tablename__ = "policy_overrides"
    __table_args__ = (CheckConstraint("source IN ('api', 'file')", name="policy_overrides_source_check"),)

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), primary_key=True)
    threshold: Mapped[float | None] = mapped_column(Float)
    clear_threshold: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(8), default="api")  # 'file': db/policies.yaml overrides
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(TZ)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        _check_in("status", AlertStatus, "alerts_status_check"),
        _check_in("severity", Severity, "alerts_severity_check"),
        CheckConstraint(
            "resolution IN ('work_order_done', 'condition_cleared', 'dismissed') AND status = 'closed' "
            "OR resolution IS NULL AND status <> 'closed'", name="alerts_resolution_check"),
        # At most one live (open or ack) alert per (asset, policy): racing evaluators cannot duplicate.
        Index(
            "uq_alerts_live_asset_policy",
            "asset_id",
            "policy_id",
            unique=True,
            postgresql_where=text(LIVE_PREDICATE),
        ),
        Index("ix_alerts_status_created", "status", "created_at"),
        Index("ix_alerts_asset_policy_started", "asset_id", "policy_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    created_at: Mapped[datetime] = mapped_column(TZ)
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default=AlertStatus.OPEN.value)
    message: Mapped[str] = mapped_column(Text)
    message_fr: Mapped[str] = mapped_column(Text, server_default="")
    observed_value: Mapped[float | None] = mapped_column(Float)
    # The episode in event time: the first reading that fired, the reading that cleared it (or
    # the last one seen firing when it was closed otherwise), the worst value seen.
    started_at: Mapped[datetime] = mapped_column(TZ)
    ended_at: Mapped[datetime | None] = mapped_column(TZ)
    peak: Mapped[float | None] = mapped_column(Float)
    resolution: Mapped[str | None] = mapped_column(String(24))
    acked_by: Mapped[str | None] = mapped_column(String(100))
    acked_at: Mapped[datetime | None] = mapped_column(TZ)
    closed_by: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(TZ)

    asset: Mapped[Asset] = relationship(lazy="raise")
    policy: Mapped[Policy] = relationship(lazy="raise")


class WorkOrder(Base):
    __tablename__ = "work_orders"
    __table_args__ = (
        _check_in("status", WorkOrderStatus, "work_orders_status_check"),
        CheckConstraint("priority BETWEEN 1 AND 3", name="work_orders_priority_check"),
        Index("ix_work_orders_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), unique=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    closed_at: Mapped[datetime | None] = mapped_column(TZ)
    status: Mapped[str] = mapped_column(String(16), default=WorkOrderStatus.OPEN.value)
    priority: Mapped[int] = mapped_column(SmallInteger)  # 1 = high severity … 3 = low
    assigned_to: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(Text, default="")
    external_ref: Mapped[str | None] = mapped_column(String(100))  # the GMAO's own reference (issue 15)

    alert: Mapped[Alert | None] = relationship(lazy="raise")
    asset: Mapped[Asset] = relationship(lazy="raise")


class AuditEntry(Base):
    """Every change to an alert or a work order: who, when, from, to, comment."""

    __tablename__ = "audit_trail"
    __table_args__ = (
        CheckConstraint("entity IN ('alert', 'work_order', 'counter', 'silence', 'policy')", name="audit_entity_check"),
        Index("ix_audit_entity", "entity", "entity_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    from_value: Mapped[str | None] = mapped_column(String(200))
    to_value: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict | None] = mapped_column(JSONB)


class SimulatorFault(Base):
    """A fault injected into the simulator (demo scenario); the simulator reads these through the API."""

    __tablename__ = "simulator_faults"
    __table_args__ = (
        _check_in("fault", FaultKind, "simulator_faults_fault_check"),
        CheckConstraint("intensity >= 0 AND intensity <= 1", name="simulator_faults_intensity_check"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), index=True)
    fault: Mapped[str] = mapped_column(String(32))
    intensity: Mapped[float] = mapped_column(Float)
    ramp_s: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    ends_at: Mapped[datetime] = mapped_column(TZ)
    stopped_at: Mapped[datetime | None] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(100), default="dashboard")

    asset: Mapped[Asset] = relationship(lazy="raise")


# --- outbox and webhooks (issue 15, migration 0008) ------------------------------------------

class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboxEvent(Base):
    """One change to an alert or a work order, written in the transaction of the change
    (engine/outbox.py); its id is the `webhook-id` of every delivery of it."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint("entity IN ('alert', 'work_order')", name="outbox_events_entity_check"),
        Index("ix_outbox_events_key", "ordering_key", "id"),
        Index("ix_outbox_events_to_fan_out", "id", postgresql_where=text("NOT fanned_out")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    type: Mapped[str] = mapped_column(String(64))  # work_order.status_changed, alert.acknowledged…
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    # events with the same key are delivered in id order ("work_order:12", "alert:40")
    ordering_key: Mapped[str] = mapped_column(String(48))
    payload: Mapped[dict | None] = mapped_column(JSONB)  # filled just before commit
    # the relay has created its deliveries (one per WEBHOOK_URL)
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class WebhookDelivery(Base):
    """One event to one endpoint: attempts, last answer, next attempt (the delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        _check_in("status", DeliveryStatus, "webhook_deliveries_status_check"),
        Index("uq_webhook_deliveries_event_endpoint", "event_id", "endpoint", unique=True),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id"))
    endpoint: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # every attempt ever made
    retry_step: Mapped[int] = mapped_column(Integer, default=0)  # position in the back-off schedule
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZ)
    last_attempt_at: Mapped[datetime | None] = mapped_column(TZ)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(TZ)

    event: Mapped[OutboxEvent] = relationship(lazy="raise")


class InboundMessage(Base):
    """The `webhook-id` of every signed inbound call accepted: a second call with it is a replay."""

    __tablename__ = "inbound_messages"

    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(TZ)
