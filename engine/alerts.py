"""Alerts: opened and cleared by evaluation (with their work orders), acknowledged, closed and
dismissed by people. A closed alert carries its resolution: work_order_done, condition_cleared
or dismissed (docs/engine.md draws the lifecycle)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.errors import InvalidInput, InvalidTransition, NotFound
from db.models import (
    LIVE_PREDICATE, PRIORITY_BY_SEVERITY, Alert, AlertStatus, Asset, Policy, PolicyEvaluation, Resolution, Severity, WorkOrder,
    WorkOrderStatus,
)
from engine import audit
from engine.rules import Outcome, PolicyView, State, message

ENGINE = "engine"
DEFAULT_SILENCE_MINUTES = 60


def apply(session: Session, *, policy: PolicyView, asset_id: int, state: State, outcome: Outcome, now: datetime,
          result) -> None:
    """Carry out what the state machine decided for one (asset, policy): open alerts (and their
    work orders), clear them, keep the live one's peak, store the firing streak."""
    alert_id = state.alert_id
    for step in outcome.steps:
        if step.kind == "silenced":
            result.silenced += 1
        elif step.kind == "open":
            created = open_alert(session, policy=policy, asset_id=asset_id, started_at=step.started_at,
                                 value=step.peak, points=step.points, now=now)
            if created is not None:
                result.fired.append(created)
                alert_id = created["alert_id"]
            else:  # another evaluator opened it first (the unique index decided)
                alert_id = None
        elif step.kind == "clear" and alert_id is not None:
            result.cleared.append(clear(session, alert_id=alert_id, at=step.at, peak=step.peak, now=now))
            alert_id = None
    final = outcome.state
    if alert_id is not None and final.peak is not None and final.peak != state.peak:
        session.execute(update(Alert).where(Alert.id == alert_id, Alert.status.in_(AlertStatus.LIVE)).values(peak=final.peak))
    session.execute(
        update(PolicyEvaluation)
        .where(PolicyEvaluation.asset_id == asset_id, PolicyEvaluation.policy_id == policy.id)
        .values(firing_since=final.firing_since)
    )


def open_alert(session: Session, *, policy: PolicyView, asset_id: int, started_at: datetime, value: float,
               points: int, now: datetime) -> dict | None:
    """Open an alert for (asset, policy) unless one is live — the unique partial index decides, so
    racing evaluators cannot duplicate — and, with auto_work_order, its work order in the same
    transaction. Returns what was created (None: one was live already)."""
    msg, msg_fr = message(policy, value, points), message(policy, value, points, "fr")
    stmt = (
        insert(Alert)
        .values(asset_id=asset_id, policy_id=policy.id, created_at=now, severity=policy.severity,
                status=AlertStatus.OPEN.value, message=msg, message_fr=msg_fr, observed_value=value,
                started_at=started_at, peak=value)
        # the predicate is literal SQL, as in the index: with bound parameters PostgreSQL cannot
        # match the partial index once psycopg prepares the statement (after a few runs)
        .on_conflict_do_nothing(index_elements=["asset_id", "policy_id"], index_where=text(LIVE_PREDICATE))
        .returning(Alert.id)
    )
    alert_id = session.execute(stmt).scalar()
    if alert_id is None:
        return None
    code = session.execute(select(Asset.code).where(Asset.id == asset_id)).scalar_one()
    audit.record(session, entity="alert", entity_id=alert_id, actor=ENGINE, action="created", from_value=None,
                 to_value=AlertStatus.OPEN.value, comment=msg, now=now,
                 details={"policy": policy.code, "comment_fr": msg_fr, "started_at": started_at.isoformat()})
    wo_id = None
    if policy.auto_work_order:
        wo = WorkOrder(
            alert_id=alert_id, asset_id=asset_id, title=f"{policy.title} — {code}",
            created_at=now, updated_at=now, status=WorkOrderStatus.OPEN.value,
            priority=PRIORITY_BY_SEVERITY[Severity(policy.severity)], notes="",
        )
        session.add(wo)
        session.flush()
        wo_id = wo.id
        audit.record(session, entity="work_order", entity_id=wo.id, actor=ENGINE, action="created",
                     from_value=None, to_value="open", comment=f"alert #{alert_id}: {msg}", now=now,
                     details={"comment_fr": f"alerte n° {alert_id} : {msg_fr}"})
    return {"alert_id": alert_id, "asset_id": asset_id, "asset_code": code, "policy_code": policy.code,
            "severity": policy.severity, "message": msg, "message_fr": msg_fr, "work_order_id": wo_id,
            "started_at": started_at}


def clear(session: Session, *, alert_id: int, at: datetime, peak: float | None, now: datetime) -> dict:
    """The clear condition held at `at` (event time): the alert closes as condition_cleared. Its
    work order is NOT discarded: it stays as it is, with an audit entry, and the technician
    decides (the cause may still be there: a fan that overheated and cooled down)."""
    alert = get_alert(session, alert_id=alert_id, lock=True)
    before = alert.status
    alert.status, alert.closed_by, alert.closed_at = AlertStatus.CLOSED.value, ENGINE, now
    alert.resolution, alert.ended_at = Resolution.CONDITION_CLEARED.value, at
    if peak is not None:
        alert.peak = peak
    when = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    audit.record(session, entity="alert", entity_id=alert_id, actor=ENGINE, action="condition_cleared",
                 from_value=before, to_value=AlertStatus.CLOSED.value, comment=f"condition cleared at {when}",
                 now=now, details={"comment_fr": f"condition disparue à {when}", "cleared_at": at.isoformat()})
    # locked like every other change of the order, so its events keep their order
    wo = session.scalars(select(WorkOrder).where(WorkOrder.alert_id == alert_id).with_for_update()).first()
    if wo is not None and wo.status in (WorkOrderStatus.OPEN.value, WorkOrderStatus.IN_PROGRESS.value):
        audit.record(session, entity="work_order", entity_id=wo.id, actor=ENGINE, action="condition_cleared",
                     from_value=wo.status, to_value=wo.status,
                     comment=f"condition cleared at {when}: alert #{alert_id} closed; check and finish or cancel",
                     now=now, details={"comment_fr": f"condition disparue à {when} : alerte n° {alert_id} close ; "
                                                     "vérifier puis terminer ou annuler"})
    return {"alert_id": alert_id, "asset_id": alert.asset_id, "cleared_at": at,
            "work_order_id": wo.id if wo is not None else None}


def get_alert(session: Session, *, alert_id: int, lock: bool = False) -> Alert:
    """One alert, or NotFound; `lock` holds it for the rest of the transaction."""
    q = select(Alert).where(Alert.id == alert_id)
    alert = session.scalars(q.with_for_update() if lock else q).first()
    if alert is None:
        raise NotFound(f"alert {alert_id} not found", field="alert_id")
    return alert


def acknowledge(session: Session, *, alert_id: int, actor: str, comment: str = "", now: datetime) -> Alert:
    """open → ack: someone has seen it and takes it in hand."""
    alert = get_alert(session, alert_id=alert_id, lock=True)
    if alert.status != AlertStatus.OPEN.value:
        raise InvalidTransition(f"alert {alert_id} is {alert.status}: only an open alert can be acknowledged",
                                field="status")
    alert.status, alert.acked_by, alert.acked_at = AlertStatus.ACK.value, actor, now
    audit.record(session, entity="alert", entity_id=alert_id, actor=actor, action="acknowledged",
                 from_value="open", to_value="ack", comment=comment, now=now)
    return alert


def condition_holds(session: Session, *, alert: Alert) -> bool:
    """Whether the alert's policy still fires on its asset at the newest reading evaluated
    (a runtime policy holds until its counter is reset)."""
    return bool(session.execute(
        select(PolicyEvaluation.firing)
        .where(PolicyEvaluation.asset_id == alert.asset_id, PolicyEvaluation.policy_id == alert.policy_id)
    ).scalar())


def close(session: Session, *, alert_id: int, actor: str, comment: str = "", now: datetime,
          resolution: str = Resolution.CONDITION_CLEARED.value) -> Alert:
    """open/ack → closed by hand, once the condition is gone. While it still holds, closing would
    only make the next run open the same alert again: refused (dismiss it as a false alarm, or
    finish its work order)."""
    alert = get_alert(session, alert_id=alert_id, lock=True)
    if alert.status == AlertStatus.CLOSED.value:
        raise InvalidTransition(f"alert {alert_id} is already closed", field="status")
    if resolution == Resolution.CONDITION_CLEARED.value and condition_holds(session, alert=alert):
        raise InvalidTransition(
            f"alert {alert_id}: its condition still holds; dismiss it (false alarm, with a silence) "
            "or finish its work order", field="status")
    _close(session, alert=alert, actor=actor, comment=comment, now=now, resolution=resolution, action="closed")
    return alert


def _close(session: Session, *, alert: Alert, actor: str, comment: str, now: datetime, resolution: str,
           action: str) -> None:
    before = alert.status
    alert.status, alert.closed_by, alert.closed_at, alert.resolution = AlertStatus.CLOSED.value, actor, now, resolution
    # the episode ends at the newest reading evaluated: re-evaluating older readings (late data)
    # cannot open it again
    last = session.execute(
        select(PolicyEvaluation.last_ts)
        .where(PolicyEvaluation.asset_id == alert.asset_id, PolicyEvaluation.policy_id == alert.policy_id)
    ).scalar()
    alert.ended_at = max(t for t in (last, alert.started_at) if t is not None)
    audit.record(session, entity="alert", entity_id=alert.id, actor=actor, action=action,
                 from_value=before, to_value=AlertStatus.CLOSED.value, comment=comment, now=now,
                 details={"resolution": resolution})


def finish(session: Session, *, alert_id: int, actor: str, comment: str, now: datetime) -> Alert:
    """Its work order is done: the alert closes as work_order_done (whatever the condition)."""
    alert = get_alert(session, alert_id=alert_id, lock=True)
    if alert.status != AlertStatus.CLOSED.value:
        _close(session, alert=alert, actor=actor, comment=comment, now=now,
               resolution=Resolution.WORK_ORDER_DONE.value, action="closed")
    return alert


def dismiss(
    session: Session, *, alert_id: int, actor: str, reason: str, now: datetime,
    silence_minutes: int = DEFAULT_SILENCE_MINUTES,
) -> Alert:
    """A false alarm: the alert closes as dismissed, its work order is cancelled, and the policy
    is silenced on that asset for `silence_minutes` so the next run does not open it again."""
    from engine import silences

    if not reason.strip():
        raise InvalidInput("reason: say why this is a false alarm", field="reason")
    if silence_minutes < 0:
        raise InvalidInput("silence_minutes: must be 0 or more", field="silence_minutes")
    alert = get_alert(session, alert_id=alert_id, lock=True)
    if alert.status == AlertStatus.CLOSED.value:
        raise InvalidTransition(f"alert {alert_id} is already closed ({alert.resolution})", field="status")
    _close(session, alert=alert, actor=actor, comment=reason, now=now, resolution=Resolution.DISMISSED.value,
           action="dismissed")
    wo = session.scalars(select(WorkOrder).where(WorkOrder.alert_id == alert_id).with_for_update()).first()
    if wo is not None and wo.status in (WorkOrderStatus.OPEN.value, WorkOrderStatus.IN_PROGRESS.value):
        before = wo.status
        wo.status, wo.updated_at, wo.closed_at = WorkOrderStatus.CANCELLED.value, now, now
        audit.record(session, entity="work_order", entity_id=wo.id, actor=actor, action="cancelled",
                     from_value=before, to_value=WorkOrderStatus.CANCELLED.value,
                     comment=f"alert #{alert_id} dismissed: {reason}", now=now,
                     details={"comment_fr": f"alerte n° {alert_id} écartée : {reason}"})
    if silence_minutes:
        code = session.execute(select(Policy.code).where(Policy.id == alert.policy_id)).scalar_one()
        # from the end of the episode, not from now: readings taken since the last run (already
        # stored, not yet evaluated) would otherwise open the same alert again at the next run
        silences.create(session, asset_id=alert.asset_id, policy_code=code, starts_at=min(alert.ended_at, now),
                        ends_at=now + timedelta(minutes=silence_minutes), actor=actor,
                        reason=f"alert #{alert_id} dismissed: {reason}", now=now)
    return alert
