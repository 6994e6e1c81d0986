"""US-02 — a site's assets with status (colour and text), last values with units, open alerts;
live. A link (?site=CODE) shows exactly that site."""

import streamlit as st

from dashboard import data
from dashboard.i18n import localized, number, t
from dashboard.widgets import (alert_message, asset_name, page_title, policy_title, severity_badge, status_badge,
                               when)
from db.models import AlertStatus

state, query = st.session_state, st.query_params
sites = data.sites()
codes = [s["code"] for s in sites]
if query.get("site") and state.get("si_link") != query["site"]:
    state["si_link"] = query["site"]
    if query["site"] in codes:
        state["si_choice"] = query["site"]
    else:
        st.warning(t("site_not_found", code=query["site"]), icon="⚠️")
if state.get("si_choice") not in codes:
    state["si_choice"] = next((s["code"] for s in sites if s["id"] == state.get("site_id")), codes[0])


def follow_choice() -> None:
    query["site"] = state["si_link"] = state["si_choice"]


code = st.selectbox(t("choose_site"), codes, key="si_choice", on_change=follow_choice)
site = next(s for s in sites if s["code"] == code)
page_title(t("site_title", code=site["code"], name=site["name"]))


@st.fragment(run_every="10s")
def assets_and_alerts(site_id: int) -> None:
    """Statuses, last values and open alerts, live."""
    for a in data.assets(site_id):
        units = data.metric_units(a["type"])
        with st.container(border=True):
            left, right = st.columns([2, 3])
            left.markdown(f"### {a['code']}\n{asset_name(a)} · {a['type']}")
            left.markdown(status_badge(a["status"]))
            left.caption(f"{t('last_seen')} : {when(a['last_seen'])}")
            left.page_link("pages/asset.py", label=t("open_asset", code=a["code"]), icon="📈",
                           query_params={"asset": a["code"]})
            values = [f"**{localized(units[m][1], units[m][2])}** : {number(v, units[m][0])}"
                      for m, v in a["last_values"].items()]
            right.markdown("  \n".join(values) or t("no_points"))

    st.subheader(t("open_alerts"))
    open_alerts = data.alerts(status=AlertStatus.LIVE, site_id=site_id)
    if not open_alerts:
        st.info(t("no_alerts"))
    for al in open_alerts:
        st.markdown(f"{severity_badge(al['severity'])} **{policy_title(al)}** — {al['asset_code']} · "
                    f"{alert_message(al)} · {when(al['created_at'])} · {t('alert_' + al['status'])}")
    if open_alerts and open_alerts[0]["total"] > len(open_alerts):
        st.caption(t("more_rows", n=open_alerts[0]["total"] - len(open_alerts)))


assets_and_alerts(site["id"])
