"""The dashboard's readers (cached a few seconds, so ten open browsers do not hammer the
database) and actions (through the service layer; they clear the caches). No SQL here."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from db import queries
from db.session import session_scope
from engine import alerts as alert_service
from engine import audit, workorders
from engine.evaluate import evaluate_all
from db.queries import asset_statuses, site_rollup
from engine import faults as fault_service

TTL = 5  # seconds


def now() -> datetime:
    return datetime.now(UTC)


# --- readers ----------------------------------------------------------------------------------

@st.cache_data(ttl=TTL, show_spinner=False)
def sites() -> list[dict]:
    with session_scope() as s:
        return site_rollup(s, now=now())


@st.cache_data(ttl=TTL, show_spinner=False)
def assets(site_id: int | None = None) -> list[dict]:
    with session_scope() as s:
        return asset_statuses(s, now=now(), site_id=site_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def freshness() -> dict:
    with session_scope() as s:
        return queries.freshness(s, now=now())


@st.cache_data(ttl=TTL, show_spinner=False)
def alerts(status: tuple = (), severity: tuple = (), site_id: int | None = None, asset_id: int | None = None,
           since: datetime | None = None) -> list[dict]:
    with session_scope() as s:
        return queries.list_alerts(s, status=list(status) or None, severity=list(severity) or None,
                                   site_id=site_id, asset_id=asset_id, since=since)


@st.cache_data(ttl=TTL, show_spinner=False)
def alerts_to_handle(site_id: int | None = None) -> list[dict]:
    with session_scope() as s:
        return queries.alerts_to_handle(s, site_id=site_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def work_orders(status: tuple = (), site_id: int | None = None, asset_id: int | None = None,
                assigned_to: str | None = None) -> list[dict]:
    with session_scope() as s:
        return queries.list_workorders(s, status=list(status) or None, site_id=site_id, asset_id=asset_id,
                                       assigned_to=assigned_to)


@st.cache_data(ttl=TTL, show_spinner=False)
def series(asset_id: int, start: datetime, end: datetime) -> list[dict]:
    with session_scope() as s:
        return queries.downsampled_series(s, asset_id=asset_id, start=start, end=end)


@st.cache_data(ttl=60, show_spinner=False)
def metric_units(asset_type: str) -> dict[str, tuple[str, str, str]]:
    """metric -> (unit, French label, English label)."""
    with session_scope() as s:
        return {m.name: (m.unit, m.label_fr, m.label_en) for m in queries.metrics_of_type(s, asset_type=asset_type)}


@st.cache_data(ttl=TTL, show_spinner=False)
def trail(entity: str, entity_id: int) -> list[dict]:
    with session_scope() as s:
        return audit.trail(s, entity=entity, entity_id=entity_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def active_faults() -> list[dict]:
    with session_scope() as s:
        return fault_service.list_faults(s, now=now())


@st.cache_data(ttl=TTL, show_spinner=False)
def alert(alert_id: int) -> dict:
    with session_scope() as s:
        return queries.get_alert_row(s, alert_id=alert_id)


# --- actions ----------------------------------------------------------------------------------

def _changed() -> None:
    st.cache_data.clear()


def acknowledge(alert_id: int, actor: str, comment: str) -> None:
    with session_scope() as s:
        alert_service.acknowledge(s, alert_id=alert_id, actor=actor, comment=comment, now=now())
    _changed()


def close(alert_id: int, actor: str, comment: str) -> None:
    with session_scope() as s:
        alert_service.close(s, alert_id=alert_id, actor=actor, comment=comment, now=now())
    _changed()


def save_work_order(wo_id: int, *, actor: str, to_status: str | None, assigned_to: str, notes: str) -> None:
    """Assignee and notes, then the status move — one transaction: an illegal move changes nothing."""
    with session_scope() as s:
        workorders.update(s, workorder_id=wo_id, actor=actor, assigned_to=assigned_to, notes=notes, now=now())
        if to_status:
            workorders.transition(s, workorder_id=wo_id, to_status=to_status, actor=actor, now=now())
    _changed()


def start_fault(asset_code: str, fault: str, intensity: float, duration_s: int, actor: str) -> None:
    with session_scope() as s:
        fault_service.start_fault(s, asset_code=asset_code, fault=fault, intensity=intensity,
                                  duration_s=duration_s, actor=actor, now=now())
    _changed()


def stop_fault(fault_id: int) -> None:
    with session_scope() as s:
        fault_service.stop_fault(s, fault_id=fault_id, now=now())
    _changed()


def evaluate_now() -> list[dict]:
    with session_scope() as s:
        result = evaluate_all(s, now=now(), source="dashboard")
    _changed()
    return result.fired
