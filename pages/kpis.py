"""KPIs for the maintenance manager — MTTR, MTTA, MTBF, availability, backlog, preventive share,
alert → work-order conversion, false alarms, top assets — for a period, per week and per month,
with a help text per figure (definitions: docs/engine.md § KPIs); and the GMAO section: the
webhook delivery log, with "resend" for a failed delivery."""

from datetime import UTC, datetime, time, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, reports
from dashboard.i18n import lang, t
from dashboard.widgets import page_title, run_action, when


def hours(value: float | None) -> str:
    """Hours with one decimal, the page's way ('6,7 h'); '—' when there is nothing to average."""
    if value is None:
        return "—"
    txt = f"{value:.1f}"
    return f"{txt.replace('.', ',') if lang() == 'fr' else txt} h"


def pct(value: float | None) -> str:
    if value is None:
        return "—"
    txt = f"{value:.1f}"
    return f"{txt.replace('.', ',') if lang() == 'fr' else txt} %"


page_title(t("kpi_title"))
kpi_tab, gmao_tab = st.tabs([t("tab_kpis"), t("tab_gmao")])

with kpi_tab:
    c = st.columns(4)
    periods = {"period_7d": timedelta(days=7), "period_30d": timedelta(days=30), "period_90d": timedelta(days=90),
               "period_12m": timedelta(days=365), "period_custom": None}
    period = c[0].selectbox(t("kpi_period"), list(periods), index=1, format_func=t)
    end = data.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if periods[period] is None:
        picked = c[0].date_input(t("kpi_period"), value=((end - timedelta(days=30)).date(), end.date()),
                                 label_visibility="collapsed")
        if len(picked) == 2:
            start = datetime.combine(picked[0], time(), UTC)
            end = datetime.combine(picked[1], time(), UTC) + timedelta(days=1)
        else:
            start = end - timedelta(days=30)
    else:
        start = end - periods[period]
    site_id = st.session_state.get("site_id")  # the sidebar's site filter, as on every page
    assets = data.assets(site_id)
    types = sorted({a["type"] for a in assets})
    asset_type = c[1].selectbox(t("asset_type"), ["", *types], format_func=lambda x: x or t("all_types"))
    codes = {a["code"]: a["id"] for a in assets if not asset_type or a["type"] == asset_type}
    asset = c[2].selectbox(t("asset"), ["", *codes], format_func=lambda x: x or t("all_assets"))
    per = c[3].radio(t("kpi_per"), ["week", "month"], format_func=lambda p: t("per_" + p), horizontal=True)

    k = reports.kpis(start, end, site_id=site_id, asset_type=asset_type or None, asset_id=codes.get(asset))
    st.caption(f"{when(k['from'])} → {when(k['effective_to'])} · {hours(k['period_hours'])}")

    m = st.columns(4)
    m[0].metric(t("kpi_mttr"), hours(k["mttr_hours"]), help=t("help_mttr", n=k["repairs"]))
    m[1].metric(t("kpi_mtta"), hours(k["mtta_hours"]), help=t("help_mtta", n=k["answered_alerts"]))
    m[2].metric(t("kpi_mtbf"), hours(k["mtbf_hours"]), help=t("help_mtbf", n=k["failures"]))
    m[3].metric(t("kpi_availability"), pct(k["availability_pct"]), help=t("help_availability"))
    m = st.columns(4)
    m[0].metric(t("kpi_conversion"), pct(k["conversion_pct"]),
                help=t("help_conversion", a=k["alerts_converted"], b=k["alerts_opened"]))
    m[1].metric(t("kpi_false_alarms"), pct(k["false_alarm_pct"]),
                help=t("help_false_alarms", a=k["false_alarms"], b=k["alerts_closed"]))
    m[2].metric(t("kpi_preventive"), pct(k["preventive_pct"]),
                help=t("help_preventive", a=k["preventive"], b=k["work_orders_created"]))
    m[3].metric(t("kpi_backlog"), str(k["backlog"]["total"]), help=t("help_backlog"))

    buckets = pd.DataFrame(k["weekly"] if per == "week" else k["monthly"])
    if not buckets.empty:
        # one bar / point per week or month, labelled by its first day (periods are clipped to the range)
        fmt = "%d/%m" if per == "week" else "%m/%Y"
        buckets["period"] = [f.strftime(fmt) for f in pd.to_datetime(buckets["from"], utc=True)]
        x = alt.X("period:O", sort=None, title=t("kpi_week_of") if per == "week" else t("kpi_month_of"),
                  axis=alt.Axis(labelAngle=0))

        def chart(where, title: str, frame: pd.DataFrame, mark, **enc) -> None:
            where.markdown(f"**{title}**")
            if frame.empty:
                where.caption(t("kpi_no_data"))
            else:
                where.altair_chart(mark(alt.Chart(frame)).encode(x=x, **enc).properties(height=220), width="stretch")

        left, right = st.columns(2)
        times = buckets.melt(id_vars=["period"], value_vars=["mttr_hours", "mtta_hours"], var_name="kpi",
                             value_name="h").dropna()
        times["kpi"] = times["kpi"].map({"mttr_hours": t("kpi_mttr"), "mtta_hours": t("kpi_mtta")})
        chart(left, t("kpi_chart_times"), times, lambda c: c.mark_line(point=True),
              y=alt.Y("h:Q", title=t("kpi_hours")), color=alt.Color("kpi:N", title=t("kpi_series")),
              tooltip=["period:O", "kpi:N", alt.Tooltip("h:Q", format=".1f")])
        chart(right, t("kpi_chart_availability"), buckets.dropna(subset=["availability_pct"]),
              lambda c: c.mark_bar(), y=alt.Y("availability_pct:Q", title=t("kpi_pct"), scale=alt.Scale(domain=[0, 100])),
              tooltip=["period:O", alt.Tooltip("availability_pct:Q", format=".1f")])
        left, right = st.columns(2)
        fails = buckets.melt(id_vars=["period"], value_vars=["failures", "downtime_hours"], var_name="kpi",
                             value_name="n")
        fails["kpi"] = fails["kpi"].map({"failures": t("kpi_failures"), "downtime_hours": t("kpi_downtime")})
        chart(left, t("kpi_chart_failures"), fails, lambda c: c.mark_bar(),
              y=alt.Y("n:Q", title=t("kpi_count")), color=alt.Color("kpi:N", title=t("kpi_series")),
              xOffset="kpi:N", tooltip=["period:O", "kpi:N", "n:Q"])
        mix = buckets.melt(id_vars=["period"], value_vars=["preventive", "corrective"], var_name="kind",
                           value_name="n")
        mix["kind"] = mix["kind"].map(t)
        chart(right, t("kpi_chart_mix"), mix, lambda c: c.mark_bar(),
              y=alt.Y("n:Q", title=t("kpi_count")), color=alt.Color("kind:N", title=t("kpi_series")),
              tooltip=["period:O", "kind:N", "n:Q"])

    left, right = st.columns(2)
    left.subheader(t("backlog_title"))
    ages = ["lt_1d", "1_7d", "7_30d", "gt_30d"]
    left.dataframe(pd.DataFrame(
        [{t("priority"): f"P{p}", **{t("age_" + a): k["backlog"]["by_priority"][p][a] for a in ages}}
         for p in ("1", "2", "3")]), hide_index=True, width="stretch")
    right.subheader(t("top_assets"))
    top = k["top_by_failures"] or k["top_by_downtime"]
    if top:
        right.dataframe(pd.DataFrame([{t("asset"): a["asset_code"], t("failures"): a["failures"],
                                       t("downtime_h"): hours(a["downtime_hours"])} for a in top]),
                        hide_index=True, width="stretch")
    else:
        right.info(t("kpi_no_data"))
    st.subheader(t("per_asset"))
    st.dataframe(pd.DataFrame([
        {t("asset"): a["asset_code"], t("failures"): a["failures"], t("downtime_h"): hours(a["downtime_hours"]),
         t("operating_h"): hours(a["operating_hours"]), t("mtbf_h"): hours(a["mtbf_hours"]),
         t("availability"): pct(a["availability_pct"])}
        for a in k["assets"]]), hide_index=True, width="stretch")

with gmao_tab:
    st.subheader(t("gmao_title"))
    urls = reports.endpoints()
    st.caption(t("gmao_endpoints", urls=", ".join(urls)) if urls else t("gmao_no_endpoint"))
    counts = reports.delivery_counts()
    st.caption(t("gmao_counts", pending=counts["pending"], delivered=counts["delivered"], failed=counts["failed"],
                 waiting=counts["not_dispatched"]))
    shown = st.multiselect(t("delivery_status"), ["pending", "delivered", "failed"], default=["pending", "failed"],
                           placeholder=t("all_m"), format_func=lambda s: t("del_" + s))
    rows = reports.deliveries(tuple(shown))
    st.dataframe(pd.DataFrame([
        {"#": d["id"], "webhook-id": d["webhook_id"], t("event"): d["type"], t("created"): when(d["event_created_at"]),
         t("endpoint"): d["endpoint"], t("delivery_status"): t("del_" + d["status"]), t("attempts"): d["attempts"],
         t("last_status"): d["last_error"] or (str(d["last_status_code"]) if d["last_status_code"] else "—"),
         t("next_attempt"): when(d["next_attempt_at"])}
        for d in rows
    ], columns=["#", "webhook-id", t("event"), t("created"), t("endpoint"), t("delivery_status"), t("attempts"),
                t("last_status"), t("next_attempt")]), hide_index=True, width="stretch")
    failed = [d for d in reports.deliveries(("failed",))]
    if failed:
        with st.form("resend"):
            chosen = st.selectbox(t("select_delivery"), [d["id"] for d in failed],
                                  format_func=lambda i: next(f"#{d['id']} · {d['type']} · {d['endpoint']}"
                                                             for d in failed if d["id"] == i))
            go = st.form_submit_button(t("resend"))
        if go:
            run_action(lambda: reports.resend(chosen), t("resent", id=chosen))
    else:
        st.caption(t("no_failed"))
