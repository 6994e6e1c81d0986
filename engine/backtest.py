"""Backtest: what would a policy (or a tuned copy of it) have fired over stored history?

The same statement as the live engine (engine/evaluate.py `statement`, without recording and
without silences or existing alerts) over every reading of [from, to], and the same state machine
(engine/rules.py `advance`) from an idle state: the firings are the episodes an alert would have
had (start, end when the clear condition held, peak), one alert and — with auto_work_order — one
work order each. no_data, whose live evaluation looks at "now", is replayed from the gaps between
stored readings.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.models import Asset
from engine.evaluate import load_policies, params, segments_of, statement
from engine.rules import PolicyView, State, advance

MAX_RANGE = timedelta(days=366)

_RANGES = (
    "SELECT a.id AS asset_id, m.id AS metric_id, CAST(:start AS timestamptz) AS lo, CAST(:end AS timestamptz) AS hi "
    "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
    "WHERE (CAST(:only_asset AS int) IS NULL OR a.id = :only_asset)"
)

# a metric silent longer than the threshold fires `thr` minutes after its last reading and clears
# at the next one (or is still firing at `end`)
_NO_DATA = """
WITH s AS (
    SELECT a.id AS asset_id, m.id AS metric_id,
           CASE WHEN :force_threshold THEN :threshold ELSE coalesce(o.threshold, :threshold) END AS thr
    FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types)
    LEFT JOIN policy_overrides o ON o.asset_id = a.id AND o.policy_id = :policy_id
    WHERE (CAST(:asset_type AS text) IS NULL OR a.type = :asset_type)
      AND (CAST(:metric_ids AS smallint[]) IS NULL OR m.id = ANY(:metric_ids))
      AND (CAST(:only_asset AS int) IS NULL OR a.id = :only_asset) AND coalesce(o.enabled, true)
),
r AS (
    SELECT s.asset_id, s.thr, t.ts, lead(t.ts) OVER (PARTITION BY s.asset_id, s.metric_id ORDER BY t.ts) AS next_ts
    FROM s JOIN telemetry t ON t.asset_id = s.asset_id AND t.metric_id = s.metric_id
         AND t.ts >= :start AND t.ts <= :end
)
SELECT asset_id, ts + thr * interval '1 minute' AS start, next_ts AS end,
       CAST(extract(epoch FROM coalesce(next_ts, CAST(:end AS timestamptz)) - ts) / 60.0 AS float8) AS peak
FROM r WHERE coalesce(next_ts, CAST(:end AS timestamptz)) - ts >= thr * interval '1 minute'
ORDER BY asset_id, start
"""


def backtest(
    session: Session, *, code: str, start: datetime, end: datetime, threshold: float | None = None,
    clear_threshold: float | None = None, window_minutes: int | None = None, consecutive_points: int | None = None,
    asset_code: str | None = None,
) -> dict:
    """The firings of policy `code` (tuned by the given parameters) over [start, end]."""
    policies = load_policies(session, codes=[code], enabled_only=False)
    if not policies:
        raise NotFound(f"policy {code!r} not found", field="code")
    policy = _tuned(policies[0], threshold=threshold, clear_threshold=clear_threshold,
                    window_minutes=window_minutes, consecutive_points=consecutive_points)
    if end <= start:
        raise InvalidInput("to: must be after from", field="to")
    if end - start > MAX_RANGE:
        raise InvalidInput(f"to: at most {MAX_RANGE.days} days after from", field="to")
    only = None
    if asset_code is not None:
        asset = session.execute(select(Asset.id, Asset.type).where(Asset.code == asset_code)).first()
        if asset is None:
            raise InvalidInput(f"asset_code: unknown asset {asset_code!r}", field="asset_code")
        if policy.asset_type is not None and asset.type != policy.asset_type:
            raise InvalidInput(f"asset_code: {asset_code} is a {asset.type}; policy {code} applies to "
                               f"{policy.asset_type} assets", field="asset_code")
        only = asset.id
    p = params(policy, now=end, live=False, threshold_forced=threshold is not None,
               clear_forced=clear_threshold is not None)
    p.update(start=start, end=end, only_asset=only, until=end)
    if policy.rule_type == "no_data":
        rows = session.execute(text(_NO_DATA), p).all()
        firings = [(r.asset_id, r.start, r.end, r.peak) for r in rows if r.start <= end]
    else:
        session.execute(text("SET LOCAL work_mem = '128MB'"))
        rows = session.execute(text(statement(policy, ranges=_RANGES, record=False)), p).all()
        firings = _replay(policy, rows)
    codes = dict(session.execute(select(Asset.id, Asset.code).where(Asset.id.in_({f[0] for f in firings}))).all())
    out = [{"asset_code": codes[a], "start": s, "end": e, "peak": peak} for a, s, e, peak in firings]
    return {"policy": policy.code, "from": start, "to": end,
            "parameters": {"threshold": policy.threshold, "clear_threshold": policy.clear_threshold,
                           "window_minutes": policy.window_minutes, "consecutive_points": policy.consecutive_points},
            "firings": out, "alerts": len(out), "work_orders": len(out) if policy.auto_work_order else 0}


def _replay(policy: PolicyView, rows) -> list[tuple]:
    """The state machine over each asset's segments, from an idle state: (asset, start, end, peak)."""
    by_asset: dict[int, list] = {}
    for r in rows:
        by_asset.setdefault(r.asset_id, []).append(r)
    firings = []
    for asset_id, segs in sorted(by_asset.items()):
        outcome = advance(State(), segments_of(segs), for_minutes=policy.for_minutes, peak_is_max=policy.peak_is_max)
        current = None
        for step in outcome.steps:
            if step.kind == "open":
                current = [asset_id, step.started_at, None, step.peak]
                firings.append(current)
            elif step.kind == "clear" and current is not None:
                current[2], current[3] = step.at, step.peak
                current = None
        if current is not None:
            current[3] = outcome.state.peak
    return [tuple(f) for f in firings]


def _tuned(policy: PolicyView, *, threshold, clear_threshold, window_minutes, consecutive_points) -> PolicyView:
    for name, value in (("threshold", threshold), ("clear_threshold", clear_threshold)):
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"{name}: must be a finite number", field=name)
    if window_minutes is not None:
        if policy.window_minutes is None or policy.rule_type == "no_data":  # no_data: its threshold is the window
            raise InvalidInput(f"window_minutes: policy {policy.code} ({policy.rule_type}) has no window to tune"
                               + ("; give threshold (minutes of silence)" if policy.rule_type == "no_data" else ""),
                               field="window_minutes")
        if policy.window_minutes is None:
            raise InvalidInput(f"window_minutes: policy {policy.code} ({policy.rule_type}) has no window",
                               field="window_minutes")
        if not 0 < window_minutes <= 24 * 60:
            raise InvalidInput("window_minutes: between 1 and 1440", field="window_minutes")
    if consecutive_points is not None:
        if policy.rule_type != "consecutive":
            raise InvalidInput(f"consecutive_points: policy {policy.code} is not a consecutive rule",
                               field="consecutive_points")
        if not 0 < consecutive_points <= 1000:
            raise InvalidInput("consecutive_points: between 1 and 1000", field="consecutive_points")
    if clear_threshold is not None and policy.clear_condition is None:
        raise InvalidInput(f"clear_threshold: policy {policy.code} has no clear condition", field="clear_threshold")
    return policy.tuned(threshold=threshold, clear_threshold=clear_threshold, window_minutes=window_minutes,
                        consecutive_points=consecutive_points)
