"""Integrations: the GMAO's signed calls on work orders, and the webhook delivery log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError

from db import queries
from db.errors import InvalidInput
from db.models import DeliveryStatus
from core.settings import get_settings
from engine import gmao, outbox
from ingest.deps import BigId, OperatorKey, SessionDep
from ingest.schemas import DeliveryOut, GmaoWorkOrderIn, WorkOrderOut

# the GMAO's calls carry a Standard Webhooks signature, not an API key (an open router)
gmao_router = APIRouter(tags=["integrations"])
# the delivery log shows endpoint URLs (which may hold tokens): operators only
router = APIRouter(tags=["integrations"], dependencies=[OperatorKey])


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: the signature covers these bytes."""
    return await request.body()


@gmao_router.post(
    "/integrations/gmao/workorders/{workorder_id}", response_model=WorkOrderOut,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": GmaoWorkOrderIn.model_json_schema()}}}},
)
def post_gmao_workorder(
    workorder_id: BigId, request: Request, session: SessionDep, body: Annotated[bytes, Depends(raw_body)]
) -> dict:
    """The GMAO moves a work order (in_progress, done) and/or stores its own reference. Signed
    with WEBHOOK_SECRET (Standard Webhooks headers webhook-id, webhook-timestamp,
    webhook-signature); a bad signature, a timestamp more than 5 minutes off or a webhook-id
    already received gets 401 and changes nothing. Done closes the alert (docs/integration.md)."""
    gmao.verify(secret=get_settings().webhook_secret, body=body, headers=dict(request.headers))
    try:
        update = GmaoWorkOrderIn.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc.errors(), prefix_fields=()) from None
    now = datetime.now(UTC)
    gmao.accept_once(session, webhook_id=request.headers["webhook-id"], now=now)
    gmao.apply_update(session, workorder_id=workorder_id, status=update.status, external_ref=update.external_ref,
                      actor=update.actor, comment=update.comment, now=now)
    session.flush()
    return queries.get_workorder_row(session, workorder_id=workorder_id)


@router.get("/webhooks/deliveries", response_model=list[DeliveryOut])
def get_deliveries(
    session: SessionDep,
    status: Annotated[list[DeliveryStatus] | None, Query()] = None,
    entity: Annotated[str | None, Query(pattern="^(alert|work_order)$")] = None,
    entity_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict]:
    """The delivery log, newest event first: per event and endpoint, attempts, last status, next
    attempt (`status` repeatable: pending, delivered, failed)."""
    return outbox.list_deliveries(session, status=[s.value for s in status] if status else None, entity=entity,
                                  entity_id=entity_id, limit=limit)


@router.post("/webhooks/deliveries/{delivery_id}/resend", response_model=DeliveryOut)
def post_resend(delivery_id: BigId, session: SessionDep) -> dict:
    """Send a failed delivery again (same webhook-id, whole back-off schedule); 409 unless failed."""
    outbox.resend(session, delivery_id=delivery_id, now=datetime.now(UTC))
    session.flush()
    return outbox.get_delivery(session, delivery_id=delivery_id)
