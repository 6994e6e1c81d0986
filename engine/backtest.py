"""Backtest: what would a policy (or a tuned copy of it) have fired over stored history?

The same statement as the live engine (engine/evaluate.py `statement`, without recording and
without silences or existing alerts) over every reading of [from, to], and the same state machine
(engine/rules.py `advance`) from an idle state: the firings are the episodes an alert would have
had (start, end when the clear condition held, peak), one alert and — with auto_work_order — one
work order each. no_data, whose live evaluation looks at "now", is replayed from the gaps between
stored readings.

The sweep skips what cannot fire (`_ISLANDS`): a threshold rule's value at a reading (an average,
minimum or maximum of its window) lies between the smallest and the largest reading of that
window, so the hourly roll-up (telemetry_hourly: min and max of every complete hour) says which
hours can hold a firing reading. Only the islands of time around those hours are evaluated, each
up to a reading that surely satisfies the clear condition (so every alert opened in an island
has closed at its end, and a pending streak is broken there); the readings skipped between
islands can neither fire nor change the state machine. Hours the roll-up does not vouch for (no
row, dirty after late data, not rolled up yet) are evaluated. docs/engine.md ("Backtest").
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.settings import get_settings
from db.errors import InvalidInput, NotFound
from db.models import Asset
from engine.evaluate import load_policies, params, segments_of, statement
from engine.rules import PolicyView, State, advance

MAX_RANGE = timedelta(days=366)

_RANGES = (
    "SELECT a.id AS asset_id, m.id AS metric_id, CAST(:start AS timestamptz) AS lo, CAST(:end AS timestamptz) AS hi "
    "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
    "WHERE (CAST(:only_asset AS int) IS NULL OR a.id = :only_asset) AND mod(a.id, :workers) = :worker"
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


# --- The prefilter: islands of time that can fire ------------------------------------------------
# Per (asset, metric) of a single-metric threshold policy, from the hourly roll-up of the hours the
# backtest reads ([hour(from - window), hour(to)]):
# - B: an hour that could hold a firing reading's window: its max (min for < and <=) is past the
#   asset's threshold (override and what-if applied as in the statement), or the roll-up does not
#   vouch for it: no row (no readings, or never rolled up: unless no reading is stored there — index
#   probes, and a cold day's first reading time), listed in telemetry_dirty_hours (late
#   readings since), not rolled up yet (at or after maintenance_state 'rollup_until': only if some
#   reading is stored there), a value that is not finite.
# - W: known, not B, but not surely clear (its max above the clear threshold, for <=).
# - the other hours (no row here: the usual case) are C: every value satisfies the clear condition
#   (without a clear condition: cannot fire), so a reading whose whole window lies in C hours is
#   surely cleared (and not firing).
# A reading can fire only if its window (t - window, t] meets a B hour: the B runs widened by the
# window (`pf`) hold every reading that can fire. Each island runs from a `pf` interval to the
# first reading whose window lies in C hours after it (`scr`: a C run from its start + window):
# the first reading there — a probe of the hot tier's index, or, in the cold tier, that hour's
# readings alone (telemetry_cold_range: the row's hour index, migration 0010) — or else the end
# of the next whole C hour, which holds at least one reading (a roll-up row has n >= 1). An
# island without such an end before the next `pf` interval merges with it (the last runs to `to`).
# `d`: a bound on how far the statement's average can lie above the window's largest reading (or
# below its smallest): it sums the readings as integer millionths, round(v * 1e6), so by at most
# half a millionth, plus the float8 roundings (of v * 1e6, of the quotient; bounded generously by
# N ulp max|v|, N <= the readings of window_hours + 1 hours). Readings equal to the threshold
# can thus fire; the margin keeps them.
_ISLANDS = """
WITH pairs AS (
    SELECT a.id AS asset_id, m.id AS metric_id,
           CASE WHEN :force_threshold THEN :threshold ELSE coalesce(o.threshold, :threshold) END AS thr,
           CASE WHEN :force_clear THEN :clear_threshold ELSE coalesce(o.clear_threshold, :clear_threshold) END AS cthr
    FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types)
    LEFT JOIN policy_overrides o ON o.asset_id = a.id AND o.policy_id = :policy_id
    WHERE (CAST(:asset_type AS text) IS NULL OR a.type = :asset_type) AND m.id = ANY(:metric_ids)
      AND (CAST(:only_asset AS int) IS NULL OR a.id = :only_asset) AND coalesce(o.enabled, true)
      AND mod(a.id, :workers) = :worker
),
known AS (  -- the hours the roll-up vouches for: [h_lo, known_end)
    SELECT least(CAST(:h_end AS timestamptz), greatest(CAST(:h_lo AS timestamptz), coalesce(
               (SELECT at FROM maintenance_state WHERE name = 'rollup_until'), CAST(:h_lo AS timestamptz)))) AS known_end
),
stats AS (  -- per pair (an index range each): the rows the roll-up has, and the rounding bound
    SELECT p.asset_id, p.metric_id, p.thr, p.cthr, x.hours,
           :half_micro + :ulp * ((:window_hours + 1) * coalesce(x.n_max, 0) + 2) * coalesce(x.m, 0) AS d
    FROM pairs p CROSS JOIN known k
    CROSS JOIN LATERAL (SELECT count(*) AS hours, max(r.n) AS n_max, max(greatest(abs(r.min), abs(r.max))) AS m
                        FROM telemetry_hourly r WHERE r.asset_id = p.asset_id AND r.metric_id = p.metric_id
                          AND r.hour >= :h_lo AND r.hour < k.known_end) x
),
odd AS (
    SELECT r.asset_id, r.metric_id, r.hour AS lo, r.hour + interval '1 hour' AS hi,
           CASE WHEN x.hour IS NOT NULL OR NOT (r.max < 'Infinity' AND r.min > '-Infinity' AND s.d < 'Infinity')
                     OR coalesce({hot}, true) THEN 'B' ELSE 'W' END AS st
    FROM stats s CROSS JOIN known k
    JOIN telemetry_hourly r ON r.asset_id = s.asset_id AND r.metric_id = s.metric_id
         AND r.hour >= :h_lo AND r.hour < k.known_end
    LEFT JOIN telemetry_dirty_hours x ON x.asset_id = r.asset_id AND x.metric_id = r.metric_id AND x.hour = r.hour
    WHERE x.hour IS NOT NULL OR NOT (r.max < 'Infinity' AND r.min > '-Infinity' AND s.d < 'Infinity')
       OR coalesce({hot}, true) OR NOT coalesce({cool}, false)
    UNION ALL  -- the hours without a roll-up row (only pairs that lack some), unless surely empty:
               -- no hot reading there, and no cold row of that day, or its first reading after the hour
    SELECT s.asset_id, s.metric_id, g.hour, g.hour + interval '1 hour', 'B'
    FROM stats s CROSS JOIN known k
    CROSS JOIN LATERAL (
        SELECT h AS hour FROM generate_series(CAST(:h_lo AS timestamptz), k.known_end - interval '1 hour', interval '1 hour') h
        EXCEPT SELECT r.hour FROM telemetry_hourly r WHERE r.asset_id = s.asset_id AND r.metric_id = s.metric_id
                 AND r.hour >= :h_lo AND r.hour < k.known_end) g
    WHERE s.hours < extract(epoch FROM k.known_end - CAST(:h_lo AS timestamptz)) / 3600
      AND (EXISTS (SELECT 1 FROM telemetry t WHERE t.asset_id = s.asset_id AND t.metric_id = s.metric_id
                     AND t.ts >= g.hour AND t.ts < g.hour + interval '1 hour')
           OR EXISTS (SELECT 1 FROM telemetry_cold c WHERE c.asset_id = s.asset_id AND c.metric_id = s.metric_id
                        AND c.day = date_trunc('day', g.hour, 'UTC')
                        AND c.day + interval '1 microsecond' * c.dts[1] < g.hour + interval '1 hour'))
    UNION ALL  -- the hours not rolled up yet, if they hold readings (index probes: no decoding)
    SELECT s.asset_id, s.metric_id, k.known_end, CAST(:h_end AS timestamptz), 'B' FROM stats s CROSS JOIN known k
    WHERE k.known_end < :h_end
      AND (EXISTS (SELECT 1 FROM telemetry t WHERE t.asset_id = s.asset_id AND t.metric_id = s.metric_id
                     AND t.ts >= k.known_end AND t.ts <= :end)
           OR EXISTS (SELECT 1 FROM telemetry_cold c WHERE c.asset_id = s.asset_id AND c.metric_id = s.metric_id
                        AND c.day > k.known_end - interval '1 day' AND c.day <= :end))
),
runs AS (  -- consecutive odd hours of one kind, merged
    SELECT asset_id, metric_id, st, min(lo) AS lo, max(hi) AS hi FROM (
        SELECT *, count(*) FILTER (WHERE NOT joined) OVER (PARTITION BY asset_id, metric_id ORDER BY lo) AS grp
        FROM (SELECT *, coalesce(lag(hi) OVER w = lo AND lag(st) OVER w = st, false) AS joined
              FROM odd WINDOW w AS (PARTITION BY asset_id, metric_id ORDER BY lo)) a) b
    GROUP BY asset_id, metric_id, st, grp
),
pf AS (  -- the B runs widened by the window: every reading that can fire is in one
    SELECT asset_id, metric_id, min(lo) AS lo, max(hi) AS hi FROM (
        SELECT *, count(*) FILTER (WHERE lo > before) OVER (PARTITION BY asset_id, metric_id ORDER BY lo) AS grp
        FROM (SELECT asset_id, metric_id, lo, hi + CAST(:window AS interval) AS hi,
                     max(hi + CAST(:window AS interval)) OVER (PARTITION BY asset_id, metric_id ORDER BY lo
                                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
              FROM runs WHERE st = 'B') a) b
    GROUP BY asset_id, metric_id, grp
),
scr AS (  -- the C runs (between the odd runs) from their start + window: surely cleared readings
    SELECT asset_id, metric_id, lo + CAST(:window AS interval) AS lo, hi FROM (
        SELECT asset_id, metric_id, coalesce(lag(hi) OVER (PARTITION BY asset_id, metric_id ORDER BY lo),
                                             CAST(:h_lo AS timestamptz)) AS lo, lo AS hi FROM runs
        UNION ALL
        SELECT asset_id, metric_id, max(hi), CAST(:h_end AS timestamptz) FROM runs GROUP BY asset_id, metric_id) c
    WHERE lo + CAST(:window AS interval) < hi
),
marks AS (  -- each pf interval and what follows it
    SELECT *, lead(kind) OVER w AS next_kind, lead(lo) OVER w AS next_lo, lead(hi) OVER w AS next_hi FROM (
        SELECT asset_id, metric_id, lo, hi, 'P' AS kind FROM pf WHERE hi > :start
        UNION ALL SELECT asset_id, metric_id, lo, hi, 'S' FROM scr WHERE hi > :start) u
    WINDOW w AS (PARTITION BY asset_id, metric_id ORDER BY lo)
),
ends AS MATERIALIZED (  -- where each pf interval's island can end: a surely cleared reading right after it
    SELECT m.asset_id, m.metric_id, m.lo, CASE WHEN m.next_kind = 'S' THEN coalesce(
               (SELECT min(t.ts) FROM telemetry t WHERE t.asset_id = m.asset_id AND t.metric_id = m.metric_id
                  AND t.ts >= m.next_lo AND t.ts < least(m.next_hi, date_trunc('hour', m.next_lo, 'UTC') + interval '1 hour')),
               (SELECT min(x.ts) FROM telemetry_cold c  -- the hour of next_lo in the day's row, alone
                CROSS JOIN LATERAL telemetry_cold_range(c.day, c.dts, c.vals, c.milli, c.hours, m.next_lo, m.next_lo) x
                WHERE c.asset_id = m.asset_id AND c.metric_id = m.metric_id AND c.day = date_trunc('day', m.next_lo, 'UTC')
                  AND x.ts >= m.next_lo AND x.ts < least(m.next_hi, date_trunc('hour', m.next_lo, 'UTC') + interval '1 hour')),
               CASE WHEN date_trunc('hour', m.next_lo, 'UTC') + interval '2 hours' <= m.next_hi
                    THEN date_trunc('hour', m.next_lo, 'UTC') + interval '2 hours' - interval '1 microsecond' END) END AS at
    FROM marks m WHERE m.kind = 'P' AND m.lo <= :end
),
islands AS (
    SELECT asset_id, metric_id, greatest(min(lo), CAST(:start AS timestamptz)) AS lo,
           least(coalesce(max(at), CAST(:end AS timestamptz)), CAST(:end AS timestamptz)) AS hi
    FROM (SELECT *, count(at) OVER (PARTITION BY asset_id, metric_id ORDER BY lo
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS island FROM ends) e
    GROUP BY asset_id, metric_id, island
)
SELECT asset_id, metric_id, lo, hi FROM islands WHERE lo <= hi
"""
_HOT = {">": "NOT (r.max + s.d <= s.thr)", ">=": "NOT (r.max + s.d < s.thr)",
        "<": "NOT (r.min - s.d >= s.thr)", "<=": "NOT (r.min - s.d > s.thr)"}
_COOL = {"<=": "r.max + s.d <= s.cthr", "<": "r.max + s.d < s.cthr",
         ">=": "r.min - s.d >= s.cthr", ">": "r.min - s.d > s.cthr", None: "true"}
ULP = 2.0 ** -52
HALF_MICRO = 5.000001e-7  # the average's integer millionths (engine/evaluate.py `_Y`): half of one, rounded up


def prefilterable(policy: PolicyView) -> bool:
    """Whether the roll-up bounds the policy's value: threshold rules (avg, min, max of a window)
    on one metric (with several, the readings of each would interleave in one state machine)."""
    return (policy.rule_type == "threshold" and policy.window_minutes is not None and policy.condition in _HOT
            and policy.clear_condition in _COOL and policy.metric_ids is not None and len(policy.metric_ids) == 1)


def islands_sql(policy: PolicyView) -> str:
    """The SQL of the islands to evaluate (asset_id, metric_id, lo, hi), parameters as `statement`'s
    plus those of `island_params`."""
    return _ISLANDS.replace("{hot}", _HOT[policy.condition]).replace("{cool}", _COOL[policy.clear_condition])


def island_params(policy: PolicyView, *, start: datetime, end: datetime) -> dict:
    """[h_lo, h_end): the hours the backtest reads (the first window's look-back included)."""
    window = timedelta(minutes=policy.window_minutes or 0)

    def hour(t: datetime) -> datetime:
        return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return {"h_lo": hour(start - window), "h_end": hour(end) + timedelta(hours=1), "ulp": ULP, "half_micro": HALF_MICRO,
            "window_hours": math.ceil(window / timedelta(hours=1))}


def backtest(
    session: Session, *, code: str, start: datetime, end: datetime, threshold: float | None = None,
    clear_threshold: float | None = None, window_minutes: int | None = None, consecutive_points: int | None = None,
    asset_code: str | None = None, full_sweep: bool = False,
) -> dict:
    """The firings of policy `code` (tuned by the given parameters) over [start, end]. The
    readings that cannot fire are skipped (the module's docstring); `full_sweep` evaluates every
    reading instead (same firings: the tests compare both)."""
    policy, p = _prepare(session, code=code, start=start, end=end, threshold=threshold,
                         clear_threshold=clear_threshold, window_minutes=window_minutes,
                         consecutive_points=consecutive_points, asset_code=asset_code)
    only = p["only_asset"]
    if policy.rule_type == "no_data":
        rows = session.execute(text(_NO_DATA), p).all()
        firings = [(r.asset_id, r.start, r.end, r.peak) for r in rows if r.start <= end]
    else:
        ranges = _RANGES
        if prefilterable(policy) and not full_sweep:
            # the statement reaches `window` past each range's hi (the later readings a late one
            # changes, in the live engine): each island's own end is passed minus the window
            ranges = f"SELECT asset_id, metric_id, lo, hi - CAST(:window AS interval) AS hi FROM ({islands_sql(policy)}) i"
        workers = 1 if full_sweep or only is not None else max(get_settings().backtest_workers, 1)
        rows = _run(session, statement(policy, ranges=ranges, record=False), p, workers=workers)
        firings = _replay(policy, rows)
    codes = dict(session.execute(select(Asset.id, Asset.code).where(Asset.id.in_({f[0] for f in firings}))).all())
    out = [{"asset_code": codes[a], "start": s, "end": e, "peak": peak} for a, s, e, peak in firings]
    return {"policy": policy.code, "from": start, "to": end,
            "parameters": {"threshold": policy.threshold, "clear_threshold": policy.clear_threshold,
                           "window_minutes": policy.window_minutes, "consecutive_points": policy.consecutive_points},
            "firings": out, "alerts": len(out), "work_orders": len(out) if policy.auto_work_order else 0}


def islands(session: Session, *, code: str, start: datetime, end: datetime, **what_if) -> list[tuple] | None:
    """The islands (asset_id, metric_id, lo, hi) the backtest of `code` would evaluate (None: a
    rule type it sweeps whole)."""
    policy, p = _prepare(session, code=code, start=start, end=end, **what_if)
    if not prefilterable(policy):
        return None
    rows = session.execute(text(f"SELECT * FROM ({islands_sql(policy)}) i ORDER BY 1, 2, 3"),
                           {**p, "workers": 1, "worker": 0}).all()
    return [tuple(r) for r in rows]


def _prepare(session: Session, *, code: str, start: datetime, end: datetime, threshold: float | None = None,
             clear_threshold: float | None = None, window_minutes: int | None = None,
             consecutive_points: int | None = None, asset_code: str | None = None) -> tuple[PolicyView, dict]:
    """The tuned policy and the statement's parameters (input checked)."""
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
    if prefilterable(policy):
        p.update(island_params(policy, start=start, end=end))
    return policy, p


def _run(session: Session, sql: str, p: dict, *, workers: int) -> list:
    """The statement's rows; with several workers, the units are shared out (asset_id mod
    workers) over as many connections, all in the session's snapshot (pg_export_snapshot), so
    the answer is the one statement's. Read only: nothing is written, nothing committed."""
    if workers == 1:
        session.execute(text("SET LOCAL work_mem = '128MB'"))
        return session.execute(text(sql), {**p, "workers": 1, "worker": 0}).all()
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    if not re.fullmatch(r"[0-9A-F-]+", snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    engine = session.get_bind()

    def part(worker: int) -> list:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            conn.execute(text("SET TRANSACTION READ ONLY"))
            conn.execute(text("SET LOCAL work_mem = '128MB'"))
            rows = conn.execute(text(sql), {**p, "workers": workers, "worker": worker}).all()
            conn.rollback()
            return rows

    with ThreadPoolExecutor(workers) as pool:
        return [r for rows in pool.map(part, range(workers)) for r in rows]


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
