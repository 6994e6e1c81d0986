"""The dashboard: `streamlit run app.py`. This file is the router: the shared sidebar, then
st.navigation over the pages in pages/ (UI only; data through dashboard/data.py)."""

from __future__ import annotations

import streamlit as st

from core.settings import get_settings
from dashboard import data
from dashboard.i18n import LANGUAGES, ago, t
from dashboard.priority import lower_once
from dashboard.widgets import database_guard

lower_once(get_settings().dashboard_nice)

st.set_page_config(page_title="Maintenance 4.0", page_icon="🛠️", layout="wide")

PAGES = [  # shared list: each page of an issue adds its entry here
    st.Page("pages/overview.py", title=t("nav_overview"), icon="🏙️", default=True),
    st.Page("pages/site.py", title=t("nav_site"), icon="🏢"),
    st.Page("pages/asset.py", title=t("nav_asset"), icon="📈"),
    st.Page("pages/alerts.py", title=t("nav_alerts"), icon="🚨"),
    st.Page("pages/workorders.py", title=t("nav_workorders"), icon="🧰"),
    st.Page("pages/kpis.py", title=t("nav_kpis"), icon="📊"),
    st.Page("pages/policies.py", title=t("nav_policies"), icon="📏"),
    st.Page("pages/silences.py", title=t("nav_silences"), icon="🔕"),
    st.Page("pages/simulator_control.py", title=t("nav_simulator"), icon="🎛️"),
]
page = st.navigation(PAGES, position="hidden")  # the menu below, under the language choice

with st.sidebar:
    # After st.navigation: a widget created before it falls back to its default on the next run
    # (the choice is already in session_state when the titles above are translated). One label in
    # both languages: a label that changed with the choice would be a new widget, back to French.
    st.selectbox("Langue · Language", list(LANGUAGES), format_func=lambda k: LANGUAGES[k][0], key="lang")
    for p in PAGES:
        st.page_link(p)

with st.sidebar, database_guard():
    sites = data.sites()
    codes = {s["code"]: s["id"] for s in sites}
    # "" = every site (a None option would read as "no choice" and show Streamlit's placeholder)
    choice = st.selectbox(t("site_filter"), ["", *codes], key="site_code",
                          format_func=lambda c: c or t("all_sites"))
    st.session_state["site_id"] = codes.get(choice)

    @st.fragment(run_every="10s")
    def freshness() -> None:
        f = data.freshness()
        if f["last_reading"]:
            st.caption(t("fresh_ago", ago=ago((data.now() - f["last_reading"]).total_seconds())))
        else:
            st.caption(t("fresh_none"))
        st.caption(t("points_minute", n=f["points_last_minute"]))
        if f["last_rule_run"]:
            st.caption(t("last_eval", ago=ago((data.now() - f["last_rule_run"]).total_seconds()),
                         ms=f["last_rule_run_ms"]))

    freshness()

with database_guard():
    page.run()
