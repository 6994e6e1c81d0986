"""Work orders: list (actions are added by the lifecycle service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from db import queries
from db.models import WorkOrderStatus
from ingest.deps import SessionDep
from ingest.schemas import WorkOrderOut

router = APIRouter(tags=["workorders"])


@router.get("/workorders", response_model=list[WorkOrderOut])
def get_workorders(
    session: SessionDep,
    status: Annotated[list[WorkOrderStatus] | None, Query()] = None,
    site_id: int | None = None,
    asset_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict]:
    """Work orders by priority, newest first; `status` is repeatable."""
    return queries.list_workorders(
        session, status=[s.value for s in status] if status else None, site_id=site_id, asset_id=asset_id, limit=limit
    )


@router.get("/workorders/{workorder_id}", response_model=WorkOrderOut)
def get_workorder(workorder_id: int, session: SessionDep) -> dict:
    """One work order."""
    return queries.get_workorder_row(session, workorder_id=workorder_id)
