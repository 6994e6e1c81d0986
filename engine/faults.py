"""The fault service: what the Simulator control page and `/api/v1/simulator/faults` call.
Faults are stored in the database; the simulator process reads the active ones through the API
(it imports nothing of the database layer). Names and descriptions in French and English."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import InvalidInput, InvalidTransition, NotFound, UnknownAsset
from db.models import Asset, Site, SimulatorFault

# name -> the asset type it applies to, the policy it should trigger, defaults, names and
# descriptions in French and English: a data file beside this one (faults.yaml).
FAULTS: dict[str, dict] = yaml.safe_load(Path(__file__).with_name("faults.yaml").read_text(encoding="utf-8"))
MAX_DURATION_S = 24 * 3600


def start_fault(
    session: Session,
    *,
    asset_code: str,
    fault: str,
    intensity: float,
    duration_s: int,
    ramp_s: int | None = None,
    actor: str = "api",
    now: datetime,
) -> SimulatorFault:
    """Inject a fault on an asset from `now` for `duration_s` seconds."""
    spec = FAULTS.get(fault)
    if spec is None:
        raise InvalidInput(f"fault: unknown fault {fault!r} (one of {', '.join(FAULTS)})", field="fault")
    if not 0 <= intensity <= 1:
        raise InvalidInput("intensity: must be between 0 and 1", field="intensity")
    if not 1 <= duration_s <= MAX_DURATION_S:
        raise InvalidInput(f"duration_s: must be between 1 and {MAX_DURATION_S}", field="duration_s")
    if ramp_s is not None and not 0 <= ramp_s <= duration_s:
        raise InvalidInput("ramp_s: must be between 0 and duration_s", field="ramp_s")
    asset = session.scalars(select(Asset).where(Asset.code == asset_code)).first()
    if asset is None:
        raise UnknownAsset(f"asset_code: unknown asset {asset_code!r}", field="asset_code")
    if spec["asset_type"] and spec["asset_type"] != asset.type:
        raise InvalidInput(
            f"fault: {fault} applies to {spec['asset_type']} assets, {asset_code} is {asset.type}", field="fault"
        )
    row = SimulatorFault(
        asset_id=asset.id, fault=fault, intensity=intensity, duration_s=duration_s,
        ramp_s=spec["ramp_s"] if ramp_s is None else ramp_s, started_at=now,
        ends_at=now + timedelta(seconds=duration_s), created_by=actor,
    )
    session.add(row)
    session.flush()
    return row


def stop_fault(session: Session, *, fault_id: int, now: datetime) -> SimulatorFault:
    """End a fault now (it stays in the history)."""
    row = session.get(SimulatorFault, fault_id, with_for_update=True)
    if row is None:
        raise NotFound(f"fault {fault_id} not found", field="fault_id")
    if row.stopped_at is not None or row.ends_at <= now:
        raise InvalidTransition(f"fault {fault_id} is not active", field="fault_id")
    row.stopped_at = now
    row.ends_at = now
    return row


def list_faults(session: Session, *, now: datetime, active_only: bool = True) -> list[dict]:
    """Faults (active ones: started and not yet ended), newest first."""
    q = (
        select(SimulatorFault, Asset.code, Asset.type, Site.code)
        .join(Asset, Asset.id == SimulatorFault.asset_id)
        .join(Site, Site.id == Asset.site_id)
        .order_by(SimulatorFault.started_at.desc(), SimulatorFault.id.desc())
    )
    if active_only:
        q = q.where(SimulatorFault.started_at <= now, SimulatorFault.ends_at > now)
    else:
        q = q.limit(200)
    return [
        {"id": f.id, "asset_id": f.asset_id, "asset_code": code, "asset_type": typ, "site_code": site,
         "fault": f.fault, "intensity": f.intensity, "ramp_s": f.ramp_s, "duration_s": f.duration_s,
         "started_at": f.started_at, "ends_at": f.ends_at, "stopped_at": f.stopped_at,
         "active": f.started_at <= now < f.ends_at, "policy": FAULTS[f.fault]["policy"],
         "description": FAULTS[f.fault]["description_en"], "description_fr": FAULTS[f.fault]["description_fr"],
         "name_fr": FAULTS[f.fault]["name_fr"], "name_en": FAULTS[f.fault]["name_en"]}
        for f, code, typ, site in session.execute(q)
    ]
