"""US-05 — work orders: status, assignee and notes (moves checked by the service, refusals in
words), with the alert context: its message and the metric's recent curve."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import data, reports
from dashboard.charts import local_naive, metric_chart
from dashboard.i18n import localized, t
from dashboard.widgets import actor_input, alert_message, audit_comment, run_action, severity_badge, when
from engine.workorders import ALLOWED_TRANSITIONS

st.title(t("wo_title"))
f1, f2 = st.columns([2, 1])
status = f1.multiselect(t("status"), ["open", "in_progress", "done"], default=["open", "in_progress"],
                        placeholder=t("all_m"), format_func=lambda s: t("wo_" + s))
who = f2.text_input(t("assignee_filter"), placeholder=t("assignee_filter_hint")).strip() or None
orders = data.work_orders(status=tuple(status), site_id=st.session_state.get("site_id"), assigned_to=who)
st.dataframe(pd.DataFrame([
    {"#": w["id"], t("priority"): f"P{w['priority']}", t("status"): t("wo_" + w["status"]), t("site"): w["site_code"],
     t("asset"): w["asset_code"], t("title"): w["title"], t("assigned_to"): w["assigned_to"] or t("unassigned"),
     t("created"): when(w["created_at"])}
    for w in orders
], columns=["#", t("priority"), t("status"), t("site"), t("asset"), t("title"), t("assigned_to"), t("created")]),
    hide_index=True, width="stretch")
st.download_button(t("download_csv"), reports.as_csv(orders), file_name="ordres-de-travail.csv", mime="text/csv")

if not orders:
    st.info(t("none"))
    st.stop()

chosen = st.selectbox(t("select_wo"), [w["id"] for w in orders],
                      format_func=lambda i: next(f"#{w['id']} · P{w['priority']} · {w['title']}" for w in orders if w["id"] == i))
wo = next(w for w in orders if w["id"] == chosen)
left, right = st.columns([1, 1])
with left.form("work_order"):
    actor = actor_input("wo")
    options = [None, *sorted(ALLOWED_TRANSITIONS)]
    to = st.selectbox(t("new_status"), options, format_func=lambda s: "—" if s is None else t("wo_" + s))
    assigned = st.text_input(t("assigned_to"), value=wo["assigned_to"] or "")
    notes = st.text_area(t("notes"), value=wo["notes"])
    submitted = st.form_submit_button(t("save"))
if submitted:
    run_action(lambda: data.save_work_order(chosen, actor=actor, to_status=to if to != wo["status"] else None,
                                            assigned_to=assigned, notes=notes), t("saved", id=chosen))

with right:
    st.subheader(t("alert_context"))
    if wo["alert_id"]:
        alert = data.alert(wo["alert_id"])
        st.markdown(f"{severity_badge(alert['severity'])} **{alert['policy_code']} · {alert['title']}**  \n"
                    f"{alert_message(alert)}  \n{when(alert['created_at'])} · {t('alert_' + alert['status'])}")
        asset = next((a for a in data.assets() if a["id"] == wo["asset_id"]), None)
        evaluation = next((e for e in (asset or {}).get("evaluations", []) if e["policy_code"] == alert["policy_code"]),
                          None)
        if evaluation:
            metric = evaluation["metric"]
            unit, label_fr, label_en = data.metric_units(asset["type"])[metric]
            end = data.now().replace(microsecond=0)
            start = min(alert["created_at"] - timedelta(minutes=30), end - timedelta(hours=1))
            pts = pd.DataFrame([p for p in data.series(wo["asset_id"], start, end) if p["metric"] == metric])
            if not pts.empty:
                pts["ts"] = local_naive(pts["ts"])
                st.markdown(f"**{t('recent_curve', metric=localized(label_fr, label_en))} ({unit})**")
                st.altair_chart(metric_chart(pts, unit, [evaluation], [alert], time_format="%H:%M"), width="stretch")
    st.subheader(t("audit"))
    for h in data.trail("work_order", chosen):
        st.caption(f"{when(h['at'])} · {h['actor']} · {h['action']} {h['from_value'] or ''} → {h['to_value'] or ''} "
                   f"{audit_comment(h)}")
