"""Inbound calls from the company's GMAO: signed the Standard Webhooks way with WEBHOOK_SECRET
(5-minute tolerance, each webhook-id accepted once), they move a work order (in_progress, done)
and store the GMAO's own reference. Done closes the alert exactly as from the dashboard
(engine.workorders.transition)."""

from __future__ import annotations

import binascii
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from db.errors import Unauthorized
from db.models import InboundMessage, WorkOrder, WorkOrderStatus
from engine import audit, workorders

ACTOR = "gmao"
# ids are kept longer than the timestamp tolerance: an older replay is refused by its timestamp
KEEP_IDS = timedelta(hours=1)


def verify(*, secret: str, body: bytes, headers: dict[str, str]) -> None:
    """The signature and timestamp of an inbound call, or Unauthorized (nothing said about why the
    signature does not match, beyond the library's words)."""
    if not secret:
        raise Unauthorized("inbound calls are disabled: WEBHOOK_SECRET is not set", field="webhook-signature")
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized(f"invalid signature: {exc}", field="webhook-signature") from None


def accept_once(session: Session, *, webhook_id: str, now: datetime) -> None:
    """Remember this webhook-id; a second call with it is a replay (Unauthorized). Part of the
    caller's transaction: a refused update does not burn the id."""
    session.execute(delete(InboundMessage).where(InboundMessage.received_at < now - KEEP_IDS))
    new = session.execute(
        insert(InboundMessage).values(webhook_id=webhook_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["webhook_id"]).returning(InboundMessage.webhook_id)
    ).first()
    if new is None:
        raise Unauthorized(f"webhook-id {webhook_id!r} was already received: replay refused", field="webhook-id")


def apply_update(
    session: Session, *, workorder_id: int, status: str | None, external_ref: str | None,
    actor: str = ACTOR, comment: str = "", now: datetime,
) -> WorkOrder:
    """Store the GMAO's reference and move the work order to `status` (open → done goes through
    in_progress, both moves audited; the current status again is no move)."""
    wo = workorders.get_workorder(session, workorder_id=workorder_id, lock=True)
    if external_ref is not None and external_ref != wo.external_ref:
        audit.record(session, entity="work_order", entity_id=wo.id, actor=actor, action="external_ref",
                     from_value=wo.external_ref, to_value=external_ref, comment=comment, now=now)
        wo.external_ref, wo.updated_at = external_ref, now
    if status is not None and status != wo.status:
        if status == WorkOrderStatus.DONE.value and wo.status == WorkOrderStatus.OPEN.value:
            workorders.transition(session, workorder_id=wo.id, to_status=WorkOrderStatus.IN_PROGRESS.value,
                                  actor=actor, comment=comment, now=now)
        workorders.transition(session, workorder_id=wo.id, to_status=status, actor=actor, comment=comment, now=now)
    return wo
