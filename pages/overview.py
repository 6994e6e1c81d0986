"""US-01 — every site with open alerts by severity, at-risk sites first; totals; live."""

import streamlit as st

from dashboard import data
from dashboard.i18n import ago, t
from dashboard.widgets import alert_message, more_link, page_title, policy_title, severity_badge, status_text
from db.models import AlertStatus
from db.queries import ASSET_STATUSES, SEVERITIES

page_title(t("overview_title"))


@st.fragment(run_every="10s")
def overview() -> None:
    sites = data.sites()
    fresh = data.freshness()
    by_status = {k: sum(s["assets_by_status"][k] for s in sites) for k in ASSET_STATUSES}
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
    # one card per site, at-risk sites first (the service's order), three to a row
    for row in range(0, len(sites), 3):
        for col, site in zip(st.columns(3), sites[row : row + 3]):
            site_card(col.container(border=True), site)
    to_handle(data.alerts_to_handle())  # the overview is every site, whatever the sidebar filter


def to_handle(alerts: list[dict]) -> None:
    """The live alerts in the order to handle them: high severity first, then the oldest."""
    st.subheader(t("to_handle"))
    if not alerts:
        st.caption(t("nothing_to_handle"))
        return
    now = data.now()
    for a in alerts:
        order = (f"{t('wo_short')} #{a['work_order_id']} · {t('wo_' + a['work_order_status'])} · "
                 f"{a['assigned_to'] or t('unassigned')}") if a["work_order_id"] else t("no_work_order")
        text, link = st.columns([6, 1], vertical_alignment="center")
        text.markdown(f"{severity_badge(a['severity'])} **{a['site_code']} · {a['asset_code']}** — {policy_title(a)} · "
                      f"{t('alert_' + a['status'])} {t('since_ago', d=ago((now - a['created_at']).total_seconds()))}"
                      f"  \n:gray[{alert_message(a)} — {order}]")
        link.page_link("pages/alerts.py", label=t("handle"), icon="🚨", query_params={"alert": str(a["id"])})
    # the list stops at the first ten: say how many more, and open the Alerts page on all of them
    more_link(len(alerts), alerts[0]["total"], "pages/alerts.py", status=",".join(AlertStatus.LIVE), period="all",
              site="")


def site_card(box, s: dict) -> None:
    """A site at a glance: at risk or not, live alerts by severity, assets by status, open orders."""
    risk = ":red-badge[🚨 " + t("at_risk") + "]" if s["at_risk"] else ":green-badge[✅ " + t("status_ok") + "]"
    box.markdown(f"#### {s['code']}  \n{s['name']}")
    alerts = " ".join(f"{severity_badge(sev)} **{s['open_alerts'][sev]}**" for sev in SEVERITIES)
    box.markdown(f"{risk}  \n{t('open_alerts')} : {alerts}")
    counts = s["assets_by_status"]
    statuses = " · ".join(f"{status_text(k)} **{counts[k]}**" for k in ("alert", "watch", "no_data", "ok") if counts[k])
    box.markdown(f"{t('assets')} : {statuses or '—'}  \n{t('open_wo')} : **{s['open_work_orders']}**")
    box.page_link("pages/site.py", label=t("open_site", code=s["code"]), icon="🏢", query_params={"site": s["code"]})


overview()
