"""?format=csv on GET /alerts and /workorders: the same rows as the JSON answer, same filters."""

from __future__ import annotations

import csv
import io

from db.session import session_scope
from engine import workorders
from ingest.schemas import AlertOut, WorkOrderOut
from tests.engine.helpers import NOW, evaluate, put, series


def two_alerts(pg) -> list[dict]:
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([85.0] * 5))
    put(pg, "CAS-S2-HVAC_1", "vibration_level", series([9.0] * 5))
    return evaluate(codes=["R5", "R2"]).fired


def parse(r) -> list[dict]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment")
    return list(csv.DictReader(io.StringIO(r.text)))


def test_alerts_csv_has_the_json_rows_and_columns(pg, api):
    two_alerts(pg)
    rows = parse(api.get("/alerts", params={"format": "csv"}))
    as_json = api.get("/alerts").json()
    assert list(rows[0]) == list(AlertOut.model_fields)
    assert [int(r["id"]) for r in rows] == [a["id"] for a in as_json] and len(rows) == 2
    first = rows[0]
    assert (first["asset_code"], first["severity"], first["status"], first["acked_by"]) == (
        as_json[0]["asset_code"], as_json[0]["severity"], "open", "")
    assert first["created_at"] == NOW.isoformat().replace("+00:00", "Z")


def test_alerts_csv_applies_the_filters(pg, api):
    two_alerts(pg)
    site2 = pg.execute("SELECT id FROM sites WHERE code = 'CAS-S2'").fetchone()[0]
    rows = parse(api.get("/alerts", params={"format": "csv", "site_id": site2}))
    assert [r["site_code"] for r in rows] == ["CAS-S2"]
    assert parse(api.get("/alerts", params={"format": "csv", "status": "closed"})) == []
    r = api.get("/alerts", params={"format": "csv", "status": "closed"})
    assert r.text.strip() == ",".join(AlertOut.model_fields)  # the header alone


def test_workorders_csv_with_the_same_filters(pg, api):
    fired = two_alerts(pg)
    with session_scope() as s:
        workorders.update(s, workorder_id=fired[0]["work_order_id"], actor="x", assigned_to="Youssef", notes='a "quoted", note',
                          now=NOW)
    rows = parse(api.get("/workorders", params={"format": "csv", "assigned_to": "youssef"}))
    assert list(rows[0]) == list(WorkOrderOut.model_fields)
    assert [(int(r["id"]), r["assigned_to"], r["notes"]) for r in rows] == [
        (fired[0]["work_order_id"], "Youssef", 'a "quoted", note')]
    assert len(parse(api.get("/workorders", params={"format": "csv"}))) == 2


def test_an_unknown_format_is_refused_naming_the_field(pg, api):
    r = api.get("/alerts", params={"format": "xml"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "format"


def test_the_csv_columns_are_the_api_fields():
    from db.export import ALERT_COLUMNS, WORKORDER_COLUMNS

    assert ALERT_COLUMNS == list(AlertOut.model_fields)
    assert WORKORDER_COLUMNS == list(WorkOrderOut.model_fields)
