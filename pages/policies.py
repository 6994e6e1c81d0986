"""Policies ("Règles"): every policy with its thresholds, clear condition (hysteresis), pending
period and per-asset overrides; tune one for an asset; replay one — or a what-if copy — over
stored history (backtest) and see its firings drawn over the metric's curve, with the alerts and
work orders it would have created."""

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.charts import firings_chart, local_naive
from dashboard.i18n import number, t
from dashboard.widgets import LOCAL_TZ, actor_input, page_title, policy_title, run_action, when

state = st.session_state
page_title(t("policies_title"))
policies = data.policies()
by_code = {p["code"]: p for p in policies}


def rule_text(p: dict, threshold: float | None = None) -> str:
    """'avg(temp_supply_air) 15 min > 20 °C', '5 × motor_temp > 80 °C'…"""
    thr = number(p["threshold"] if threshold is None else threshold, p["unit"] or "", None)
    metric, cond, rt = ", ".join(p["metrics"]) or "*", p["condition"], p["rule_type"]
    if rt == "threshold":
        return f"{p['aggregation']}({metric}) {p['window_minutes']} min {cond} {thr}"
    if rt == "consecutive":
        return f"{p['consecutive_points']} × {metric} {cond} {thr}"
    if rt == "rate_of_change":
        return f"slope({metric}) {p['window_minutes']} min {cond} {thr}/h"
    if rt == "runtime":
        return f"Δ {metric} {cond} {thr}"
    if rt == "no_data":
        return f"no_data({metric}) {cond} {number(p['threshold'], 'min', None)}"
    return f"flat_line({metric}) {p['window_minutes']} min, ≥ {p['min_points']} pts: max − min {cond} {thr}"


def clear_text(p: dict) -> str:
    if p["clear_condition"]:
        return f"{p['clear_condition']} {number(p['clear_threshold'], p['unit'] or '', None)}"
    return t("never_clears") if p["rule_type"] == "runtime" else "—"


def override_text(o: dict) -> str:
    parts = [number(o["threshold"], "", None) if o["threshold"] is not None else None,
             f"↺ {number(o['clear_threshold'], '', None)}" if o["clear_threshold"] is not None else None,
             "off" if o["enabled"] is False else None]
    return f"{o['asset_code']}: {' '.join(x for x in parts if x) or '='}"


st.dataframe(pd.DataFrame([
    {t("policy"): p["code"], t("title"): policy_title(p), t("asset_type"): p["asset_type"] or "*",
     t("fires_when"): rule_text(p), t("clear_condition"): clear_text(p),
     t("pending"): f"{p['for_minutes']} min" if p["for_minutes"] else "—", t("severity"): t("sev_" + p["severity"]),
     t("enabled"): t("yes") if p["enabled"] else t("no"),
     t("overrides"): " · ".join(override_text(o) for o in p["overrides"])}
    for p in policies
]), hide_index=True, width="stretch")

# --- backtest -------------------------------------------------------------------------------------
st.subheader(t("backtest_title"))
st.caption(t("backtest_help"))
assets = data.assets()
code = st.selectbox(t("policy"), list(by_code), key="bt_code",
                    format_func=lambda c: f"{c} · {policy_title(by_code[c])}")
policy = by_code[code]
candidates = [a["code"] for a in assets if policy["asset_type"] in (None, a["type"])]
with st.form("backtest"):
    c = st.columns(3)
    today = data.now().astimezone(LOCAL_TZ).date()
    d1 = c[0].date_input(t("from"), value=today - timedelta(days=7), key="bt_from")
    d2 = c[1].date_input(t("to"), value=today, key="bt_to")
    asset_code = c[2].selectbox(t("asset"), ["", *candidates], format_func=lambda x: x or t("any_asset"),
                                key="bt_asset")
    st.caption(t("what_if"))
    w = st.columns(4)
    threshold = w[0].number_input(t("threshold"), value=None, key="bt_threshold",
                                  placeholder=number(policy["threshold"], "", None))
    clear = w[1].number_input(t("clear_threshold"), value=None, key="bt_clear",
                              placeholder=number(policy["clear_threshold"], "", None), disabled=not policy["clear_condition"])
    window = w[2].number_input(t("window_minutes"), value=None, min_value=1, max_value=1440, step=1,
                               key="bt_window", placeholder=str(policy["window_minutes"] or "—"),
                               disabled=policy["window_minutes"] is None)
    points = w[3].number_input(t("consecutive_points"), value=None, min_value=1, max_value=1000, step=1,
                               key="bt_points", placeholder=str(policy["consecutive_points"] or "—"),
                               disabled=policy["rule_type"] != "consecutive")
    go = st.form_submit_button(t("run_backtest"))
if go:
    start = datetime.combine(d1, time.min, tzinfo=LOCAL_TZ)
    end = min(data.now(), datetime.combine(d2, time.max, tzinfo=LOCAL_TZ)).replace(microsecond=0)
    state["bt_params"] = dict(code=code, start=start, end=end, threshold=threshold, clear_threshold=clear,
                              window_minutes=int(window) if window is not None else None,
                              consecutive_points=int(points) if points is not None else None,
                              asset_code=asset_code or None)

params = state.get("bt_params")
if params and params["code"] == code:
    result = run_action(lambda: data.backtest(**params))
    if result is not None:
        m = st.columns(2)
        m[0].metric(t("bt_alerts"), result["alerts"])
        m[1].metric(t("bt_work_orders"), result["work_orders"])
        replayed = ", ".join(f"{k} = {number(v, '', None)}" for k, v in result["parameters"].items() if v is not None)
        st.caption(t("bt_params", p=replayed) + f" · {when(result['from'])} → {when(result['to'])}")
        firings = result["firings"]
        if not firings:
            st.info(t("bt_none"))
        else:
            st.dataframe(pd.DataFrame([
                {t("asset"): f["asset_code"], t("bt_start"): when(f["start"]),
                 t("bt_end"): when(f["end"]) if f["end"] else t("bt_still"),
                 t("peak"): number(f["peak"], policy["unit"] or "", None)}
                for f in firings
            ]), hide_index=True, width="stretch")
        shown = sorted({f["asset_code"] for f in firings}) or ([params["asset_code"]] if params["asset_code"] else [])
        if policy["metric"] and shown:
            curve = st.selectbox(t("bt_curve"), shown, key="bt_curve")
            asset = next(a for a in assets if a["code"] == curve)
            series = pd.DataFrame(data.series(asset["id"], result["from"], result["to"]))
            series = series[series["metric"] == policy["metric"]] if not series.empty else series
            if series.empty:
                st.info(t("no_points"))
            else:
                series = series.assign(ts=local_naive(series["ts"]))
                level = {"rule_type": policy["rule_type"], "policy_code": code, "condition": policy["condition"],
                         "threshold": result["parameters"]["threshold"]}
                mine = [f for f in firings if f["asset_code"] == curve]
                st.markdown(f"**{curve} · {policy['metric']} ({policy['unit']})**")
                st.altair_chart(firings_chart(series, policy["unit"] or "", mine, end=result["to"], level=level),
                                width="stretch")
                st.caption(t("bt_chart_caption"))

# --- per-asset overrides --------------------------------------------------------------------------
st.subheader(t("override_title"))
st.caption(t("override_help"))
c = st.columns(2)
o_asset = c[0].selectbox(t("asset"), [a["code"] for a in assets], key="ov_asset")
o_asset_id = next(a["id"] for a in assets if a["code"] == o_asset)
effective = {p["code"]: p for p in data.asset_policies(o_asset_id)}
o_code = c[1].selectbox(t("policy"), list(effective), key="ov_code",
                        format_func=lambda x: f"{x} · {policy_title(effective[x])}")
e = effective[o_code]
with st.form("override"):
    f = st.columns(3)
    o_threshold = f[0].number_input(t("threshold"), value=float(e["threshold"]), key=f"ov_thr_{o_asset}_{o_code}",
                                    help=t("policy_value", v=number(e["policy_threshold"], e["unit"] or "", None)))
    o_clear = None
    if e["clear_condition"]:
        o_clear = f[1].number_input(t("clear_threshold"), value=float(e["clear_threshold"]),
                                    key=f"ov_clear_{o_asset}_{o_code}",
                                    help=t("policy_value", v=number(e["policy_clear_threshold"], e["unit"] or "", None)))
    o_enabled = f[2].checkbox(t("enabled"), value=e["enabled"], key=f"ov_on_{o_asset}_{o_code}")
    o_actor = actor_input("ov")
    b = st.columns(2)
    save = b[0].form_submit_button(t("override_save"))
    reset = b[1].form_submit_button(t("override_reset"))
if save:  # a value equal to the policy's is not an override
    run_action(lambda: data.set_override(
        o_asset_id, o_code, actor=o_actor,
        threshold=None if o_threshold == e["policy_threshold"] else o_threshold,
        clear_threshold=None if o_clear is None or o_clear == e["policy_clear_threshold"] else o_clear,
        enabled=None if o_enabled else False), t("done_override", code=o_code, asset=o_asset))
if reset:
    run_action(lambda: data.set_override(o_asset_id, o_code, actor=o_actor, threshold=None, clear_threshold=None,
                                         enabled=None), t("done_override", code=o_code, asset=o_asset))
