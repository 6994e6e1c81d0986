"""Sites, their assets, and asset metric history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from db import queries
from db.errors import InvalidInput
from ingest.deps import SessionDep
from ingest.schemas import AssetMetricsOut, AssetOut, SiteOut

router = APIRouter(tags=["sites"])


@router.get("/sites", response_model=list[SiteOut])
def get_sites(session: SessionDep) -> list[dict]:
    """Every site with its live alerts counted by severity."""
    return queries.list_sites(session)


@router.get("/sites/{site_id}/assets", response_model=list[AssetOut])
def get_site_assets(site_id: int, session: SessionDep) -> list[dict]:
    """The assets of a site with their last values."""
    return queries.list_assets(session, site_id=site_id)


@router.get("/assets/{asset_id}/metrics", response_model=AssetMetricsOut)
def get_asset_metrics(
    asset_id: int,
    session: SessionDep,
    from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: 1 h before `to`")] = None,
    to: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
    metric: Annotated[list[str] | None, Query(description="only these metrics (repeatable)")] = None,
) -> dict:
    """Raw readings of an asset in [from, to] (at most 7 days), per metric, oldest first."""
    end = _aware(to, "to") or datetime.now(UTC)
    start = _aware(from_, "from") or end - timedelta(hours=1)
    if start > end:
        raise InvalidInput("from: must be before to", field="from")
    if end - start > timedelta(days=7):
        raise InvalidInput("from: the range is limited to 7 days of raw points", field="from")
    return queries.metric_series(session, asset_id=asset_id, start=start, end=end, metrics=metric)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{name}: timestamp needs a zone (Z or ±hh:mm)", field=name)
    return value
