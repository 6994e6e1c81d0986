"""The audit trail: every change to an alert, a work order or a counter — who, when, from, to.
Each alert and work-order entry also writes its outbox event in the same transaction
(engine/outbox.py), so integrations learn of every change without another hook."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEntry
from engine import outbox


def record(
    session: Session,
    *,
    entity: str,
    entity_id: int,
    actor: str,
    action: str,
    from_value: str | None,
    to_value: str | None,
    comment: str = "",
    now: datetime,
    details: dict | None = None,
) -> None:
    """Append one entry to the audit trail (and, for an alert or a work order, its outbox event)."""
    session.add(
        AuditEntry(
            entity=entity, entity_id=entity_id, at=now, actor=actor, action=action,
            from_value=from_value, to_value=to_value, comment=comment or "", details=details,
        )
    )
    if entity in outbox.ENTITIES:
        outbox.enqueue(session, entity=entity, entity_id=entity_id, actor=actor, action=action,
                       from_value=from_value, to_value=to_value, comment=comment, now=now)


def trail(session: Session, *, entity: str, entity_id: int) -> list[dict]:
    """The history of one alert / work order / counter, oldest first."""
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == entity, AuditEntry.entity_id == entity_id)
        .order_by(AuditEntry.at, AuditEntry.id)
    )
    return [
        {
            "at": e.at, "actor": e.actor, "action": e.action, "from_value": e.from_value,
            "to_value": e.to_value, "comment": e.comment, "details": e.details,
        }
        for e in rows
    ]
