"""Shared widgets: status badges (colour and text), errors in words, the database guard."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from dashboard.i18n import has, localized, t
from db.errors import DomainError
from db.session import is_database_down
from engine.faults import FAULTS

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


def audit_action(entry: dict) -> str:
    """'created', 'status'… in the page's language."""
    return t("act_" + entry["action"]) if has("act_" + entry["action"]) else entry["action"]


def audit_change(entry: dict, entity: str) -> str:
    """'Ouverte → Acquittée': the statuses of an alert or a work order as words; names as they are."""
    prefix = {"alert": "alert_", "work_order": "wo_"}.get(entity, "")

    def word(value: str | None) -> str:
        return t(prefix + value) if value and prefix and has(prefix + value) else (value or "—")

    return f"{word(entry['from_value'])} → {word(entry['to_value'])}"


def policy_title(row: dict) -> str:
    """A policy's title (of an alert, an evaluation) in the page's language."""
    return localized(row["title"], row.get("title_en") or row["title"])


def asset_name(asset: dict) -> str:
    """What an asset is, in the page's language ('Main elevator 1'): its type's name and number."""
    number = asset["code"].rsplit("_", 1)[-1]
    return f"{t('type_' + asset['type'])} {number}" if number.isdigit() else t("type_" + asset["type"])


def fault_name(fault: str) -> str:
    return localized(FAULTS[fault]["name_fr"], FAULTS[fault]["name_en"])


def fault_description(fault: str) -> str:
    return localized(FAULTS[fault]["description_fr"], FAULTS[fault]["description_en"])


def more_link(shown: int, total: int, page: str, **query: str) -> None:
    """Under a cut list: how many more there are, and a link to the page that shows them all."""
    if total > shown:
        st.caption(t("more_rows", n=total - shown))
        st.page_link(page, label=t("see_all"), icon="➡️", query_params=query)


def short_list(rows: list[dict], line: Callable[[dict], str], page: str, *, shown: int = 20, **query: str) -> None:
    """The first `shown` rows (a reader's rows, each with the `total` that matched), one line each;
    "None." when empty; how many more and a link to `page` (with `query`) that lists them all."""
    for row in rows[:shown]:
        st.markdown(line(row))
    if not rows:
        st.caption(t("none"))
    more_link(min(len(rows), shown), rows[0]["total"] if rows else 0, page, **query)


LOCAL_TZ = ZoneInfo("Africa/Casablanca")  # the sites' time, whatever the server's zone


def when(ts: datetime | None) -> str:
    """A timestamp in the sites' local time."""
    return ts.astimezone(LOCAL_TZ).strftime("%d/%m %H:%M:%S") if ts else "—"


@contextmanager
def database_guard():
    """A database outage shows one clear message, not a traceback."""
    try:
        yield
    except (SQLAlchemyError, psycopg.Error) as exc:
        if not is_database_down(exc):  # refused, lost, pool exhausted or stale: the same message
            raise
        st.error(t("db_down"), icon="🔌")
        st.stop()


def run_action(action: Callable[[], object], success: str | None = None) -> object | None:
    """Run a service action; a refused action (domain error) is shown in words. With a
    `success` message, the whole page is drawn again (every list shows the change) with the
    message under its title (page_title)."""
    try:
        result = action()
    except DomainError as exc:
        st.error(t("error", msg=exc.message), icon="⛔")
        return None
    if success:
        st.session_state["flash"] = success
        st.rerun()
    return result


def page_title(text: str) -> None:
    """A page's title, and under it the message of the last action that succeeded, once (each
    page starts with it: elements the router writes in the main area are not shown)."""
    st.title(text)
    if message := st.session_state.pop("flash", None):
        st.success(message, icon="✅")


def actor_input(key: str) -> str:
    """'Your name', remembered for the session; left empty, the default name in the page's language."""
    st.session_state.setdefault(f"{key}_actor", st.session_state.get("actor", ""))
    name = st.text_input(t("actor"), key=f"{key}_actor", placeholder=t("user_default")).strip()
    if name:
        st.session_state["actor"] = name  # the next form, on any page, starts with it
    return name or t("user_default")


SILENCE_MINUTES = [120, 30, 60, 240, 480, 1440]  # 2 h first: "maintenance en cours 2 h"


def duration_text(minutes: int) -> str:
    return t("hours", n=minutes // 60) if minutes % 60 == 0 else f"{minutes} min"


def silence_form(key: str, *, asset_code: str, policy_code: str | None = None) -> None:
    """A silence from now on an asset (or one of its policies): one click for "maintenance en
    cours 2 h" on the whole asset, or a chosen scope, duration and reason."""
    from dashboard import data

    def create(actor: str, reason: str, minutes: int, policy: str | None) -> None:
        until = when(data.now() + timedelta(minutes=minutes))
        run_action(lambda: data.create_silence(actor=actor, reason=reason, minutes=minutes, asset_code=asset_code,
                                               policy_code=policy), t("done_silence", until=until))

    if st.button(t("maintenance_2h"), key=f"{key}_maintenance_2h"):
        create(st.session_state.get("actor", t("user_default")), t("maintenance_reason"), 120, None)
    with st.form(f"{key}_silence"):
        actor = actor_input(f"{key}_silence")
        scopes = ["asset", *(["policy_asset"] if policy_code else [])]
        scope = st.radio(t("silence_scope"), scopes, format_func=lambda s: t("scope_" + s), horizontal=True,
                         key=f"{key}_silence_scope")
        minutes = st.selectbox(t("duration"), SILENCE_MINUTES, format_func=duration_text, key=f"{key}_silence_minutes")
        reason = st.text_input(t("reason"), value=t("maintenance_reason"), key=f"{key}_silence_reason")
        go = st.form_submit_button(t("silence_create"))
    if go:
        create(actor, reason, minutes, policy_code if scope == "policy_asset" else None)


def silences_covering(silences: list[dict], *, asset_code: str, site_code: str) -> list[dict]:
    """The silences (of a list) that cover an asset for at least one policy."""
    return [s for s in silences if s["asset_code"] in (None, asset_code) and s["site_code"] in (None, site_code)]
