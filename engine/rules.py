"""Pure rule logic, no I/O: conditions, the aggregate reported per rule type, messages."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
MIN_POINTS = {"threshold": 1, "runtime": 1, "rate_of_change": 3}  # consecutive: its N


@dataclass(frozen=True)
class PolicyView:
    """What evaluation needs of a policy (read once per run)."""

    id: int
    code: str
    asset_type: str
    metric_id: int
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

    @property
    def min_points(self) -> int:
        if self.rule_type == "consecutive":
            return self.consecutive_points or 1
        return MIN_POINTS[self.rule_type]


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


def fmt(value: float) -> str:
    """A number as people read it: 21.3, 20.01 (just past a threshold of 20), 500, 100 000."""
    if abs(value) >= 1000:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def message(policy: PolicyView, value: float, points: int) -> str:
    """What was observed, e.g. "avg temp_supply_air 21.3 °C over 15 min > 20"."""
    unit, thr = policy.unit, fmt(policy.threshold)
    if policy.rule_type == "threshold":
        return (
            f"{policy.aggregation} {policy.metric} {fmt(value)} {unit} over {policy.window_minutes} min "
            f"{policy.condition} {thr} ({points} readings)"
        )
    if policy.rule_type == "consecutive":
        edge = "lowest" if policy.condition in (">", ">=") else "highest"
        return f"last {points} {policy.metric} readings each {policy.condition} {thr} {unit} ({edge} {fmt(value)} {unit})"
    if policy.rule_type == "runtime":
        return f"{policy.metric} {fmt(value)} {unit} since last reset {policy.condition} {thr}"
    return (
        f"{policy.metric} trend {value:+.2f} {unit}/h over {policy.window_minutes} min "
        f"{policy.condition} {thr} {unit}/h ({points} readings)"
    )


_AGG_FR = {"avg": "moyenne", "min": "minimum", "max": "maximum"}


def fmt_fr(value: float) -> str:
    """fmt() the French way: 21,3 and 100 000."""
    return fmt(value).replace(".", ",")


def message_fr(policy: PolicyView, value: float, points: int) -> str:
    """message() in French, for the dashboard: "Température air soufflé : moyenne 21,3 °C sur
    15 min > 20 (89 mesures)"."""
    label, unit, thr = policy.metric_label_fr or policy.metric, policy.unit, fmt_fr(policy.threshold)
    if policy.rule_type == "threshold":
        return (f"{label} : {_AGG_FR.get(policy.aggregation or 'avg', policy.aggregation)} {fmt_fr(value)} {unit} "
                f"sur {policy.window_minutes} min {policy.condition} {thr} ({points} mesures)")
    if policy.rule_type == "consecutive":
        edge = "la plus basse" if policy.condition in (">", ">=") else "la plus haute"
        return f"{label} : {points} dernières mesures {policy.condition} {thr} {unit} ({edge} {fmt_fr(value)} {unit})"
    if policy.rule_type == "runtime":
        return f"{label} : {fmt_fr(value)} {unit} depuis la dernière remise à zéro {policy.condition} {thr}"
    trend = f"{value:+.2f}".replace(".", ",")
    return (f"{label} : tendance {trend} {unit}/h sur {policy.window_minutes} min "
            f"{policy.condition} {thr} {unit}/h ({points} mesures)")
