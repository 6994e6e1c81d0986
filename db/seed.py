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
from sqlalchemy import Connection, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from db.errors import InvalidInput
from db.models import AssetType, Asset, Metric, Policy, Site

log = logging.getLogger(__name__)

SEED_FILE = Path(__file__).with_name("seed.yaml")
POLICY_FILE = Path(__file__).with_name("policies.yaml")


class PolicySpec(BaseModel):
    """One entry of the policy file, checked before anything is written."""

    model_config = ConfigDict(extra="forbid")

    code: str
    asset_type: AssetType
    metric: str
    rule_type: Literal["threshold", "consecutive", "runtime", "rate_of_change"]
    aggregation: Literal["avg", "min", "max"] | None = None
    condition: Literal[">", "<", ">=", "<="]
    threshold: float = Field(allow_inf_nan=False)
    window_minutes: int | None = Field(default=None, gt=0)
    consecutive_points: int | None = Field(default=None, gt=0)
    severity: Literal["low", "medium", "high"]
    title: str
    description: str = ""
    enabled: bool = True
    auto_work_order: bool = True

    @model_validator(mode="after")
    def _shape(self) -> PolicySpec:
        need = {
            "threshold": ("aggregation", "window_minutes"),
            "consecutive": ("consecutive_points",),
            "runtime": (),
            "rate_of_change": ("window_minutes",),
        }[self.rule_type]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"policy {self.code}: rule_type {self.rule_type} needs {', '.join(missing)}")
        return self


def load_policy_file(path: Path = POLICY_FILE) -> list[PolicySpec]:
    """Read and validate the policy file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        specs = [PolicySpec.model_validate(p) for p in data.get("policies", [])]
    except ValueError as exc:
        raise InvalidInput(f"{path.name}: {exc}") from exc
    codes = [s.code for s in specs]
    if len(codes) != len(set(codes)):
        raise InvalidInput(f"{path.name}: duplicate policy codes")
    return specs


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
    specs = load_policy_file(policy_file)
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
        if spec.metric not in metrics:
            raise InvalidInput(f"policy {spec.code}: unknown metric {spec.metric!r}")
        if spec.asset_type.value not in metrics[spec.metric][1]:
            raise InvalidInput(f"policy {spec.code}: {spec.metric} is not a metric of {spec.asset_type.value}")
        row = spec.model_dump(exclude={"metric"})
        row["asset_type"] = spec.asset_type.value
        row["metric_id"] = metrics[spec.metric][0]
        rows.append(row)
    _upsert(conn, Policy, rows, "code")
    codes = [s.code for s in specs]
    conn.execute(update(Policy).where(Policy.code.not_in(codes), Policy.enabled).values(enabled=False))
    n = conn.execute(select(func.count()).select_from(Policy).where(Policy.enabled)).scalar_one()
    log.info("seed loaded: %d sites, %d assets, %d metrics, %d enabled policies", len(site_ids), len(assets), len(metrics), n)
