"""The fault service and GET/POST/DELETE /api/v1/simulator/faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.errors import InvalidInput, InvalidTransition, UnknownAsset
from db.session import session_scope
from engine.faults import list_faults, start_fault, stop_fault

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_create_list_and_delete_through_the_api(api):
    r = api.post("/simulator/faults", json={"asset_code": "CAS-S1-ELEVATOR_1", "fault": "motor_overheat",
                                            "intensity": 0.8, "duration_s": 600})
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["active"] is True and f["policy"] == "R5" and f["intensity"] == 0.8
    listed = api.get("/simulator/faults").json()
    assert [x["id"] for x in listed] == [f["id"]]
    r = api.delete(f"/simulator/faults/{f['id']}")
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["stopped_at"]
    assert api.get("/simulator/faults").json() == []
    assert [x["id"] for x in api.get("/simulator/faults", params={"active": "false"}).json()] == [f["id"]]
    assert api.delete(f"/simulator/faults/{f['id']}").status_code == 409


@pytest.mark.parametrize(
    "body,field",
    [({"asset_code": "CAS-S1-HVAC_1", "fault": "motor_overheat", "intensity": 1, "duration_s": 60}, "fault"),
     ({"asset_code": "CAS-S9-HVAC_1", "fault": "dropout", "intensity": 1, "duration_s": 60}, "asset_code"),
     ({"asset_code": "CAS-S1-HVAC_1", "fault": "meltdown", "intensity": 1, "duration_s": 60}, "fault"),
     ({"asset_code": "CAS-S1-HVAC_1", "fault": "dropout", "intensity": 1.5, "duration_s": 60}, "intensity"),
     ({"asset_code": "CAS-S1-HVAC_1", "fault": "dropout", "intensity": 1, "duration_s": 0}, "duration_s")],
)
def test_bad_faults_are_refused_and_nothing_is_stored(api, pg, body, field):
    r = api.post("/simulator/faults", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]
    assert pg.execute("SELECT count(*) FROM simulator_faults").fetchone()[0] == 0


def test_faults_need_the_api_key(anon_api):
    r = anon_api.post("/simulator/faults", json={"asset_code": "CAS-S1-HVAC_1", "fault": "dropout",
                                                 "intensity": 1, "duration_s": 60})
    assert r.status_code == 401


def test_a_fault_expires_after_its_duration(pg):
    with session_scope() as s:
        f = start_fault(s, asset_code="CAS-S1-CHILLER_1", fault="cooling_loss", intensity=1, duration_s=300, now=NOW)
        fid = f.id
    with session_scope() as s:
        assert [x["id"] for x in list_faults(s, now=NOW + timedelta(seconds=299))] == [fid]
        assert list_faults(s, now=NOW + timedelta(seconds=300)) == []
        assert list_faults(s, now=NOW + timedelta(seconds=300), active_only=False)[0]["active"] is False
    with pytest.raises(InvalidTransition), session_scope() as s:
        stop_fault(s, fault_id=fid, now=NOW + timedelta(seconds=400))


def test_service_errors_are_domain_errors(pg):
    with pytest.raises(UnknownAsset), session_scope() as s:
        start_fault(s, asset_code="nope", fault="dropout", intensity=1, duration_s=10, now=NOW)
    with pytest.raises(InvalidInput, match="applies to ELEVATOR"), session_scope() as s:
        start_fault(s, asset_code="CAS-S1-HVAC_1", fault="door_cycles_jump", intensity=1, duration_s=10, now=NOW)


def test_the_fault_catalogue_is_the_schema_s_and_speaks_both_languages():
    """engine/faults.yaml: one entry per fault the database accepts, each named and described in
    French and English."""
    from db.models import FaultKind
    from engine.faults import FAULTS

    assert set(FAULTS) == {f.value for f in FaultKind}
    for spec in FAULTS.values():
        assert all(spec[k].strip() for k in ("name_fr", "name_en", "description_fr", "description_en"))
        assert spec["name_fr"] != spec["name_en"]
