"""Maintenance KPIs, computed in SQL from alerts, work orders and the audit trail (definitions in
docs/engine.md § KPIs, in French in docs/guide-utilisateur.md).

Every figure is computed for a list of periods at once (the whole period, then each week and
each month of it), so the charts and the totals come from the same statements. A period that
reaches past `now` ends at `now`: hours that have not happened yet are neither up nor down.
Durations are hours with one decimal; shares are percentages with one decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.errors import InvalidInput

AGE_BUCKETS = ("lt_1d", "1_7d", "7_30d", "gt_30d")  # < 1 day, 1–7, 7–30, > 30 days
MAX_PERIOD = timedelta(days=3 * 366)  # 157 weeks and 37 months at most in the series
TOP = 5

# The assets in scope (every filter given must match).
_SCOPED = """
scoped AS (
  SELECT a.id FROM assets a
  WHERE (CAST(:site_id AS int) IS NULL OR a.site_id = :site_id)
    AND (CAST(:asset_type AS text) IS NULL OR a.type = :asset_type)
    AND (CAST(:asset_id AS int) IS NULL OR a.id = :asset_id)),
periods AS (
  SELECT p_from, p_to, k FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
    WITH ORDINALITY AS p(p_from, p_to, k))"""

# Work was done on an alert: its work order is (or was once) in progress, or done.
_WORKED = """EXISTS (
  SELECT 1 FROM work_orders w2 WHERE w2.alert_id = a.id AND (w2.status IN ('in_progress', 'done') OR EXISTS (
    SELECT 1 FROM audit_trail au WHERE au.entity = 'work_order' AND au.entity_id = w2.id
      AND au.action = 'status' AND au.to_value = 'in_progress')))"""

# A false alarm: dismissed, or cleared by itself with no work done.
_FALSE_ALARM = f"(a.resolution IS NOT NULL AND (a.resolution = 'dismissed' OR (a.resolution = 'condition_cleared' AND NOT {_WORKED})))"

# Preventive: the order of a runtime-rule alert (R4 run hours, R6 door cycles); others corrective.
_PREVENTIVE = "(pol.rule_type = 'runtime')"

# Failures: high or medium alerts that were not false alarms. The asset is down from the alert's
# opening until its work order is done (or, without one done, until the alert closed; still
# open: until the end of the period).
_FAILURES = f"""
failures AS MATERIALIZED (
  SELECT a.asset_id, a.created_at AS t0,
         coalesce(CASE WHEN w.status = 'done' THEN w.closed_at END, a.closed_at, 'infinity') AS t1
  FROM alerts a JOIN scoped s ON s.id = a.asset_id LEFT JOIN work_orders w ON w.alert_id = a.id
  WHERE a.severity IN ('high', 'medium') AND NOT {_FALSE_ALARM})"""

_PER_ASSET = f"""
WITH {_SCOPED}, {_FAILURES},
down AS (  -- per period and asset: the union of the overlapping windows, clipped to the period
  SELECT k, asset_id, sum(extract(epoch FROM upper(r) - lower(r))) AS down_s FROM (
    SELECT p.k, x.asset_id, unnest(range_agg(tstzrange(greatest(x.t0, p.p_from), least(x.t1, p.p_to)))) AS r
    FROM periods p JOIN failures x ON x.t0 < p.p_to AND x.t1 > p.p_from
    GROUP BY p.k, x.asset_id) u
  GROUP BY k, asset_id),
opened AS (
  SELECT p.k, x.asset_id, count(*) AS n
  FROM periods p JOIN failures x ON x.t0 >= p.p_from AND x.t0 < p.p_to
  GROUP BY p.k, x.asset_id)
SELECT p.k, s.id, ast.code, extract(epoch FROM p.p_to - p.p_from) AS period_s,
       coalesce(d.down_s, 0) AS down_s, coalesce(o.n, 0) AS failures
FROM periods p CROSS JOIN scoped s JOIN assets ast ON ast.id = s.id
LEFT JOIN down d ON d.k = p.k AND d.asset_id = s.id
LEFT JOIN opened o ON o.k = p.k AND o.asset_id = s.id
ORDER BY p.k, s.id"""

_MTTR = f"""
WITH {_SCOPED}
SELECT p.k, avg(extract(epoch FROM w.closed_at - w.created_at)), count(*)
FROM periods p JOIN work_orders w ON w.closed_at >= p.p_from AND w.closed_at < p.p_to
JOIN scoped s ON s.id = w.asset_id
LEFT JOIN alerts a ON a.id = w.alert_id LEFT JOIN policies pol ON pol.id = a.policy_id
WHERE w.status = 'done' AND NOT coalesce({_PREVENTIVE}, false)
GROUP BY p.k"""

_ALERTS = f"""
WITH {_SCOPED},
responses AS MATERIALIZED (  -- once per alert, not once per period
  SELECT a.id, a.created_at, a.closed_at, {_FALSE_ALARM} AS false_alarm,
         least(a.acked_at, (SELECT min(au.at) FROM work_orders w JOIN audit_trail au
                             ON au.entity = 'work_order' AND au.entity_id = w.id
                            WHERE w.alert_id = a.id AND au.action = 'status' AND au.to_value = 'in_progress'))
           AS first_response,
         EXISTS (SELECT 1 FROM work_orders w WHERE w.alert_id = a.id AND w.status <> 'cancelled') AS converted
  FROM alerts a JOIN scoped s ON s.id = a.asset_id)
SELECT p.k,
  avg(extract(epoch FROM r.first_response - r.created_at))
    FILTER (WHERE r.created_at >= p.p_from AND r.first_response IS NOT NULL),
  count(*) FILTER (WHERE r.created_at >= p.p_from AND r.first_response IS NOT NULL),
  count(*) FILTER (WHERE r.created_at >= p.p_from),
  count(*) FILTER (WHERE r.created_at >= p.p_from AND r.converted),
  count(*) FILTER (WHERE r.closed_at >= p.p_from AND r.closed_at < p.p_to),
  count(*) FILTER (WHERE r.closed_at >= p.p_from AND r.closed_at < p.p_to AND r.false_alarm)
FROM periods p JOIN responses r
  ON (r.created_at >= p.p_from AND r.created_at < p.p_to) OR (r.closed_at >= p.p_from AND r.closed_at < p.p_to)
GROUP BY p.k"""

_WORK_MIX = f"""
WITH {_SCOPED}
SELECT p.k, count(*), count(*) FILTER (WHERE coalesce({_PREVENTIVE}, false))
FROM periods p JOIN work_orders w ON w.created_at >= p.p_from AND w.created_at < p.p_to
JOIN scoped s ON s.id = w.asset_id
LEFT JOIN alerts a ON a.id = w.alert_id LEFT JOIN policies pol ON pol.id = a.policy_id
WHERE w.status <> 'cancelled'
GROUP BY p.k"""

# Open at the end of the period: created before it, not done (or cancelled) by then.
_BACKLOG = f"""
WITH {_SCOPED}
SELECT w.priority,
  CASE WHEN :at - w.created_at < interval '1 day' THEN 'lt_1d'
       WHEN :at - w.created_at < interval '7 days' THEN '1_7d'
       WHEN :at - w.created_at < interval '30 days' THEN '7_30d' ELSE 'gt_30d' END AS bucket,
  count(*)
FROM work_orders w JOIN scoped s ON s.id = w.asset_id
WHERE w.created_at < :at
  AND NOT (w.status = 'done' AND w.closed_at <= :at)
  AND NOT (w.status = 'cancelled' AND coalesce(w.closed_at, w.updated_at) <= :at)
GROUP BY 1, 2"""


@dataclass(frozen=True)
class Scope:
    site_id: int | None = None
    asset_type: str | None = None
    asset_id: int | None = None


def hours(seconds: float | None) -> float | None:
    """Seconds as hours with one decimal (never rounded to whole days)."""
    return None if seconds is None else round(float(seconds) / 3600, 1)


def percent(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 1)


def weeks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The ISO weeks (Monday 00:00 UTC) touching [start, end), each clipped to it."""
    first = (start.astimezone(UTC) - timedelta(days=start.astimezone(UTC).weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0)
    out, b = [], first
    while b < end:
        out.append((max(b, start), min(b + timedelta(days=7), end)))
        b += timedelta(days=7)
    return out


def months(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The calendar months (UTC) touching [start, end), each clipped to it."""
    s = start.astimezone(UTC)
    b = s.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    while b < end:
        nxt = b.replace(year=b.year + 1, month=1) if b.month == 12 else b.replace(month=b.month + 1)
        out.append((max(b, start), min(nxt, end)))
        b = nxt
    return out


def _figures(session: Session, *, periods: list[tuple[datetime, datetime]], scope: Scope) -> list[dict]:
    """Every per-period figure for each period (same order), plus the per-asset rows."""
    params = {"starts": [p[0] for p in periods], "ends": [p[1] for p in periods], "site_id": scope.site_id,
              "asset_type": scope.asset_type, "asset_id": scope.asset_id}
    out = [{"from": f, "to": t, "assets": []} for f, t in periods]
    for k, asset_id, code, period_s, down_s, failures in session.execute(text(_PER_ASSET), params):
        period_s, down_s = float(period_s), float(down_s)
        out[k - 1]["assets"].append({
            "asset_id": asset_id, "asset_code": code, "failures": failures, "downtime_s": down_s,
            "operating_s": period_s - down_s, "period_s": period_s})
    mttr = {k: (s, n) for k, s, n in session.execute(text(_MTTR), params)}
    alerts = {r[0]: r[1:] for r in session.execute(text(_ALERTS), params)}
    mix = {k: (n, prev) for k, n, prev in session.execute(text(_WORK_MIX), params)}
    for k, fig in enumerate(out, start=1):
        assets = fig.pop("assets")
        period_s = sum(a["period_s"] for a in assets)
        operating_s = sum(a["operating_s"] for a in assets)
        failures = sum(a["failures"] for a in assets)
        mtta_s, answered, opened, converted, closed, false_alarms = alerts.get(k, (None, 0, 0, 0, 0, 0))
        created, preventive = mix.get(k, (0, 0))
        fig.update({
            "mttr_hours": hours(mttr.get(k, (None, 0))[0]), "repairs": mttr.get(k, (None, 0))[1],
            "mtta_hours": hours(mtta_s), "answered_alerts": answered,
            "failures": failures, "downtime_hours": hours(sum(a["downtime_s"] for a in assets)),
            "operating_hours": hours(operating_s),
            "mtbf_hours": hours(operating_s / failures) if failures else None,
            "availability_pct": percent(operating_s, period_s),
            "alerts_opened": opened, "alerts_converted": converted, "conversion_pct": percent(converted, opened),
            "alerts_closed": closed, "false_alarms": false_alarms, "false_alarm_pct": percent(false_alarms, closed),
            "work_orders_created": created, "preventive": preventive, "corrective": created - preventive,
            "preventive_pct": percent(preventive, created), "corrective_pct": percent(created - preventive, created),
        })
        fig["_assets"] = assets
    return out


def compute(
    session: Session, *, start: datetime, end: datetime, now: datetime,
    site_id: int | None = None, asset_type: str | None = None, asset_id: int | None = None,
) -> dict:
    """The KPIs of [start, end) (ending at `now` if that comes first) for the assets in scope:
    totals, MTBF and availability per asset, top assets, backlog at the end, and the same
    figures per week and per month."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("from/to: a timestamp with a zone is needed", field="from")
    if end <= start:
        raise InvalidInput("to: must be after from", field="to")
    effective_end = min(end, now)
    if effective_end <= start:
        raise InvalidInput("from: the period has not started yet", field="from")
    if effective_end - start > MAX_PERIOD:
        raise InvalidInput("from: a period of at most 3 years", field="from")
    scope = Scope(site_id, asset_type, asset_id)
    wk, mo = weeks(start, effective_end), months(start, effective_end)
    figs = _figures(session, periods=[(start, effective_end), *wk, *mo], scope=scope)
    total = figs[0]
    per_asset = [
        {"asset_id": a["asset_id"], "asset_code": a["asset_code"], "failures": a["failures"],
         "downtime_hours": hours(a["downtime_s"]), "operating_hours": hours(a["operating_s"]),
         "mtbf_hours": hours(a["operating_s"] / a["failures"]) if a["failures"] else None,
         "availability_pct": percent(a["operating_s"], a["period_s"])}
        for a in total.pop("_assets")
    ]
    for f in figs[1:]:
        f.pop("_assets")
    backlog = {p: dict.fromkeys(AGE_BUCKETS, 0) for p in (1, 2, 3)}
    params = {"site_id": site_id, "asset_type": asset_type, "asset_id": asset_id, "at": effective_end,
              "starts": [], "ends": []}
    for priority, bucket, n in session.execute(text(_BACKLOG), params):
        backlog[priority][bucket] = n
    by_failures = sorted(per_asset, key=lambda a: (-a["failures"], -(a["downtime_hours"] or 0), a["asset_code"]))
    by_downtime = sorted(per_asset, key=lambda a: (-(a["downtime_hours"] or 0), -a["failures"], a["asset_code"]))
    return {
        **total, "from": start, "to": end, "effective_to": effective_end,
        "period_hours": hours((effective_end - start).total_seconds()),
        "scope": {"site_id": site_id, "asset_type": asset_type, "asset_id": asset_id},
        "assets": per_asset,
        "top_by_failures": [a for a in by_failures if a["failures"]][:TOP],
        "top_by_downtime": [a for a in by_downtime if a["downtime_hours"]][:TOP],
        "backlog": {"by_priority": {str(p): b for p, b in backlog.items()},
                    "total": sum(sum(b.values()) for b in backlog.values())},
        "weekly": figs[1:1 + len(wk)],
        "monthly": figs[1 + len(wk):],
    }
