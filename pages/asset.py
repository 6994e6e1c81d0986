"""US-03 — an asset's recent curves (thresholds drawn, alerts marked), its policies, alerts and
work orders; live. Long ranges come downsampled from SQL (min / avg / max per time bucket).
A link (?asset=CODE, optionally &from=&to= in ISO 8601, e.g. around an alert) shows exactly that
asset, over that range; outside the sidebar's site, the list is widened and the page says so."""

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.charts import local_naive, metric_chart
from dashboard.i18n import localized, number, t
from dashboard.widgets import (alert_message, asset_name, page_title, policy_title, severity_badge, short_list,
                               silence_form, silences_covering, status_badge, when)
from db.models import AlertStatus

state, query = st.session_state, st.query_params
everything = data.assets()
site_id = state.get("site_id")
mine = [a for a in everything if site_id is None or a["site_id"] == site_id]


def link_range() -> tuple[datetime, datetime] | None:
    try:
        return datetime.fromisoformat(query["from"]), datetime.fromisoformat(query["to"])
    except (KeyError, ValueError):
        return None


link = f"{query.get('asset')}|{query.get('from')}|{query.get('to')}"
if query.get("asset") and state.get("as_link") != link:
    state["as_link"] = link
    state["as_choice"] = query["asset"]
    state["as_range"] = "range_alert" if link_range() else state.get("as_range", "range_24h")
asked = next((a for a in everything if a["code"] == state.get("as_choice")), None)
if state.get("as_choice") and asked is None:
    st.warning(t("asset_not_found", code=state["as_choice"]), icon="⚠️")
if asked and asked not in mine:
    st.info(t("asset_widened", code=asked["code"], site=asked["site_code"]), icon="🔎")
    mine = everything
codes = [a["code"] for a in mine]
if state.get("as_choice") not in codes:
    state["as_choice"] = None if state.get("as_choice") else codes[0]


def follow_choice() -> None:
    query.clear()
    query["asset"] = state["as_choice"]
    state["as_link"] = f"{state['as_choice']}|None|None"


code = st.selectbox(t("choose_asset"), codes, key="as_choice", on_change=follow_choice, placeholder=t("choose_above"))
if code is None:
    st.stop()
asset = next(a for a in mine if a["code"] == code)
units = data.metric_units(asset["type"])

page_title(t("asset_title", code=asset["code"]))

ranges = {"range_1h": timedelta(hours=1), "range_24h": timedelta(hours=24), "range_7d": timedelta(days=7),
          "range_custom": None}
if link_range():
    ranges["range_alert"] = None
state.setdefault("as_range", "range_24h")
if state["as_range"] not in ranges:
    state["as_range"] = "range_24h"
choice = st.segmented_control(t("range"), list(ranges), format_func=t, key="as_range") or "range_24h"
custom = None
if choice == "range_custom":
    c1, c2 = st.columns(2)
    today = data.now().date()
    d1 = c1.date_input(t("from"), value=today - timedelta(days=3))
    d2 = c2.date_input(t("to"), value=today)
    custom = datetime.combine(d1, time.min).astimezone(), datetime.combine(d2, time.max).astimezone()


def resolution_text(alert: dict) -> str:
    return f" ({t('resolution_' + alert['resolution'])})" if alert["resolution"] else ""


def per_hour(evaluation: dict) -> str:
    """The unit of an evaluated value: a rate of change is per hour."""
    return (evaluation["unit"] or "") + ("/h" if evaluation["rule_type"] == "rate_of_change" else "")


@st.fragment(run_every="10s")
def live(asset_id: int) -> None:
    """Everything below the range choice, live: status, curves, policies, alerts, work orders."""
    a = next(x for x in data.assets() if x["id"] == asset_id)
    st.markdown(f"{asset_name(a)} · {a['type']} · {a['site_code']} — {status_badge(a['status'])}")
    end = data.now()
    if choice == "range_alert":
        start, end = link_range()
    elif custom:
        start, end = custom[0], min(end, custom[1])
    else:
        start = end - ranges[choice]
    # cache key: round the clock to 10 s so reruns within a few seconds share the cached series
    end_key = end.replace(microsecond=0, second=end.second - end.second % 10)
    points = pd.DataFrame(data.series(asset_id, start, end_key))
    asset_alerts = data.alerts(asset_id=asset_id)
    policy_metric = {e["policy_code"]: e["metric"] for e in a["evaluations"]}
    if points.empty:
        st.info(t("no_points"))
    else:
        bucket_s = int(points["bucket_s"].iloc[0])
        if bucket_s > 10:
            st.caption(t("downsampled", s=bucket_s))
        points["ts"] = local_naive(points["ts"])
        cols, drawn = st.columns(2), 0
        for metric, (unit, label_fr, label_en) in units.items():
            df = points[points["metric"] == metric]
            if df.empty:
                continue
            evaluations = [e for e in a["evaluations"] if e["metric"] == metric]
            marks = [x for x in asset_alerts if policy_metric.get(x["policy_code"]) == metric]
            # the title as text above the chart: Vega titles get clipped when Streamlit resizes the chart
            box = cols[drawn % 2].container()
            box.markdown(f"**{localized(label_fr, label_en)} ({unit})**")
            box.altair_chart(metric_chart(df, unit, evaluations, marks), width="stretch")
            drawn += 1

    st.subheader(t("policies"))
    if a["evaluations"]:
        st.dataframe(pd.DataFrame([
            {t("policy"): e["policy_code"], t("title"): policy_title(e),
             t("description"): localized(e["description"], e["description_en"]),
             t("value"): f"{number(e['value'], per_hour(e))} {e['condition']} {number(e['threshold'], '', 0)}",
             t("firing"): "🚨 " + t("yes") if e["firing"] else ("👁️ " if e["near"] else "") + t("no"),
             t("evaluated_at"): when(e["evaluated_at"])}
            for e in a["evaluations"]
        ]), hide_index=True, width="stretch")

    left, right = st.columns(2)
    with left:
        st.subheader(t("alerts_of_asset"))
        short_list(asset_alerts,
                   lambda x: f"{severity_badge(x['severity'])} **{x['policy_code']}** {alert_message(x)} — "
                             f"{t('alert_' + x['status'])}{resolution_text(x)} · {when(x['created_at'])}",
                   "pages/alerts.py", asset=a["code"], status=",".join(s.value for s in AlertStatus), period="all")
    with right:
        st.subheader(t("workorders_of_asset"))
        short_list(data.work_orders(asset_id=asset_id),
                   lambda w: f"**#{w['id']}** P{w['priority']} {localized(w['title'], w['title_en'])} — "
                             f"{t('wo_' + w['status'])} · {w['assigned_to'] or t('unassigned')}",
                   "pages/workorders.py", asset=a["code"], status="all")


live(asset["id"])
# silences covering this asset, and a new one (issue 10)
for s in silences_covering(data.silences(), asset_code=asset["code"], site_code=asset["site_code"]):
    scope = " · ".join(x for x in (s["site_code"], s["asset_code"], s["policy_code"]) if x)
    st.caption(t("silenced_until", until=when(s["ends_at"]), reason=f"{s['reason']} ({scope})"))
with st.expander(t("silence_title")):
    st.caption(t("silence_help"))
    silence_form("asset", asset_code=asset["code"])
