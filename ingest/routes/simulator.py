"""Simulator faults: GET/POST /simulator/faults, DELETE /simulator/faults/{id}."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from ingest.deps import OperatorKey, BigId, SessionDep
from ingest.schemas import FaultIn, FaultOut
from engine import faults

router = APIRouter(tags=["simulator"])


@router.get("/simulator/faults", response_model=list[FaultOut])
def get_faults(session: SessionDep, active: bool = True) -> list[dict]:
    """Active faults (or the recent history with `active=false`); the simulator polls this."""
    return faults.list_faults(session, now=datetime.now(UTC), active_only=active)


@router.post("/simulator/faults", response_model=FaultOut, status_code=201, dependencies=[OperatorKey])
def post_fault(body: FaultIn, session: SessionDep) -> dict:
    """Inject a fault: {asset_code, fault, intensity 0–1, duration_s}; the simulator applies it
    within one interval."""
    now = datetime.now(UTC)
    row = faults.start_fault(session, asset_code=body.asset_code, fault=body.fault, intensity=body.intensity,
                             duration_s=body.duration_s, ramp_s=body.ramp_s, actor=body.actor, now=now)
    return next(f for f in faults.list_faults(session, now=now) if f["id"] == row.id)


@router.delete("/simulator/faults/{fault_id}", response_model=FaultOut, dependencies=[OperatorKey])
def delete_fault(fault_id: BigId, session: SessionDep) -> dict:
    """Stop a fault now."""
    now = datetime.now(UTC)
    faults.stop_fault(session, fault_id=fault_id, now=now)
    return next(f for f in faults.list_faults(session, now=now, active_only=False) if f["id"] == fault_id)
