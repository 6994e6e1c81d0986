"""Policies: the list with their per-asset overrides, the effective policies of an asset, an
override, and the backtest (what a policy, or a tuned copy, would have fired over stored history)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from engine import backtest as backtest_service
from engine import overrides
from ingest.deps import OperatorKey, SessionDep, SmallId
from ingest.schemas import BacktestIn, BacktestOut, EffectivePolicyOut, OverrideIn, PolicyOut

router = APIRouter(tags=["policies"])

PolicyCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/policies", response_model=list[PolicyOut])
def get_policies(session: SessionDep) -> list[dict]:
    """Every policy with its parameters (thresholds, clear condition, pending period) and the
    assets that override it."""
    return overrides.list_policies(session)


@router.get("/assets/{asset_id}/policies", response_model=list[EffectivePolicyOut])
def get_asset_policies(asset_id: SmallId, session: SessionDep) -> list[dict]:
    """Every policy that applies to this asset, with the thresholds evaluated for it (override applied)."""
    return overrides.effective_policies(session, asset_id=asset_id)


@router.put("/assets/{asset_id}/policies/{code}", response_model=EffectivePolicyOut, dependencies=[OperatorKey])
def put_asset_policy(asset_id: SmallId, code: PolicyCode, body: OverrideIn, session: SessionDep) -> dict:
    """Tune policy `code` for this asset only (threshold, clear_threshold, enabled; a field left
    out keeps the policy's value, so a body with only `actor` puts the asset back on the policy).
    Answers the effective policy; audited."""
    return overrides.set_override(session, asset_id=asset_id, code=code, actor=body.actor, now=datetime.now(UTC),
                                  threshold=body.threshold, clear_threshold=body.clear_threshold,
                                  enabled=body.enabled)


@router.post("/policies/{code}/backtest", response_model=BacktestOut, dependencies=[OperatorKey])
def post_backtest(code: PolicyCode, body: BacktestIn, session: SessionDep) -> dict:
    """What policy `code` — or a tuned copy (threshold, clear_threshold, window_minutes,
    consecutive_points) — would have fired over [from, to], on every asset or one: the same
    statement and state machine as the live engine, over stored history. Writes nothing."""
    return backtest_service.backtest(
        session, code=code, start=body.from_, end=body.to, threshold=body.threshold,
        clear_threshold=body.clear_threshold, window_minutes=body.window_minutes,
        consecutive_points=body.consecutive_points, asset_code=body.asset_code)
