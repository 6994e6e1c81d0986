"""Demo presenters: inject a fault (site, asset, fault, intensity, duration), see and stop the
active ones (live), evaluate the rules now."""

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.i18n import t
from dashboard.widgets import (actor_input, alert_message, fault_description, fault_name, page_title, run_action,
                               when)
from engine.faults import FAULTS

page_title(t("sim_title"))
sites = data.sites()
c = st.columns(3)
site = c[0].selectbox(t("site"), [s["code"] for s in sites])
site_id = next(s["id"] for s in sites if s["code"] == site)
assets = {a["code"]: a["type"] for a in data.assets(site_id)}
codes = list(assets)
# the demo scenario's elevator first: its motor overheat fires within two minutes
demo = next((i for i, code in enumerate(codes) if assets[code] == "ELEVATOR"), 0)
asset = c[1].selectbox(t("asset"), codes, index=demo)
# fastest to fire first, so the default is the one a five-minute demo wants
choices = sorted((f for f, spec in FAULTS.items() if spec["asset_type"] in (None, assets[asset])),
                 key=lambda f: FAULTS[f]["fires_within_s"] or 10**9)
fault = c[2].selectbox(t("fault"), choices, format_func=fault_name)
spec = FAULTS[fault]
st.caption(f"{fault_description(fault)} · {t('expected_policy')} : {spec['policy'] or '—'}"
           + (f" · {t('fires_within', s=spec['fires_within_s'])}" if spec["fires_within_s"] else ""))
with st.form("fault"):
    actor = actor_input("sim")
    intensity = st.slider(t("intensity"), 0.0, 1.0, float(spec["default_intensity"]), 0.1)
    minutes = st.number_input(t("duration_min"), 1, 24 * 60, max(1, spec["default_duration_s"] // 60))
    go = st.form_submit_button(t("start_fault"), type="primary")
if go:
    run_action(lambda: data.start_fault(asset, fault, intensity, int(minutes * 60), actor),
               t("fault_started", fault=fault_name(fault), asset=asset))


@st.fragment(run_every="10s")
def active_faults() -> None:
    """The faults running now, live (they end by themselves), each with its stop button."""
    st.subheader(t("active_faults"))
    active = data.active_faults()
    if not active:
        st.caption(t("none"))
    for f in active:
        a, b = st.columns([5, 1])
        a.markdown(f"**#{f['id']} {fault_name(f['fault'])}** · {f['asset_code']} · {t('intensity')} "
                   f"{f['intensity']:.1f} · {t('started_at')} {when(f['started_at'])} · {t('ends_at')} "
                   f"{when(f['ends_at'])}")
        if b.button(t("stop"), key=f"stop_{f['id']}"):
            run_action(lambda fid=f["id"]: data.stop_fault(fid), t("fault_stopped", id=f["id"]))


active_faults()
st.divider()
if st.button(t("evaluate_now"), type="primary"):
    fired = run_action(data.evaluate_now)
    if fired is not None:
        if fired:
            st.success(t("fired", n=len(fired)))
            st.dataframe(pd.DataFrame([{t("policy"): f["policy_code"], t("asset"): f["asset_code"],
                                        t("severity"): t("sev_" + f["severity"]), t("message"): alert_message(f)}
                                       for f in fired]), hide_index=True, width="stretch")
        else:
            st.info(t("nothing_fired"))
