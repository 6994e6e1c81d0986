"""POST /api/v1/integrations/gmao/workorders/{id}: signed calls from the GMAO move a work order;
an invalid, stale or replayed call gets 401 and changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.engine.helpers import put, series
from tests.integration.receiver import new_secret

ELEVATOR = "CAS-S1-ELEVATOR_1"


@pytest.fixture
def secret(monkeypatch) -> str:
    from core.settings import get_settings

    value = new_secret()
    monkeypatch.setenv("WEBHOOK_SECRET", value)
    get_settings.cache_clear()
    yield value
    get_settings.cache_clear()


@pytest.fixture
def order(pg) -> dict:
    from db.session import session_scope
    from engine.evaluate import evaluate_all

    now = datetime.now(UTC)
    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=now))
    with session_scope() as s:
        return evaluate_all(s, now=now, policy_codes=["R5"]).fired[0]


def signed(secret: str, body: dict, *, msg_id: str = "msg_1", at: datetime | None = None) -> tuple[bytes, dict]:
    raw = json.dumps(body)
    at = at or datetime.now(UTC)
    return raw.encode(), {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                          "webhook-signature": Webhook(secret).sign(msg_id, at, raw),
                          "content-type": "application/json"}


def state(pg, wo_id: int) -> tuple:
    wo = pg.execute("SELECT status, external_ref FROM work_orders WHERE id = %s", (wo_id,)).fetchone()
    return (*wo, pg.execute("SELECT count(*) FROM audit_trail").fetchone()[0],
            pg.execute("SELECT count(*) FROM outbox_events").fetchone()[0])


def post(anon_api: httpx.Client, wo_id: int, raw: bytes, headers: dict) -> httpx.Response:
    return anon_api.post(f"/integrations/gmao/workorders/{wo_id}", content=raw, headers=headers)


def test_a_signed_call_moves_the_work_order_and_stores_the_gmao_reference(pg, anon_api, secret, order):
    wo = order["work_order_id"]
    raw, headers = signed(secret, {"status": "in_progress", "external_ref": "SAMFM-417"})
    r = post(anon_api, wo, raw, headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["external_ref"]) == ("in_progress", "SAMFM-417")
    assert pg.execute("SELECT actor, action FROM audit_trail WHERE entity = 'work_order' ORDER BY id").fetchall() == [
        ("engine", "created"), ("gmao", "external_ref"), ("gmao", "status")]
    ev = pg.execute("SELECT type, payload FROM outbox_events ORDER BY id DESC LIMIT 1").fetchone()
    assert ev[0] == "work_order.status_changed" and ev[1]["data"]["work_order"]["external_ref"] == "SAMFM-417"


def test_done_closes_the_alert_as_from_the_dashboard(pg, anon_api, secret, order):
    raw, headers = signed(secret, {"status": "done", "comment": "bearing replaced"}, msg_id="msg_done")
    r = post(anon_api, order["work_order_id"], raw, headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done" and r.json()["closed_at"] is not None
    alert = pg.execute("SELECT status, resolution, closed_by FROM alerts WHERE id = %s", (order["alert_id"],)).fetchone()
    assert alert == ("closed", "work_order_done", "gmao")
    moves = pg.execute("SELECT from_value, to_value FROM audit_trail WHERE entity = 'work_order' AND action = 'status' "
                       "ORDER BY id").fetchall()
    assert moves == [("open", "in_progress"), ("in_progress", "done")]


def test_a_replayed_call_gets_401_and_changes_nothing(pg, anon_api, secret, order):
    wo = order["work_order_id"]
    raw, headers = signed(secret, {"external_ref": "SAMFM-1"}, msg_id="msg_replay")
    assert post(anon_api, wo, raw, headers).status_code == 200
    before = state(pg, wo)
    r = post(anon_api, wo, raw, headers)
    assert r.status_code == 401 and "replay" in r.json()["detail"]
    assert state(pg, wo) == before


@pytest.mark.parametrize("tamper", ["body", "signature", "secret", "stale", "future", "missing", "garbage"])
def test_an_invalid_call_gets_401_and_changes_nothing(pg, anon_api, secret, order, tamper):
    wo = order["work_order_id"]
    body = {"status": "in_progress", "external_ref": "SAMFM-9"}
    raw, headers = signed(secret, body)
    if tamper == "body":
        raw = json.dumps({**body, "status": "done"}).encode()
    elif tamper == "signature":
        headers["webhook-signature"] = "v1," + "A" * 44
    elif tamper == "secret":
        raw, headers = signed(new_secret(), body)
    elif tamper == "stale":
        raw, headers = signed(secret, body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "future":
        raw, headers = signed(secret, body, at=datetime.now(UTC) + timedelta(minutes=6))
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "garbage":
        headers["webhook-signature"] = "nonsense"
    before = state(pg, wo)
    r = post(anon_api, wo, raw, headers)
    assert r.status_code == 401, r.text
    assert state(pg, wo) == before
    assert pg.execute("SELECT count(*) FROM inbound_messages").fetchone()[0] == 0


def test_within_the_tolerance_an_older_call_is_accepted(pg, anon_api, secret, order):
    raw, headers = signed(secret, {"external_ref": "X-1"}, at=datetime.now(UTC) - timedelta(minutes=4))
    assert post(anon_api, order["work_order_id"], raw, headers).status_code == 200


def test_a_signed_but_bad_body_gets_422_naming_the_field(pg, anon_api, secret, order):
    wo = order["work_order_id"]
    before = state(pg, wo)
    raw, headers = signed(secret, {"status": "archived"}, msg_id="m-bad")
    r = post(anon_api, wo, raw, headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "status"
    assert state(pg, wo) == before


def test_an_illegal_move_gets_409_and_does_not_burn_the_id(pg, anon_api, secret, order):
    wo = order["work_order_id"]
    raw, headers = signed(secret, {"status": "done"}, msg_id="m-1")
    assert post(anon_api, wo, raw, headers).status_code == 200
    raw, headers = signed(secret, {"status": "in_progress"}, msg_id="m-2")
    assert post(anon_api, wo, raw, headers).status_code == 409
    assert pg.execute("SELECT webhook_id FROM inbound_messages").fetchall() == [("m-1",)]


def test_unknown_work_order_is_404(pg, anon_api, secret):
    raw, headers = signed(secret, {"status": "done"})
    assert post(anon_api, 999999, raw, headers).status_code == 404


def test_without_a_secret_inbound_calls_are_refused(pg, anon_api, order, monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("WEBHOOK_SECRET", "")
    get_settings.cache_clear()
    try:
        raw, headers = signed(new_secret(), {"status": "done"})
        r = post(anon_api, order["work_order_id"], raw, headers)
        assert r.status_code == 401 and "WEBHOOK_SECRET" in r.json()["detail"]
    finally:
        get_settings.cache_clear()


def test_the_delivery_log_and_resend_through_the_api(pg, api, anon_api, order):
    assert anon_api.get("/webhooks/deliveries").status_code == 401
    pg.execute("INSERT INTO webhook_deliveries (event_id, endpoint, status, attempts, retry_step, last_status_code) "
               "SELECT id, 'http://127.0.0.1:9/h', 'failed', 8, 7, 500 FROM outbox_events")
    rows = api.get("/webhooks/deliveries", params={"status": "failed"}).json()
    assert [(r["type"], r["attempts"], r["last_status_code"]) for r in rows] == [
        ("work_order.created", 8, 500), ("alert.created", 8, 500)]
    assert rows[0]["webhook_id"] == str(rows[0]["event_id"])
    r = api.post(f"/webhooks/deliveries/{rows[0]['id']}/resend")
    assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["next_attempt_at"]
    assert api.post(f"/webhooks/deliveries/{rows[0]['id']}/resend").status_code == 409
    assert api.get("/webhooks/deliveries", params={"entity": "work_order"}).json()[0]["status"] == "pending"
    assert api.post("/webhooks/deliveries/424242/resend").status_code == 404


def test_the_delivery_log_needs_an_operator_key(pg, anon_api):
    from tests.conftest import GATEWAY_KEYS, OPERATOR_KEY

    gateway = {"X-API-Key": GATEWAY_KEYS["gw-old"]}
    assert anon_api.get("/webhooks/deliveries", headers=gateway).status_code == 403
    assert anon_api.post("/webhooks/deliveries/1/resend", headers=gateway).status_code == 403
    assert anon_api.get("/webhooks/deliveries", headers={"X-API-Key": OPERATOR_KEY}).status_code == 200


def test_the_gmao_route_needs_no_api_key_even_when_reads_do(pg, anon_api, secret, order, monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("API_READS_REQUIRE_KEY", "true")
    get_settings.cache_clear()
    raw, headers = signed(secret, {"external_ref": "SAMFM-77"}, msg_id="m-open")
    r = post(anon_api, order["work_order_id"], raw, headers)
    assert r.status_code == 200 and r.json()["external_ref"] == "SAMFM-77"
    assert anon_api.get("/kpis", params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-09T00:00:00Z"}).status_code == 401
