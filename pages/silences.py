"""Silences (maintenance windows): the active ones, end one early, create one for a site, an
asset or a policy (or a combination: all given must match). From an asset or an alert, the Asset
and Alerts pages offer "maintenance en cours 2 h" in one click."""

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.i18n import t
from dashboard.widgets import SILENCE_MINUTES, actor_input, duration_text, page_title, run_action, when

page_title(t("silences_title"))
st.caption(t("silence_help"))

st.subheader(t("silences_active"))
active = data.silences(active=True)
if not active:
    st.info(t("no_silence"))
else:
    st.dataframe(pd.DataFrame([
        {"#": s["id"], t("site"): s["site_code"] or "—", t("asset"): s["asset_code"] or "—",
         t("policy"): s["policy_code"] or "—", t("starts"): when(s["starts_at"]), t("ends"): when(s["ends_at"]),
         t("reason"): s["reason"], t("by"): s["created_by"]}
        for s in active
    ]), hide_index=True, width="stretch")
    by_id = {s["id"]: s for s in active}
    with st.form("silence_end"):
        chosen = st.selectbox(t("silence_to_end"), list(by_id), key="si_end_choice",
                              format_func=lambda i: f"#{i} · {by_id[i]['asset_code'] or by_id[i]['site_code'] or ''} "
                                                    f"{by_id[i]['policy_code'] or ''} → {when(by_id[i]['ends_at'])}")
        actor = actor_input("si_end")
        end = st.form_submit_button(t("silence_end"))
    if end:
        run_action(lambda: data.end_silence(chosen, actor), t("done_silence_end", id=chosen))

st.subheader(t("silence_new"))
sites = [s["code"] for s in data.sites()]
assets = [a["code"] for a in data.assets()]
policies = [p["code"] for p in data.policies()]
with st.form("silence_new"):
    c = st.columns(3)
    site = c[0].selectbox(t("site"), ["", *sites], format_func=lambda x: x or t("all_sites"), key="si_site")
    asset = c[1].selectbox(t("asset"), ["", *assets], format_func=lambda x: x or t("all_assets"), key="si_asset")
    policy = c[2].selectbox(t("policy"), ["", *policies], format_func=lambda x: x or t("all_policies"), key="si_policy")
    minutes = st.selectbox(t("duration"), SILENCE_MINUTES, format_func=duration_text, key="si_minutes")
    reason = st.text_input(t("reason"), value=t("maintenance_reason"), key="si_reason")
    actor = actor_input("si_new")
    go = st.form_submit_button(t("silence_create"))
if go:
    if not (site or asset or policy):
        st.error(t("silence_need_scope"), icon="⛔")
    else:
        until = when(data.now() + pd.Timedelta(minutes=minutes))
        run_action(lambda: data.create_silence(actor=actor, reason=reason, minutes=minutes, site_code=site or None,
                                               asset_code=asset or None, policy_code=policy or None),
                   t("done_silence", until=until))
