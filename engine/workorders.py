"""Work orders: open → in_progress → done (and back to open from in_progress), or cancelled once
their alert is closed (cleared by itself, or dismissed — which cancels the order itself);
assignment, notes. Done closes the alert (work_order_done) and, for a runtime policy, resets its
counter."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import InvalidInput, InvalidTransition, NotFound
from db.models import Alert, AlertStatus, Metric, Policy, RuleType, WorkOrder, WorkOrderStatus
from engine import alerts, audit
from engine.counters import reset_counter

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    WorkOrderStatus.OPEN.value: {WorkOrderStatus.IN_PROGRESS.value, WorkOrderStatus.CANCELLED.value},
    WorkOrderStatus.IN_PROGRESS.value: {
        WorkOrderStatus.OPEN.value, WorkOrderStatus.DONE.value, WorkOrderStatus.CANCELLED.value},
    WorkOrderStatus.DONE.value: set(),
    WorkOrderStatus.CANCELLED.value: set(),
}
FINISHED = (WorkOrderStatus.DONE.value, WorkOrderStatus.CANCELLED.value)


def allowed_moves(status: str, alert_status: str | None) -> set[str]:
    """The statuses a work order may go to: cancelling is for an order whose alert is closed
    (a live alert is dismissed instead, which cancels its order)."""
    moves = set(ALLOWED_TRANSITIONS.get(status, ()))
    if alert_status is not None and alert_status != AlertStatus.CLOSED.value:
        moves.discard(WorkOrderStatus.CANCELLED.value)
    return moves


def get_workorder(session: Session, *, workorder_id: int, lock: bool = False) -> WorkOrder:
    """One work order, or NotFound; `lock` holds it for the rest of the transaction."""
    q = select(WorkOrder).where(WorkOrder.id == workorder_id)
    wo = session.scalars(q.with_for_update() if lock else q).first()
    if wo is None:
        raise NotFound(f"work order {workorder_id} not found", field="workorder_id")
    return wo


def transition(
    session: Session, *, workorder_id: int, to_status: str, actor: str, comment: str = "", now: datetime
) -> WorkOrder:
    """Move a work order; an illegal move raises InvalidTransition and changes nothing."""
    if to_status not in ALLOWED_TRANSITIONS:
        raise InvalidInput(f"to_status: unknown status {to_status!r}", field="to_status")
    wo = get_workorder(session, workorder_id=workorder_id, lock=True)
    alert = alerts.get_alert(session, alert_id=wo.alert_id) if wo.alert_id is not None else None
    if to_status not in ALLOWED_TRANSITIONS[wo.status]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[wo.status])) or "none: it is finished"
        raise InvalidTransition(
            f"work order {workorder_id} cannot go from {wo.status} to {to_status} (allowed: {allowed})",
            field="to_status",
        )
    if to_status not in allowed_moves(wo.status, alert.status if alert else None):
        raise InvalidTransition(
            f"work order {workorder_id}: its alert #{alert.id} is still {alert.status}; dismiss the alert "
            "(false alarm), which cancels this order, or finish the order", field="to_status")
    before = wo.status
    wo.status, wo.updated_at = to_status, now
    wo.closed_at = now if to_status in FINISHED else None
    audit.record(session, entity="work_order", entity_id=wo.id, actor=actor, action="status",
                 from_value=before, to_value=to_status, comment=comment, now=now)
    if to_status == WorkOrderStatus.DONE.value and wo.alert_id is not None:
        _finish_alert(session, wo=wo, actor=actor, now=now)
    return wo


def _finish_alert(session: Session, *, wo: WorkOrder, actor: str, now: datetime) -> None:
    alert = alerts.finish(session, alert_id=wo.alert_id, actor=actor, comment=f"work order #{wo.id} done", now=now)
    rule_type, metric = session.execute(
        select(Policy.rule_type, Metric.name).join(Metric, Metric.id == Policy.metric_id).where(Policy.id == alert.policy_id)
    ).one()
    if rule_type == RuleType.RUNTIME.value:
        reset_counter(session, asset_id=wo.asset_id, metric=metric, actor=actor,
                      reason=f"work order #{wo.id} done", now=now)


def update(
    session: Session, *, workorder_id: int, actor: str, now: datetime,
    assigned_to: str | None = None, notes: str | None = None,
) -> WorkOrder:
    """Assign (empty string: unassign) and/or replace the notes; each change is audited."""
    wo = get_workorder(session, workorder_id=workorder_id, lock=True)
    if assigned_to is not None:
        new = assigned_to.strip() or None
        if new != wo.assigned_to:
            audit.record(session, entity="work_order", entity_id=wo.id, actor=actor, action="assigned",
                         from_value=wo.assigned_to, to_value=new, now=now)
            wo.assigned_to = new
    if notes is not None and notes != wo.notes:
        audit.record(session, entity="work_order", entity_id=wo.id, actor=actor, action="notes",
                     from_value=None, to_value=None, comment=notes, now=now)
        wo.notes = notes
    wo.updated_at = now
    return wo
