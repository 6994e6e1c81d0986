"""The transactional outbox: every change to an alert or a work order becomes one event row in the
transaction of the change (so an event exists exactly when the change was committed); the relay
(engine/relay.py) delivers it to each WEBHOOK_URL. Also the delivery log and "resend".

`engine.audit.record` calls `enqueue` for every alert and work-order entry, so each service that
audits a change also writes its event. The payload (the entity as it stands, with the change) is
built just before the commit, once every change of the transaction is flushed: a service may
audit first and set the new value after, and the event still carries the new state.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from db.errors import InvalidTransition, NotFound
from db.models import (
    Alert,
    Asset,
    DeliveryStatus,
    OutboxEvent,
    Policy,
    Site,
    WebhookDelivery,
    WorkOrder,
)

ENTITIES = ("alert", "work_order")
# audit action -> event name (the others keep the action's name: created, acknowledged, closed,
# assigned, dismissed, condition_cleared, cancelled, external_ref…)
EVENT_NAMES = {"status": "status_changed", "notes": "notes_changed"}
_PENDING = "outbox_pending"


def event_type(entity: str, action: str) -> str:
    """'work_order' + 'status' -> 'work_order.status_changed'."""
    return f"{entity}.{EVENT_NAMES.get(action, action)}"


def enqueue(
    session: Session, *, entity: str, entity_id: int, actor: str, action: str,
    from_value: str | None, to_value: str | None, comment: str = "", now: datetime,
) -> OutboxEvent:
    """Add the event of one change to the session (its payload is completed before commit)."""
    ev = OutboxEvent(created_at=now, type=event_type(entity, action), entity=entity, entity_id=entity_id,
                     ordering_key=f"{entity}:{entity_id}", payload=None, fanned_out=False)
    session.add(ev)
    change = {"action": action, "from": from_value, "to": to_value, "actor": actor, "comment": comment or "",
              "at": iso(now)}
    session.info.setdefault(_PENDING, []).append((ev, change))
    return ev


def iso(ts: datetime | None) -> str | None:
    """A timestamp as ISO 8601 in UTC ('2026-03-02T12:00:00Z')."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def complete(session: Session) -> None:
    """Fill the payload of the events enqueued in this transaction from the entities as they now
    stand (called before every commit; harmless when there is nothing to do)."""
    pending = [(ev, change) for ev, change in session.info.pop(_PENDING, [])
               if inspect(ev).session is session and ev.payload is None]
    if not pending:
        return
    session.flush()
    alert_ids = {ev.entity_id for ev, _ in pending if ev.entity == "alert"}
    wo_ids = {ev.entity_id for ev, _ in pending if ev.entity == "work_order"}
    alerts = alert_snapshots(session, alert_ids=alert_ids) if alert_ids else {}
    orders = workorder_snapshots(session, workorder_ids=wo_ids) if wo_ids else {}
    for ev, change in pending:
        entity = alerts.get(ev.entity_id) if ev.entity == "alert" else orders.get(ev.entity_id)
        ev.payload = {"type": ev.type, "timestamp": iso(ev.created_at),
                      "data": {ev.entity: entity, "change": change}}
    session.flush()


def alert_snapshots(session: Session, *, alert_ids: set[int]) -> dict[int, dict]:
    """What an alert event says about its alert, by id."""
    q = (
        select(Alert, Asset.code, Site.code, Policy.code, Policy.title, WorkOrder.id)
        .join(Asset, Asset.id == Alert.asset_id).join(Site, Site.id == Asset.site_id)
        .join(Policy, Policy.id == Alert.policy_id).outerjoin(WorkOrder, WorkOrder.alert_id == Alert.id)
        .where(Alert.id.in_(alert_ids))
        .execution_options(populate_existing=True)
    )
    out = {}
    for a, asset_code, site_code, policy_code, title, wo_id in session.execute(q):
        out[a.id] = {
            "id": a.id, "asset_code": asset_code, "site_code": site_code, "policy_code": policy_code,
            "title": title, "severity": a.severity, "status": a.status,
            "resolution": a.resolution, "message": a.message, "message_fr": a.message_fr,
            "observed_value": a.observed_value, "peak": a.peak, "started_at": iso(a.started_at),
            "ended_at": iso(a.ended_at), "created_at": iso(a.created_at), "acked_by": a.acked_by,
            "acked_at": iso(a.acked_at), "closed_by": a.closed_by, "closed_at": iso(a.closed_at),
            "work_order_id": wo_id,
        }
    return out


def workorder_snapshots(session: Session, *, workorder_ids: set[int]) -> dict[int, dict]:
    """What a work-order event says about its work order, by id."""
    q = (
        select(WorkOrder, Asset.code, Site.code)
        .join(Asset, Asset.id == WorkOrder.asset_id).join(Site, Site.id == Asset.site_id)
        .where(WorkOrder.id.in_(workorder_ids))
        .execution_options(populate_existing=True)
    )
    out = {}
    for w, asset_code, site_code in session.execute(q):
        out[w.id] = {
            "id": w.id, "alert_id": w.alert_id, "asset_code": asset_code, "site_code": site_code, "title": w.title,
            "status": w.status, "priority": w.priority, "assigned_to": w.assigned_to, "notes": w.notes,
            "external_ref": w.external_ref, "created_at": iso(w.created_at), "updated_at": iso(w.updated_at),
            "closed_at": iso(w.closed_at),
        }
    return out


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    complete(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- the delivery log ------------------------------------------------------------------------

def list_deliveries(
    session: Session, *, status: list[str] | None = None, entity: str | None = None, entity_id: int | None = None,
    limit: int = 200,
) -> list[dict]:
    """Deliveries, newest event first: per event and endpoint, attempts, last answer, next attempt."""
    q = select(WebhookDelivery, OutboxEvent.type, OutboxEvent.entity, OutboxEvent.entity_id,
               OutboxEvent.created_at).join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
    if status:
        q = q.where(WebhookDelivery.status.in_(status))
    if entity is not None:
        q = q.where(OutboxEvent.entity == entity)
    if entity_id is not None:
        q = q.where(OutboxEvent.entity_id == entity_id)
    rows = session.execute(q.order_by(WebhookDelivery.event_id.desc(), WebhookDelivery.id).limit(limit))
    return [_delivery_dict(d, type_, ent, ent_id, created) for d, type_, ent, ent_id, created in rows]


def _delivery_dict(d: WebhookDelivery, type_: str, entity: str, entity_id: int, created_at: datetime) -> dict:
    return {
        "id": d.id, "event_id": d.event_id, "webhook_id": str(d.event_id), "type": type_, "entity": entity,
        "entity_id": entity_id, "event_created_at": created_at, "endpoint": d.endpoint, "status": d.status,
        "attempts": d.attempts, "last_attempt_at": d.last_attempt_at, "last_status_code": d.last_status_code,
        "last_error": d.last_error, "next_attempt_at": d.next_attempt_at, "delivered_at": d.delivered_at,
    }


def get_delivery(session: Session, *, delivery_id: int) -> dict:
    """One delivery of the log, or NotFound."""
    row = session.execute(
        select(WebhookDelivery, OutboxEvent.type, OutboxEvent.entity, OutboxEvent.entity_id, OutboxEvent.created_at)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id).where(WebhookDelivery.id == delivery_id)
    ).first()
    if row is None:
        raise NotFound(f"delivery {delivery_id} not found", field="delivery_id")
    return _delivery_dict(*row)


def resend(session: Session, *, delivery_id: int, now: datetime) -> None:
    """failed → pending, due now, with the whole back-off schedule again (same webhook-id)."""
    d = session.scalars(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()).first()
    if d is None:
        raise NotFound(f"delivery {delivery_id} not found", field="delivery_id")
    if d.status != DeliveryStatus.FAILED.value:
        raise InvalidTransition(f"delivery {delivery_id} is {d.status}: only a failed delivery can be resent",
                                field="status")
    d.status, d.retry_step, d.next_attempt_at = DeliveryStatus.PENDING.value, 0, now


def outbox_counts(session: Session) -> dict[str, int]:
    """Deliveries by status, plus the events no relay has picked up yet."""
    from sqlalchemy import func

    counts = dict(session.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).all())
    waiting = session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.fanned_out.is_(False)))
    return {**{s.value: counts.get(s.value, 0) for s in DeliveryStatus}, "not_dispatched": waiting or 0}
