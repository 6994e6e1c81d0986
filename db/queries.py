"""The read side shared by the API and the dashboard: set-based queries, no writes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, func, select, text, true
from sqlalchemy.orm import Session

from db.errors import NotFound
from db.models import PRIORITY_BY_SEVERITY, Alert, AlertStatus, Asset, Metric, Policy, Site, Telemetry, WorkOrder

LIVE = (AlertStatus.OPEN.value, AlertStatus.ACK.value)


def list_sites(session: Session) -> list[dict]:
    """Every site with its asset count and live (open or ack) alerts by severity."""
    n_assets = select(func.count()).where(Asset.site_id == Site.id).scalar_subquery()
    counts = (
        select(Asset.site_id, Alert.severity, func.count().label("n"))
        .join(Alert, Alert.asset_id == Asset.id)
        .where(Alert.status.in_(LIVE))
        .group_by(Asset.site_id, Alert.severity)
    )
    by_site: dict[int, dict[str, int]] = {}
    for site_id, severity, n in session.execute(counts):
        by_site.setdefault(site_id, {})[severity] = n
    rows = session.execute(select(Site, n_assets.label("assets")).order_by(Site.code)).all()
    return [
        {
            "id": s.id,
            "code": s.code,
            "name": s.name,
            "city": s.city,
            "latitude": s.latitude,
            "longitude": s.longitude,
            "assets": n,
            "open_alerts": {sev: by_site.get(s.id, {}).get(sev, 0) for sev in ("high", "medium", "low")},
        }
        for s, n in rows
    ]


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


def last_values(session: Session, *, asset_ids: list[int]) -> dict[int, dict[str, tuple[datetime, float]]]:
    """The latest value of every metric of the given assets (one index probe per pair)."""
    if not asset_ids:
        return {}
    latest = (
        select(Telemetry.ts, Telemetry.value)
        .where(Telemetry.asset_id == Asset.id, Telemetry.metric_id == Metric.id)
        .order_by(Telemetry.ts.desc())
        .limit(1)
        .lateral()
    )
    q = (
        select(Asset.id, Metric.name, latest.c.ts, latest.c.value)
        .join(Metric, Metric.asset_types.any(Asset.type))
        .join(latest, true())
        .where(Asset.id.in_(asset_ids))
    )
    out: dict[int, dict[str, tuple[datetime, float]]] = {}
    for aid, name, ts, value in session.execute(q):
        out.setdefault(aid, {})[name] = (ts, value)
    return out


def list_assets(session: Session, *, site_id: int) -> list[dict]:
    """The assets of a site with their last values."""
    site = get_site(session, site_id=site_id)
    assets = session.scalars(select(Asset).where(Asset.site_id == site_id).order_by(Asset.code)).all()
    values = last_values(session, asset_ids=[a.id for a in assets])
    out = []
    for a in assets:
        v = values.get(a.id, {})
        out.append(
            {
                "id": a.id,
                "code": a.code,
                "name": a.name,
                "type": a.type,
                "site_id": site.id,
                "site_code": site.code,
                "last_seen": max((ts for ts, _ in v.values()), default=None),
                "last_values": {name: val for name, (_, val) in sorted(v.items())},
            }
        )
    return out


def metrics_of_type(session: Session, *, asset_type: str) -> list[Metric]:
    """The catalog entries an asset type reports."""
    return list(session.scalars(select(Metric).where(Metric.asset_types.any(asset_type)).order_by(Metric.id)))


def metric_series(
    session: Session, *, asset_id: int, start: datetime, end: datetime, metrics: list[str] | None = None
) -> dict:
    """Raw points of an asset's metrics in [start, end], oldest first."""
    asset = get_asset(session, asset_id=asset_id)
    catalog = {m.name: m for m in metrics_of_type(session, asset_type=asset.type)}
    if metrics:
        unknown = [m for m in metrics if m not in catalog]
        if unknown:
            raise NotFound(f"unknown metric {unknown[0]!r} for asset type {asset.type}", field="metric")
        catalog = {name: catalog[name] for name in metrics}
    series = {name: [] for name in catalog}
    by_id = {m.id: m.name for m in catalog.values()}
    q = (
        select(Telemetry.metric_id, Telemetry.ts, Telemetry.value)
        .where(
            Telemetry.asset_id == asset_id,
            Telemetry.metric_id.in_(list(by_id)),
            Telemetry.ts >= start,
            Telemetry.ts <= end,
        )
        .order_by(Telemetry.metric_id, Telemetry.ts)
    )
    for mid, ts, value in session.execute(q):
        series[by_id[mid]].append({"ts": ts, "value": value})
    return {
        "asset_id": asset.id,
        "asset_code": asset.code,
        "start": start,
        "end": end,
        "series": [{"metric": n, "unit": catalog[n].unit, "points": pts} for n, pts in series.items()],
    }


def _alerts_query() -> Select:
    return (
        select(
            Alert,
            Asset.code.label("asset_code"),
            Site.code.label("site_code"),
            Policy.code.label("policy_code"),
            Policy.title.label("title"),
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
        .where(Alert.status.in_([AlertStatus.OPEN.value, AlertStatus.ACK.value]))
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
        select(WorkOrder, Asset.code.label("asset_code"), Site.code.label("site_code"))
        .join(Asset, Asset.id == WorkOrder.asset_id)
        .join(Site, Site.id == Asset.site_id)
    )


def _workorder_dict(row) -> dict:
    w: WorkOrder = row[0]
    return {
        "id": w.id,
        "alert_id": w.alert_id,
        "asset_id": w.asset_id,
        "asset_code": row.asset_code,
        "site_code": row.site_code,
        "title": w.title,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "closed_at": w.closed_at,
        "status": w.status,
        "priority": w.priority,
        "assigned_to": w.assigned_to,
        "notes": w.notes,
        "external_ref": w.external_ref,
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
    with min / avg / max, in one SQL statement. Up to 2 days: from raw readings (a 1-hour range
    stays raw at 10 s); longer: whole-hour buckets from the hourly roll-up, plus the raw readings
    of the hours not rolled up yet."""
    span = max((end - start).total_seconds(), 1.0)
    if span <= 2 * 86400:
        bucket_s = max(10, int(span // max_buckets) + 1)
        sql = (
            "SELECT m.name, date_bin(make_interval(secs => :bucket), t.ts, :origin) AS bucket, "
            "avg(t.value), min(t.value), max(t.value), count(*) "
            "FROM telemetry t JOIN metrics m ON m.id = t.metric_id "
            "WHERE t.asset_id = :asset_id AND t.ts >= :start AND t.ts <= :end "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
    else:
        bucket_s = 3600 * (int(span // (max_buckets * 3600)) + 1)
        sql = (
            "WITH cut AS (SELECT coalesce(max(hour) + interval '1 hour', :start) AS ts "
            "             FROM telemetry_hourly WHERE asset_id = :asset_id AND hour >= :start), "
            "hours AS (SELECT metric_id, hour AS ts, n, total, min, max FROM telemetry_hourly, cut "
            "          WHERE asset_id = :asset_id AND hour >= :start AND hour < cut.ts "
            "          UNION ALL "
            "          SELECT metric_id, date_trunc('hour', t.ts), count(*), sum(value), min(value), max(value) "
            "          FROM telemetry t, cut WHERE t.asset_id = :asset_id AND t.ts >= cut.ts AND t.ts <= :end "
            "          GROUP BY 1, 2) "
            "SELECT m.name, date_bin(make_interval(secs => :bucket), h.ts, :origin) AS bucket, "
            "sum(h.total) / sum(h.n), min(h.min), max(h.max), sum(h.n)::int "
            "FROM hours h JOIN metrics m ON m.id = h.metric_id GROUP BY 1, 2 ORDER BY 1, 2"
        )
    origin = start.replace(minute=0, second=0, microsecond=0) if span > 2 * 86400 else start
    rows = session.execute(
        text(sql), {"bucket": bucket_s, "origin": origin, "asset_id": asset_id, "start": start, "end": end}
    )
    return [
        {"metric": name, "ts": ts, "avg": avg, "min": lo, "max": hi, "n": n, "bucket_s": bucket_s}
        for name, ts, avg, lo, hi, n in rows
    ]


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
