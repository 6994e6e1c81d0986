"""US-03 — an asset's recent curves (thresholds drawn, alerts marked), its policies, alerts and
work orders. Long ranges come downsampled from SQL (min / avg / max per time bucket)."""

from datetime import datetime, time, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.i18n import lang, number, t
from dashboard.widgets import LOCAL_TZ, severity_badge, status_badge, when

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
    points["ts"] = pd.to_datetime(points["ts"], utc=True).dt.tz_convert(LOCAL_TZ).dt.tz_localize(None)
    cols, drawn = st.columns(2), 0
    for metric, (unit, label_fr, label_en) in units.items():
        df = points[points["metric"] == metric]
        if df.empty:
            continue
        label = f"{label_fr if lang() == 'fr' else label_en} ({unit})"
        x = alt.X("ts:T", title=t("time"), axis=alt.Axis(format="%d/%m %H:%M"))
        y = alt.Y("min:Q", title=label, scale=alt.Scale(zero=False))
        layers = [alt.Chart(df).mark_area(opacity=0.2).encode(x=x, y=y, y2="max:Q")]
        layers.append(alt.Chart(df).mark_line().encode(x=x, y="avg:Q", tooltip=[
            alt.Tooltip("ts:T", format="%d/%m %H:%M:%S"), alt.Tooltip("avg:Q", format=".2f"),
            alt.Tooltip("min:Q", format=".2f"), alt.Tooltip("max:Q", format=".2f")]))
        thresholds = [e for e in asset["evaluations"] if e["metric"] == metric and e["rule_type"] in ("threshold", "consecutive")]
        if thresholds:
            thr = pd.DataFrame([{"y": e["threshold"], "policy": f"{e['policy_code']} {e['condition']} {e['threshold']:g}"}
                                for e in thresholds])
            layers.append(alt.Chart(thr).mark_rule(color="red", strokeDash=[6, 4]).encode(y="y:Q", tooltip=["policy:N"]))
        marks = [a for a in asset_alerts if policy_metric.get(a["policy_code"]) == metric]
        if marks:
            md = pd.DataFrame([{"ts": pd.Timestamp(a["created_at"]).tz_convert(LOCAL_TZ).tz_localize(None),
                                "alert": f"{a['policy_code']} · {a['message']}"} for a in marks])
            md = md[(md["ts"] >= df["ts"].min()) & (md["ts"] <= df["ts"].max())]
            if not md.empty:
                layers.append(alt.Chart(md).mark_rule(color="orange", strokeWidth=2).encode(x="ts:T", tooltip=["alert:N"]))
        cols[drawn % 2].altair_chart(alt.layer(*layers).properties(height=220, title=label), width="stretch")
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
    left.markdown(f"{severity_badge(a['severity'])} **{a['policy_code']}** {a['message']} — "
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
