"""US-04 — alerts filtered by site, asset, severity, status and time; acknowledge and close with a
comment; the audit trail of one alert. A link (?alert=ID, from the Overview) shows exactly that
alert: the filters are widened if it is outside them, and the page says so."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import data, reports
from dashboard.i18n import t
from dashboard.widgets import (actor_input, alert_message, audit_action, audit_change, audit_comment, page_title,
                               policy_title, run_action, severity_badge, silence_form, when)
from db.errors import DomainError
from db.models import AlertStatus
from db.queries import SEVERITIES

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
STATUSES = [s.value for s in AlertStatus]
state, query = st.session_state, st.query_params

page_title(t("alerts_title"))
sites = data.sites()
site_codes = {s["code"]: s["id"] for s in sites}


def since_of(period: str):
    return data.now().replace(second=0, microsecond=0) - PERIODS[period] if PERIODS[period] else None


# The filters start from the sidebar's site, live alerts, 7 days; a link's own filters
# (?site= &asset= &status=a,b &period=) and its alert (?alert=) apply once, when it is opened.
state.setdefault("al_site", next((s["code"] for s in sites if s["id"] == state.get("site_id")), ""))
state.setdefault("al_asset", "")
state.setdefault("al_sev", [])
state.setdefault("al_status", list(AlertStatus.LIVE))
state.setdefault("al_period", "7d")
link = "&".join(f"{k}={query.get(k)}" for k in ("alert", "site", "asset", "status", "period") if k in query)
if link and state.get("al_link") != link:
    state["al_link"] = link
    if "site" in query:
        state["al_site"] = query["site"] if query["site"] in site_codes else ""
    if "asset" in query:
        state["al_asset"], state["al_site"] = query["asset"], ""
    if "status" in query:
        state["al_status"] = [s for s in query["status"].split(",") if s in STATUSES]
    if query.get("period") in PERIODS:
        state["al_period"] = query["period"]
    if "alert" in query:
        try:
            asked = data.alert(int(query["alert"]))
        except (ValueError, DomainError):
            asked = None
            state["al_missing"] = query["alert"]
        if asked:
            widened = []
            if state["al_site"] not in ("", asked["site_code"]):
                state["al_site"], widened = "", [*widened, t("site")]
            if state["al_asset"] not in ("", asked["asset_code"]):
                state["al_asset"], widened = "", [*widened, t("asset")]
            if state["al_sev"] and asked["severity"] not in state["al_sev"]:
                state["al_sev"], widened = [*state["al_sev"], asked["severity"]], [*widened, t("severity")]
            if state["al_status"] and asked["status"] not in state["al_status"]:
                state["al_status"], widened = [*state["al_status"], asked["status"]], [*widened, t("status")]
            since = since_of(state["al_period"])
            if since and asked["created_at"] < since:
                state["al_period"], widened = "all", [*widened, t("period")]
            state["al_choice"] = asked["id"]
            if widened:
                state["al_widened"] = t("widened", id=asked["id"], filters=", ".join(widened))

c = st.columns([2, 3, 2, 2, 2])
site = c[0].selectbox(t("site"), ["", *site_codes], key="al_site", format_func=lambda x: x or t("all_sites"))
asset_codes = [a["code"] for a in data.assets(site_codes.get(site))]
if state["al_asset"] not in asset_codes:
    state["al_asset"] = ""
asset = c[1].selectbox(t("asset"), ["", *asset_codes], key="al_asset", format_func=lambda x: x or t("all_assets"))
severity = c[2].multiselect(t("severity"), SEVERITIES, key="al_sev", format_func=lambda s: t("sev_" + s),
                            placeholder=t("all_f"))
status = c[3].multiselect(t("status"), STATUSES, key="al_status", placeholder=t("all_m"),
                          format_func=lambda s: t("alert_" + s))
period = c[4].selectbox(t("since"), list(PERIODS), key="al_period", format_func=lambda p: t("period_" + p))
if message := state.pop("al_widened", None):
    st.info(message, icon="🔎")
if missing := state.pop("al_missing", None):
    st.warning(t("alert_not_found", id=missing), icon="⚠️")
asset_id = next((a["id"] for a in data.assets() if a["code"] == asset), None)
filters = dict(status=tuple(status), severity=tuple(severity), site_id=site_codes.get(site), asset_id=asset_id)


@st.fragment(run_every="10s")
def table() -> None:
    """The list, live: new alerts and changed statuses appear without a click."""
    rows = data.alerts(**filters, since=since_of(period))
    st.dataframe(pd.DataFrame([
        {"#": a["id"], t("created"): when(a["created_at"]), t("severity"): t("sev_" + a["severity"]),
         t("status"): t("alert_" + a["status"]), t("site"): a["site_code"], t("asset"): a["asset_code"],
         t("title"): f"{a['policy_code']} · {policy_title(a)}", t("message"): alert_message(a),
         t("acked_by"): a["acked_by"] or "", t("closed_by"): a["closed_by"] or "",
         t("resolution"): t("resolution_" + a["resolution"]) if a["resolution"] else ""}
        for a in rows
    ], columns=["#", t("created"), t("severity"), t("status"), t("site"), t("asset"), t("title"), t("message"),
                t("acked_by"), t("closed_by"), t("resolution")]), hide_index=True, width="stretch")
    if rows and rows[0]["total"] > len(rows):
        st.caption(t("more_rows", n=rows[0]["total"] - len(rows)))


table()
rows = data.alerts(**filters, since=since_of(period))
st.download_button(t("download_csv"), reports.as_csv(rows, "alerts"), file_name="alertes.csv", mime="text/csv")
if not rows:
    st.info(t("none"))
    st.stop()

ids = [a["id"] for a in rows]
if state.get("al_choice") not in ids:
    state["al_choice"] = ids[0]  # the newest, when none was asked for or the filters left it out


def follow_choice() -> None:
    query["alert"] = str(state["al_choice"])  # the address names the alert shown
    state["al_link"] = "&".join(f"{k}={query.get(k)}" for k in ("alert", "site", "asset", "status", "period")
                                if k in query)


by_id = {a["id"]: a for a in rows}
chosen = st.selectbox(t("select_alert"), ids, key="al_choice", on_change=follow_choice,
                      format_func=lambda i: f"#{i} · {by_id[i]['asset_code']} · {policy_title(by_id[i])} "
                                            f"({t('alert_' + by_id[i]['status'])})")


@st.fragment(run_every="10s")
def summary(alert_id: int) -> None:
    """The chosen alert, live (another person may acknowledge it meanwhile)."""
    alert = data.alert(alert_id)
    resolution = f" ({t('resolution_' + alert['resolution'])})" if alert["resolution"] else ""
    st.markdown(f"{severity_badge(alert['severity'])} **{policy_title(alert)}** — {alert_message(alert)} · "
                f"{t('alert_' + alert['status'])}{resolution}")


@st.fragment(run_every="10s")
def history(alert_id: int) -> None:
    """Its audit trail, live."""
    st.subheader(t("audit"))
    st.dataframe(pd.DataFrame([
        {t("at"): when(h["at"]), t("who"): h["actor"], t("action"): audit_action(h),
         t("from_to"): audit_change(h, "alert"), t("comment"): audit_comment(h)}
        for h in data.trail("alert", alert_id)
    ]), hide_index=True, width="stretch")


summary(chosen)
alert = by_id[chosen]
with st.form("alert_action"):
    actor = actor_input("alert")
    comment = st.text_area(t("comment"))
    b1, b2 = st.columns(2)
    ack = b1.form_submit_button(t("ack"), disabled=alert["status"] != AlertStatus.OPEN)
    close = b2.form_submit_button(t("close"), disabled=alert["status"] == AlertStatus.CLOSED)
if ack:
    run_action(lambda: data.acknowledge(chosen, actor, comment), t("done_ack", id=chosen))
if close:
    run_action(lambda: data.close(chosen, actor, comment), t("done_close", id=chosen))
if alert["status"] != AlertStatus.CLOSED:  # a false alarm; a maintenance under way (issue 10)
    with st.expander(t("dismiss_title")), st.form("alert_dismiss"):
        st.caption(t("dismiss_help"))
        d_actor = actor_input("dismiss")
        reason = st.text_input(t("dismiss_reason"), key="dismiss_reason")
        minutes = st.number_input(t("silence_minutes"), min_value=0, max_value=7 * 24 * 60, value=60, step=15,
                                  key="dismiss_minutes")
        dismiss = st.form_submit_button(t("dismiss"))
    if dismiss:
        run_action(lambda: data.dismiss(chosen, d_actor, reason, int(minutes)), t("done_dismiss", id=chosen))
with st.expander(t("silence_title")):
    st.caption(t("silence_help"))
    silence_form("alert", asset_code=alert["asset_code"], policy_code=alert["policy_code"])
history(chosen)
