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
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import AlertStatus, Metric, Policy, RuleRun
from db.queries import NEAR_MARGIN
from engine import alerts as alert_service
from engine.rules import OPS, PolicyView, Segment, State, advance

log = logging.getLogger(__name__)

ISLAND_GAP = timedelta(hours=1)  # arrivals of one (asset, metric) further apart are evaluated apart
QUIET_REFRESH = timedelta(minutes=5)  # a stateless row far from firing is recorded again at most this often
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
    SELECT r.asset_id, r.metric_id, r.lo, {reach} AS hi, a.site_id{extra},
           CASE WHEN :force_threshold THEN :threshold ELSE coalesce(o.threshold, :threshold) END AS thr,
           CASE WHEN :force_clear THEN :clear_threshold ELSE coalesce(o.clear_threshold, :clear_threshold) END AS cthr
    FROM ({ranges}) r
    JOIN assets a ON a.id = r.asset_id
    LEFT JOIN policy_overrides o ON o.asset_id = r.asset_id AND o.policy_id = :policy_id
    WHERE (CAST(:asset_type AS text) IS NULL OR a.type = :asset_type)
      AND (CAST(:metric_ids AS smallint[]) IS NULL OR r.metric_id = ANY(:metric_ids))
      AND coalesce(o.enabled, true)
)"""

# what arrived in the range, from the arrivals (_LIVE_RANGES): how many readings, their smallest and
# largest value, the newest one's (NULL when not known for the whole range)
_ARRIVED = ", r.n AS arrived, r.vmin, r.vmax, r.vlast"

# A reading changes the value of later readings too: those in its window (windowed rules) or
# the N - 1 after it (consecutive). A late reading re-evaluates them (never past the run's now).
_REACH_CONSECUTIVE = ("coalesce((SELECT t.ts FROM readings({s}.asset_id, {s}.metric_id, {s}.{hi} + interval '1 microsecond', "
                      ":until) t ORDER BY t.ts OFFSET greatest(:before - 1, 0) LIMIT 1), "
                      "greatest({s}.{hi}, CAST(:until AS timestamptz)))")
_REACH = {
    "threshold": "least(r.hi + CAST(:window AS interval), CAST(:until AS timestamptz))",
    "rate_of_change": "least(r.hi + CAST(:window AS interval), CAST(:until AS timestamptz))",
    "consecutive": _REACH_CONSECUTIVE.format(s="r", hi="hi"),
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
           count(*) OVER w AS points, NULL::numeric[] AS st, NULL::float8[] AS vals
    FROM pts
    WINDOW w AS (PARTITION BY asset_id, metric_id, lo ORDER BY ts
                 RANGE BETWEEN CAST(:window_frame AS interval) PRECEDING AND CURRENT ROW)
)"""

# --- Sums over a window (threshold avg, rate_of_change) ----------------------------------------
# The value at a reading t is a function of exact sums over the window (t - window, t]: n, Σy, Σx,
# Σx², Σxy, with y the value in millionths (an integer: values are summed to 10⁻⁶, far below any
# sensor's resolution) and x its time in epoch microseconds. Integer sums are exact whatever the
# order they are added in (float sums are not). Two ways to the same sums:
# - full: every reading of (lo - window, hi], and at each the sums over its window frame (a frame
#   that slides: each reading added once and taken out once, O(readings));
# - incremental (live engine, steady state): the sums stored at the (asset, policy)'s last
#   evaluated reading (policy_evaluations.win_*), plus the readings that arrived since, minus those
#   that left the window: a few readings per asset instead of the whole window. Taken only when the
#   readings that arrived are all after that reading (no late data before it: then `full`).
# Both give the same sums, so the live engine, a re-evaluation and the backtest agree exactly.
# (term, aggregate): Σy in bigint (isum, migration 0012: bigint arithmetic, an overflow is an
# error): values in millionths, |value| < 10⁸ over a day of 1-s readings. The times' sums are
# numeric: a window of more than ~5,000 readings passes bigint's range with Σx alone (epoch µs).
# A term is the product of its factors (bigint columns of the readings).
_SUM_TERMS = {
    "threshold_avg": (("y",),),
    "rate_of_change": (("y",), ("x",), ("x", "x"), ("x", "y")),
}
_BIGINT_TERMS = {("y",)}  # summed with isum; the others in numeric


def _term_sum(factors: tuple[str, ...], *, signed: bool = False) -> str:
    """The aggregate of one term: isum in bigint, or sum in numeric (one cast, the event's sign
    folded into the bigint before it; events without a sign skipped)."""
    sign = "sign * " if signed else ""
    if factors in _BIGINT_TERMS:
        return f"isum({sign}{' * '.join(factors)})"
    product = " * ".join([f"CAST({sign}{factors[0]} AS numeric)", *factors[1:]])
    return f"sum(CASE WHEN sign <> 0 THEN {product} END)" if signed else f"sum({product})"
_Y = "CAST(round(t.value * 1e6) AS bigint)"  # exact integers: round() of a float8 and a bigint cast
_X = "CAST(round(date_part('epoch', t.ts) * 1e6) AS bigint)"  # epoch seconds as float8 hold microseconds exactly


def _full_sums(source: str, terms: tuple[tuple[str, ...], ...], *, slope: bool, record: bool) -> str:
    """CTEs ending in `wfull`: the window sums at every reading of the scope rows in `source`
    (aggregates over the sliding frame: each reading is added once and taken out once). Only
    what is used is computed: the slope's spread test for a slope; the newest reading (where the
    sums are stored) when recording."""
    window = ", ".join(f"{_term_sum(t)} OVER w AS w{i}" for i, t in enumerate(terms))
    newest = ("max(ts) FILTER (WHERE evaluated) OVER (PARTITION BY asset_id, metric_id)" if record
              else "CAST(NULL AS timestamptz)")
    spread = ("first_value(ts) OVER w <= ts - CAST(:window AS interval) / 2 AS spread, max(x) OVER h AS half" if slope
              else "NULL::boolean AS spread, NULL::bigint AS half")
    return f"""
fpts AS (
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, t.ts, t.ts >= s.lo AS evaluated,
           {_Y} AS y, {_X} AS x
    FROM {source} s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id,
         s.lo - CAST(:window_frame AS interval), s.hi) t
),
wfull AS (
    SELECT asset_id, metric_id, site_id, thr, cthr, ts, evaluated, count(*) OVER w AS n,
           {newest} AS newest_ts, {spread}, {window}
    FROM fpts
    WINDOW w AS (PARTITION BY asset_id, metric_id, lo ORDER BY ts
                 RANGE BETWEEN CAST(:window_frame AS interval) PRECEDING AND CURRENT ROW),
           h AS (PARTITION BY asset_id, metric_id, lo ORDER BY ts
                 RANGE BETWEEN UNBOUNDED PRECEDING AND CAST(:window AS interval) / 2 PRECEDING)
)"""


def _incremental_sums(terms: tuple[tuple[str, ...], ...], *, slope: bool, src: str = "sc") -> str:
    """CTEs ending in `winc`: the window sums at the readings that arrived for the scope rows of
    `sc` taken incrementally (inc), from the stored sums (st_n, st at st_ts). Events in time order:
    a reading enters the window at its ts (+), leaves it at ts + window (-); for the slope's spread
    test (is there a reading in (t - window, t - window / 2]?), the newest reading at least half a
    window old: stored with the sums (half, epoch microseconds), then each reading from ts + window / 2.
    The events carry only what the running sums need (sorting them is most of the work); the
    scope row's columns and stored sums are joined back to the arrived readings afterwards."""
    deltas = ", ".join(f"{_term_sum(t, signed=True)} OVER c AS d{i}" for i, t in enumerate(terms))
    ws = ", ".join(f"CAST(s.st[{i + 1}] AS bigint) + coalesce(e.d{i}, 0) AS w{i}" if t in _BIGINT_TERMS
                   else f"s.st[{i + 1}] + coalesce(e.d{i}, 0) AS w{i}" for i, t in enumerate(terms))
    # The stored `half` need not be the newest such reading, only one (a lower bound): the test
    # asks whether it is newer than t - window. While the stored one passes it for the newest
    # reading that arrived (hi), it passes it for every reading of the run, and no half event is
    # read (in steady state: about one run in window / 2 minutes reads them). Otherwise the
    # readings after it (none can matter older than st_ts - window) give the newest exactly.
    st_half = f"CAST(s.st[{len(terms) + 1}] AS bigint)"
    half_events = f"""
    UNION ALL
    SELECT s.asset_id, s.metric_id, t.ts + CAST(:window AS interval) / 2, 0, t.ts, 0, NULL, {_X}
    FROM {src} s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id,
         greatest(s.st_ts - CAST(:window AS interval),
                  CAST('epoch' AS timestamptz) + coalesce({st_half}, 0) * interval '1 microsecond') + interval '1 microsecond',
         s.hi - CAST(:window AS interval) / 2) t
    WHERE s.inc AND NOT coalesce({st_half} > {_X.replace("t.ts", "s.hi")} - :window_us, false)""" if slope else ""
    dhalf = "max(x) FILTER (WHERE kind = 0 AND sign = 0) OVER c" if slope else "NULL::bigint"
    return f"""
ev AS (
    SELECT s.asset_id, s.metric_id, t.ts AS at, 1 AS kind, t.ts, 1 AS sign, {_Y} AS y, {_X} AS x
    FROM {src} s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.st_ts + interval '1 microsecond', s.hi) t
    WHERE s.inc
    UNION ALL
    SELECT s.asset_id, s.metric_id, t.ts + CAST(:window AS interval), 0, t.ts, -1, {_Y}, {_X}
    FROM {src} s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.st_ts - CAST(:window_frame AS interval),
                                          s.hi - CAST(:window AS interval)) t
    WHERE s.inc{half_events}
),
erun AS (
    SELECT asset_id, metric_id, ts, kind, x, sum(sign) OVER c AS dn, {deltas},
           {dhalf} AS dhalf,
           max(ts) FILTER (WHERE kind = 1) OVER (PARTITION BY asset_id, metric_id) AS newest_ts
    FROM ev WINDOW c AS (PARTITION BY asset_id, metric_id ORDER BY at, kind ROWS UNBOUNDED PRECEDING)
),
winc AS (
    SELECT s.asset_id, s.metric_id, s.site_id, s.thr, s.cthr, e.ts, e.ts >= s.lo AS evaluated, s.st_n + e.dn AS n,
           e.newest_ts, greatest(s.st[{len(terms) + 1}], e.dhalf) > e.x - :window_us AS spread,
           greatest(s.st[{len(terms) + 1}], e.dhalf) AS half, {ws}
    FROM erun e JOIN {src} s ON s.asset_id = e.asset_id AND s.metric_id = e.metric_id AND s.inc
    WHERE e.kind = 1
)"""


_RUNNING_VALUE = {
    "threshold_avg": "CAST(w0 AS float8) / CAST(n * 1000000 AS float8)",  # one rounding: the nearest float
    # least squares, per second -> per hour; readings spread over at least half the window: three
    # readings ten seconds apart say nothing about a trend over 30 minutes (their noise would
    # read as degrees per hour)
    "rate_of_change": "CASE WHEN spread THEN (n * w3 - CAST(w1 AS numeric) * w0) "
                      "/ nullif(greatest(n * w2 - CAST(w1 AS numeric) * w1, 0), 0) * 3600 END",
    # (y in millionths per microsecond of x: the factors of 10⁶ cancel)
}


def _running(kind: str, *, incremental: bool) -> str:
    value, terms = _RUNNING_VALUE[kind], _SUM_TERMS[kind]
    # a slope is computed once per reading (a CTE referenced once is inlined: the classes would
    # compute it again for each test of it)
    out = "v AS " + ("MATERIALIZED " if kind == "rate_of_change" else "") + \
          "(SELECT asset_id, metric_id, site_id, thr, cthr, ts, evaluated, CAST({value} AS float8) AS value, " \
          "NULL::float8 AS cvalue, n AS points, CASE WHEN ts = newest_ts THEN ARRAY[{ws}{half}] END AS st, " \
          "NULL::float8[] AS vals FROM {src})"  # the sums are stored at the newest reading only
    ws = ", ".join(f"w{i}" for i in range(len(terms)))
    half = ", half" if kind == "rate_of_change" else ""
    if not incremental:
        return _full_sums("scope", terms, slope=kind == "rate_of_change", record=False) + ",\n" + out.format(value=value, src="wfull", ws=ws, half=half)
    sc = """
sc AS (  -- incremental when the stored sums are for this window and everything that arrived is newer
    SELECT s.*, pe.last_ts AS st_ts, pe.win_n AS st_n, pe.win_sums AS st, pe.win_values[1] AS st_bound,
           coalesce(pe.firing, false) AS st_firing,
           coalesce(pe.win_seconds = :win_seconds AND s.lo > pe.last_ts AND pe.win_n IS NOT NULL
                    AND count(*) OVER (PARTITION BY s.asset_id, s.metric_id) = 1, false) AS inc
    FROM scope s LEFT JOIN policy_evaluations pe ON pe.asset_id = s.asset_id AND pe.policy_id = :policy_id
),
scf AS (SELECT * FROM sc WHERE NOT inc),""" + _full_sums("scf", terms, slope=kind == "rate_of_change", record=True) + ","
    if kind == "rate_of_change":
        return (sc + _incremental_sums(terms, slope=True) + ",\n"
                + out.format(value=value, ws=ws, half=half, src="(SELECT * FROM wfull UNION ALL SELECT * FROM winc) w"))
    return sc + _QUIET_AVG + "," + _incremental_sums(terms, slope=False, src="sqs") + ",\n" + _LIVE_AVG.replace("{value}", value)


def _live_alert(asset: str) -> str:
    """The policy has a live alert (open or acknowledged) on the asset `asset`."""
    return (f"EXISTS (SELECT 1 FROM alerts x WHERE x.asset_id = {asset} AND x.policy_id = :policy_id "
            "AND x.status = ANY(:live_statuses))")


def _far(op: str, value: str, threshold: str) -> str:
    """`value` is no value, or outside the near margin of the asset status (db/queries.py _NEAR)
    on the side that does not fire."""
    if op in (">", ">="):
        return f"coalesce({value} < {threshold} - abs({threshold}) * :near_margin, true)"
    return f"coalesce({value} > {threshold} + abs({threshold}) * :near_margin, true)"


# A series may go quiet (be evaluated at its newest reading only, when nothing that arrived can
# fire) if it is incremental, was not firing (a pending period runs) and has no live alert (its
# clear condition matters reading by reading). `s` is a row of the rule's `sc`.
_MAY_GO_QUIET = "s.inc AND NOT s.st_firing AND NOT " + _live_alert("s.asset_id")


# The live average's quiet series. With the sums, each series stores a bound of the values in its
# window (win_values[1]: their maximum or more for conditions > and >=, their minimum or less for
# < and <=). Every window of a reading that arrived lies in the stored window and what arrived,
# so the average at each is at most (at least) the bound taken with what arrived: when that
# cannot satisfy the condition (compared as the average is: an integer number of millionths over
# a float8 division, exact below 2^53), no reading can fire. A quiet series (incremental, no live
# alert, not firing) is then evaluated at its newest reading only: stored sums + what arrived -
# what left its window, two aggregates instead of a window over every reading. The others are
# evaluated reading by reading, and store the bound of the readings of (lo - window, hi] (a
# superset of the window at their newest reading).
_QUIET_AVG = """
sq AS (
    SELECT s.*, coalesce(q.n > 0 AND NOT (CAST(q.yb AS float8) / CAST(1000000 AS float8) {op} s.thr)
                         AND abs(q.yb) * (s.st_n + q.n) < 9007199254740992, false) AS quiet,
           q.n AS n_new, q.y AS y_new, q.newest, q.bound
    FROM sc s LEFT JOIN LATERAL (
        SELECT x.*, CAST(round(x.bound * 1e6) AS bigint) AS yb FROM (
            SELECT count(*) AS n, isum(""" + _Y + """) AS y, max(t.ts) AS newest,
                   {bound_agg}(s.st_bound, {bound_fn}(t.value)) AS bound
            FROM readings(s.asset_id, s.metric_id, s.st_ts + interval '1 microsecond', s.hi) t
            WHERE s.st_bound IS NOT NULL AND """ + _MAY_GO_QUIET + """) x) q ON true
),
sqs AS (SELECT * FROM sq WHERE NOT quiet),
bounds AS (
    SELECT s.asset_id, s.metric_id, b.bound
    FROM sq s CROSS JOIN LATERAL (
        SELECT {bound_fn}(t.value) AS bound
        FROM readings(s.asset_id, s.metric_id, s.lo - CAST(:window_frame AS interval), s.hi) t) b
    WHERE NOT s.quiet
)"""

_LIVE_AVG = """
v AS (
    SELECT w.asset_id, w.metric_id, w.site_id, w.thr, w.cthr, w.ts, w.evaluated, CAST({value} AS float8) AS value,
           NULL::float8 AS cvalue, w.n AS points, CASE WHEN w.ts = w.newest_ts THEN ARRAY[w.w0] END AS st,
           CASE WHEN w.ts = w.newest_ts THEN ARRAY[b.bound] END AS vals
    FROM (SELECT * FROM wfull UNION ALL SELECT * FROM winc) w
    LEFT JOIN bounds b ON b.asset_id = w.asset_id AND b.metric_id = w.metric_id
    UNION ALL  -- a quiet series: its newest reading, from the stored sums, what arrived and what left
    SELECT asset_id, metric_id, site_id, thr, cthr, newest, true, CAST({value} AS float8), NULL::float8, n,
           ARRAY[w0], ARRAY[bound]
    FROM (SELECT q.*, CAST(q.st[1] AS bigint) + q.y_new - coalesce(l.y, 0) AS w0, q.st_n + q.n_new - l.n AS n
          FROM sq q CROSS JOIN LATERAL (
              SELECT count(*) AS n, isum(""" + _Y + """) AS y
              FROM readings(q.asset_id, q.metric_id, q.st_ts - CAST(:window_frame AS interval),
                            q.newest - CAST(:window AS interval)) t) l
          WHERE q.quiet) q
)"""


_HOT_BEFORE = ("SELECT {cols} FROM telemetry t WHERE t.asset_id = s.asset_id AND t.metric_id = s.metric_id "
               "AND t.ts < s.lo ORDER BY t.ts DESC LIMIT :before")


def _consecutive(*, live: bool) -> str:
    """The consecutive rule's CTEs ending in `v`: at each reading, the N most recent readings (the
    new ones and the N - 1 before them, looked up — or, live and incremental, the stored values)."""
    src = "(SELECT * FROM sq WHERE NOT quiet)" if live else "scope"
    state = """
sc AS (
    SELECT s.asset_id, s.metric_id, s.lo, s.hi AS hi0, s.site_id, s.thr, s.cthr, pe.last_ts AS st_ts,
           pe.win_values AS st_values, coalesce(pe.firing, false) AS st_firing,
           coalesce(pe.win_n = :before AND pe.win_seconds IS NULL AND s.lo > pe.last_ts AND pe.win_values IS NOT NULL
                    AND count(*) OVER (PARTITION BY s.asset_id, s.metric_id) = 1, false) AS inc
    FROM scope s LEFT JOIN policy_evaluations pe ON pe.asset_id = s.asset_id AND pe.policy_id = :policy_id
),
sr AS MATERIALIZED (  -- (hi holds a subquery: as a column of a CTE inlined into sq, it would keep
                     -- readings() from being inlined there, and each call would run its own plan)
    SELECT sc.*, CASE WHEN inc THEN hi0 ELSE """ + _REACH_CONSECUTIVE.format(s="sc", hi="hi0") + """ END AS hi FROM sc
),
sq AS (  -- quiet: incremental, no live alert, not firing, and no reading that arrived satisfies the
         -- condition (each reading is one of its own N): nothing can fire, only the newest matters
    SELECT s.*, coalesce(q.n > 0 AND NOT q.any, false) AS quiet, q.n AS n_new, q.newest, q.vals AS new_values
    FROM sr s LEFT JOIN LATERAL (
        SELECT count(*) AS n, coalesce(bool_or(t.value {op} s.thr), false) AS any, max(t.ts) AS newest,
               array_agg(t.value ORDER BY t.ts) AS vals
        FROM readings(s.asset_id, s.metric_id, s.lo, s.hi) t
        WHERE """ + _MAY_GO_QUIET + """) q ON true
),"""
    quiet = """
    UNION ALL  -- a quiet series: its newest reading, over the stored values and what arrived
    SELECT asset_id, metric_id, site_id, thr, cthr, newest, true, (SELECT {agg}(u) FROM unnest(l) u),
           (SELECT {cagg}(u) FROM unnest(l) u), cardinality(l), NULL::numeric[],
           CASE WHEN :before > 0 THEN vs[greatest(cardinality(vs) - :before + 1, 1):] ELSE CAST('{{}}' AS float8[]) END
    FROM (SELECT q.*, vs[greatest(cardinality(vs) - :before, 1):] AS l
          FROM (SELECT sq.*, st_values || new_values AS vs FROM sq WHERE quiet) q) q"""
    stored = """
    UNION ALL
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr,  -- only their order matters
           s.st_ts - (cardinality(s.st_values) - u.i) * interval '1 microsecond', u.value, false
    FROM sq s CROSS JOIN LATERAL unnest(s.st_values) WITH ORDINALITY u(value, i)
    WHERE s.inc AND NOT s.quiet"""
    vals = ("CASE WHEN :before > 0 THEN array_agg(value) OVER l ELSE CAST('{{}}' AS float8[]) END" if live
            else "NULL::float8[]")
    return (state if live else "") + """
prev AS (  -- hot: the N - 1 readings before lo are all in the hot partitions and the cold tier has
           -- nothing newer than the oldest of them (the common case: no call to latest_readings())
    SELECT s.*, h.n = :before AND NOT EXISTS (
               SELECT 1 FROM telemetry_cold c WHERE c.asset_id = s.asset_id AND c.metric_id = s.metric_id
                 AND c.day < s.lo AND c.day + interval '24 hours' > h.oldest) AS hot
    FROM """ + src + """ s CROSS JOIN LATERAL (
        SELECT count(*) AS n, min(x.ts) AS oldest FROM (""" + _HOT_BEFORE.format(cols="t.ts") + """) x) h
    WHERE :before > 0""" + (" AND NOT s.inc" if live else "") + """
),
pts AS (
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, t.ts, t.value, true AS evaluated
    FROM """ + src + """ s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.lo, s.hi) t""" + (stored if live else "") + """
    UNION ALL
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, p.ts, p.value, false
    FROM prev s CROSS JOIN LATERAL (""" + _HOT_BEFORE.format(cols="t.ts, t.value") + """) p
    WHERE s.hot
    UNION ALL
    SELECT s.asset_id, s.metric_id, s.lo, s.site_id, s.thr, s.cthr, p.ts, p.value, false
    FROM prev s CROSS JOIN LATERAL latest_readings(s.asset_id, s.metric_id, s.lo - interval '1 microsecond',
                                                    :before) p
    WHERE NOT s.hot
),
v AS (
    SELECT asset_id, metric_id, site_id, thr, cthr, ts, evaluated, {agg}(value) OVER w AS value,
           {cagg}(value) OVER w AS cvalue, count(*) OVER w AS points, NULL::numeric[] AS st, """ + vals + """ AS vals
    FROM pts
    WINDOW o AS (PARTITION BY asset_id, metric_id, lo ORDER BY ts),
           w AS (o ROWS BETWEEN :before PRECEDING AND CURRENT ROW),
           l AS (o ROWS BETWEEN greatest(CAST(:before AS int) - 1, 0) PRECEDING AND CURRENT ROW)""" + (quiet if live else "") + """
)"""


# A counter's last reset up to the range's end (b.baseline, b.reset_at), and each reading's value:
# minus that baseline when the reset is before the range's first reading (or there is none), else
# minus the baseline of its own last reset (a reset within the range: rare). `{b}` holds the reset.
_LAST_RESET = """
    LEFT JOIN LATERAL (SELECT r.baseline, r.reset_at FROM counter_resets r
                       WHERE r.asset_id = s.asset_id AND r.metric_id = s.metric_id AND r.reset_at <= s.hi
                       ORDER BY r.reset_at DESC LIMIT 1) b ON true"""
_COUNTER_VALUE = """t.value - coalesce(CASE WHEN {b}.reset_at IS NULL OR {b}.reset_at <= s.lo THEN {b}.baseline
               ELSE (SELECT r.baseline FROM counter_resets r
                     WHERE r.asset_id = s.asset_id AND r.metric_id = s.metric_id AND r.reset_at <= t.ts
                     ORDER BY r.reset_at DESC LIMIT 1) END, 0)"""

_VALUES = {
    "threshold": _WINDOWED.replace("{value}", "{agg}(value) OVER w"),
    # a stuck sensor: the readings must cover the window (the first one at most window / min_points
    # after its start), or a sensor that just started would look flat. The backtest sweeps every
    # reading; the live engine looks at the newest reading of what arrived (a sensor-health rule,
    # like no_data: a flat line lasts, and one aggregate per asset costs 1/180 of a sweep)
    "flat_line": _WINDOWED.replace(
        "{value}", "CASE WHEN min(ts) OVER w <= ts - CAST(:cover AS interval) THEN max(value) OVER w - min(value) OVER w END"),
    # the N most recent readings at each reading: the new ones and the N - 1 before them
    "consecutive": _consecutive(live=False),
    # the live engine's flat_line at the newest reading, from buckets of window / 6 kept with the
    # state (policy_evaluations.win_values: [metric, bucket, max, min, first reading (epoch µs),
    # readings] per whole bucket after the window's first one). When everything that arrived is
    # newer than the state's reading, the window's max, min, first reading and count come from the
    # stored buckets, the part of the window's first bucket up to that reading (read again: a
    # bucket cannot lose its oldest readings) and the readings that arrived — about a fifth of the
    # window instead of all of it, one aggregate each. Otherwise (late data, first run, another
    # metric or window, arrivals past the next bucket) the whole window is read. Both ways store
    # the same buckets.
    # Most runs need neither: a sensor whose readings that arrived already spread wider than the
    # threshold, near margin included, is not stuck at its newest reading (the window holds them
    # all, and more readings only widen a spread). Such a quiet series — not firing, no live alert
    # — stores no value (NULL: the spread was not measured), only that it was evaluated, not
    # firing, at that reading; its buckets are dropped (the next series that is not quiet reads
    # its whole window once). The spread of the stuck or nearly stuck ones is measured exactly.
    # The spread of what arrived comes with the arrivals (their smallest and largest value,
    # run_ranges.vmin / vmax): read back from telemetry only for ranges without it (arrivals
    # written before migration 0016, or a range reaching past the run's now).
    "flat_line_live": """
fq AS (  -- (q is empty for a series firing or with a live alert)
    SELECT s.*, coalesce(q.n > 0 AND s.lo > s.hi - CAST(:window_frame AS interval) AND {far_spread}, false) AS quiet,
           q.n AS n_new
    FROM (SELECT s.asset_id, s.metric_id, s.lo, s.hi, s.site_id, s.thr, s.cthr, s.arrived, s.vmin, s.vmax,
                 pe.last_ts AS st_ts, pe.win_values AS st, pe.win_seconds, pe.win_n, """ + _X.replace("t.ts", "s.hi") + """ AS hi_us,
                 coalesce(pe.firing, false) AS st_firing, count(*) OVER (PARTITION BY s.asset_id) AS ranges,
                 NOT coalesce(pe.firing, false) AND NOT """ + _live_alert("s.asset_id") + """ AS may_go_quiet
          FROM scope s LEFT JOIN policy_evaluations pe ON pe.asset_id = s.asset_id AND pe.policy_id = :policy_id) s
    LEFT JOIN LATERAL (
        SELECT s.arrived AS n, s.vmax - s.vmin AS spread WHERE s.vmin IS NOT NULL AND s.may_go_quiet
        UNION ALL
        SELECT count(*), max(t.value) - min(t.value)
        FROM readings(s.asset_id, s.metric_id, s.lo, s.hi) t
        WHERE s.vmin IS NULL AND s.may_go_quiet
        HAVING s.vmin IS NULL) q ON true
),
sc AS (
    SELECT s.*, (s.hi_us - :window_us) / :bucket_us AS pb,  -- the window's first bucket
           s.hi_us / :bucket_us AS bn,  -- the newest reading's bucket
           to_timestamp(s.hi_us / :bucket_us * :bucket_s) AS bn_ts,  -- and when it starts
           coalesce(s.win_seconds = :win_seconds AND s.win_n = :bucket_s AND s.lo > s.st_ts
                    AND s.st[1][1] = s.metric_id AND s.ranges = 1
                    -- what arrived lies in the stored reading's bucket and the next one
                    AND s.hi_us / :bucket_us - """ + _X.replace("t.ts", "s.st_ts") + """ / :bucket_us <= 1
                    AND (s.hi_us - :window_us) / :bucket_us < s.hi_us / :bucket_us - 1, false) AS inc
    FROM fq s WHERE NOT s.quiet
),
-- incremental: the stored whole buckets still in the window (one aggregate over the array), the
-- part of the window's first bucket up to the stored reading (read again) and what arrived, by
-- bucket (the stored reading's bucket and the next one); no reading is grouped row by row
fi AS (
    SELECT s.*, w.top AS w_top, w.bottom AS w_bottom, w.first_us AS w_first, coalesce(w.n, 0) AS w_n,
           CASE WHEN w.j IS NULL THEN CAST('{{}}' AS float8[]) ELSE s.st[w.j:][1:6] END AS kept,
           p.top AS p_top, p.bottom AS p_bottom, p.first_us AS p_first, p.n AS p_n, r.*
    FROM sc s
    CROSS JOIN LATERAL (
        SELECT max(s.st[i][3]) AS top, min(s.st[i][4]) AS bottom, min(s.st[i][5]) AS first_us, sum(s.st[i][6]) AS n,
               min(i) AS j
        FROM generate_subscripts(s.st, 1) i WHERE s.st[i][2] > s.pb) w
    CROSS JOIN LATERAL (
        SELECT max(t.value) AS top, min(t.value) AS bottom, min(""" + _X + """) AS first_us, count(*) AS n
        FROM readings(s.asset_id, s.metric_id, s.hi - CAST(:window_frame AS interval),
                      least(to_timestamp((s.pb + 1) * :bucket_s) - interval '1 microsecond', s.st_ts)) t) p
    CROSS JOIN LATERAL (  -- (bucketed by time, each first reading in microseconds once)
        SELECT top0, bottom0, """ + _X.replace("t.ts", "f0") + """ AS first0, n0,
               top1, bottom1, """ + _X.replace("t.ts", "f1") + """ AS first1, n1 FROM (
            SELECT max(value) FILTER (WHERE older) AS top0, min(value) FILTER (WHERE older) AS bottom0,
                   min(ts) FILTER (WHERE older) AS f0, count(*) FILTER (WHERE older) AS n0,
                   max(value) FILTER (WHERE NOT older) AS top1, min(value) FILTER (WHERE NOT older) AS bottom1,
                   min(ts) FILTER (WHERE NOT older) AS f1, count(*) FILTER (WHERE NOT older) AS n1
            FROM (SELECT t.value, t.ts, t.ts < s.bn_ts AS older
                  FROM readings(s.asset_id, s.metric_id, s.st_ts + interval '1 microsecond', s.hi) t) x) y) r
    WHERE s.inc
),
-- the new buckets: what arrived merged into the last stored bucket when it is the same one
fk AS (
    SELECT fi.*, cardinality(kept) / 6 AS k, CASE WHEN cardinality(kept) > 0 THEN kept[cardinality(kept) / 6][2] END AS kb,
           CASE WHEN n0 > 0 THEN bn - 1 ELSE bn END AS gb,  -- the first bucket of what arrived
           CASE WHEN n0 > 0 THEN top0 ELSE top1 END AS gtop, CASE WHEN n0 > 0 THEN bottom0 ELSE bottom1 END AS gbottom,
           CASE WHEN n0 > 0 THEN first0 ELSE first1 END AS gfirst, CASE WHEN n0 > 0 THEN n0 ELSE n1 END AS gn
    FROM fi
),
fv AS (
    SELECT asset_id, metric_id, site_id, thr, cthr, hi, hi_us,
           greatest(w_top, p_top, top0, top1) AS top, least(w_bottom, p_bottom, bottom0, bottom1) AS bottom,
           least(w_first, p_first, first0, first1) AS first_us, w_n + p_n + n0 + n1 AS n,
           -- (rows as 2-D literals: a row appended to an empty array must stay a list of rows)
           CASE WHEN kb = gb THEN kept[1:k - 1][1:6]
                                   || ARRAY[[CAST(metric_id AS float8), gb, greatest(kept[k][3], gtop),
                                             least(kept[k][4], gbottom), least(kept[k][5], gfirst), kept[k][6] + gn]]
                ELSE kept || ARRAY[[CAST(metric_id AS float8), gb, gtop, gbottom, gfirst, gn]] END
           || CASE WHEN n0 > 0 AND n1 > 0 THEN ARRAY[[CAST(metric_id AS float8), bn, top1, bottom1, first1, n1]]
                   ELSE CAST('{{}}' AS float8[]) END AS vals
    FROM fk WHERE n0 + n1 > 0
),
-- otherwise (late data, first run, another metric or window): the whole window, by bucket
parts AS (
    SELECT asset_id, metric_id, hi, pb, x / :bucket_us AS b, max(value) AS top, min(value) AS bottom, min(x) AS first_us,
           count(*) AS n
    FROM (SELECT s.asset_id, s.metric_id, s.hi, s.pb, t.value, """ + _X + """ AS x
          FROM sc s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.hi - CAST(:window_frame AS interval), s.hi) t
          WHERE NOT s.inc) r
    GROUP BY 1, 2, 3, 4, 5
),
f AS (
    SELECT asset_id, metric_id, hi, max(top) AS top, min(bottom) AS bottom, min(first_us) AS first_us, sum(n) AS n,
           array_agg(ARRAY[metric_id, b, top, bottom, first_us, n] ORDER BY b) FILTER (WHERE b > pb) AS vals
    FROM parts GROUP BY asset_id, metric_id, hi
),
v AS (
    SELECT s.asset_id, s.metric_id, s.site_id, s.thr, s.cthr, s.hi AS ts, true AS evaluated,
           CASE WHEN f.first_us <= s.hi_us - :cover_us THEN f.top - f.bottom END AS value,
           NULL::float8 AS cvalue, f.n AS points, NULL::numeric[] AS st, CAST(f.vals AS float8[]) AS vals
    FROM sc s JOIN f ON f.asset_id = s.asset_id AND f.metric_id = s.metric_id AND f.hi = s.hi
    WHERE f.n > 0
    UNION ALL
    SELECT asset_id, metric_id, site_id, thr, cthr, hi, true,
           CASE WHEN first_us <= hi_us - :cover_us THEN top - bottom END,
           NULL::float8, n, NULL::numeric[], vals
    FROM fv
    UNION ALL  -- quiet: evaluated, not stuck; the spread not measured, the readings that arrived
    SELECT asset_id, metric_id, site_id, thr, cthr, hi, true, NULL::float8, NULL::float8, n_new, NULL::numeric[],
           NULL::float8[]
    FROM fq WHERE quiet
)""",
    # the live engine: the values of the N - 1 readings before the new ones are stored with the
    # state (policy_evaluations.win_values, at last_ts); when everything that arrived is newer than
    # last_ts (steady state) they stand in for the look-up of the previous readings, and no reading
    # after the new ones can exist (nothing to re-evaluate after them). Otherwise (late data, first
    # run, a changed N) the look-up way. Each newest reading stores the N - 1 values up to it.
    "consecutive_live": _consecutive(live=True),
    # each counter reading minus the baseline of the last reset at or before it (never reset: 0).
    # The last reset up to the range's end is looked up once per series: when it is before the
    # range's first reading (or there is none), it is every reading's; only a reset within the
    # range (rare) sends each reading to its own look-up.
    "runtime": """
v AS (
    SELECT s.asset_id, s.metric_id, s.site_id, s.thr, s.cthr, t.ts, true AS evaluated, 1 AS points,
           NULL::float8 AS cvalue, """ + _COUNTER_VALUE.format(b="b") + """ AS value,
           NULL::numeric[] AS st, NULL::float8[] AS vals
    FROM scope s """ + _LAST_RESET + """
    CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.lo, s.hi) t
)""",
    # the live engine: a series is quiet when the arrivals say that none of what arrived can fire
    # — its baseline is every reading's (no reset within the range) and the largest value that
    # arrived minus it (the smallest, for < and <=) does not satisfy the condition (the same
    # float8 subtraction, monotonic in the value) — and it is not firing and has no live alert.
    # A quiet series is evaluated at its newest reading only (its value from the arrivals), with
    # no read of telemetry; the others reading by reading as above.
    "runtime_live": """
rq AS (
    SELECT s.asset_id, s.metric_id, s.lo, s.hi, s.site_id, s.thr, s.cthr, s.arrived, s.vlast, b.baseline, b.reset_at,
           coalesce(s.vlast IS NOT NULL AND (b.reset_at IS NULL OR b.reset_at <= s.lo)
                    AND NOT ({bound} - coalesce(b.baseline, 0) {op} s.thr)
                    AND NOT EXISTS (SELECT 1 FROM policy_evaluations e
                                    WHERE e.asset_id = s.asset_id AND e.policy_id = :policy_id AND e.firing)
                    AND NOT """ + _live_alert("s.asset_id") + """, false) AS quiet
    FROM scope s """ + _LAST_RESET + """
),
v AS (
    SELECT s.asset_id, s.metric_id, s.site_id, s.thr, s.cthr, t.ts, true AS evaluated, 1 AS points,
           NULL::float8 AS cvalue, """ + _COUNTER_VALUE.format(b="s") + """ AS value,
           NULL::numeric[] AS st, NULL::float8[] AS vals
    FROM rq s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id, s.lo, s.hi) t
    WHERE NOT s.quiet
    UNION ALL  -- a quiet series: its newest reading (hi: the newest that arrived)
    SELECT asset_id, metric_id, site_id, thr, cthr, hi, true, 1, NULL::float8, vlast - coalesce(baseline, 0),
           NULL::numeric[], NULL::float8[]
    FROM rq WHERE quiet
)""",
    # silent sensors have no readings to evaluate: one instant, `hi` (the run's now), whose value
    # is the minutes since the most silent metric's newest reading (`lo`, _NO_DATA_RANGES)
    "no_data": """
v AS (
    SELECT s.asset_id, 0 AS metric_id, s.site_id, s.thr, s.cthr, s.hi AS ts, true AS evaluated,
           NULL::float8 AS cvalue, CAST(max(extract(epoch FROM s.hi - s.lo) / 60.0) AS float8) AS value, count(*) AS points,
           NULL::numeric[] AS st, NULL::float8[] AS vals
    FROM scope s
    GROUP BY s.asset_id, s.site_id, s.thr, s.cthr, s.hi
)""",
}

# K: the reading lies in a past (closed) alert's episode, so it cannot open another one; S: a
# silence covers it (event time). Only the live engine looks at them (:live).
_CLASSES = """
c AS (
    SELECT asset_id, site_id, ts, value, points, st, vals, thr,
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
moving AS (  -- the assets the state machine may act on: a reading fired, or an alert is live
    SELECT asset_id FROM k WHERE cls IN ('F', 'S'){live_assets}
),
g AS (  -- only theirs are cut into segments: in steady state almost none, whatever the fleet
    SELECT k.*, row_number() OVER (PARTITION BY asset_id ORDER BY ts)
              - row_number() OVER (PARTITION BY asset_id, cls ORDER BY ts) AS grp
    FROM k WHERE asset_id IN (SELECT asset_id FROM moving)
),
segs AS (
    SELECT asset_id, cls, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n, {peak}(value) AS peak,
           max(points) AS points, CASE WHEN :pending THEN array_agg(ts ORDER BY ts) END AS instants
    FROM g GROUP BY asset_id, cls, grp
),
seg AS (  -- with whether the asset fired at all in this run (only those matter to the state machine)
    SELECT *, bool_or(cls IN ('F', 'S')) OVER (PARTITION BY asset_id) AS fired FROM segs
)"""

# with a live alert, an asset's clearing readings matter too
_LIVE_ASSETS = """
    UNION SELECT asset_id FROM alerts WHERE policy_id = :policy_id AND status = ANY(:live_statuses)"""

# the live engine records the newest value of each (asset, policy) (not a re-evaluated older one).
# A row that carries no state for the next run (no sums, no stored values: no_data, runtime,
# flat_line's quiet series), far from firing now and as last recorded (not firing, no live alert,
# the value outside the status's near margin) is left as it is: every run would only move its time
# and a value nothing acts on (docs/engine.md). It is recorded again in its asset's minute (one
# minute in QUIET_REFRESH, by asset id: a fifth of the fleet each minute, never all at once) or
# once its record is QUIET_REFRESH old.
_RECORD = """,
newest AS (
    SELECT DISTINCT ON (asset_id) asset_id, ts, CASE WHEN points >= :min_points THEN value END AS value, points, st,
           vals, thr, cls IN ('F', 'S', 'K') AS firing
    FROM k ORDER BY asset_id, ts DESC
),
up AS (
    INSERT INTO policy_evaluations AS pe (asset_id, policy_id, evaluated_at, value, points, firing, last_ts, firing_since,
                                          win_seconds, win_n, win_sums, win_values)
    SELECT n.asset_id, :policy_id, :now, n.value, n.points, n.firing, n.ts,
           CASE WHEN n.firing THEN n.ts END,
           CASE WHEN n.st IS NOT NULL THEN :win_seconds WHEN n.vals IS NOT NULL THEN CAST(:vals_seconds AS int) END,
           CASE WHEN n.st IS NOT NULL THEN n.points WHEN n.vals IS NOT NULL THEN :vals_n END, n.st, n.vals
    FROM newest n  -- (the stored row is looked at last, only for a row that may be left)
    WHERE NOT (n.st IS NULL AND n.vals IS NULL AND NOT n.firing
               AND (n.asset_id + CAST(floor(date_part('epoch', CAST(:now AS timestamptz)) / 60) AS bigint))
                   % :quiet_minutes <> 0
               AND {far_new} AND EXISTS (
                   SELECT 1 FROM policy_evaluations e WHERE e.asset_id = n.asset_id AND e.policy_id = :policy_id
                     AND NOT e.firing AND e.evaluated_at > CAST(:now AS timestamptz) - CAST(:quiet_refresh AS interval)
                     AND {far_stored})
               AND NOT """ + _live_alert("n.asset_id") + """)
    ON CONFLICT (asset_id, policy_id) DO UPDATE SET
        evaluated_at = excluded.evaluated_at, value = excluded.value, points = excluded.points,
        firing = excluded.firing, last_ts = excluded.last_ts, win_seconds = excluded.win_seconds,
        win_n = excluded.win_n, win_sums = excluded.win_sums, win_values = excluded.win_values,
        firing_since = CASE WHEN excluded.firing AND pe.firing THEN pe.firing_since ELSE excluded.firing_since END
    WHERE pe.last_ts IS NULL OR excluded.last_ts >= pe.last_ts
    RETURNING 1
)
SELECT s.asset_id, s.cls, s.first_ts, s.last_ts, s.n, s.peak, s.points, s.instants,
       pe.firing_since, pe.last_ts AS pe_last_ts, la.id AS alert_id, la.started_at, la.peak AS alert_peak,
       (SELECT count(*) FROM k) + {quiet} + (SELECT count(*) FROM up) * 0 AS readings
FROM seg s
LEFT JOIN policy_evaluations pe ON pe.asset_id = s.asset_id AND pe.policy_id = :policy_id
LEFT JOIN alerts la ON la.asset_id = s.asset_id AND la.policy_id = :policy_id AND la.status = ANY(:live_statuses)
WHERE la.id IS NOT NULL OR s.fired
UNION ALL  -- one row that always comes back: how many readings were evaluated
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM k) + {quiet}
ORDER BY 1 NULLS FIRST, 3
"""


def _quiet_readings(cte: str, count: str) -> str:
    """The readings the quiet series of `cte` received besides the newest one (`count` of them in
    each: evaluated at once, none can fire)."""
    return f"(SELECT CAST(coalesce(sum({count} - 1), 0) AS bigint) FROM {cte} WHERE quiet)"

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
    # the live engine's average and consecutive rules have quiet series (sq), its runtime rules too
    # (rq): the readings they stand for are counted with the run's
    quiet = "0"
    arrived = False  # the statement's quiet test reads what arrived from the arrivals
    if policy.rule_type == "rate_of_change" or (policy.rule_type == "threshold" and agg == "avg"):
        kind = "rate_of_change" if policy.rule_type == "rate_of_change" else "threshold_avg"
        values = _running(kind, incremental=record)
        if record and kind == "threshold_avg":
            quiet = _quiet_readings("sq", "n_new")
    elif record and policy.rule_type in ("flat_line", "consecutive", "runtime"):
        values = _VALUES[policy.rule_type + "_live"]
        arrived = policy.rule_type != "consecutive"
        quiet = {"consecutive": _quiet_readings("sq", "n_new"), "runtime": _quiet_readings("rq", "arrived")}.get(
            policy.rule_type, "0")
    else:
        values = _VALUES[policy.rule_type]
    reach = "r.hi" if record and policy.rule_type == "consecutive" else _REACH.get(policy.rule_type, "r.hi")
    return (
        "WITH " + _SCOPE.format(ranges=ranges, reach=reach, extra=_ARRIVED if arrived else "") + ","
        + values.format(agg=agg, cagg=cagg, op=op, bound_agg="greatest" if policy.peak_is_max else "least",
                        bound_fn="max" if policy.peak_is_max else "min",
                        # flat_line's quiet series: only for a spread at most the threshold (more
                        # readings widen a spread; "at least" could not be decided from a part)
                        far_spread=_far(op, "q.spread", "s.thr") if op in ("<", "<=") else "false",
                        bound="s.vmax" if op in (">", ">=") else "s.vmin") + ","
        + _CLASSES.format(op=op, clear=clear, peak="max" if policy.peak_is_max else "min",
                          live_assets=_LIVE_ASSETS if record else "")
        # quiet series stand for every reading they received
        + (_RECORD.replace("{quiet}", quiet)
           .replace("{far_new}", _far(op, "n.value", "n.thr")).replace("{far_stored}", _far(op, "e.value", "n.thr"))
           if record else _SEGMENTS)
    )


def params(policy: PolicyView, *, now: datetime, live: bool, threshold_forced: bool = False,
           clear_forced: bool = False) -> dict:
    window = timedelta(minutes=policy.window_minutes or 0)
    cover = window - window / max(policy.min_points, 1)
    bucket_s = max(int(window.total_seconds()) // 6, 1)  # flat_line's stored buckets
    return {
        "policy_id": policy.id, "asset_type": policy.asset_type,
        "metric_ids": list(policy.metric_ids) if policy.metric_ids else None,
        "threshold": policy.threshold, "clear_threshold": policy.clear_threshold,
        "force_threshold": threshold_forced, "force_clear": clear_forced,
        "window": window, "window_frame": max(window - _MICRO, timedelta(0)),
        "cover": cover,
        "before": max(policy.min_points - 1, 0), "min_points": policy.min_points,
        "pending": policy.for_minutes > 0, "live": live, "now": now, "until": now,
        "live_statuses": list(AlertStatus.LIVE),
        "win_seconds": int(window.total_seconds()),
        "window_us": window // _MICRO, "cover_us": cover // _MICRO,
        "bucket_s": bucket_s, "bucket_us": bucket_s * 1_000_000,
        # what win_seconds / win_n say of the stored values (win_values): consecutive, N - 1;
        # flat_line, its window and bucket
        "vals_seconds": int(window.total_seconds()) if policy.rule_type == "flat_line" else None,
        "vals_n": bucket_s if policy.rule_type == "flat_line" else max(policy.min_points - 1, 0),
        "near_margin": NEAR_MARGIN,
        "quiet_refresh": QUIET_REFRESH, "quiet_minutes": QUIET_REFRESH // timedelta(minutes=1),
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
    SELECT asset_id, metric_id, min_ts, max_ts, n, vmin, vmax, vlast FROM consumed
    UNION ALL
    SELECT asset_id, metric_id, min_ts, max_ts, n, vmin, vmax, vlast FROM telemetry_arrivals
    WHERE max_ts > :now AND {in_shard}
),
ordered AS (  -- (the values of an arrival reaching past now are not all in the range)
    SELECT asset_id, metric_id, min_ts, least(max_ts, :now) AS max_ts, CASE WHEN max_ts <= :now THEN n END AS n,
           CASE WHEN max_ts <= :now THEN vmin END AS vmin, CASE WHEN max_ts <= :now THEN vmax END AS vmax,
           CASE WHEN max_ts <= :now THEN vlast END AS vlast,
           max(max_ts) OVER (PARTITION BY asset_id, metric_id ORDER BY min_ts
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM taken WHERE min_ts <= :now
),
islands AS (
    SELECT *, count(*) FILTER (WHERE reach IS NULL OR min_ts > reach + :gap)
                OVER (PARTITION BY asset_id, metric_id ORDER BY min_ts) AS island
    FROM ordered
)
INSERT INTO run_ranges (asset_id, metric_id, lo, hi, n, vmin, vmax, vlast)
SELECT asset_id, metric_id, min(min_ts), max(max_ts), CASE WHEN bool_and(known) THEN sum(n) END,
       CASE WHEN bool_and(known) THEN min(vmin) END, CASE WHEN bool_and(known) THEN max(vmax) END,
       CASE WHEN bool_and(known) THEN (array_agg(vlast ORDER BY max_ts DESC))[1] END  -- the newest arrival's
FROM (SELECT *, n IS NOT NULL AND vmin IS NOT NULL AND vmax IS NOT NULL AND vlast IS NOT NULL AS known
      FROM islands) i
GROUP BY asset_id, metric_id, island
"""
# a shard (k of n) takes the assets whose id is k modulo n; no shard (n NULL): every asset
_IN_SHARD = "(CAST(:shards AS int) IS NULL OR {col} % :shards = :shard)"
_CONSUME = ("DELETE FROM telemetry_arrivals WHERE max_ts <= :now AND " + _IN_SHARD.format(col="asset_id")
            + " RETURNING asset_id, metric_id, min_ts, max_ts, n, vmin, vmax, vlast")
_PEEK = ("SELECT asset_id, metric_id, min_ts, max_ts, n, vmin, vmax, vlast FROM telemetry_arrivals WHERE max_ts <= :now AND "
         + _IN_SHARD.format(col="asset_id"))


def _shard_params(shard: tuple[int, int] | None) -> dict:
    return {"shard": shard[0] if shard else 0, "shards": shard[1] if shard else None}


# what a run takes, per connection: islands of event time per (asset, metric), with how many
# readings arrived in each, their smallest and largest value and the newest one's (all NULL unless
# known for every arrival of the island, none reaching past the run's now)
RUN_RANGES = ("CREATE TEMP TABLE IF NOT EXISTS run_ranges (asset_id int, metric_id smallint, lo timestamptz, "
              "hi timestamptz, n int, vmin float8, vmax float8, vlast float8) ON COMMIT DELETE ROWS")


def take_arrivals(session: Session, *, now: datetime, consume: bool, shard: tuple[int, int] | None = None) -> int:
    """Put what arrived since the previous run into the temporary table run_ranges (islands of
    event time per asset and metric, up to `now`) and refresh telemetry_latest; with `consume`
    the arrivals are deleted (the run commits that with its results; a partial run, of some
    policies only, leaves them for the next full one)."""
    session.execute(text(RUN_RANGES))
    session.execute(text("DELETE FROM run_ranges"))  # (not TRUNCATE: see _prepared)
    sql = _TAKE_ARRIVALS.format(take=_CONSUME if consume else _PEEK, in_shard=_IN_SHARD.format(col="asset_id"))
    n = session.execute(text(sql), {"gap": ISLAND_GAP, "now": now, **_shard_params(shard)}).rowcount
    session.execute(text(
        "INSERT INTO telemetry_latest AS l (asset_id, metric_id, last_ts) "
        "SELECT asset_id, metric_id, max(hi) FROM run_ranges GROUP BY asset_id, metric_id "
        "ON CONFLICT (asset_id, metric_id) DO UPDATE SET last_ts = excluded.last_ts WHERE excluded.last_ts > l.last_ts"))
    return n


_LIVE_RANGES = "SELECT asset_id, metric_id, lo, hi, n, vmin, vmax, vlast FROM run_ranges"
# no_data looks at every asset at `now`, not at what arrived: its range is (newest reading, now]
_NO_DATA_RANGES = ("SELECT l.asset_id, l.metric_id, l.last_ts AS lo, CAST(:now AS timestamptz) AS hi "
                   "FROM telemetry_latest l WHERE " + _IN_SHARD.format(col="l.asset_id"))


# How the policies' statements are planned (see _prepared)
_PLANNING = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}


@contextmanager
def _prepared(session: Session) -> Iterator[None]:
    """The statements executed inside are prepared on the server at their first execution on a
    connection (psycopg's prepare_threshold 0) and run with their generic plan (plan_cache_mode):
    parsed and planned once per pooled connection, not at every run — 8 to 17 ms per statement
    and shard, most of a small fleet's run. Their parameters (the policy's constants, the run's
    instant) change no plan choice worth a custom plan: each statement reads every series through
    its own index look-ups. A plan lasts until a relation it reads changes shape (a new day
    partition, a migration), is truncated or analyzed; so the run empties run_ranges with DELETE
    and does not ANALYZE it (the planner sizes a table never analyzed by its pages).
    A plan that lasts must not trust the statistics of the moment: a day partition planned while
    still empty would be read by a sequential scan, kept while it fills up (hundreds of
    milliseconds per look-up by the end of the day, were autovacuum not to analyze it). Planned
    with enable_seqscan off, every table with an index is read through it whatever its size."""
    raw = session.connection().connection.driver_connection
    names = list(_PLANNING)
    before = session.execute(text(
        "SELECT " + ", ".join(f"current_setting('{n}')" for n in names) + ", "
        + ", ".join(f"set_config('{n}', '{_PLANNING[n]}', true)" for n in names))).one()
    saved, raw.prepare_threshold = raw.prepare_threshold, 0
    try:
        yield
    finally:
        raw.prepare_threshold = saved
    # (after an error the enclosing savepoint's rollback puts the settings back)
    session.execute(text("SELECT " + ", ".join(f"set_config('{n}', :v{i}, true)" for i, n in enumerate(names))),
                    {f"v{i}": before[i] for i in range(len(names))})


def live_statement(policy: PolicyView) -> str:
    """The live engine's statement of `policy`: over what arrived (no_data: over every series at
    the run's instant), recording the newest values."""
    return statement(policy, ranges=_NO_DATA_RANGES if policy.rule_type == "no_data" else _LIVE_RANGES, record=True)


def evaluate_policy(session: Session, *, policy: PolicyView, now: datetime, result: EvaluationResult,
                    shard: tuple[int, int] | None = None) -> None:
    """One policy over what arrived: one statement, then the state machine where something may happen."""
    with _prepared(session):
        rows = session.execute(text(live_statement(policy)),
                               params(policy, now=now, live=True) | _shard_params(shard)).all()
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
    session: Session, *, now: datetime, policy_codes: list[str] | None = None, source: str = "scheduler",
    shard: tuple[int, int] | None = None, record_run: bool = True,
) -> EvaluationResult:
    """Evaluate the enabled policies over every reading that arrived since the previous run; open,
    clear and update alerts (and their work orders). Does not commit. With `shard` (k, n): only
    the assets whose id is k modulo n (see evaluate_sharded); without `record_run`, the caller
    writes the run record."""
    started = time.perf_counter()
    result = EvaluationResult()
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    take_arrivals(session, now=now, consume=not policy_codes, shard=shard)
    for policy in load_policies(session, codes=policy_codes):
        try:
            with session.begin_nested():
                evaluate_policy(session, policy=policy, now=now, result=result, shard=shard)
            result.policies += 1
        except Exception as exc:  # noqa: BLE001 - one failing policy must not stop the others
            log.exception("policy %s failed; the others go on", policy.code)
            result.failed[policy.code] = f"{type(exc).__name__}: {exc}"[:500]
    result.assets = session.execute(text("SELECT count(DISTINCT asset_id) FROM run_ranges")).scalar_one()
    result.duration_s = time.perf_counter() - started
    if record_run:
        record(session, result, now=now, source=source)
    return result


def record(session: Session, result: EvaluationResult, *, now: datetime, source: str) -> None:
    """The run record (rule_runs) of a run."""
    session.add(
        RuleRun(at=now, duration_s=result.duration_s, policies=result.policies, assets=result.assets,
                fired=len(result.fired), source=source, readings=result.readings, cleared=len(result.cleared),
                silenced=result.silenced, failed=len(result.failed), errors=result.failed or None)
    )


def evaluate_sharded(*, now: datetime, shards: int, source: str = "scheduler") -> EvaluationResult:
    """One run in `shards` parallel transactions (a job, not a service: it commits). Shard k takes
    the assets whose id is k modulo `shards`: their arrivals, policies, alerts and work orders are
    disjoint, so the transactions never wait on each other and each core evaluates its share.
    Each shard commits on its own (a shard that fails leaves its arrivals for the next run); the
    run record, written last, adds them up."""
    from db.session import session_scope

    started = time.perf_counter()

    def one(k: int) -> EvaluationResult:
        with session_scope() as session:
            return evaluate_all(session, now=now, source=source, shard=(k, shards), record_run=False)

    with ThreadPoolExecutor(max_workers=shards, thread_name_prefix="rules-shard") as pool:
        futures = [pool.submit(one, k) for k in range(shards)]
    total, errors = EvaluationResult(), []
    for k, future in enumerate(futures):
        try:
            part = future.result()
        except Exception as exc:  # noqa: BLE001 - the other shards' work is committed and recorded
            log.exception("rule shard %d of %d failed; its arrivals wait for the next run", k, shards)
            errors.append(exc)
            total.failed[f"shard {k}"] = f"{type(exc).__name__}: {exc}"[:500]
            continue
        total.policies = max(total.policies, part.policies)
        total.assets += part.assets
        total.readings += part.readings
        total.fired += part.fired
        total.cleared += part.cleared
        total.silenced += part.silenced
        total.failed.update(part.failed)
    total.duration_s = time.perf_counter() - started
    if len(errors) == shards:
        raise errors[0]
    with session_scope() as session:
        record(session, total, now=now, source=source)
    return total
