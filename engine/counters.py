"""Counters (run_hours, door_cycles): a reset sets the baseline runtime policies count from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import InvalidInput
from db.models import CounterReset, Metric, MetricKind, Telemetry
from db.queries import get_asset
from engine import audit


def reset_counter(
    session: Session, *, asset_id: int, metric: str, actor: str, reason: str = "", now: datetime
) -> CounterReset:
    """Reset a counter of an asset: its latest value (at `now`) becomes the new baseline."""
    asset = get_asset(session, asset_id=asset_id)
    m = session.scalars(select(Metric).where(Metric.name == metric)).first()
    if m is None or asset.type not in m.asset_types or m.kind != MetricKind.COUNTER.value:
        raise InvalidInput(f"metric: {metric!r} is not a counter of {asset.type} assets", field="metric")
    latest = session.scalars(
        select(Telemetry.value)
        .where(Telemetry.asset_id == asset_id, Telemetry.metric_id == m.id, Telemetry.ts <= now)
        .order_by(Telemetry.ts.desc())
        .limit(1)
    ).first()
    reset = CounterReset(asset_id=asset_id, metric_id=m.id, reset_at=now, baseline=latest or 0.0,
                         reset_by=actor, reason=reason or "")
    session.add(reset)
    session.flush()
    audit.record(session, entity="counter", entity_id=reset.id, actor=actor, action="reset", from_value=None,
                 to_value=f"{metric} baseline {reset.baseline:g}", comment=reason, now=now,
                 details={"asset_id": asset_id, "metric": metric})
    return reset
