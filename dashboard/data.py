"""The dashboard's readers (cached a few seconds, so ten open browsers do not hammer the
database) and actions (through the service layer; they clear the caches). No SQL here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from db import queries
from db.session import session_scope
from engine import alerts as alert_service
from engine import audit, workorders
from engine.evaluate import evaluate_all
from db.queries import asset_statuses, site_rollup
from engine import faults as fault_service
from engine import backtest as backtest_service
from engine import overrides
from engine import silences as silence_service

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


# --- issue 10: dismissal, silences, per-asset overrides, backtest --------------------------------

def dismiss(alert_id: int, actor: str, reason: str, silence_minutes: int) -> None:
    """A false alarm: closed as dismissed, its work order cancelled, its policy silenced on the asset."""
    with session_scope() as s:
        alert_service.dismiss(s, alert_id=alert_id, actor=actor, reason=reason, now=now(),
                              silence_minutes=silence_minutes)
    _changed()


@st.cache_data(ttl=TTL, show_spinner=False)
def silences(active: bool | None = True) -> list[dict]:
    with session_scope() as s:
        return silence_service.list_silences(s, now=now(), active=active)


def create_silence(*, actor: str, reason: str, minutes: int, site_code: str | None = None,
                   asset_code: str | None = None, policy_code: str | None = None) -> None:
    """A silence from now on, for `minutes`."""
    start = now()
    with session_scope() as s:
        silence_service.create(s, starts_at=start, ends_at=start + timedelta(minutes=minutes), reason=reason,
                               actor=actor, now=start, site_code=site_code, asset_code=asset_code,
                               policy_code=policy_code)
    _changed()


def end_silence(silence_id: int, actor: str) -> None:
    with session_scope() as s:
        silence_service.end(s, silence_id=silence_id, actor=actor, now=now())
    _changed()


@st.cache_data(ttl=TTL, show_spinner=False)
def policies() -> list[dict]:
    with session_scope() as s:
        return overrides.list_policies(s)


@st.cache_data(ttl=TTL, show_spinner=False)
def asset_policies(asset_id: int) -> list[dict]:
    with session_scope() as s:
        return overrides.effective_policies(s, asset_id=asset_id)


def set_override(asset_id: int, code: str, *, actor: str, threshold: float | None, clear_threshold: float | None,
                 enabled: bool | None) -> dict:
    with session_scope() as s:
        out = overrides.set_override(s, asset_id=asset_id, code=code, actor=actor, now=now(), threshold=threshold,
                                     clear_threshold=clear_threshold, enabled=enabled)
    _changed()
    return out


@st.cache_data(ttl=60, show_spinner=False)
def backtest(code: str, start: datetime, end: datetime, threshold: float | None = None,
             clear_threshold: float | None = None, window_minutes: int | None = None,
             consecutive_points: int | None = None, asset_code: str | None = None) -> dict:
    """What `code` (or a tuned copy) would have fired over [start, end]; writes nothing."""
    with session_scope() as s:
        return backtest_service.backtest(s, code=code, start=start, end=end, threshold=threshold,
                                         clear_threshold=clear_threshold, window_minutes=window_minutes,
                                         consecutive_points=consecutive_points, asset_code=asset_code)
