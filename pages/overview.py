"""US-01 — every site with open alerts by severity, at-risk sites first; totals; live."""

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.i18n import ago, t
from dashboard.widgets import status_text

st.title(t("overview_title"))


@st.fragment(run_every="10s")
def overview() -> None:
    sites = data.sites()
    fresh = data.freshness()
    by_status = {k: sum(s["assets_by_status"][k] for s in sites) for k in ("ok", "watch", "alert", "no_data")}
    c = st.columns(5)
    c[0].metric(t("sites_at_risk"), f"{sum(s['at_risk'] for s in sites)} / {len(sites)}")
    c[1].metric(t("open_wo"), sum(s["open_work_orders"] for s in sites))
    c[2].metric(t("readings_minute"), fresh["points_last_minute"])
    lag = (data.now() - fresh["last_reading"]).total_seconds() if fresh["last_reading"] else None
    c[3].metric(t("ingest_lag"), ago(lag) if lag is not None else "—")
    c[4].metric(t("open_alerts"), sum(sum(s["open_alerts"].values()) for s in sites))
    st.subheader(t("assets_by_status"))
    cols = st.columns(4)
    for col, (status, n) in zip(cols, by_status.items()):
        col.metric(status_text(status), n)
    table = pd.DataFrame(
        [
            {
                t("site"): s["code"], t("name"): s["name"], t("at_risk"): "🚨 " + t("yes") if s["at_risk"] else t("no"),
                t("high"): s["open_alerts"]["high"], t("medium"): s["open_alerts"]["medium"],
                t("low"): s["open_alerts"]["low"], t("open_wo"): s["open_work_orders"],
                status_text("alert"): s["assets_by_status"]["alert"], status_text("watch"): s["assets_by_status"]["watch"],
                status_text("no_data"): s["assets_by_status"]["no_data"], status_text("ok"): s["assets_by_status"]["ok"],
            }
            for s in sites
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    for s in sites:
        st.page_link("pages/site.py", label=f"{s['code']} — {s['name']}", icon="🏢", query_params={"site": s["code"]})


overview()
