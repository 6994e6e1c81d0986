"""The metric chart of the Asset and Work-order pages: min–max band, average line, the policy
thresholds as labelled dashed rules, alert moments as orange rules."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.widgets import LOCAL_TZ, alert_message


def local_naive(ts: pd.Series) -> pd.Series:
    """UTC timestamps as Casablanca wall-clock time (what the axis shows)."""
    return pd.to_datetime(ts, utc=True).dt.tz_convert(LOCAL_TZ).dt.tz_localize(None)


def with_segments(points: pd.DataFrame) -> pd.DataFrame:
    """Number the runs of readings without a gap (more than three buckets, at least 30 s, with
    nothing): a chart draws each run apart, so a sensor outage shows as a hole, not a line."""
    points = points.sort_values("ts")
    bucket_s = float(points["bucket_s"].iloc[0]) if "bucket_s" in points and len(points) else 10.0
    gap = pd.Timedelta(seconds=max(3 * bucket_s, 30))
    return points.assign(segment=(points["ts"].diff() > gap).cumsum())


def metric_chart(points: pd.DataFrame, unit: str, evaluations: list[dict], alerts: list[dict],
                 *, time_format: str = "%d/%m %H:%M", height: int = 220) -> alt.LayerChart:
    """`points`: one metric's buckets (ts, min, avg, max), ts already local; `evaluations`: the
    asset's policy evaluations of this metric; `alerts`: its alerts of those policies."""
    points = with_segments(points)
    x = alt.X("ts:T", title=None, axis=alt.Axis(format=time_format))
    y = alt.Y("min:Q", title=unit, scale=alt.Scale(zero=False))
    layers = [
        alt.Chart(points).mark_area(opacity=0.2).encode(x=x, y=y, y2="max:Q", detail="segment:N"),
        alt.Chart(points).mark_line().encode(x=x, y="avg:Q", detail="segment:N", tooltip=[
            alt.Tooltip("ts:T", format="%d/%m %H:%M:%S"), alt.Tooltip("avg:Q", format=".2f"),
            alt.Tooltip("min:Q", format=".2f"), alt.Tooltip("max:Q", format=".2f")]),
    ]
    levels = [e for e in evaluations if e["rule_type"] in ("threshold", "consecutive")]
    if levels:
        thr = pd.DataFrame([{"y": e["threshold"], "policy": f"{e['policy_code']} {e['condition']} {e['threshold']:g}"}
                            for e in levels])
        rule = alt.Chart(thr).encode(y="y:Q")
        layers.append(rule.mark_rule(color="red", strokeDash=[6, 4]).encode(tooltip=["policy:N"]))
        layers.append(rule.mark_text(align="left", dx=4, dy=-7, color="red", fontSize=11)
                      .encode(x=alt.value(0), text="policy:N"))
    if alerts:
        marks = pd.DataFrame({"ts": local_naive(pd.Series([a["created_at"] for a in alerts])),
                              "alert": [f"{a['policy_code']} · {alert_message(a)}" for a in alerts]})
        marks = marks[(marks["ts"] >= points["ts"].min()) & (marks["ts"] <= points["ts"].max())]
        if not marks.empty:
            layers.append(alt.Chart(marks).mark_rule(color="orange", strokeWidth=2).encode(x="ts:T", tooltip=["alert:N"]))
    return alt.layer(*layers).properties(height=height)


def firings_chart(points: pd.DataFrame, unit: str, firings: list[dict], *, end, level: dict | None = None,
                  time_format: str = "%d/%m %H:%M", height: int = 260) -> alt.LayerChart:
    """A backtest drawn over a metric's curve (`points` as for `metric_chart`): each firing
    interval as a red band (one still firing at the end of the period runs to `end`), the
    threshold replayed as a dashed rule (`level`, shaped like an evaluation)."""
    base = metric_chart(points, unit, [level] if level else [], [], time_format=time_format, height=height)
    if not firings:
        return base
    bands = pd.DataFrame({
        "start": local_naive(pd.Series([f["start"] for f in firings])),
        "end": local_naive(pd.Series([f["end"] or end for f in firings])),
        "peak": [f["peak"] for f in firings],
    })
    rect = alt.Chart(bands).mark_rect(color="red", opacity=0.18).encode(
        x="start:T", x2="end:T", tooltip=[alt.Tooltip("start:T", format="%d/%m %H:%M:%S"),
                                          alt.Tooltip("end:T", format="%d/%m %H:%M:%S"),
                                          alt.Tooltip("peak:Q", format=".2f")])
    return alt.layer(rect, *base.layer).properties(height=height)
