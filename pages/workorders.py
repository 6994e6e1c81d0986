"""US-05 — work orders: status (only the moves the service allows from the current one), assignee
and notes; where (site, location) and the alert's context: its message, the metric's recent curve,
a link to the asset's curves around the alert. Lists and context refresh on their own."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import data, reports
from dashboard.charts import local_naive, metric_chart
from dashboard.i18n import localized, t
from dashboard.widgets import (actor_input, alert_message, asset_name, audit_action, audit_change, audit_comment,
                               page_title, policy_title, run_action, severity_badge, when)
from db.models import WorkOrderStatus
from engine.workorders import allowed_moves

STATUSES = [s.value for s in WorkOrderStatus]
state, query = st.session_state, st.query_params

page_title(t("wo_title"))
# a link (?asset=CODE &status=a,b|all, from the Asset page) sets the filters once
state.setdefault("wo_status", list(WorkOrderStatus.ACTIVE))
state.setdefault("wo_asset", "")
link = f"{query.get('asset')}|{query.get('status')}"
if ("asset" in query or "status" in query) and state.get("wo_link") != link:
    state["wo_link"] = link
    state["wo_asset"] = query.get("asset", "")
    if "status" in query:
        state["wo_status"] = [s for s in query["status"].split(",") if s in STATUSES]  # "all": none, so every one
assets = data.assets()
asset_codes = [a["code"] for a in assets]
if state["wo_asset"] not in asset_codes:
    state["wo_asset"] = ""
f1, f2, f3 = st.columns([2, 2, 1])
status = f1.multiselect(t("status"), STATUSES, key="wo_status", placeholder=t("all_m"),
                        format_func=lambda s: t("wo_" + s))
asset_code = f2.selectbox(t("asset"), ["", *asset_codes], key="wo_asset", format_func=lambda x: x or t("all_assets"))
who = f3.text_input(t("assignee_filter"), placeholder=t("assignee_filter_hint")).strip() or None
asset_id = next((a["id"] for a in assets if a["code"] == asset_code), None)
filters = dict(status=tuple(status), site_id=None if asset_id else state.get("site_id"), asset_id=asset_id,
               assigned_to=who)


@st.fragment(run_every="10s")
def table() -> None:
    """The list, live."""
    orders = data.work_orders(**filters)
    st.dataframe(pd.DataFrame([
        {"#": w["id"], t("priority"): f"P{w['priority']}", t("status"): t("wo_" + w["status"]),
         t("site"): w["site_code"], t("asset"): w["asset_code"], t("title"): localized(w["title"], w["title_en"]),
         t("assigned_to"): w["assigned_to"] or t("unassigned"), t("created"): when(w["created_at"])}
        for w in orders
    ], columns=["#", t("priority"), t("status"), t("site"), t("asset"), t("title"), t("assigned_to"), t("created")]),
        hide_index=True, width="stretch")
    if orders and orders[0]["total"] > len(orders):
        st.caption(t("more_rows", n=orders[0]["total"] - len(orders)))


table()
orders = data.work_orders(**filters)
st.download_button(t("download_csv"), reports.as_csv(orders, "workorders"), file_name="ordres-de-travail.csv", mime="text/csv")
if not orders:
    st.info(t("none"))
    st.stop()

by_id = {w["id"]: w for w in orders}
if state.get("wo_choice") not in by_id:
    state["wo_choice"] = orders[0]["id"]
chosen = st.selectbox(t("select_wo"), list(by_id), key="wo_choice",
                      format_func=lambda i: f"#{i} · P{by_id[i]['priority']} · "
                                            f"{localized(by_id[i]['title'], by_id[i]['title_en'])}")
wo = by_id[chosen]
left, right = st.columns([1, 1])
with left.form("work_order"):
    actor = actor_input("wo")
    moves = sorted(allowed_moves(wo["status"], wo["alert_status"]))  # the service's own rule: only what it accepts
    st.markdown(f"{t('status')} : **{t('wo_' + wo['status'])}**")
    if moves:
        to = st.selectbox(t("new_status"), [None, *moves], key=f"wo_to_{chosen}_{wo['status']}",
                          format_func=lambda s: t("no_change") if s is None else t("wo_" + s))
    else:
        to = None
        st.caption(t("finished"))
    assigned = st.text_input(t("assigned_to"), value=wo["assigned_to"] or "", key=f"wo_assigned_{chosen}")
    notes = st.text_area(t("notes"), value=wo["notes"], key=f"wo_notes_{chosen}")
    submitted = st.form_submit_button(t("save"))
if submitted:
    run_action(lambda: data.save_work_order(chosen, actor=actor, to_status=to, assigned_to=assigned, notes=notes),
               t("saved", id=chosen))


@st.fragment(run_every="10s")
def context(wo: dict) -> None:
    """Where, the alert that opened it (message, curve, link to the asset's curves), the history; live."""
    asset = next(a for a in data.assets() if a["id"] == wo["asset_id"])
    st.markdown(f"**{wo['site_code']} — {wo['site_name']}**  \n{t('location')} : {wo['site_address'] or '—'}  \n"
                f"**{asset['code']}** · {asset_name(asset)}")
    st.subheader(t("alert_context"))
    if wo["alert_id"]:
        alert = data.alert(wo["alert_id"])
        st.markdown(f"{severity_badge(alert['severity'])} **{alert['policy_code']} · {policy_title(alert)}**  \n"
                    f"{alert_message(alert)}  \n{when(alert['created_at'])} · {t('alert_' + alert['status'])}")
        end = data.now().replace(microsecond=0)
        start = min(alert["created_at"] - timedelta(minutes=30), end - timedelta(hours=1))
        around = (alert["created_at"] - timedelta(hours=1), (alert["closed_at"] or end) + timedelta(minutes=15))
        st.page_link("pages/asset.py", label=t("curves_link", code=asset["code"]), icon="📈",
                     query_params={"asset": asset["code"], "from": around[0].isoformat(), "to": around[1].isoformat()})
        evaluation = next((e for e in asset["evaluations"] if e["policy_code"] == alert["policy_code"]), None)
        if evaluation and evaluation["metric"]:
            metric = evaluation["metric"]
            unit, label_fr, label_en = data.metric_units(asset["type"])[metric]
            pts = pd.DataFrame([p for p in data.series(wo["asset_id"], start, end) if p["metric"] == metric])
            if not pts.empty:
                pts["ts"] = local_naive(pts["ts"])
                st.markdown(f"**{t('recent_curve', metric=localized(label_fr, label_en))} ({unit})**")
                st.altair_chart(metric_chart(pts, unit, [evaluation], [alert], time_format="%H:%M"), width="stretch")
    st.subheader(t("audit"))
    for h in data.trail("work_order", wo["id"]):
        st.caption(f"{when(h['at'])} · {h['actor']} · {audit_action(h)} {audit_change(h, 'work_order')} "
                   f"{audit_comment(h)}")


with right:
    context(wo)
