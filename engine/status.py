"""Asset status (ok / watch / alert / no_data, PRODUCT.md §Asset status) and the site roll-up."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Alert, Asset, Metric, Policy, PolicyEvaluation, Site, WorkOrder
from db.queries import LIVE, last_values
from engine.rules import near_threshold

STATUSES = ("alert", "no_data", "watch", "ok")  # most urgent first
SEVERITIES = ("high", "medium", "low")


def derive_status(
    *, now: datetime, last_seen: datetime | None, cadence_s: int, live_severities: set[str], near: bool
) -> str:
    """alert: a live medium/high alert; no_data: nothing for 3 × the cadence; watch: only low
    alerts, or a value within 10 % of a threshold; ok otherwise."""
    if live_severities & {"high", "medium"}:
        return "alert"
    if last_seen is None or now - last_seen > timedelta(seconds=3 * cadence_s):
        return "no_data"
    if live_severities or near:
        return "watch"
    return "ok"


def asset_statuses(session: Session, *, now: datetime, site_id: int | None = None) -> list[dict]:
    """Every asset (of a site) with status, last values, live alerts and policy evaluations."""
    q = select(Asset, Site.code).join(Site, Site.id == Asset.site_id).order_by(Site.code, Asset.code)
    if site_id is not None:
        q = q.where(Asset.site_id == site_id)
    assets = session.execute(q).all()
    ids = [a.id for a, _ in assets]
    values = last_values(session, asset_ids=ids)
    live: dict[int, dict[str, int]] = {}
    for aid, sev, n in session.execute(
        select(Alert.asset_id, Alert.severity, func.count())
        .where(Alert.status.in_(LIVE), Alert.asset_id.in_(ids))
        .group_by(Alert.asset_id, Alert.severity)
    ):
        live.setdefault(aid, {})[sev] = n
    evals: dict[int, list[dict]] = {}
    for e, p, m in session.execute(
        select(PolicyEvaluation, Policy, Metric)
        .join(Policy, Policy.id == PolicyEvaluation.policy_id)
        .join(Metric, Metric.id == Policy.metric_id)
        .where(PolicyEvaluation.asset_id.in_(ids), Policy.enabled)
        .order_by(Policy.code)
    ):
        evals.setdefault(e.asset_id, []).append(
            {"policy_code": p.code, "title": p.title, "metric": m.name, "unit": m.unit, "rule_type": p.rule_type,
             "condition": p.condition, "threshold": p.threshold, "value": e.value, "points": e.points,
             "evaluated_at": e.evaluated_at, "firing": e.firing,
             "near": near_threshold(p.condition, e.value, p.threshold)}
        )
    out = []
    for a, site_code in assets:
        v = values.get(a.id, {})
        last_seen = max((ts for ts, _ in v.values()), default=None)
        ev = evals.get(a.id, [])
        status = derive_status(now=now, last_seen=last_seen, cadence_s=a.expected_cadence_s,
                               live_severities=set(live.get(a.id, {})), near=any(e["near"] for e in ev))
        out.append(
            {"id": a.id, "code": a.code, "name": a.name, "type": a.type, "site_id": a.site_id, "site_code": site_code,
             "status": status, "last_seen": last_seen,
             "last_values": {name: val for name, (_, val) in sorted(v.items())},
             "evaluations": ev, "live_alerts": sum(live.get(a.id, {}).values()),
             "live_alerts_by_severity": {s: live.get(a.id, {}).get(s, 0) for s in SEVERITIES}}
        )
    return out


def site_rollup(session: Session, *, now: datetime) -> list[dict]:
    """Per site: live alerts by severity, assets by status, open work orders; at-risk sites first."""
    statuses = asset_statuses(session, now=now)
    open_wo = dict(
        session.execute(
            select(Asset.site_id, func.count())
            .join(WorkOrder, WorkOrder.asset_id == Asset.id)
            .where(WorkOrder.status != "done")
            .group_by(Asset.site_id)
        ).all()
    )
    out = []
    for site in session.scalars(select(Site).order_by(Site.code)):
        mine = [s for s in statuses if s["site_id"] == site.id]
        alerts = {sev: sum(s["live_alerts_by_severity"][sev] for s in mine) for sev in SEVERITIES}
        by_status = {st: sum(1 for s in mine if s["status"] == st) for st in ("ok", "watch", "alert", "no_data")}
        out.append(
            {"id": site.id, "code": site.code, "name": site.name, "city": site.city,
             "latitude": site.latitude, "longitude": site.longitude, "assets": len(mine),
             "open_alerts": alerts, "assets_by_status": by_status, "open_work_orders": open_wo.get(site.id, 0),
             "at_risk": alerts["high"] + alerts["medium"] > 0 or by_status["alert"] > 0,
             "last_seen": max((s["last_seen"] for s in mine if s["last_seen"]), default=None)}
        )
    out.sort(key=lambda s: (not s["at_risk"], -s["open_alerts"]["high"], -s["open_alerts"]["medium"],
                            -s["open_alerts"]["low"], s["code"]))
    return out
