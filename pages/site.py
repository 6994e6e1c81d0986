"""US-02 — a site's assets with status (colour and text), last values with units, open alerts."""

import streamlit as st

from dashboard import data
from dashboard.i18n import number, t
from dashboard.widgets import alert_message, severity_badge, status_badge, when

sites = data.sites()
codes = [s["code"] for s in sites]
wanted = st.query_params.get("site") or next((s["code"] for s in sites if s["id"] == st.session_state.get("site_id")), None)
code = st.selectbox(t("choose_site"), codes, index=codes.index(wanted) if wanted in codes else 0)
site = next(s for s in sites if s["code"] == code)
st.title(t("site_title", code=site["code"], name=site["name"]))

for a in data.assets(site["id"]):
    units = data.metric_units(a["type"])
    with st.container(border=True):
        left, right = st.columns([2, 3])
        left.markdown(f"### {a['code']}\n{a['name']} · {a['type']}")
        left.markdown(status_badge(a["status"]))
        left.caption(f"{t('last_seen')} : {when(a['last_seen'])}")
        left.page_link("pages/asset.py", label=t("open_asset", code=a["code"]), icon="📈",
                       query_params={"asset": a["code"]})
        values = [f"**{units[m][1] if st.session_state.get('lang', 'fr') == 'fr' else units[m][2]}** : "
                  f"{number(v, units[m][0])}" for m, v in a["last_values"].items()]
        right.markdown("  \n".join(values) or t("no_points"))

st.subheader(t("open_alerts"))
open_alerts = data.alerts(status=("open", "ack"), site_id=site["id"])
if not open_alerts:
    st.info(t("no_alerts"))
for al in open_alerts:
    st.markdown(f"{severity_badge(al['severity'])} **{al['title']}** — {al['asset_code']} · {alert_message(al)} "
                f"· {when(al['created_at'])} · {t('alert_' + al['status'])}")
