"""The read side shared by the API and the dashboard: set-based queries, no writes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, and_, case, func, select, text, true
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.models import (
    PRIORITY_BY_SEVERITY,
    Alert,
    AlertStatus,
    Asset,
    Metric,
    Policy,
    Severity,
    Site,
    Telemetry,
    WorkOrder,
    WorkOrderStatus,
)
def get_site(session: Session, *, site_id: int) -> Site:
    """One site, or NotFound."""
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"site {site_id} not found", field="site_id")
    return site


def get_asset(session: Session, *, asset_id: int) -> Asset:
    """One asset, or NotFound."""
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise NotFound(f"asset {asset_id} not found", field="asset_id")
    return asset


# --- the status read model (PRODUCT.md §Asset status): SQL does the counting --------------------

NEAR_MARGIN = 0.10  # "watch": the last evaluated value within 10 % of its threshold, on the firing side
SEVERITIES = tuple(s.value for s in sorted(Severity, key=lambda s: PRIORITY_BY_SEVERITY[s]))  # high first
ASSET_STATUSES = ("ok", "watch", "alert", "no_data")

# A policy's last value near its threshold without satisfying it (e: policy_evaluations, p: policies).
_NEAR = """coalesce(CASE p.condition
    WHEN '>'  THEN e.value <= p.threshold AND e.value >= p.threshold - abs(p.threshold) * :margin
    WHEN '>=' THEN e.value <  p.threshold AND e.value >= p.threshold - abs(p.threshold) * :margin
    WHEN '<'  THEN e.value >= p.threshold AND e.value <= p.threshold + abs(p.threshold) * :margin
    WHEN '<=' THEN e.value >  p.threshold AND e.value <= p.threshold + abs(p.threshold) * :margin
    END, false)"""

# One row per asset (of one site, or all with :site_id NULL): last reading, live alerts by
# severity, near a threshold, and its status — alert: a live medium/high alert; no_data: nothing
# for more than 3 x the cadence, or a live no_data alert (N1: one of its sensors silent); watch: only low alerts, or near a threshold; ok otherwise.
_ASSET_STATUS = f"""
WITH scope AS (
    SELECT a.* FROM assets a WHERE CAST(:site_id AS integer) IS NULL OR a.site_id = :site_id),
seen AS (
    SELECT a.id AS asset_id, max(l.ts) AS last_seen
    FROM scope a JOIN metrics m ON a.type = ANY(m.asset_types)
    CROSS JOIN LATERAL (SELECT t.ts FROM telemetry t WHERE t.asset_id = a.id AND t.metric_id = m.id
                        ORDER BY t.ts DESC LIMIT 1) l
    GROUP BY a.id),
live AS (
    SELECT x.asset_id, {", ".join(f"count(*) FILTER (WHERE x.severity = '{s}') AS {s}" for s in SEVERITIES)},
           bool_or(p.rule_type = 'no_data') AS silent
    FROM alerts x JOIN policies p ON p.id = x.policy_id WHERE x.status = ANY(:live) GROUP BY x.asset_id),
near AS (
    SELECT e.asset_id, bool_or({_NEAR}) AS near
    FROM policy_evaluations e JOIN policies p ON p.id = e.policy_id WHERE p.enabled GROUP BY e.asset_id),
status AS (
    SELECT a.id, a.code, a.name, a.type, a.site_id, s.code AS site_code, s.name AS site_name, seen.last_seen,
           {", ".join(f"coalesce(live.{s}, 0) AS {s}" for s in SEVERITIES)},
           CASE WHEN coalesce(live.high, 0) + coalesce(live.medium, 0) > 0 THEN 'alert'
                WHEN seen.last_seen IS NULL
                  OR seen.last_seen < :now - make_interval(secs => 3 * a.expected_cadence_s)
                  OR coalesce(live.silent, false) THEN 'no_data'
                WHEN coalesce(live.low, 0) > 0 OR coalesce(near.near, false) THEN 'watch'
                ELSE 'ok' END AS status
    FROM scope a JOIN sites s ON s.id = a.site_id
    LEFT JOIN seen ON seen.asset_id = a.id LEFT JOIN live ON live.asset_id = a.id
    LEFT JOIN near ON near.asset_id = a.id)
"""


def _status_params(now: datetime, site_id: int | None) -> dict:
    return {"now": now, "site_id": site_id, "live": list(AlertStatus.LIVE), "margin": NEAR_MARGIN}


def last_values(session: Session, *, asset_ids: list[int]) -> dict[int, dict[str, float]]:
    """The latest value of every metric of the given assets (one index probe per pair)."""
    if not asset_ids:
        return {}
    latest = (
        select(Telemetry.value)
        .where(Telemetry.asset_id == Asset.id, Telemetry.metric_id == Metric.id)
        .order_by(Telemetry.ts.desc())
        .limit(1)
        .lateral()
    )
    q = (
        select(Asset.id, Metric.name, latest.c.value)
        .join(Metric, Metric.asset_types.any(Asset.type))
        .join(latest, true())
        .where(Asset.id.in_(asset_ids))
        .order_by(Asset.id, Metric.name)
    )
    out: dict[int, dict[str, float]] = {}
    for aid, name, value in session.execute(q):
        out.setdefault(aid, {})[name] = value
    return out


def policy_evaluations(session: Session, *, asset_ids: list[int]) -> dict[int, list[dict]]:
    """The last evaluation of every enabled policy of the given assets: value against threshold,
    firing, near (the same test as the status)."""
    if not asset_ids:
        return {}
    rows = session.execute(text(
        "SELECT e.asset_id, p.code, p.title, p.description, p.title_en, p.description_en, m.name, m.unit, "
        f"p.rule_type, p.condition, p.threshold, e.value, e.points, e.evaluated_at, e.firing, {_NEAR} AS near "
        "FROM policy_evaluations e JOIN policies p ON p.id = e.policy_id LEFT JOIN metrics m ON m.id = p.metric_id "
        "WHERE e.asset_id = ANY(:ids) AND p.enabled ORDER BY e.asset_id, p.code"
    ), {"ids": asset_ids, "margin": NEAR_MARGIN})
    out: dict[int, list[dict]] = {}
    for (aid, code, title, description, title_en, description_en, metric, unit, rule_type, condition, threshold,
         value, points, at, firing, near) in rows:
        out.setdefault(aid, []).append(
            {"policy_code": code, "title": title, "title_en": title_en or title, "description": description,
             "description_en": description_en or description, "metric": metric, "unit": unit,
             "rule_type": rule_type, "condition": condition, "threshold": threshold, "value": value,
             "points": points, "evaluated_at": at, "firing": firing, "near": near})
    return out


def asset_statuses(session: Session, *, now: datetime, site_id: int | None = None) -> list[dict]:
    """Every asset (of a site) with its status, last values, live alerts and policy evaluations."""
    rows = session.execute(text(_ASSET_STATUS + "SELECT * FROM status ORDER BY site_code, code"),
                           _status_params(now, site_id)).mappings().all()
    ids = [r["id"] for r in rows]
    values = last_values(session, asset_ids=ids)
    evaluations = policy_evaluations(session, asset_ids=ids)
    return [
        {"id": r["id"], "code": r["code"], "name": r["name"], "type": r["type"], "site_id": r["site_id"],
         "site_code": r["site_code"], "site_name": r["site_name"], "status": r["status"],
         "last_seen": r["last_seen"], "last_values": values.get(r["id"], {}),
         "evaluations": evaluations.get(r["id"], []), "live_alerts": sum(r[s] for s in SEVERITIES),
         "live_alerts_by_severity": {s: r[s] for s in SEVERITIES}}
        for r in rows
    ]


def site_rollup(session: Session, *, now: datetime) -> list[dict]:
    """Per site: live alerts by severity, assets by status, open work orders; at-risk sites first."""
    severities = ", ".join(f"coalesce(sum(st.{s}), 0)::int AS {s}" for s in SEVERITIES)
    statuses = ", ".join(f"count(st.id) FILTER (WHERE st.status = '{s}') AS {s}" for s in ASSET_STATUSES)
    sql = _ASSET_STATUS + f"""
    SELECT s.id, s.code, s.name, s.city, s.latitude, s.longitude, count(st.id) AS assets, {severities}, {statuses},
           (SELECT count(*) FROM work_orders w JOIN assets a ON a.id = w.asset_id
            WHERE a.site_id = s.id AND w.status = ANY(:active)) AS open_work_orders,
           max(st.last_seen) AS last_seen
    FROM sites s LEFT JOIN status st ON st.site_id = s.id
    GROUP BY s.id
    ORDER BY coalesce(sum(st.high), 0) + coalesce(sum(st.medium), 0) = 0, high DESC, medium DESC, low DESC, s.code"""
    rows = session.execute(text(sql), {**_status_params(now, None), "active": list(WorkOrderStatus.ACTIVE)})
    return [
        {"id": r["id"], "code": r["code"], "name": r["name"], "city": r["city"], "latitude": r["latitude"],
         "longitude": r["longitude"], "assets": r["assets"], "open_alerts": {s: r[s] for s in SEVERITIES},
         "assets_by_status": {s: r[s] for s in ASSET_STATUSES}, "open_work_orders": r["open_work_orders"],
         "at_risk": r["high"] + r["medium"] > 0, "last_seen": r["last_seen"]}
        for r in rows.mappings()
    ]


def metrics_of_type(session: Session, *, asset_type: str) -> list[Metric]:
    """The catalog entries an asset type reports."""
    return list(session.scalars(select(Metric).where(Metric.asset_types.any(asset_type)).order_by(Metric.id)))


STEP = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d)$")
STEP_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
AUTO_STEPS = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
AUTO_BUCKETS = 1000  # automatic step: the smallest giving at most this many buckets per metric
MAX_BUCKETS = 10_000  # an explicit step giving more buckets per metric is refused
MAX_RANGE = timedelta(days=366)
EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday, midnight UTC: buckets align on UTC hours, days, weeks


def parse_step(step: str) -> int:
    """'1h' → 3600; InvalidInput naming `step` otherwise."""
    m = STEP.match(step.strip())
    if not m:
        raise InvalidInput("step: expected a number and a unit s, m, h or d (e.g. 10s, 15m, 1h, 1d)", field="step")
    return int(m.group(1)) * STEP_UNITS[m.group(2)]


def step_label(step_s: int) -> str:
    for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
        if step_s % secs == 0:
            return f"{step_s // secs}{unit}"
    return f"{step_s}s"


def auto_step(start: datetime, end: datetime) -> int:
    """The smallest step of the ladder giving at most AUTO_BUCKETS buckets over [start, end]."""
    span = (end - start).total_seconds()
    return next((s for s in AUTO_STEPS if span / s <= AUTO_BUCKETS), AUTO_STEPS[-1])


def _asset_catalog(session: Session, *, asset_id: int, metrics: list[str] | None) -> tuple[Asset, dict[str, Metric]]:
    asset = get_asset(session, asset_id=asset_id)
    catalog = {m.name: m for m in metrics_of_type(session, asset_type=asset.type)}
    if metrics:
        unknown = [m for m in metrics if m not in catalog]
        if unknown:
            raise NotFound(f"unknown metric {unknown[0]!r} for asset type {asset.type}", field="metric")
        catalog = {name: catalog[name] for name in metrics}
    return asset, catalog


# Raw readings of some metrics of one asset, through readings() (hot and cold tiers alike).
_RAW = ("SELECT r.metric_id, r.ts, r.value FROM unnest(CAST(:mids AS int[])) m(id) "
        "CROSS JOIN LATERAL readings(:aid, m.id, :start, :end) r")


def count_readings(session: Session, *, asset_id: int, metric_ids: list[int], start: datetime, end: datetime,
                   limit: int) -> int:
    """How many readings [start, end] holds, counting no further than `limit` (cheap for any range)."""
    return session.execute(text(f"SELECT count(*) FROM ({_RAW} LIMIT :lim) x"), {
        "mids": metric_ids, "aid": asset_id, "start": start, "end": end, "lim": limit}).scalar()


def bucketed_readings(
    session: Session, *, asset_id: int, metric_ids: list[int], start: datetime, end: datetime, step_s: int,
    origin: datetime = EPOCH, use_rollup: bool = True,
) -> list[tuple]:
    """(metric_id, bucket start, min, avg, max, count) of the readings in [start, end], one row per
    non-empty bucket, in one statement. With a step of whole hours, the hours inside the range that
    are rolled up come from telemetry_hourly (a year: 8,760 rows per metric), the partial hours at
    the edges and the hours not rolled up yet from raw readings: the same figures either way."""
    from engine.rollup import rolled_until

    def _ceil_hour(t: datetime) -> datetime:
        h = t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return h if h == t else h + timedelta(hours=1)

    h0 = _ceil_hour(start)
    watermark = rolled_until(session) if use_rollup and step_s % 3600 == 0 else None
    h1 = max(h0, min(end.astimezone(UTC).replace(minute=0, second=0, microsecond=0), watermark)) if watermark else h0
    sql = (
        "WITH pts AS ("
        "  SELECT h.metric_id, h.hour AS ts, h.n, h.total, h.min, h.max FROM telemetry_hourly h "
        "  WHERE h.asset_id = :aid AND h.metric_id = ANY(CAST(:mids AS int[])) AND h.hour >= :h0 AND h.hour < :h1 "
        "  UNION ALL "
        "  SELECT r.metric_id, r.ts, 1, r.value, r.value, r.value FROM unnest(CAST(:mids AS int[])) m(id) "
        "  CROSS JOIN LATERAL readings(:aid, m.id, :start, :h0) r WHERE r.ts < :h0 "
        "  UNION ALL "
        "  SELECT r.metric_id, r.ts, 1, r.value, r.value, r.value FROM unnest(CAST(:mids AS int[])) m(id) "
        "  CROSS JOIN LATERAL readings(:aid, m.id, :h1, :end) r) "
        "SELECT metric_id, date_bin(make_interval(secs => :step), ts, :origin) AS bucket, min(min), "
        "       sum(total) / sum(n), max(max), sum(n)::int "
        "FROM pts GROUP BY 1, 2 ORDER BY 1, 2"
    )
    if h0 > end:  # a range inside one hour
        h0 = h1 = end
    return session.execute(text(sql), {
        "aid": asset_id, "mids": metric_ids, "start": start, "end": end, "h0": h0, "h1": h1, "step": step_s,
        "origin": origin}).all()


def metric_series(
    session: Session, *, asset_id: int, start: datetime, end: datetime, metrics: list[str] | None = None,
    step_s: int | None = None, max_points: int = 100_000,
) -> dict:
    """An asset's metrics in [start, end], oldest first, from both tiers: every raw reading when
    there are at most `max_points` and no `step_s` is asked; otherwise min/avg/max/count buckets
    of `step_s` seconds (automatic when not given). The answer says which (`resolution`)."""
    if end - start > MAX_RANGE:
        raise InvalidInput("from: the range is limited to 1 year (366 days)", field="from")
    asset, catalog = _asset_catalog(session, asset_id=asset_id, metrics=metrics)
    by_id = {m.id: m.name for m in catalog.values()}
    series = {name: {"metric": name, "unit": catalog[name].unit, "points": [], "buckets": []} for name in catalog}
    mids = list(by_id)
    if step_s is None and count_readings(session, asset_id=asset_id, metric_ids=mids, start=start, end=end,
                                         limit=max_points + 1) <= max_points:
        rows = session.execute(text(f"{_RAW} ORDER BY 1, 2"),
                               {"mids": mids, "aid": asset_id, "start": start, "end": end})
        for mid, ts, value in rows:
            series[by_id[mid]]["points"].append({"ts": ts, "value": value})
        resolution = "raw"
    else:
        step_s = step_s or auto_step(start, end)
        if (end - start).total_seconds() / step_s > MAX_BUCKETS:
            raise InvalidInput(f"step: {step_label(step_s)} gives more than {MAX_BUCKETS:,} buckets over this range; "
                               "choose a larger step", field="step")
        for mid, ts, lo, avg, hi, n in bucketed_readings(session, asset_id=asset_id, metric_ids=mids, start=start,
                                                         end=end, step_s=step_s):
            series[by_id[mid]]["buckets"].append({"ts": ts, "min": lo, "avg": avg, "max": hi, "count": n})
        resolution = "step"
    return {
        "asset_id": asset.id,
        "asset_code": asset.code,
        "start": start,
        "end": end,
        "resolution": resolution,
        "step": step_label(step_s) if resolution == "step" else None,
        "step_s": step_s if resolution == "step" else None,
        "series": list(series.values()),
    }


def _alerts_query() -> Select:
    return (
        select(
            Alert,
            Asset.code.label("asset_code"),
            Site.code.label("site_code"),
            Policy.code.label("policy_code"),
            Policy.title.label("title"),
            Policy.title_en.label("title_en"),
            func.count().over().label("total"),  # before LIMIT: how many match in all
        )
        .join(Asset, Asset.id == Alert.asset_id)
        .join(Site, Site.id == Asset.site_id)
        .join(Policy, Policy.id == Alert.policy_id)
    )


def _alert_dict(row) -> dict:
    a: Alert = row[0]
    return {
        "id": a.id,
        "asset_id": a.asset_id,
        "asset_code": row.asset_code,
        "site_code": row.site_code,
        "policy_code": row.policy_code,
        "title": row.title,
        "title_en": row.title_en or row.title,
        "total": row.total,
        "created_at": a.created_at,
        "severity": a.severity,
        "status": a.status,
        "message": a.message,
        "message_fr": a.message_fr or a.message,  # alerts older than the French message: English
        "observed_value": a.observed_value,
        "acked_by": a.acked_by,
        "acked_at": a.acked_at,
        "closed_by": a.closed_by,
        "closed_at": a.closed_at,
        "resolution": a.resolution,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "peak": a.peak,
    }


def list_alerts(
    session: Session,
    *,
    status: list[str] | None = None,
    severity: list[str] | None = None,
    site_id: int | None = None,
    asset_id: int | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[dict]:
    """Alerts, newest first, filtered."""
    q = _alerts_query()
    conds = []
    if status:
        conds.append(Alert.status.in_(status))
    if severity:
        conds.append(Alert.severity.in_(severity))
    if site_id is not None:
        conds.append(Asset.site_id == site_id)
    if asset_id is not None:
        conds.append(Alert.asset_id == asset_id)
    if since is not None:
        conds.append(Alert.created_at >= since)
    if conds:
        q = q.where(and_(*conds))
    rows = session.execute(q.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)).all()
    return [_alert_dict(r) for r in rows]


def alerts_to_handle(session: Session, *, site_id: int | None = None, limit: int = 10) -> list[dict]:
    """The live (open or ack) alerts in the order to handle them: high severity first, then the
    one waiting longest; each with its work order's number, status and assignee."""
    rank = case({sev.value: n for sev, n in PRIORITY_BY_SEVERITY.items()}, value=Alert.severity, else_=9)
    q = (
        _alerts_query()
        .add_columns(WorkOrder.id.label("wo_id"), WorkOrder.status.label("wo_status"),
                     WorkOrder.assigned_to.label("wo_assigned_to"))
        .outerjoin(WorkOrder, WorkOrder.alert_id == Alert.id)
        .where(Alert.status.in_(AlertStatus.LIVE))
    )
    if site_id is not None:
        q = q.where(Asset.site_id == site_id)
    rows = session.execute(q.order_by(rank, Alert.created_at, Alert.id).limit(limit)).all()
    return [{**_alert_dict(r), "work_order_id": r.wo_id, "work_order_status": r.wo_status,
             "assigned_to": r.wo_assigned_to} for r in rows]


def get_alert_row(session: Session, *, alert_id: int) -> dict:
    """One alert with its asset, site and policy codes, or NotFound."""
    row = session.execute(_alerts_query().where(Alert.id == alert_id)).first()
    if row is None:
        raise NotFound(f"alert {alert_id} not found", field="alert_id")
    return _alert_dict(row)


def _workorders_query() -> Select:
    return (
        select(WorkOrder, Asset.code.label("asset_code"), Asset.type.label("asset_type"),
               Site.code.label("site_code"), Site.name.label("site_name"), Site.address.label("site_address"),
               Policy.title_en.label("policy_title_en"), Alert.status.label("alert_status"),
               func.count().over().label("total"))
        .join(Asset, Asset.id == WorkOrder.asset_id)
        .join(Site, Site.id == Asset.site_id)
        .outerjoin(Alert, Alert.id == WorkOrder.alert_id)
        .outerjoin(Policy, Policy.id == Alert.policy_id)
    )


def _workorder_dict(row) -> dict:
    w: WorkOrder = row[0]
    return {
        "id": w.id,
        "alert_id": w.alert_id,
        "asset_id": w.asset_id,
        "asset_code": row.asset_code,
        "asset_type": row.asset_type,
        "site_code": row.site_code,
        "site_name": row.site_name,
        "site_address": row.site_address,
        "title": w.title,
        # the stored title is French (the policy's title — asset); English from the policy's
        "title_en": f"{row.policy_title_en} — {row.asset_code}" if row.policy_title_en else w.title,
        "total": row.total,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "closed_at": w.closed_at,
        "status": w.status,
        "priority": w.priority,
        "assigned_to": w.assigned_to,
        "notes": w.notes,
        "external_ref": w.external_ref,
        "alert_status": row.alert_status,
    }


def list_workorders(
    session: Session,
    *,
    status: list[str] | None = None,
    site_id: int | None = None,
    asset_id: int | None = None,
    assigned_to: str | None = None,
    limit: int = 500,
) -> list[dict]:
    """Work orders, by priority then newest first, filtered; `assigned_to` matches the assignee
    case-insensitively, "" the unassigned ones."""
    q = _workorders_query()
    if assigned_to is not None:
        who = assigned_to.strip()
        q = q.where(WorkOrder.assigned_to.is_(None) if not who else func.lower(WorkOrder.assigned_to) == who.lower())
    if status:
        q = q.where(WorkOrder.status.in_(status))
    if site_id is not None:
        q = q.where(Asset.site_id == site_id)
    if asset_id is not None:
        q = q.where(WorkOrder.asset_id == asset_id)
    rows = session.execute(q.order_by(WorkOrder.priority, WorkOrder.created_at.desc()).limit(limit)).all()
    return [_workorder_dict(r) for r in rows]


def get_workorder_row(session: Session, *, workorder_id: int) -> dict:
    """One work order with its asset and site codes, or NotFound."""
    row = session.execute(_workorders_query().where(WorkOrder.id == workorder_id)).first()
    if row is None:
        raise NotFound(f"work order {workorder_id} not found", field="workorder_id")
    return _workorder_dict(row)


def downsampled_series(
    session: Session, *, asset_id: int, start: datetime, end: datetime, max_buckets: int = 600
) -> list[dict]:
    """An asset's metrics in [start, end] in at most `max_buckets` time buckets per metric, each
    with min / avg / max, in one SQL statement (the dashboard's charts). Up to 2 days: from raw
    readings (a 1-hour range stays raw at 10 s); longer: whole-hour buckets from the hourly
    roll-up, plus the raw readings of the hours not rolled up yet (`bucketed_readings`)."""
    span = max((end - start).total_seconds(), 1.0)
    if span <= 2 * 86400:
        bucket_s, origin, rollup = max(10, int(span // max_buckets) + 1), start, False
    else:
        bucket_s = 3600 * (int(span // (max_buckets * 3600)) + 1)
        origin, rollup = start.replace(minute=0, second=0, microsecond=0), True
    names = dict(session.execute(select(Metric.id, Metric.name)).all())
    rows = bucketed_readings(session, asset_id=asset_id, metric_ids=list(names), start=start, end=end,
                             step_s=bucket_s, origin=origin, use_rollup=rollup)
    out = [
        {"metric": names[mid], "ts": ts, "avg": avg, "min": lo, "max": hi, "n": n, "bucket_s": bucket_s}
        for mid, ts, lo, avg, hi, n in rows
    ]
    return sorted(out, key=lambda p: (p["metric"], p["ts"]))


def freshness(session: Session, *, now: datetime) -> dict:
    """When the last reading arrived, readings in the last minute, and the last rule run."""
    row = session.execute(
        text(
            "SELECT max(l.ts), coalesce(sum(l.recent), 0) FROM assets a, metrics m, LATERAL ("
            "  SELECT max(t.ts) AS ts, count(*) AS recent FROM telemetry t"
            "  WHERE t.asset_id = a.id AND t.metric_id = m.id AND t.ts > :minute_ago AND t.ts <= :now) l "
            "WHERE a.type = ANY(m.asset_types)"
        ),
        {"minute_ago": now - timedelta(minutes=1), "now": now},
    ).one()
    last = session.execute(text("SELECT max(ts) FROM (SELECT (SELECT max(ts) FROM telemetry t "
                                "WHERE t.asset_id = a.id AND t.metric_id = m.id) AS ts "
                                "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types)) x")).scalar()
    run = session.execute(text("SELECT at, duration_s, fired FROM rule_runs ORDER BY at DESC LIMIT 1")).first()
    return {"last_reading": last, "points_last_minute": int(row[1]),
            "last_rule_run": run[0] if run else None, "last_rule_run_ms": round(run[1] * 1000) if run else None}
