"""Silences (maintenance windows): while one covers an (asset, policy), evaluation opens no alert
and no work order — it counts what it held back; an alert already open stays open. Scope: any of
site, asset, policy (all given must match). Created, ended early and audited here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import InvalidInput, InvalidTransition, NotFound
from db.models import Asset, Policy, Silence, Site
from engine import audit


def create(
    session: Session, *, starts_at: datetime, ends_at: datetime, reason: str, actor: str, now: datetime,
    site_code: str | None = None, asset_code: str | None = None, policy_code: str | None = None,
    asset_id: int | None = None,
) -> Silence:
    """A new silence; at least one of site, asset, policy; ends after it starts."""
    errors = []
    site_id = policy_id = None
    if site_code is not None:
        site_id = session.execute(select(Site.id).where(Site.code == site_code)).scalar()
        if site_id is None:
            errors.append({"field": "site_code", "reason": f"unknown site {site_code!r}"})
    if asset_code is not None:
        asset = session.execute(select(Asset.id, Asset.site_id).where(Asset.code == asset_code)).first()
        if asset is None:
            errors.append({"field": "asset_code", "reason": f"unknown asset {asset_code!r}"})
        else:
            asset_id = asset.id
            if site_id is not None and asset.site_id != site_id:
                errors.append({"field": "asset_code", "reason": f"asset {asset_code!r} is not on site {site_code!r}"})
    if policy_code is not None:
        policy_id = session.execute(select(Policy.id).where(Policy.code == policy_code)).scalar()
        if policy_id is None:
            errors.append({"field": "policy_code", "reason": f"unknown policy {policy_code!r}"})
    if site_code is None and asset_id is None and policy_code is None:
        errors.append({"field": "asset_code", "reason": "give at least one of site_code, asset_code, policy_code"})
    if ends_at <= starts_at:
        errors.append({"field": "ends_at", "reason": "must be after starts_at"})
    elif ends_at <= now:
        errors.append({"field": "ends_at", "reason": "is already past"})
    if not reason.strip():
        errors.append({"field": "reason", "reason": "say why (e.g. 'maintenance en cours')"})
    if errors:
        first = errors[0]
        raise InvalidInput(f"{first['field']}: {first['reason']}", errors=errors)
    silence = Silence(site_id=site_id, asset_id=asset_id, policy_id=policy_id, starts_at=starts_at, ends_at=ends_at,
                      reason=reason.strip(), created_by=actor, created_at=now)
    session.add(silence)
    session.flush()
    audit.record(session, entity="silence", entity_id=silence.id, actor=actor, action="created", from_value=None,
                 to_value=f"{starts_at.isoformat()} → {ends_at.isoformat()}", comment=silence.reason, now=now,
                 details={"site_code": site_code, "asset_id": asset_id, "policy_code": policy_code})
    return silence


def end(session: Session, *, silence_id: int, actor: str, now: datetime) -> Silence:
    """End a silence now; one that has not started yet is cancelled (removed, audited)."""
    silence = session.scalars(select(Silence).where(Silence.id == silence_id).with_for_update()).first()
    if silence is None:
        raise NotFound(f"silence {silence_id} not found", field="silence_id")
    if silence.ends_at <= now:
        raise InvalidTransition(f"silence {silence_id} has already ended", field="silence_id")
    before = silence.ends_at
    if silence.starts_at < now:
        silence.ends_at, silence.ended_by = now, actor
        action, to_value = "ended", now.isoformat()
    else:
        session.delete(silence)
        action, to_value = "cancelled", None
    audit.record(session, entity="silence", entity_id=silence_id, actor=actor, action=action,
                 from_value=before.isoformat(), to_value=to_value, now=now)
    session.flush()
    return silence


def get_silence(session: Session, *, silence_id: int, now: datetime) -> dict:
    """One silence as `list_silences` describes it, or NotFound."""
    found = list_silences(session, now=now, silence_id=silence_id)
    if not found:
        raise NotFound(f"silence {silence_id} not found", field="silence_id")
    return found[0]


def list_silences(session: Session, *, now: datetime, active: bool | None = None,
                  silence_id: int | None = None) -> list[dict]:
    """Silences, newest first; `active`: only those covering `now` (or, False, the others)."""
    q = (select(Silence, Site.code, Asset.code, Policy.code)
         .outerjoin(Site, Site.id == Silence.site_id).outerjoin(Asset, Asset.id == Silence.asset_id)
         .outerjoin(Policy, Policy.id == Silence.policy_id).order_by(Silence.starts_at.desc(), Silence.id.desc()))
    if silence_id is not None:
        q = q.where(Silence.id == silence_id)
    if active is True:
        q = q.where(Silence.starts_at <= now, Silence.ends_at > now)
    elif active is False:
        q = q.where((Silence.starts_at > now) | (Silence.ends_at <= now))
    return [
        {"id": s.id, "site_code": site, "asset_id": s.asset_id, "asset_code": asset, "policy_code": policy,
         "starts_at": s.starts_at, "ends_at": s.ends_at, "reason": s.reason, "created_by": s.created_by,
         "created_at": s.created_at, "ended_by": s.ended_by, "active": s.starts_at <= now < s.ends_at}
        for s, site, asset, policy in session.execute(q)
    ]
