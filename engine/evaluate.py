"""Evaluate the enabled policies: every reading that ARRIVED since the previous run, in event-time
order, whatever its own timestamp (late, back-filled, out of order, in a batch).

A run consumes `telemetry_arrivals` (written by a trigger on every insert into telemetry), merges
them per (asset, metric) into islands of event time, and for each policy runs ONE statement that
computes the rule's value at every reading of those islands (window functions over the readings
and the look-back the window needs), classes each reading (fires, silenced, already covered by an
alert, clears, neither), records the newest value per (asset, policy) and returns the segments of
assets where something may happen. The alert state machine (engine/rules.py `advance`) then walks
those few segments; engine/alerts.py opens and clears the alerts. The backtest
(engine/backtest.py) runs the same statement over stored history and the same state machine.

Each policy runs in its own savepoint: one failing policy is counted and logged in the run
record, the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import AlertStatus, Metric, Policy, RuleRun
from engine import alerts as alert_service
from engine.rules import OPS, PolicyView, Segment, State, advance

log = logging.getLogger(__name__)

ISLAND_GAP = timedelta(hours=1)  # arrivals of one (asset, metric) further apart are evaluated apart
_MICRO = timedelta(microseconds=1)


@dataclass
class EvaluationResult:
    policies: int = 0
    assets: int = 0
    readings: int = 0  # reading instants evaluated (all policies)
    fired: list[dict] = field(default_factory=list)
    cleared: list[dict] = field(default_factory=list)
    silenced: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # policy code -> error
    duration_s: float = 0.0


def load_policies(session: Session, *, codes: list[str] | None = None, enabled_only: bool = True) -> list[PolicyView]:
    """The policies (enabled ones, optionally only these codes), with their metric."""
    q = select(Policy, Metric.name, Metric.unit, Metric.label_fr).outerjoin(Metric, Metric.id == Policy.metric_id)
    if enabled_only:
        q = q.where(Policy.enabled)
    if codes:
        q = q.where(Policy.code.in_(codes))
    return [view(p, name, unit, label_fr) for p, name, unit, label_fr in session.execute(q.order_by(Policy.code))]


def view(p: Policy, metric: str | None, unit: str | None, label_fr: str | None) -> PolicyView:
    """What evaluation needs of a policy row."""
    return PolicyView(
        id=p.id, code=p.code, asset_type=p.asset_type, metric_id=p.metric_id, metric=metric or "",
        unit=unit or ("min" if p.rule_type == "no_data" else ""), rule_type=p.rule_type, aggregation=p.aggregation,
        condition=p.condition, threshold=p.threshold, window_minutes=p.window_minutes,
        consecutive_points=p.consecutive_points, severity=p.severity, title=p.title,
        auto_work_order=p.auto_work_order, metric_label_fr=label_fr or "",
        metric_ids=(p.metric_id,) if p.metric_id is not None else (tuple(p.metric_ids) if p.metric_ids else None),
        clear_condition=p.clear_condition, clear_threshold=p.clear_threshold, for_minutes=p.for_minutes or 0,
        flat_min_points=p.min_points, title_en=p.title_en or "",
    )


# --- The statement ------------------------------------------------------------------------------
# `scope` (asset_id, metric_id, lo, hi) says which readings to evaluate; each rule type turns it
# into `v` (the value at every reading, `evaluated` for those in [lo, hi]) and the common part
# classes the readings and groups them in segments.

_SCOPE = """
scope AS (
    SELECT r.asset_id, r.metric_id, r.lo, {reach} AS hi, a.site_id,
           CASE WHEN :force_threshold THEN :threshold ELSE coalesce(o.threshold, :threshold) END AS thr,
           CASE WHEN :force_clear THEN :clear_threshold ELSE coalesce(o.clear_threshold, :clear_threshold) END AS cthr
    FROM ({ranges}) r
    JOIN assets a ON a.id = r.asset_id
    LEFT JOIN policy_overrides o ON o.asset_id = r.asset_id AND o.policy_id = :policy_id
    WHERE (CAST(:asset_type AS text) IS NULL OR a.type = :asset_type)
      AND (CAST(:metric_ids AS smallint[]) IS NULL OR r.metric_id = ANY(:metric_ids))
      AND coalesce(o.enabled, true)
)"""

# A reading changes the value of later readings too: those in its window (windowed rules) or
# the N - 1 after it (consecutive). A late reading re-evaluates them (never past the run's now).
_REACH = {
    "threshold": "least(r.hi + CAST(:window AS interval), CAST(:until AS timestamptz))",
    "rate_of_change": "least(r.hi + CAST(:window AS interval), CAST(:until AS timestamptz))",
    "consecutive": "coalesce((SELECT t.ts FROM readings(r.asset_id, r.metric_id, r.hi + interval '1 microsecond', "
                   ":until) t ORDER BY t.ts OFFSET greatest(:before - 1, 0) LIMIT 1), "
                   "greatest(r.hi, CAST(:until AS timestamptz)))",
}

# the readings in (lo - window, hi], the window's aggregate at each (RANGE frames: the window is
# (t - window, t], so the frame starts one microsecond after t - window). Readings come through
# readings() / latest_readings() (migration 0006): the hot partitions and the cold tier alike.
_WINDOWED = """
pts AS (
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, t.ts, t.value, t.ts >= s.lo AS evaluated,
           date_part('epoch', t.ts) AS x  -- seconds as float8, computed once (extract() is numeric)
    FROM scope s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id,
         s.lo - CAST(:window_frame AS interval), s.hi) t
),
v AS (
    SELECT asset_id, metric_id, site_id, thr, cthr, ts, evaluated, {value} AS value, NULL::float8 AS cvalue,
           count(*) OVER w AS points
    FROM pts
    WINDOW w AS (PARTITION BY asset_id, metric_id, lo ORDER BY ts
                 RANGE BETWEEN CAST(:window_frame AS interval) PRECEDING AND CURRENT ROW)
)"""

_VALUES = {
    "threshold": _WINDOWED.replace("{value}", "{agg}(value) OVER w"),
    # a slope needs readings spread over at least half its window: three readings ten seconds
    # apart say nothing about a trend over 30 minutes (their noise would read as °C per hour)
    "rate_of_change": _WINDOWED.replace(
        "{value}", "CASE WHEN min(ts) OVER w <= ts - CAST(:window AS interval) / 2 "
                   "THEN regr_slope(value, x) OVER w * 3600 END"),
    # a stuck sensor: the readings must cover the window (the first one at most window / min_points
    # after its start), or a sensor that just started would look flat. The backtest sweeps every
    # reading; the live engine looks at the newest reading of what arrived (a sensor-health rule,
    # like no_data: a flat line lasts, and one aggregate per asset costs 1/180 of a sweep)
    "flat_line": _WINDOWED.replace(
        "{value}", "CASE WHEN min(ts) OVER w <= ts - CAST(:cover AS interval) THEN max(value) OVER w - min(value) OVER w END"),
    "flat_line_newest": """
v AS (
    SELECT s.asset_id, s.metric_id, s.site_id, s.thr, s.cthr, s.hi AS ts, true AS evaluated,
           CASE WHEN min(t.ts) <= s.hi - CAST(:cover AS interval) THEN max(t.value) - min(t.value) END AS value,
           NULL::float8 AS cvalue, count(*) AS points
    FROM scope s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.hi - CAST(:window_frame AS interval), s.hi) t
    GROUP BY s.asset_id, s.metric_id, s.lo, s.hi, s.site_id, s.thr, s.cthr
)""",
    # the N most recent readings at each reading: the new ones and the N - 1 before them
    "consecutive": """
pts AS (
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, t.ts, t.value, true AS evaluated
    FROM scope s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.lo, s.hi) t
    UNION ALL
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, p.ts, p.value, false
    FROM scope s CROSS JOIN LATERAL latest_readings(s.asset_id, s.metric_id, s.lo - interval '1 microsecond',
                                                    :before) p
    WHERE :before > 0
),
v AS (
    SELECT asset_id, metric_id, site_id, thr, cthr, ts, evaluated, {agg}(value) OVER w AS value,
           {cagg}(value) OVER w AS cvalue, count(*) OVER w AS points
    FROM pts
    WINDOW w AS (PARTITION BY asset_id, metric_id, lo ORDER BY ts ROWS BETWEEN :before PRECEDING AND CURRENT ROW)
)""",
    # each counter reading minus the baseline of the last reset at or before it (never reset: 0)
    "runtime": """
v AS (
    SELECT s.asset_id, s.metric_id, s.site_id, s.thr, s.cthr, t.ts, true AS evaluated, 1 AS points,
           NULL::float8 AS cvalue, t.value - coalesce((SELECT r.baseline FROM counter_resets r
                               WHERE r.asset_id = s.asset_id AND r.metric_id = s.metric_id AND r.reset_at <= t.ts
                               ORDER BY r.reset_at DESC LIMIT 1), 0) AS value
    FROM scope s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.lo, s.hi) t
)""",
    # silent sensors have no readings to evaluate: one instant, `hi` (the run's now), whose value
    # is the minutes since the most silent metric's newest reading
    "no_data": """
v AS (
    SELECT s.asset_id, 0 AS metric_id, s.site_id, s.thr, s.cthr, s.hi AS ts, true AS evaluated,
           NULL::float8 AS cvalue, CAST(max(extract(epoch FROM s.hi - l.last_ts) / 60.0) AS float8) AS value, count(*) AS points
    FROM scope s JOIN telemetry_latest l ON l.asset_id = s.asset_id AND l.metric_id = s.metric_id
    GROUP BY s.asset_id, s.site_id, s.thr, s.cthr, s.hi
)""",
}

# K: the reading lies in a past (closed) alert's episode, so it cannot open another one; S: a
# silence covers it (event time). Only the live engine looks at them (:live).
_CLASSES = """
c AS (
    SELECT asset_id, site_id, ts, value, points,
           coalesce(points >= :min_points AND value {op} thr, false) AS fire,
           coalesce(points >= :min_points AND {clear}, false) AS clr
    FROM v WHERE evaluated
),
k AS (
    SELECT c.*, CASE
        WHEN fire AND :live AND EXISTS (
            SELECT 1 FROM silences z WHERE z.starts_at <= c.ts AND z.ends_at > c.ts
              AND (z.site_id IS NULL OR z.site_id = c.site_id) AND (z.asset_id IS NULL OR z.asset_id = c.asset_id)
              AND (z.policy_id IS NULL OR z.policy_id = :policy_id)) THEN 'S'
        WHEN fire AND :live AND EXISTS (
            SELECT 1 FROM alerts x WHERE x.asset_id = c.asset_id AND x.policy_id = :policy_id
              AND x.ended_at IS NOT NULL AND x.started_at <= c.ts AND x.ended_at >= c.ts) THEN 'K'
        WHEN fire THEN 'F' WHEN clr THEN 'C' ELSE 'N' END AS cls
    FROM c
),
g AS (
    SELECT k.*, row_number() OVER (PARTITION BY asset_id ORDER BY ts)
              - row_number() OVER (PARTITION BY asset_id, cls ORDER BY ts) AS grp
    FROM k
),
segs AS (
    SELECT asset_id, cls, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n, {peak}(value) AS peak,
           max(points) AS points, CASE WHEN :pending THEN array_agg(ts ORDER BY ts) END AS instants
    FROM g GROUP BY asset_id, cls, grp
),
seg AS (  -- with whether the asset fired at all in this run (only those matter to the state machine)
    SELECT *, bool_or(cls IN ('F', 'S')) OVER (PARTITION BY asset_id) AS fired FROM segs
)"""

# the live engine records the newest value of each (asset, policy) (not a re-evaluated older one)
_RECORD = """,
newest AS (
    SELECT DISTINCT ON (asset_id) asset_id, ts, value, points, cls IN ('F', 'S', 'K') AS firing
    FROM k ORDER BY asset_id, ts DESC
),
up AS (
    INSERT INTO policy_evaluations AS pe (asset_id, policy_id, evaluated_at, value, points, firing, last_ts, firing_since)
    SELECT asset_id, :policy_id, :now, CASE WHEN points >= :min_points THEN value END, points, firing, ts,
           CASE WHEN firing THEN ts END
    FROM newest
    ON CONFLICT (asset_id, policy_id) DO UPDATE SET
        evaluated_at = excluded.evaluated_at, value = excluded.value, points = excluded.points,
        firing = excluded.firing, last_ts = excluded.last_ts,
        firing_since = CASE WHEN excluded.firing AND pe.firing THEN pe.firing_since ELSE excluded.firing_since END
    WHERE pe.last_ts IS NULL OR excluded.last_ts >= pe.last_ts
    RETURNING 1
)
SELECT s.asset_id, s.cls, s.first_ts, s.last_ts, s.n, s.peak, s.points, s.instants,
       pe.firing_since, pe.last_ts AS pe_last_ts, la.id AS alert_id, la.started_at, la.peak AS alert_peak,
       (SELECT count(*) FROM k) + (SELECT count(*) FROM up) * 0 AS readings
FROM seg s
LEFT JOIN policy_evaluations pe ON pe.asset_id = s.asset_id AND pe.policy_id = :policy_id
LEFT JOIN alerts la ON la.asset_id = s.asset_id AND la.policy_id = :policy_id AND la.status = ANY(:live_statuses)
WHERE la.id IS NOT NULL OR s.fired
UNION ALL  -- one row that always comes back: how many readings were evaluated
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM k)
ORDER BY 1 NULLS FIRST, 3
"""

_SEGMENTS = """
SELECT s.asset_id, s.cls, s.first_ts, s.last_ts, s.n, s.peak, s.points, s.instants FROM seg s
WHERE s.fired
ORDER BY s.asset_id, s.first_ts
"""


def statement(policy: PolicyView, *, ranges: str, record: bool) -> str:
    """The evaluation statement of `policy` over `ranges` (SQL yielding asset_id, metric_id, lo,
    hi). With `record` (the live engine) it also stores the newest values and returns the state
    of each asset; without (the backtest) it returns the segments of assets that fired."""
    if policy.rule_type == "consecutive":  # every one of the N: the one nearest the threshold
        agg = "min" if policy.peak_is_max else "max"
    else:
        agg = policy.aggregation if policy.aggregation in ("avg", "min", "max") else "avg"
    op = policy.condition if policy.condition in OPS else ">"  # whitelisted operators, never user text
    # consecutive: all N readings satisfy the clear condition -> its own aggregate (cvalue)
    cagg = "max" if policy.clear_condition in ("<", "<=") else "min"
    if policy.clear_condition in OPS:
        clear = f"coalesce(cvalue, value) {policy.clear_condition} cthr"
    elif policy.rule_type in ("no_data", "flat_line"):  # they clear as soon as they stop firing
        clear = f"NOT (value {op} thr)"
    else:  # runtime policies: only their work order done ends the alert
        clear = "false"
    values = "flat_line_newest" if record and policy.rule_type == "flat_line" else policy.rule_type
    return (
        "WITH " + _SCOPE.format(ranges=ranges, reach=_REACH.get(policy.rule_type, "r.hi")) + ","
        + _VALUES[values].format(agg=agg, cagg=cagg) + ","
        + _CLASSES.format(op=op, clear=clear, peak="max" if policy.peak_is_max else "min")
        + (_RECORD if record else _SEGMENTS)
    )


def params(policy: PolicyView, *, now: datetime, live: bool, threshold_forced: bool = False,
           clear_forced: bool = False) -> dict:
    window = timedelta(minutes=policy.window_minutes or 0)
    return {
        "policy_id": policy.id, "asset_type": policy.asset_type,
        "metric_ids": list(policy.metric_ids) if policy.metric_ids else None,
        "threshold": policy.threshold, "clear_threshold": policy.clear_threshold,
        "force_threshold": threshold_forced, "force_clear": clear_forced,
        "window": window, "window_frame": max(window - _MICRO, timedelta(0)),
        "cover": window - window / max(policy.min_points, 1),
        "before": max(policy.min_points - 1, 0), "min_points": policy.min_points,
        "pending": policy.for_minutes > 0, "live": live, "now": now, "until": now,
        "live_statuses": list(AlertStatus.LIVE),
    }


def segments_of(rows: Iterable) -> list[Segment]:
    return [Segment(cls=r.cls, first_ts=r.first_ts, last_ts=r.last_ts, n=r.n, peak=r.peak, points=r.points,
                    instants=tuple(r.instants) if r.instants else None) for r in rows]


# --- The run ------------------------------------------------------------------------------------

# Readings stamped after the run's `now` (a clock a little ahead: ingest accepts up to
# FUTURE_TOLERANCE_S) wait for a later run: their arrivals are kept.
_TAKE_ARRIVALS = """
WITH consumed AS ({take}),
taken AS (
    SELECT asset_id, metric_id, min_ts, max_ts FROM consumed
    UNION ALL
    SELECT asset_id, metric_id, min_ts, max_ts FROM telemetry_arrivals WHERE max_ts > :now
),
ordered AS (
    SELECT asset_id, metric_id, min_ts, least(max_ts, :now) AS max_ts,
           max(max_ts) OVER (PARTITION BY asset_id, metric_id ORDER BY min_ts
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM taken WHERE min_ts <= :now
),
islands AS (
    SELECT *, count(*) FILTER (WHERE reach IS NULL OR min_ts > reach + :gap)
                OVER (PARTITION BY asset_id, metric_id ORDER BY min_ts) AS island
    FROM ordered
)
INSERT INTO run_ranges (asset_id, metric_id, lo, hi)
SELECT asset_id, metric_id, min(min_ts), max(max_ts) FROM islands GROUP BY asset_id, metric_id, island
"""
_CONSUME = "DELETE FROM telemetry_arrivals WHERE max_ts <= :now RETURNING asset_id, metric_id, min_ts, max_ts"
_PEEK = "SELECT asset_id, metric_id, min_ts, max_ts FROM telemetry_arrivals WHERE max_ts <= :now"


def take_arrivals(session: Session, *, now: datetime, consume: bool) -> int:
    """Put what arrived since the previous run into the temporary table run_ranges (islands of
    event time per asset and metric, up to `now`) and refresh telemetry_latest; with `consume`
    the arrivals are deleted (the run commits that with its results; a partial run, of some
    policies only, leaves them for the next full one)."""
    session.execute(text(
        "CREATE TEMP TABLE IF NOT EXISTS run_ranges (asset_id int, metric_id smallint, lo timestamptz, "
        "hi timestamptz) ON COMMIT DELETE ROWS"))
    session.execute(text("TRUNCATE run_ranges"))
    sql = _TAKE_ARRIVALS.format(take=_CONSUME if consume else _PEEK)
    n = session.execute(text(sql), {"gap": ISLAND_GAP, "now": now}).rowcount
    session.execute(text(
        "INSERT INTO telemetry_latest AS l (asset_id, metric_id, last_ts) "
        "SELECT asset_id, metric_id, max(hi) FROM run_ranges GROUP BY asset_id, metric_id "
        "ON CONFLICT (asset_id, metric_id) DO UPDATE SET last_ts = excluded.last_ts WHERE excluded.last_ts > l.last_ts"))
    session.execute(text("ANALYZE run_ranges"))
    return n


_LIVE_RANGES = "SELECT asset_id, metric_id, lo, hi FROM run_ranges"
# no_data looks at every asset at `now`, not at what arrived
_NO_DATA_RANGES = ("SELECT l.asset_id, l.metric_id, CAST(:now AS timestamptz) AS lo, CAST(:now AS timestamptz) AS hi "
                   "FROM telemetry_latest l")


def evaluate_policy(session: Session, *, policy: PolicyView, now: datetime, result: EvaluationResult) -> None:
    """One policy over what arrived: one statement, then the state machine where something may happen."""
    ranges = _NO_DATA_RANGES if policy.rule_type == "no_data" else _LIVE_RANGES
    rows = session.execute(text(statement(policy, ranges=ranges, record=True)), params(policy, now=now, live=True)).all()
    result.readings += rows[0].readings
    by_asset: dict[int, list] = {}
    for r in rows[1:]:
        by_asset.setdefault(r.asset_id, []).append(r)
    for asset_id, segs in by_asset.items():
        first = segs[0]
        # the stored state as it was before the statement (its SELECT does not see its own upsert)
        state = State(alert_id=first.alert_id, started_at=first.started_at, peak=first.alert_peak,
                      firing_since=first.firing_since, last_ts=first.pe_last_ts)
        outcome = advance(state, segments_of(segs), for_minutes=policy.for_minutes, peak_is_max=policy.peak_is_max)
        alert_service.apply(session, policy=policy, asset_id=asset_id, state=state, outcome=outcome, now=now,
                            result=result)


def evaluate_all(
    session: Session, *, now: datetime, policy_codes: list[str] | None = None, source: str = "scheduler"
) -> EvaluationResult:
    """Evaluate the enabled policies over every reading that arrived since the previous run; open,
    clear and update alerts (and their work orders). Does not commit."""
    started = time.perf_counter()
    result = EvaluationResult()
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    take_arrivals(session, now=now, consume=not policy_codes)
    for policy in load_policies(session, codes=policy_codes):
        try:
            with session.begin_nested():
                evaluate_policy(session, policy=policy, now=now, result=result)
            result.policies += 1
        except Exception as exc:  # noqa: BLE001 - one failing policy must not stop the others
            log.exception("policy %s failed; the others go on", policy.code)
            result.failed[policy.code] = f"{type(exc).__name__}: {exc}"[:500]
    result.assets = session.execute(text("SELECT count(DISTINCT asset_id) FROM run_ranges")).scalar_one()
    result.duration_s = time.perf_counter() - started
    session.add(
        RuleRun(at=now, duration_s=result.duration_s, policies=result.policies, assets=result.assets,
                fired=len(result.fired), source=source, readings=result.readings, cleared=len(result.cleared),
                silenced=result.silenced, failed=len(result.failed), errors=result.failed or None)
    )
    return result
