"""Sites (with their roll-up), their assets (with status), asset metric history, counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from db import queries
from db.errors import InvalidInput
from db.queries import asset_statuses, site_rollup
from core.settings import get_settings
from engine.counters import reset_counter
from ingest.deps import OperatorKey, SessionDep, SmallId
from ingest.schemas import AssetMetricsOut, AssetStatusOut, CounterResetIn, CounterResetOut, SiteRollupOut

router = APIRouter(tags=["sites"])


@router.get("/sites", response_model=list[SiteRollupOut])
def get_sites(session: SessionDep) -> list[dict]:
    """Every site with live alerts by severity and assets by status; sites at risk first."""
    return site_rollup(session, now=datetime.now(UTC))


@router.get("/sites/{site_id}/assets", response_model=list[AssetStatusOut])
def get_site_assets(site_id: SmallId, session: SessionDep) -> list[dict]:
    """The assets of a site with their status (ok / watch / alert / no_data) and last values."""
    queries.get_site(session, site_id=site_id)
    return asset_statuses(session, now=datetime.now(UTC), site_id=site_id)


@router.get("/assets/{asset_id}/metrics", response_model=AssetMetricsOut)
def get_asset_metrics(
    asset_id: SmallId,
    session: SessionDep,
    from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: 1 h before `to`")] = None,
    to: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
    metric: Annotated[list[str] | None, Query(description="only these metrics (repeatable)")] = None,
    step: Annotated[str | None, Query(
        description="bucket width (10s, 15m, 1h, 1d…): min/avg/max/count per bucket instead of raw readings; "
                    "default: raw up to METRICS_MAX_POINTS readings, else an automatic step")] = None,
) -> dict:
    """An asset's readings in [from, to] (at most 1 year), per metric, oldest first: raw points
    (`resolution: "raw"`) up to METRICS_MAX_POINTS, otherwise `step` buckets with min, avg, max
    and count (`resolution: "step"`; `?step=1h`, or chosen automatically)."""
    end = _aware(to, "to") or datetime.now(UTC)
    start = _aware(from_, "from") or end - timedelta(hours=1)
    if start > end:
        raise InvalidInput("from: must be before to", field="from")
    step_s = queries.parse_step(step) if step is not None else None
    return queries.metric_series(session, asset_id=asset_id, start=start, end=end, metrics=metric, step_s=step_s,
                                 max_points=get_settings().metrics_max_points)


@router.post("/assets/{asset_id}/counters/{metric}/reset", response_model=CounterResetOut, dependencies=[OperatorKey])
def post_counter_reset(asset_id: SmallId, metric: str, body: CounterResetIn, session: SessionDep) -> dict:
    """Reset a counter (run_hours, door_cycles) after maintenance: its current value becomes the baseline."""
    r = reset_counter(session, asset_id=asset_id, metric=metric, actor=body.actor, reason=body.reason,
                      now=datetime.now(UTC))
    return {"id": r.id, "asset_id": r.asset_id, "metric": metric, "reset_at": r.reset_at, "baseline": r.baseline}


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{name}: timestamp needs a zone (Z or ±hh:mm)", field=name)
    return value
