"""Alerts: list, read, acknowledge, close, audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from db import queries
from db.models import AlertStatus, Severity
from engine import alerts, audit
from ingest.deps import OperatorKey, BigId, SessionDep, SmallIdFilter
from ingest.export import CSV_RESPONSE, ListFormat, csv_response
from ingest.schemas import AlertAction, AlertOut, AlertToHandleOut, AuditOut, DismissIn

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=list[AlertOut], responses=CSV_RESPONSE)
def get_alerts(
    session: SessionDep,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    site_id: SmallIdFilter = None,
    asset_id: SmallIdFilter = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    format: ListFormat = "json",
) -> list[dict] | Response:
    """Alerts, newest first; `status` and `severity` are repeatable; `format=csv` for a download."""
    rows = queries.list_alerts(
        session,
        status=[s.value for s in status] if status else None,
        severity=[s.value for s in severity] if severity else None,
        site_id=site_id,
        asset_id=asset_id,
        limit=limit,
    )
    return csv_response(rows, "alerts") if format == "csv" else rows


@router.get("/alerts/to-handle", response_model=list[AlertToHandleOut])
def get_alerts_to_handle(
    session: SessionDep, site_id: SmallIdFilter = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict]:
    """The live (open or ack) alerts in the order to handle them — high severity first, then the
    one waiting longest — each with its work order (what the Overview lists)."""
    return queries.alerts_to_handle(session, site_id=site_id, limit=limit)


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: BigId, session: SessionDep) -> dict:
    """One alert."""
    return queries.get_alert_row(session, alert_id=alert_id)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, dependencies=[OperatorKey])
def post_ack(alert_id: BigId, body: AlertAction, session: SessionDep) -> dict:
    """Acknowledge an open alert (409 otherwise)."""
    alerts.acknowledge(session, alert_id=alert_id, actor=body.actor, comment=body.comment, now=datetime.now(UTC))
    session.flush()
    return queries.get_alert_row(session, alert_id=alert_id)


@router.post("/alerts/{alert_id}/close", response_model=AlertOut, dependencies=[OperatorKey])
def post_close(alert_id: BigId, body: AlertAction, session: SessionDep) -> dict:
    """Close an open or acknowledged alert (409 if already closed)."""
    alerts.close(session, alert_id=alert_id, actor=body.actor, comment=body.comment, now=datetime.now(UTC))
    session.flush()
    return queries.get_alert_row(session, alert_id=alert_id)


@router.post("/alerts/{alert_id}/dismiss", response_model=AlertOut, dependencies=[OperatorKey])
def post_dismiss(alert_id: BigId, body: DismissIn, session: SessionDep) -> dict:
    """A false alarm: close the alert as `dismissed`, cancel its work order and silence its policy
    on that asset for `silence_minutes` (default 60) so the next run does not open it again
    (409 if already closed)."""
    alerts.dismiss(session, alert_id=alert_id, actor=body.actor, reason=body.reason, now=datetime.now(UTC),
                   silence_minutes=body.silence_minutes)
    session.flush()
    return queries.get_alert_row(session, alert_id=alert_id)


@router.get("/alerts/{alert_id}/audit", response_model=list[AuditOut])
def get_alert_audit(alert_id: BigId, session: SessionDep) -> list[dict]:
    """Who did what to this alert, oldest first."""
    queries.get_alert_row(session, alert_id=alert_id)
    return audit.trail(session, entity="alert", entity_id=alert_id)
