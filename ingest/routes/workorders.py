"""Work orders: list, read, move (transition), edit (assignee, notes), audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from db import queries
from db.models import WorkOrderStatus
from engine import audit, workorders
from ingest.deps import OperatorKey, BigId, SessionDep, SmallIdFilter
from ingest.export import CSV_RESPONSE, ListFormat, csv_response
from ingest.schemas import AuditOut, Text, WorkOrderOut, WorkOrderPatch, WorkOrderTransition

router = APIRouter(tags=["workorders"])


@router.get("/workorders", response_model=list[WorkOrderOut], responses=CSV_RESPONSE)
def get_workorders(
    session: SessionDep,
    status: Annotated[list[WorkOrderStatus] | None, Query()] = None,
    site_id: SmallIdFilter = None,
    asset_id: SmallIdFilter = None,
    assigned_to: Annotated[Text | None, Query(max_length=100,
                                              description='an assignee (any case); "" for the unassigned')] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    format: ListFormat = "json",
) -> list[dict] | Response:
    """Work orders by priority, newest first; `status` is repeatable; `format=csv` for a download."""
    rows = queries.list_workorders(
        session, status=[s.value for s in status] if status else None, site_id=site_id, asset_id=asset_id,
        assigned_to=assigned_to, limit=limit,
    )
    return csv_response(rows, "workorders") if format == "csv" else rows


@router.get("/workorders/{workorder_id}", response_model=WorkOrderOut)
def get_workorder(workorder_id: BigId, session: SessionDep) -> dict:
    """One work order."""
    return queries.get_workorder_row(session, workorder_id=workorder_id)


@router.post("/workorders/{workorder_id}/transition", response_model=WorkOrderOut, dependencies=[OperatorKey])
def post_transition(workorder_id: BigId, body: WorkOrderTransition, session: SessionDep) -> dict:
    """open → in_progress → done (or back to open); done closes the alert (409 on an illegal move)."""
    workorders.transition(session, workorder_id=workorder_id, to_status=body.to_status, actor=body.actor,
                          comment=body.comment, now=datetime.now(UTC))
    session.flush()
    return queries.get_workorder_row(session, workorder_id=workorder_id)


@router.patch("/workorders/{workorder_id}", response_model=WorkOrderOut, dependencies=[OperatorKey])
def patch_workorder(workorder_id: BigId, body: WorkOrderPatch, session: SessionDep) -> dict:
    """Assign (empty string unassigns) and/or replace the notes."""
    workorders.update(session, workorder_id=workorder_id, actor=body.actor, assigned_to=body.assigned_to,
                      notes=body.notes, now=datetime.now(UTC))
    session.flush()
    return queries.get_workorder_row(session, workorder_id=workorder_id)


@router.get("/workorders/{workorder_id}/audit", response_model=list[AuditOut])
def get_workorder_audit(workorder_id: BigId, session: SessionDep) -> list[dict]:
    """Who did what to this work order, oldest first."""
    queries.get_workorder_row(session, workorder_id=workorder_id)
    return audit.trail(session, entity="work_order", entity_id=workorder_id)
