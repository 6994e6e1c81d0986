"""POST /rules/evaluate: run one evaluation now and answer what fired."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from engine.evaluate import evaluate_all
from ingest.deps import OperatorKey, SessionDep
from ingest.schemas import EvaluateIn, EvaluateOut

router = APIRouter(tags=["rules"])


@router.post("/rules/evaluate", response_model=EvaluateOut, dependencies=[OperatorKey])
def post_evaluate(session: SessionDep, body: EvaluateIn | None = None) -> dict:
    """Evaluate every enabled policy over the readings that arrived since the previous run (up to
    `now`); answers the alerts opened, how many cleared or were held back by a silence, and the
    policies that failed (the others still ran)."""
    result = evaluate_all(session, now=(body.now if body and body.now else datetime.now(UTC)), source="api")
    return {"policies": result.policies, "assets": result.assets, "readings": result.readings,
            "fired": result.fired, "cleared": len(result.cleared), "silenced": result.silenced,
            "failed": result.failed, "duration_s": result.duration_s}
