"""Per-asset policy overrides: a threshold, a clear threshold or enabled tuned for one asset.
Evaluation reads them in its one statement per policy (engine/evaluate.py); the policy file's
`overrides:` are loaded by `python -m db upgrade` (db/seed.py), these come from the API."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.models import Asset, Metric, Policy, PolicyOverride
from db.queries import get_asset
from engine import audit


def _policy_for(session: Session, *, asset_type: str, code: str) -> Policy:
    policy = session.scalars(select(Policy).where(Policy.code == code)).first()
    if policy is None:
        raise NotFound(f"policy {code!r} not found", field="code")
    if policy.asset_type is not None and policy.asset_type != asset_type:
        raise InvalidInput(f"code: policy {code} applies to {policy.asset_type} assets, not {asset_type}", field="code")
    return policy


def set_override(
    session: Session, *, asset_id: int, code: str, actor: str, now: datetime,
    threshold: float | None = None, clear_threshold: float | None = None, enabled: bool | None = None,
) -> dict:
    """Tune `code` for one asset (None leaves a field as the policy has it); audited."""
    asset = get_asset(session, asset_id=asset_id)
    policy = _policy_for(session, asset_type=asset.type, code=code)
    for name, value in (("threshold", threshold), ("clear_threshold", clear_threshold)):
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"{name}: must be a finite number", field=name)
    if clear_threshold is not None and policy.clear_condition is None:
        raise InvalidInput(f"clear_threshold: policy {code} has no clear condition", field="clear_threshold")
    before = session.get(PolicyOverride, (asset_id, policy.id))
    values = {"threshold": threshold, "clear_threshold": clear_threshold, "enabled": enabled}
    stmt = insert(PolicyOverride).values(asset_id=asset_id, policy_id=policy.id, source="api", updated_by=actor,
                                         updated_at=now, **values)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["asset_id", "policy_id"],
        set_={**values, "source": "api", "updated_by": actor, "updated_at": now}))
    old = {k: getattr(before, k) for k in values} if before is not None else None
    audit.record(session, entity="policy", entity_id=policy.id, actor=actor, action="override",
                 from_value=str(old) if old else None, to_value=str(values), now=now,
                 details={"asset_id": asset_id, "asset_code": asset.code, "policy": code})
    session.expire_all()
    return next(p for p in effective_policies(session, asset_id=asset_id) if p["code"] == code)


def effective_policies(session: Session, *, asset_id: int) -> list[dict]:
    """Every policy that applies to the asset, with its thresholds as evaluated for it."""
    asset = get_asset(session, asset_id=asset_id)
    rows = session.execute(
        select(Policy, Metric.name, Metric.unit, PolicyOverride)
        .outerjoin(Metric, Metric.id == Policy.metric_id)
        .outerjoin(PolicyOverride, (PolicyOverride.policy_id == Policy.id) & (PolicyOverride.asset_id == asset_id))
        .where((Policy.asset_type.is_(None)) | (Policy.asset_type == asset.type))
        .order_by(Policy.code)
    ).all()
    out = []
    for p, metric, unit, o in rows:
        out.append({
            "code": p.code, "title": p.title, "title_en": p.title_en or p.title, "rule_type": p.rule_type,
            "metric": metric, "unit": unit, "aggregation": p.aggregation, "condition": p.condition,
            "threshold": o.threshold if o is not None and o.threshold is not None else p.threshold,
            "clear_condition": p.clear_condition,
            "clear_threshold": o.clear_threshold if o is not None and o.clear_threshold is not None else p.clear_threshold,
            "enabled": p.enabled and (o.enabled if o is not None and o.enabled is not None else True),
            "window_minutes": p.window_minutes, "consecutive_points": p.consecutive_points,
            "for_minutes": p.for_minutes, "severity": p.severity,
            "policy_threshold": p.threshold, "policy_clear_threshold": p.clear_threshold,
            "override": None if o is None else {
                "threshold": o.threshold, "clear_threshold": o.clear_threshold, "enabled": o.enabled,
                "source": o.source, "updated_by": o.updated_by, "updated_at": o.updated_at},
        })
    return out


def list_policies(session: Session) -> list[dict]:
    """Every policy with its parameters and how many assets override it."""
    overrides: dict[int, list] = {}
    codes: dict[int, str] = {}
    for o, asset_code in session.execute(
        select(PolicyOverride, Asset.code).join(Asset, Asset.id == PolicyOverride.asset_id).order_by(Asset.code)
    ):
        overrides.setdefault(o.policy_id, []).append(o)
        codes[o.asset_id] = asset_code
    names = dict(session.execute(select(Metric.id, Metric.name)).all())
    out = []
    for p, metric, unit in session.execute(
        select(Policy, Metric.name, Metric.unit).outerjoin(Metric, Metric.id == Policy.metric_id).order_by(Policy.code)
    ):
        out.append({
            "code": p.code, "title": p.title, "title_en": p.title_en or p.title, "description": p.description,
            "description_en": p.description_en or p.description, "asset_type": p.asset_type, "metric": metric,
            "metrics": [metric] if metric else sorted(names[i] for i in p.metric_ids or []),
            "unit": unit, "rule_type": p.rule_type, "aggregation": p.aggregation, "condition": p.condition,
            "threshold": p.threshold, "clear_condition": p.clear_condition, "clear_threshold": p.clear_threshold,
            "window_minutes": p.window_minutes, "consecutive_points": p.consecutive_points,
            "min_points": p.min_points, "for_minutes": p.for_minutes, "severity": p.severity,
            "enabled": p.enabled, "auto_work_order": p.auto_work_order,
            "overrides": [{"asset_id": o.asset_id, "asset_code": codes.get(o.asset_id), "threshold": o.threshold,
                           "clear_threshold": o.clear_threshold, "enabled": o.enabled, "source": o.source}
                          for o in overrides.get(p.id, [])],
        })
    return out
