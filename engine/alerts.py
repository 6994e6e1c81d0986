"""Alerts: raised by evaluation (with their work orders), acknowledged and closed by people."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.errors import InvalidTransition, NotFound
from db.models import PRIORITY_BY_SEVERITY, Alert, AlertStatus, Asset, Severity, WorkOrder
from engine import audit
from engine.rules import PolicyView, message

LIVE = (AlertStatus.OPEN.value, AlertStatus.ACK.value)
ENGINE = "engine"


def raise_alerts(
    session: Session, *, policy: PolicyView, firing: list[tuple[int, float, int]], now: datetime
) -> list[dict]:
    """Create an alert per firing (asset_id, value, points) unless one is open or ack for that
    (asset, policy) — the unique partial index decides, so racing evaluators cannot duplicate —
    and, with auto_work_order, its work order in the same transaction. Returns what was created."""
    # assets whose alert is still live are left out first, so the usual re-evaluation does not
    # spend alert numbers on inserts the index would refuse (numbers stay consecutive for people)
    live = set(session.scalars(select(Alert.asset_id).where(
        Alert.policy_id == policy.id, Alert.status.in_(LIVE), Alert.asset_id.in_([f[0] for f in firing]))))
    firing = [f for f in firing if f[0] not in live]
    if not firing:
        return []
    rows = [
        {"asset_id": aid, "policy_id": policy.id, "created_at": now, "severity": policy.severity,
         "status": AlertStatus.OPEN.value, "message": message(policy, value, points),
         "message_fr": message(policy, value, points, "fr"),
         "observed_value": value, "started_at": now, "peak": value}
        for aid, value, points in firing
    ]
    stmt = (
        insert(Alert)
        .values(rows)
        # the predicate is literal SQL, as in the index: with bound parameters PostgreSQL cannot
        # match the partial index once psycopg prepares the statement (after a few runs)
        .on_conflict_do_nothing(index_elements=["asset_id", "policy_id"], index_where=text("status IN ('open', 'ack')"))
        .returning(Alert.id, Alert.asset_id, Alert.message, Alert.message_fr)
    )
    created = session.execute(stmt).all()
    if not created:
        return []
    codes = dict(session.execute(select(Asset.id, Asset.code).where(Asset.id.in_([c.asset_id for c in created]))).all())
    fired = []
    for alert_id, asset_id, msg, msg_fr in created:
        audit.record(session, entity="alert", entity_id=alert_id, actor=ENGINE, action="created", from_value=None,
                     to_value=AlertStatus.OPEN.value, comment=msg, now=now,
                     details={"policy": policy.code, "comment_fr": msg_fr})
        wo_id = None
        if policy.auto_work_order:
            wo = WorkOrder(
                alert_id=alert_id, asset_id=asset_id, title=f"{policy.title} — {codes[asset_id]}",
                created_at=now, updated_at=now, status="open",
                priority=PRIORITY_BY_SEVERITY[Severity(policy.severity)], notes="",
            )
            session.add(wo)
            session.flush()
            wo_id = wo.id
            audit.record(session, entity="work_order", entity_id=wo.id, actor=ENGINE, action="created",
                         from_value=None, to_value="open", comment=f"alert #{alert_id}: {msg}", now=now,
                         details={"comment_fr": f"alerte n° {alert_id} : {msg_fr}"})
        fired.append({"alert_id": alert_id, "asset_id": asset_id, "asset_code": codes[asset_id],
                      "policy_code": policy.code, "severity": policy.severity, "message": msg,
                      "message_fr": msg_fr, "work_order_id": wo_id})
    return fired


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


def close(session: Session, *, alert_id: int, actor: str, comment: str = "", now: datetime,
          resolution: str = "dismissed") -> Alert:
    """open/ack → closed; the policy may fire again afterwards."""
    alert = get_alert(session, alert_id=alert_id, lock=True)
    if alert.status == AlertStatus.CLOSED.value:
        raise InvalidTransition(f"alert {alert_id} is already closed", field="status")
    before = alert.status
    alert.status, alert.closed_by, alert.closed_at = AlertStatus.CLOSED.value, actor, now
    alert.resolution = resolution
    audit.record(session, entity="alert", entity_id=alert_id, actor=actor, action="closed",
                 from_value=before, to_value="closed", comment=comment, now=now)
    return alert
