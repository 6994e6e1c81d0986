"""US-04 — alerts filtered by site, severity, status and time; acknowledge and close with a
comment; the audit trail of one alert."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import data, reports
from dashboard.i18n import t
from dashboard.widgets import actor_input, alert_message, audit_comment, run_action, severity_badge, when

st.title(t("alerts_title"))
sites = data.sites()
site_codes = {s["code"]: s["id"] for s in sites}
c = st.columns(4)
default_site = next((s["code"] for s in sites if s["id"] == st.session_state.get("site_id")), "")
site = c[0].selectbox(t("site"), ["", *site_codes], index=(["", *site_codes].index(default_site)),
                      format_func=lambda x: x or t("all_sites"))  # "" = every site
severity = c[1].multiselect(t("severity"), ["high", "medium", "low"], format_func=lambda s: t("sev_" + s),
                            placeholder=t("all_f"))
status = c[2].multiselect(t("status"), ["open", "ack", "closed"], default=["open", "ack"], placeholder=t("all_m"),
                          format_func=lambda s: t("alert_" + s))
periods = {"period_24h": timedelta(hours=24), "period_7d": timedelta(days=7), "period_30d": timedelta(days=30),
           "period_all": None}
period = c[3].selectbox(t("since"), list(periods), index=1, format_func=t)
since = data.now().replace(second=0, microsecond=0) - periods[period] if periods[period] else None

rows = data.alerts(status=tuple(status), severity=tuple(severity), site_id=site_codes.get(site), since=since)
st.dataframe(pd.DataFrame([
    {"#": a["id"], t("created"): when(a["created_at"]), t("severity"): t("sev_" + a["severity"]),
     t("status"): t("alert_" + a["status"]), t("site"): a["site_code"], t("asset"): a["asset_code"],
     t("title"): f"{a['policy_code']} · {a['title']}", t("message"): alert_message(a),
     t("acked_by"): a["acked_by"] or "", t("closed_by"): a["closed_by"] or ""}
    for a in rows
], columns=["#", t("created"), t("severity"), t("status"), t("site"), t("asset"), t("title"), t("message"),
            t("acked_by"), t("closed_by")]), hide_index=True, width="stretch")
st.download_button(t("download_csv"), reports.as_csv(rows), file_name="alertes.csv", mime="text/csv")

if rows:
    ids = [a["id"] for a in rows]
    wanted = st.query_params.get("alert")  # from the Overview's "alerts to handle"
    chosen = st.selectbox(t("select_alert"), ids, index=ids.index(int(wanted)) if wanted in map(str, ids) else 0,
                          format_func=lambda i: next(f"#{a['id']} · {a['asset_code']} · {a['title']} "
                                                     f"({t('alert_' + a['status'])})" for a in rows if a["id"] == i))
    alert = next(a for a in rows if a["id"] == chosen)
    st.markdown(f"{severity_badge(alert['severity'])} **{alert['title']}** — {alert_message(alert)}")
    with st.form("alert_action"):
        actor = actor_input("alert")
        comment = st.text_area(t("comment"))
        b1, b2 = st.columns(2)
        ack = b1.form_submit_button(t("ack"), disabled=alert["status"] != "open")
        close = b2.form_submit_button(t("close"), disabled=alert["status"] == "closed")
    if ack:
        run_action(lambda: data.acknowledge(chosen, actor, comment), t("done_ack", id=chosen))
    if close:
        run_action(lambda: data.close(chosen, actor, comment), t("done_close", id=chosen))
    st.subheader(t("audit"))
    history = data.trail("alert", chosen)
    st.dataframe(pd.DataFrame([
        {t("at"): when(h["at"]), t("who"): h["actor"], t("action"): h["action"],
         t("from_to"): f"{h['from_value'] or '—'} → {h['to_value'] or '—'}", t("comment"): audit_comment(h)}
        for h in history
    ]), hide_index=True, width="stretch")
else:
    st.info(t("none"))
