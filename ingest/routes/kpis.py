"""GET /kpis: maintenance KPIs over a period (engine/kpis.py; definitions in docs/engine.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from db.models import AssetType
from engine import kpis
from ingest.deps import SessionDep, SmallIdFilter
from ingest.schemas import KpisOut

router = APIRouter(tags=["kpis"])


@router.get("/kpis", response_model=KpisOut, response_model_by_alias=True)
def get_kpis(
    session: SessionDep,
    from_: Annotated[AwareDatetime, Query(alias="from", description="start of the period (ISO 8601 with a zone)")],
    to: Annotated[AwareDatetime, Query(description="end of the period, excluded (now if later)")],
    site_id: SmallIdFilter = None,
    asset_type: AssetType | None = None,
    asset_id: SmallIdFilter = None,
) -> dict:
    """MTTR, MTTA, MTBF, availability, backlog, preventive share, conversion, false alarms, top
    assets — for the period and per week and month, for the assets matching every filter."""
    return kpis.compute(session, start=from_, end=to, now=datetime.now(UTC), site_id=site_id,
                        asset_type=asset_type.value if asset_type else None, asset_id=asset_id)
