"""Silences (maintenance windows): create, list, end early."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from engine import silences
from ingest.deps import BigId, OperatorKey, SessionDep
from ingest.schemas import SilenceIn, SilenceOut, Text

router = APIRouter(tags=["silences"])


@router.post("/silences", response_model=SilenceOut, status_code=201, dependencies=[OperatorKey])
def post_silence(body: SilenceIn, session: SessionDep) -> dict:
    """While it lasts, no alert and no work order for the (asset, policy) pairs it covers (every
    scope given must match; at least one of site_code, asset_code, policy_code). Alerts already
    open stay open; when it ends, a condition still true fires."""
    now = datetime.now(UTC)
    silence = silences.create(session, starts_at=body.starts_at, ends_at=body.ends_at, reason=body.reason,
                              actor=body.actor, now=now, site_code=body.site_code, asset_code=body.asset_code,
                              policy_code=body.policy_code)
    return silences.get_silence(session, silence_id=silence.id, now=now)


@router.get("/silences", response_model=list[SilenceOut])
def get_silences(session: SessionDep, active: Annotated[bool | None, Query()] = None) -> list[dict]:
    """Silences, newest first; `active=true`: those covering the present instant (`false`: the others)."""
    return silences.list_silences(session, now=datetime.now(UTC), active=active)


@router.delete("/silences/{silence_id}", response_model=SilenceOut, dependencies=[OperatorKey])
def delete_silence(silence_id: BigId, session: SessionDep, actor: Annotated[Text, Query(min_length=1, max_length=100, description="who ends it")] = "api") -> dict:
    """End a silence now (409 if it has already ended); one that has not started yet is cancelled.
    Answers the silence as it ends."""
    now = datetime.now(UTC)
    before = silences.get_silence(session, silence_id=silence_id, now=now)
    silences.end(session, silence_id=silence_id, actor=actor, now=now)
    if before["starts_at"] >= now:  # not started: removed
        return {**before, "ends_at": before["starts_at"], "ended_by": actor, "active": False}
    return silences.get_silence(session, silence_id=silence_id, now=now)
