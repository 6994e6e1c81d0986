"""Evaluate every enabled policy "as of" `now`: one SQL statement per policy over all assets of
its type (index probes on telemetry's (asset_id, metric_id, ts) key, so the cost grows with
assets and windows, not with history), then record the values and raise the alerts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import Metric, Policy, RuleRun
from engine.alerts import raise_alerts
from engine.rules import OPS, PolicyView

# The value each rule type computes per asset; `points` is how many readings it used.
_WINDOW_AGG = """
    SELECT {agg}(t.value) AS value, count(*) AS points FROM telemetry t
    WHERE t.asset_id = a.id AND t.metric_id = :metric_id AND t.ts > :start AND t.ts <= :now
"""
_SQL = {
    "threshold": _WINDOW_AGG,
    # the N most recent readings; the reported value is the one nearest the threshold
    "consecutive": """
        SELECT {agg}(last.value) AS value, count(*) AS points FROM (
            SELECT t.value FROM telemetry t
            WHERE t.asset_id = a.id AND t.metric_id = :metric_id AND t.ts <= :now
            ORDER BY t.ts DESC LIMIT :n
        ) last
    """,
    # latest counter value minus the baseline of the last reset (never reset: 0)
    "runtime": """
        SELECT latest.value - coalesce((
                SELECT r.baseline FROM counter_resets r
                WHERE r.asset_id = a.id AND r.metric_id = :metric_id AND r.reset_at <= :now
                ORDER BY r.reset_at DESC LIMIT 1), 0) AS value,
               1 AS points
        FROM (SELECT t.value FROM telemetry t
              WHERE t.asset_id = a.id AND t.metric_id = :metric_id AND t.ts <= :now
              ORDER BY t.ts DESC LIMIT 1) latest
    """,
    # least-squares slope, in units per hour
    "rate_of_change": """
        SELECT regr_slope(t.value, extract(epoch FROM t.ts)) * 3600 AS value, count(*) AS points
        FROM telemetry t
        WHERE t.asset_id = a.id AND t.metric_id = :metric_id AND t.ts > :start AND t.ts <= :now
    """,
}
_AGG = {"avg": "avg", "min": "min", "max": "max"}


@dataclass
class EvaluationResult:
    policies: int = 0
    assets: int = 0
    fired: list[dict] = field(default_factory=list)
    duration_s: float = 0.0


def load_policies(session: Session, *, codes: list[str] | None = None) -> list[PolicyView]:
    """The enabled policies (optionally only these codes), with their metric."""
    q = select(Policy, Metric.name, Metric.unit, Metric.label_fr).join(Metric, Metric.id == Policy.metric_id).where(Policy.enabled)
    if codes:
        q = q.where(Policy.code.in_(codes))
    return [
        PolicyView(
            id=p.id, code=p.code, asset_type=p.asset_type, metric_id=p.metric_id, metric=name, unit=unit,
            rule_type=p.rule_type, aggregation=p.aggregation, condition=p.condition, threshold=p.threshold,
            window_minutes=p.window_minutes, consecutive_points=p.consecutive_points, severity=p.severity,
            title=p.title, auto_work_order=p.auto_work_order, metric_label_fr=label_fr,
        )
        for p, name, unit, label_fr in session.execute(q.order_by(Policy.code))
    ]


def _per_asset_sql(policy: PolicyView) -> str:
    if policy.rule_type == "consecutive":
        agg = "min" if policy.condition in (">", ">=") else "max"
    else:
        agg = _AGG.get(policy.aggregation or "avg", "avg")
    return _SQL[policy.rule_type].format(agg=agg)


def _params(policy: PolicyView, now: datetime) -> dict:
    params = {"metric_id": policy.metric_id, "asset_type": policy.asset_type, "now": now, "n": policy.min_points,
              "policy_id": policy.id, "threshold": policy.threshold, "min_points": policy.min_points}
    if policy.window_minutes:
        params["start"] = now - timedelta(minutes=policy.window_minutes)
    return params


def record_policy(session: Session, *, policy: PolicyView, now: datetime) -> tuple[int, list[tuple[int, float, int]]]:
    """Evaluate `policy` for every asset of its type and record each value in policy_evaluations,
    in one statement; returns (assets evaluated, the firing (asset_id, value, points))."""
    op = policy.condition if policy.condition in OPS else ">"  # whitelisted operator, never user text
    stmt = text(
        f"WITH e AS (SELECT a.id AS asset_id, v.value, coalesce(v.points, 0) AS points "
        f"           FROM assets a LEFT JOIN LATERAL ({_per_asset_sql(policy)}) v ON true "
        f"           WHERE a.type = :asset_type), "
        f"up AS (INSERT INTO policy_evaluations (asset_id, policy_id, evaluated_at, value, points, firing) "
        # a value computed on fewer points than the rule needs is not reported (a 2-point slope,
        # 3 of 5 consecutive readings): pages would show it against the threshold
        f"       SELECT asset_id, :policy_id, :now, CASE WHEN points >= :min_points THEN value END, points, "
        f"              coalesce(points >= :min_points AND value {op} :threshold, false) FROM e "
        f"       ON CONFLICT (asset_id, policy_id) DO UPDATE SET evaluated_at = excluded.evaluated_at, "
        f"           value = excluded.value, points = excluded.points, firing = excluded.firing "
        f"       RETURNING asset_id, value, points, firing) "
        f"SELECT (SELECT count(*) FROM up), asset_id, value, points FROM up WHERE firing ORDER BY asset_id"
    )
    rows = session.execute(stmt, _params(policy, now)).all()
    if not rows:
        n = session.execute(text("SELECT count(*) FROM assets WHERE type = :t"), {"t": policy.asset_type}).scalar_one()
        return n, []
    return rows[0][0], [(aid, value, points) for _, aid, value, points in rows]


def evaluate_all(
    session: Session, *, now: datetime, policy_codes: list[str] | None = None, source: str = "scheduler"
) -> EvaluationResult:
    """Evaluate the enabled policies as of `now`; record each (asset, policy) value; raise alerts
    (and their work orders) where a policy fires and no open/ack alert exists. Does not commit."""
    started = time.perf_counter()
    result = EvaluationResult()
    assets: dict[str, int] = {}  # asset type -> assets evaluated
    for policy in load_policies(session, codes=policy_codes):
        n, firing = record_policy(session, policy=policy, now=now)
        if not n:
            continue
        result.policies += 1
        assets[policy.asset_type] = n
        if firing:
            result.fired += raise_alerts(session, policy=policy, firing=firing, now=now)
    result.assets = sum(assets.values())
    result.duration_s = time.perf_counter() - started
    session.add(
        RuleRun(at=now, duration_s=result.duration_s, policies=result.policies, assets=result.assets,
                fired=len(result.fired), source=source)
    )
    return result
