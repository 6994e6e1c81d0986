"""Alerts: list (actions are added by the lifecycle service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from db import queries
from db.models import AlertStatus, Severity
from ingest.deps import SessionDep
from ingest.schemas import AlertOut

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=list[AlertOut])
def get_alerts(
    session: SessionDep,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    site_id: int | None = None,
    asset_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict]:
    """Alerts, newest first; `status` and `severity` are repeatable."""
    return queries.list_alerts(
        session,
        status=[s.value for s in status] if status else None,
        severity=[s.value for s in severity] if severity else None,
        site_id=site_id,
        asset_id=asset_id,
        limit=limit,
    )


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: int, session: SessionDep) -> dict:
    """One alert."""
    return queries.get_alert_row(session, alert_id=alert_id)
