"""Shared widgets: status badges (colour and text), errors in words, the database guard."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.exc import OperationalError

from dashboard.i18n import localized, t
from db.errors import DomainError

STATUS_COLOUR = {"ok": "green", "watch": "orange", "alert": "red", "no_data": "gray"}
STATUS_ICON = {"ok": "✅", "watch": "👁️", "alert": "🚨", "no_data": "⚪"}
SEVERITY_COLOUR = {"high": "red", "medium": "orange", "low": "blue"}


def status_text(status: str) -> str:
    """Icon + word, so status never depends on colour alone (tables)."""
    return f"{STATUS_ICON[status]} {t('status_' + status)}"


def status_badge(status: str) -> str:
    """Coloured badge markdown with the word inside."""
    return f":{STATUS_COLOUR[status]}-badge[{STATUS_ICON[status]} {t('status_' + status)}]"


def severity_badge(severity: str) -> str:
    return f":{SEVERITY_COLOUR[severity]}-badge[{t('sev_' + severity)}]"


def alert_message(alert: dict) -> str:
    """What was observed, in the page's language."""
    return localized(alert.get("message_fr"), alert["message"])


def audit_comment(entry: dict) -> str:
    """An audit entry's comment; the engine's own entries carry a French version too."""
    return localized((entry.get("details") or {}).get("comment_fr"), entry["comment"])


LOCAL_TZ = ZoneInfo("Africa/Casablanca")  # the sites' time, whatever the server's zone


def when(ts: datetime | None) -> str:
    """A timestamp in the sites' local time."""
    return ts.astimezone(LOCAL_TZ).strftime("%d/%m %H:%M:%S") if ts else "—"


@contextmanager
def database_guard():
    """A database outage shows one clear message, not a traceback."""
    try:
        yield
    except OperationalError:
        st.error(t("db_down"), icon="🔌")
        st.stop()


def run_action(action: Callable[[], object], success: str | None = None) -> object | None:
    """Run a service action; a refused action (domain error) is shown in words."""
    try:
        result = action()
    except DomainError as exc:
        st.error(t("error", msg=exc.message), icon="⛔")
        return None
    if success:
        st.success(success, icon="✅")
    return result


def actor_input(key: str) -> str:
    """'Your name', remembered for the session."""
    st.session_state.setdefault("actor", t("user_default"))
    return st.text_input(t("actor"), key=f"{key}_actor", value=st.session_state["actor"]) or t("user_default")
