"""Pure rule logic, no I/O: conditions, the aggregate reported per rule type, messages."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from core.numbers import number

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


# What each rule type says it observed, per language; the fields are filled by message().
_MESSAGES = {
    "en": {
        "threshold": "{agg} {metric} {value} {unit} over {window} min {cond} {thr} ({points} readings)",
        "consecutive": "last {points} {metric} readings each {cond} {thr} {unit} ({edge} {value} {unit})",
        "runtime": "{metric} {value} {unit} since last reset {cond} {thr}",
        "rate_of_change": "{metric} trend {trend} {unit}/h over {window} min {cond} {thr} {unit}/h ({points} readings)",
    },
    "fr": {
        "threshold": "{metric} : {agg} {value} {unit} sur {window} min {cond} {thr} ({points} mesures)",
        "consecutive": "{metric} : {points} dernières mesures {cond} {thr} {unit} ({edge} {value} {unit})",
        "runtime": "{metric} : {value} {unit} depuis la dernière remise à zéro {cond} {thr}",
        "rate_of_change": "{metric} : tendance {trend} {unit}/h sur {window} min {cond} {thr} {unit}/h ({points} mesures)",
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
        "metric": policy.metric if lang == "en" else (policy.metric_label_fr or policy.metric),
        "agg": words.get(policy.aggregation or "avg", policy.aggregation),
        "edge": words["lowest" if policy.condition in (">", ">=") else "highest"],
        "value": number(value, lang=lang), "trend": decimal(f"{value:+.2f}"), "thr": number(policy.threshold, lang=lang),
        "unit": policy.unit, "window": policy.window_minutes, "cond": policy.condition, "points": points,
    }
    return _MESSAGES[lang][policy.rule_type].format(**fields)
