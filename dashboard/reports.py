"""The readers and actions of the KPI page (engine/kpis.py), its GMAO section (the webhook
delivery log, engine/outbox.py) and the CSV downloads of the Alerts and Work-orders pages.
No SQL here; each reader is cached a few seconds, each action clears the caches."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from db.export import COLUMNS, csv_text
from db.session import session_scope
from core.settings import get_settings
from engine import kpis as kpi_service
from engine import outbox


def now() -> datetime:
    return datetime.now(UTC)


@st.cache_data(ttl=30, show_spinner=False)
def kpis(start: datetime, end: datetime, site_id: int | None = None, asset_type: str | None = None,
         asset_id: int | None = None) -> dict:
    with session_scope() as s:
        return kpi_service.compute(s, start=start, end=end, now=now(), site_id=site_id, asset_type=asset_type,
                                   asset_id=asset_id)


@st.cache_data(ttl=5, show_spinner=False)
def deliveries(status: tuple = (), limit: int = 200) -> list[dict]:
    with session_scope() as s:
        return outbox.list_deliveries(s, status=list(status) or None, limit=limit)


@st.cache_data(ttl=5, show_spinner=False)
def delivery_counts() -> dict[str, int]:
    with session_scope() as s:
        return outbox.outbox_counts(s)


def endpoints() -> list[str]:
    """The configured WEBHOOK_URL endpoints (shown so people see where events go)."""
    return get_settings().webhook_urls


def resend(delivery_id: int) -> None:
    with session_scope() as s:
        outbox.resend(s, delivery_id=delivery_id, now=now())
    st.cache_data.clear()


def as_csv(rows: list[dict], kind: str) -> bytes:
    """The rows of a list page ("alerts" or "workorders") as the API's `?format=csv` writes them."""
    return csv_text(rows, COLUMNS[kind]).encode()
