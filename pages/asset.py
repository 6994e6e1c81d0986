"""US-03 — an asset's recent curves (thresholds drawn, alerts marked), its policies, alerts and
work orders. Long ranges come downsampled from SQL (min / avg / max per time bucket)."""

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.charts import local_naive, metric_chart
from dashboard.i18n import localized, number, t
from dashboard.widgets import alert_message, severity_badge, status_badge, when

assets = data.assets(st.session_state.get("site_id"))
codes = [a["code"] for a in assets]
wanted = st.query_params.get("asset")
code = st.selectbox(t("choose_asset"), codes, index=codes.index(wanted) if wanted in codes else 0)
asset = next(a for a in assets if a["code"] == code)
units = data.metric_units(asset["type"])

st.title(t("asset_title", code=asset["code"]))
st.markdown(f"{asset['name']} · {asset['type']} · {asset['site_code']} — {status_badge(asset['status'])}")

ranges = {"range_1h": timedelta(hours=1), "range_24h": timedelta(hours=24), "range_7d": timedelta(days=7),
          "range_custom": None}
choice = st.segmented_control(t("range"), list(ranges), format_func=t, default="range_24h") or "range_24h"
end = data.now()
if ranges[choice] is None:
    c1, c2 = st.columns(2)
    d1 = c1.date_input(t("from"), value=(end - timedelta(days=3)).date())
    d2 = c2.date_input(t("to"), value=end.date())
    start = datetime.combine(d1, time.min).astimezone()
    end = min(end, datetime.combine(d2, time.max).astimezone())
else:
    start = end - ranges[choice]
# cache key: round the clock to 10 s so reruns within a few seconds share the cached series
end_key = end.replace(microsecond=0, second=end.second - end.second % 10)
points = pd.DataFrame(data.series(asset["id"], start, end_key))
asset_alerts = data.alerts(asset_id=asset["id"])
policy_metric = {e["policy_code"]: e["metric"] for e in asset["evaluations"]}

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
        label = f"{localized(label_fr, label_en)} ({unit})"
        evaluations = [e for e in asset["evaluations"] if e["metric"] == metric]
        marks = [a for a in asset_alerts if policy_metric.get(a["policy_code"]) == metric]
        # the title as text above the chart: Vega titles get clipped when Streamlit resizes the chart
        box = cols[drawn % 2].container()
        box.markdown(f"**{label}**")
        box.altair_chart(metric_chart(df, unit, evaluations, marks), width="stretch")
        drawn += 1

st.subheader(t("policies"))
if asset["evaluations"]:
    st.dataframe(pd.DataFrame([
        {t("policy"): e["policy_code"], t("title"): e["title"],
         t("value"): f"{number(e['value'], e['unit'] if e['rule_type'] != 'rate_of_change' else e['unit'] + '/h')} "
                     f"{e['condition']} {number(e['threshold'], '', 0)}",
         t("firing"): "🚨 " + t("yes") if e["firing"] else ("👁️ " if e["near"] else "") + t("no"),
         t("evaluated_at"): when(e["evaluated_at"])}
        for e in asset["evaluations"]
    ]), hide_index=True, width="stretch")

left, right = st.columns(2)
left.subheader(t("alerts_of_asset"))
for a in asset_alerts[:20]:
    left.markdown(f"{severity_badge(a['severity'])} **{a['policy_code']}** {alert_message(a)} — "
                  f"{t('alert_' + a['status'])} · {when(a['created_at'])}")
if not asset_alerts:
    left.caption(t("none"))
right.subheader(t("workorders_of_asset"))
orders = data.work_orders(asset_id=asset["id"])
for w in orders[:20]:
    right.markdown(f"**#{w['id']}** P{w['priority']} {w['title']} — {t('wo_' + w['status'])} · "
                   f"{w['assigned_to'] or t('unassigned')}")
if not orders:
    right.caption(t("none"))
