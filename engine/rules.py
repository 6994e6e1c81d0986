"""Pure rule logic, no I/O: conditions, the aggregate reported per rule type, the alert state
machine (fire, pending, clear) over evaluated readings, messages."""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.numbers import number

OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
MIN_POINTS = {"threshold": 1, "runtime": 1, "rate_of_change": 3, "no_data": 1}  # consecutive: N; flat_line: its own


@dataclass(frozen=True)
class PolicyView:
    """What evaluation needs of a policy (read once per run)."""

    id: int
    code: str
    asset_type: str | None
    metric_id: int | None
    metric: str
    unit: str
    rule_type: str
    aggregation: str | None
    condition: str
    threshold: float
    window_minutes: int | None
    consecutive_points: int | None
    severity: str
    title: str
    auto_work_order: bool
    metric_label_fr: str = ""
    metric_ids: tuple[int, ...] | None = None  # the metrics watched; None: every metric of the asset
    clear_condition: str | None = None
    clear_threshold: float | None = None
    for_minutes: int = 0
    flat_min_points: int | None = None
    title_en: str = ""

    @property
    def min_points(self) -> int:
        if self.rule_type == "consecutive":
            return self.consecutive_points or 1
        if self.rule_type == "flat_line":
            return self.flat_min_points or 1
        return MIN_POINTS[self.rule_type]

    @property
    def clears_by_itself(self) -> bool:
        """Whether an alert of this policy can end with condition_cleared."""
        return self.clear_condition is not None or self.rule_type in ("no_data", "flat_line")

    @property
    def peak_is_max(self) -> bool:
        """The worst value is the highest one (conditions > and >=) or the lowest."""
        return self.condition in (">", ">=")

    def tuned(self, **changes) -> PolicyView:
        """The same policy with other parameters (a backtest's what-if)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# --- The alert state machine -------------------------------------------------------------------
# Evaluation gives, per (asset, policy), the readings evaluated in this run in event-time order,
# each classed: F fires, S fires but a silence covers it, K fires but an alert (live or past)
# already covers it, C satisfies the clear condition, N neither. Consecutive readings of one class
# form a segment. `advance` walks the segments from the stored state and says what happens.

FIRING = frozenset("FSK")


@dataclass(frozen=True)
class Segment:
    cls: str  # F, S, K, C or N
    first_ts: datetime
    last_ts: datetime
    n: int
    peak: float | None  # the worst value of the segment
    points: int = 0  # the most readings a value of the segment was computed on
    instants: tuple[datetime, ...] | None = None  # every reading time (only with a pending period)


@dataclass
class State:
    """What is stored between runs for one (asset, policy)."""

    alert_id: int | None = None  # the live alert
    started_at: datetime | None = None
    peak: float | None = None
    firing_since: datetime | None = None  # start of the firing streak the last run ended in
    last_ts: datetime | None = None  # the newest reading evaluated so far


@dataclass
class Step:
    """One thing that happens: open an alert, clear it, a firing that a silence held back."""

    kind: str  # "open" | "clear" | "silenced"
    at: datetime  # event time: the reading that opened (or cleared) it
    started_at: datetime | None = None
    peak: float | None = None
    points: int = 0


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    state: State = field(default_factory=State)


def _worse(a: float | None, b: float | None, peak_is_max: bool) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b) if peak_is_max else min(a, b)


def advance(state: State, segments: list[Segment], *, for_minutes: int = 0, peak_is_max: bool = True) -> Outcome:
    """Walk the segments (event-time order) from `state`: an F reading opens an alert when none is
    live (after `for_minutes` of uninterrupted firing); a C reading closes the live alert if it is
    newer than every reading evaluated before (older C readings, re-evaluated because late data
    arrived, cannot close what newer readings opened) or if the alert opened in this same walk.
    Returns the steps and the state to store."""
    st = State(**vars(state))
    out = Outcome(state=st)
    pending = timedelta(minutes=for_minutes)
    newest_before = state.last_ts
    since: datetime | None = None  # start of the current firing streak
    prev_firing = False
    opened_here = False
    for i, seg in enumerate(segments):
        newer = newest_before is None or seg.first_ts > newest_before
        if seg.cls in FIRING:
            if not prev_firing:  # a streak starts, or goes on from the stored one
                carried = i == 0 and state.firing_since is not None and newer
                since = state.firing_since if carried else seg.first_ts
            prev_firing = True
            if st.alert_id is not None:
                st.peak = _worse(st.peak, seg.peak, peak_is_max)
                continue
            if seg.cls == "K":
                continue
            opens_at = seg.first_ts if not pending else _first_at_or_after(seg, since + pending)
            if opens_at is None:
                continue
            if seg.cls == "S":
                out.steps.append(Step("silenced", opens_at))
                continue
            started = since if pending else opens_at
            st.alert_id, st.started_at, st.peak, opened_here = -1, started, seg.peak, True
            out.steps.append(Step("open", opens_at, started_at=started, peak=seg.peak, points=seg.points))
        else:
            prev_firing, since = False, None
            if seg.cls == "C" and st.alert_id is not None and (opened_here or newer):
                out.steps.append(Step("clear", seg.first_ts, peak=st.peak))
                st.alert_id, st.started_at, st.peak, opened_here = None, None, None, False
    if segments:
        newest = max(s.last_ts for s in segments)
        if newest_before is None or newest >= newest_before:
            st.last_ts = newest
            st.firing_since = since if segments[-1].cls in FIRING else None
    return out


def _first_at_or_after(seg: Segment, t: datetime) -> datetime | None:
    """The first reading of the segment at or after t (None: the segment ends before)."""
    if seg.last_ts < t:
        return None
    if seg.first_ts >= t:
        return seg.first_ts
    if seg.instants is None:
        return None
    i = bisect.bisect_left(seg.instants, t)
    return seg.instants[i] if i < len(seg.instants) else None


def satisfies(value: float | None, condition: str, threshold: float) -> bool:
    """value <condition> threshold; no value never satisfies."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return OPS[condition](value, threshold)


def near_threshold(condition: str, value: float | None, threshold: float, margin: float = 0.10) -> bool:
    """Within `margin` of the threshold on the firing side, without satisfying it (status watch)."""
    if value is None or satisfies(value, condition, threshold):
        return False
    band = abs(threshold) * margin
    if condition in (">", ">="):
        return threshold - band <= value
    return value <= threshold + band


# What each rule type says it observed, per language; the fields are filled by message().
_MESSAGES = {
    "en": {
        "threshold": "{agg} {metric} {value} {unit} over {window} min {cond} {thr} ({points} readings)",
        "consecutive": "last {points} {metric} readings each {cond} {thr} {unit} ({edge} {value} {unit})",
        "runtime": "{metric} {value} {unit} since last reset {cond} {thr}",
        "rate_of_change": "{metric} trend {trend} {unit}/h over {window} min {cond} {thr} {unit}/h ({points} readings)",
        "no_data": "a metric silent for {value} min {cond} {thr} min",
        "flat_line": "{metric} varied by only {value} over {window} min ({cond} {thr}, {points} readings)",
    },
    "fr": {
        "threshold": "{metric} : {agg} {value} {unit} sur {window} min {cond} {thr} ({points} mesures)",
        "consecutive": "{metric} : {points} dernières mesures {cond} {thr} {unit} ({edge} {value} {unit})",
        "runtime": "{metric} : {value} {unit} depuis la dernière remise à zéro {cond} {thr}",
        "rate_of_change": "{metric} : tendance {trend} {unit}/h sur {window} min {cond} {thr} {unit}/h ({points} mesures)",
        "no_data": "une mesure muette depuis {value} min {cond} {thr} min",
        "flat_line": "{metric} : variation de {value} seulement sur {window} min ({cond} {thr}, {points} mesures)",
    },
}
_WORDS = {
    "en": {"avg": "avg", "min": "min", "max": "max", "lowest": "lowest", "highest": "highest"},
    "fr": {"avg": "moyenne", "min": "minimum", "max": "maximum", "lowest": "la plus basse", "highest": "la plus haute"},
}


def message(policy: PolicyView, value: float, points: int, lang: str = "en") -> str:
    """What was observed, e.g. "avg temp_supply_air 21.3 °C over 15 min > 20 (90 readings)";
    in French (lang="fr", for the dashboard): "Température air soufflé : moyenne 21,3 °C sur
    15 min > 20 (90 mesures)"."""
    words = _WORDS[lang]

    def decimal(text: str) -> str:  # the decimal comma in French
        return text if lang == "en" else text.replace(".", ",")

    fields = {
        "metric": (policy.metric if lang == "en" else (policy.metric_label_fr or policy.metric))
        or ("reading" if lang == "en" else "la mesure"),
        "agg": words.get(policy.aggregation or "avg", policy.aggregation),
        "edge": words["lowest" if policy.condition in (">", ">=") else "highest"],
        "value": number(value, lang=lang), "trend": decimal(f"{value:+.2f}"), "thr": number(policy.threshold, lang=lang),
        "unit": policy.unit, "window": policy.window_minutes, "cond": policy.condition, "points": points,
    }
    return _MESSAGES[lang][policy.rule_type].format(**fields)
