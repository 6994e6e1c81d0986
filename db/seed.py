"""Load the reference data (db/seed.yaml) and the policy file (db/policies.yaml).

Idempotent: rows are upserted by their natural key and only rewritten when something changed,
so running it twice changes nothing. Policies missing from the file are disabled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from db.errors import InvalidInput
from db.models import AssetType, Asset, Metric, Policy, PolicyOverride, Site

log = logging.getLogger(__name__)

SEED_FILE = Path(__file__).with_name("seed.yaml")
POLICY_FILE = Path(__file__).with_name("policies.yaml")


class PolicySpec(BaseModel):
    """One entry of the policy file, checked before anything is written."""

    model_config = ConfigDict(extra="forbid")

    code: str
    asset_type: AssetType | None = None  # None: every asset type (no_data, flat_line)
    metric: str | list[str]  # a list or "*" only for no_data / flat_line
    rule_type: Literal["threshold", "consecutive", "runtime", "rate_of_change", "no_data", "flat_line"]
    aggregation: Literal["avg", "min", "max"] | None = None
    condition: Literal[">", "<", ">=", "<="]
    threshold: float = Field(allow_inf_nan=False)
    clear_condition: Literal[">", "<", ">=", "<="] | None = None
    clear_threshold: float | None = Field(default=None, allow_inf_nan=False)
    window_minutes: int | None = Field(default=None, gt=0)
    consecutive_points: int | None = Field(default=None, gt=0)
    min_points: int | None = Field(default=None, gt=0)
    for_minutes: int = Field(default=0, ge=0)
    severity: Literal["low", "medium", "high"]
    title: str
    title_en: str = ""
    description: str = ""
    description_en: str = ""
    enabled: bool = True
    auto_work_order: bool = True

    @model_validator(mode="after")
    def _shape(self) -> PolicySpec:
        need = {
            "threshold": ("aggregation", "window_minutes", "asset_type"),
            "consecutive": ("consecutive_points", "asset_type"),
            "runtime": ("asset_type",),
            "rate_of_change": ("window_minutes", "asset_type"),
            "no_data": ("window_minutes",),
            "flat_line": ("window_minutes", "min_points"),
        }[self.rule_type]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"policy {self.code}: rule_type {self.rule_type} needs {', '.join(missing)}")
        if (self.clear_condition is None) != (self.clear_threshold is None):
            raise ValueError(f"policy {self.code}: clear_condition and clear_threshold go together")
        several = not isinstance(self.metric, str) or self.metric == "*"
        if several and self.rule_type not in ("no_data", "flat_line"):
            raise ValueError(f"policy {self.code}: rule_type {self.rule_type} watches exactly one metric")
        return self


class OverrideSpec(BaseModel):
    """A policy tuned for one asset in the policy file (overrides: asset code: policy code: …)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(default=None, allow_inf_nan=False)
    clear_threshold: float | None = Field(default=None, allow_inf_nan=False)
    enabled: bool | None = None


def load_policy_file(path: Path = POLICY_FILE) -> tuple[list[PolicySpec], dict[str, dict[str, OverrideSpec]]]:
    """Read and validate the policy file: the policies, and the overrides by asset and policy code."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        specs = [PolicySpec.model_validate(p) for p in data.get("policies", [])]
        overrides = {
            str(asset): {str(code): OverrideSpec.model_validate(o or {}) for code, o in (per_policy or {}).items()}
            for asset, per_policy in (data.get("overrides") or {}).items()
        }
    except ValueError as exc:
        raise InvalidInput(f"{path.name}: {exc}") from exc
    codes = [s.code for s in specs]
    if len(codes) != len(set(codes)):
        raise InvalidInput(f"{path.name}: duplicate policy codes")
    for asset, per_policy in overrides.items():
        unknown = set(per_policy) - set(codes)
        if unknown:
            raise InvalidInput(f"{path.name}: overrides of {asset}: unknown policy {', '.join(sorted(unknown))}")
    return specs, overrides


def _upsert(conn: Connection, model, rows: list[dict], key: str) -> None:
    """Insert rows, or update them only where a column differs (so a re-run writes nothing)."""
    if not rows:
        return
    table = model.__table__
    stmt = insert(table).values(rows)
    cols = [c for c in rows[0] if c != key]
    changed = tuple_(*[table.c[c] for c in cols]).is_distinct_from(tuple_(*[stmt.excluded[c] for c in cols]))
    conn.execute(stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in cols}, where=changed))


def seed(
    conn: Connection,
    *,
    seed_file: Path = SEED_FILE,
    policy_file: Path = POLICY_FILE,
    sites: int | None = None,
    assets_per_type: int | None = None,
) -> None:
    """Upsert sites, assets, the metric catalog and the policies. `sites` / `assets_per_type`
    register more (CAS-S3, … ; <site>-HVAC_2, …) for load tests; existing ones are kept."""
    data = yaml.safe_load(seed_file.read_text(encoding="utf-8"))
    specs, overrides = load_policy_file(policy_file)
    for n in range(len(data["sites"]) + 1, (sites or 0) + 1):
        data["sites"].append({**data["sites"][0], "code": f"CAS-S{n}", "name": f"Tour {n} – Casanearshore"})
    if assets_per_type:
        data["assets_per_type"] = max(data["assets_per_type"], assets_per_type)

    _upsert(conn, Site, [dict(s) for s in data["sites"]], "code")
    _upsert(conn, Metric, [dict(m) for m in data["metrics"]], "name")
    site_ids = dict(conn.execute(select(Site.code, Site.id)).all())
    assets = [
        {
            "code": f"{site['code']}-{asset_type}_{n}",
            "name": f"{label} {n}",
            "type": asset_type,
            "site_id": site_ids[site["code"]],
            "expected_cadence_s": data["expected_cadence_s"],
        }
        for site in data["sites"]
        for asset_type, label in data["asset_types"].items()
        for n in range(1, data["assets_per_type"] + 1)
    ]
    _upsert(conn, Asset, assets, "code")

    metrics = {name: (mid, types) for name, mid, types in conn.execute(select(Metric.name, Metric.id, Metric.asset_types))}
    rows = []
    for spec in specs:
        names = [] if spec.metric == "*" else [spec.metric] if isinstance(spec.metric, str) else spec.metric
        for name in names:
            if name not in metrics:
                raise InvalidInput(f"policy {spec.code}: unknown metric {name!r}")
            if spec.asset_type is not None and spec.asset_type.value not in metrics[name][1]:
                raise InvalidInput(f"policy {spec.code}: {name} is not a metric of {spec.asset_type.value}")
        row = spec.model_dump(exclude={"metric"})
        row["asset_type"] = spec.asset_type.value if spec.asset_type else None
        single = isinstance(spec.metric, str) and spec.metric != "*"
        row["metric_id"] = metrics[spec.metric][0] if single else None
        row["metric_ids"] = None if single or spec.metric == "*" else sorted(metrics[n][0] for n in names)
        rows.append(row)
    _upsert(conn, Policy, rows, "code")
    codes = [s.code for s in specs]
    conn.execute(update(Policy).where(Policy.code.not_in(codes), Policy.enabled).values(enabled=False))
    _load_overrides(conn, overrides)
    n = conn.execute(select(func.count()).select_from(Policy).where(Policy.enabled)).scalar_one()
    log.info("seed loaded: %d sites, %d assets, %d metrics, %d enabled policies", len(site_ids), len(assets), len(metrics), n)


def _load_overrides(conn: Connection, overrides: dict[str, dict[str, OverrideSpec]]) -> None:
    """The file's overrides replace the file's previous ones (those set through the API stay,
    unless the file names the same asset and policy)."""
    asset_ids = dict(conn.execute(select(Asset.code, Asset.id)).all())
    policy_ids = dict(conn.execute(select(Policy.code, Policy.id)).all())
    rows = []
    for asset, per_policy in overrides.items():
        if asset not in asset_ids:
            raise InvalidInput(f"policy file overrides: unknown asset {asset!r}")
        for code, o in per_policy.items():
            rows.append({"asset_id": asset_ids[asset], "policy_id": policy_ids[code], **o.model_dump(),
                         "source": "file", "updated_by": "policy file", "updated_at": func.now()})
    keep = [(r["asset_id"], r["policy_id"]) for r in rows]
    stale = delete(PolicyOverride).where(PolicyOverride.source == "file")
    if keep:
        stale = stale.where(tuple_(PolicyOverride.asset_id, PolicyOverride.policy_id).not_in(keep))
    conn.execute(stale)
    if rows:
        stmt = insert(PolicyOverride).values(rows)
        cols = ("threshold", "clear_threshold", "enabled", "source", "updated_by")
        changed = tuple_(*[PolicyOverride.__table__.c[c] for c in cols]).is_distinct_from(
            tuple_(*[stmt.excluded[c] for c in cols]))
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["asset_id", "policy_id"],
            set_={c: stmt.excluded[c] for c in (*cols, "updated_at")}, where=changed))
