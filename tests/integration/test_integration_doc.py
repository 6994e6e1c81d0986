"""docs/integration.md stays true: its receiver example, run as written, accepts a delivery signed
by the relay, does the work once per webhook-id, and refuses a bad signature."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from engine.relay import body_of, signed_headers
from tests.conftest import PROJECT
from tests.integration.receiver import new_secret


def receiver_example() -> str:
    text = (PROJECT / "docs" / "integration.md").read_text()
    section = text.split("## Checking the signature", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_receiver_checks_what_the_relay_sends(capsys):
    secret = new_secret()
    code = receiver_example()
    assert len(code.strip().splitlines()) <= 16  # a receiver in a few lines
    scope: dict = {}
    exec(code.replace('"whsec_..."', repr(secret)), scope)
    client = TestClient(scope["app"])
    payload = {"type": "work_order.status_changed", "timestamp": "2026-03-02T10:35:23Z", "data": {"work_order": {"id": 1}}}
    body = body_of(payload)
    headers = signed_headers(secret=secret, webhook_id="41", body=body, now=datetime.now(UTC))
    assert client.post("/m40", content=body.encode(), headers=headers).status_code == 204
    assert client.post("/m40", content=body.encode(), headers=headers).status_code == 204  # a retry
    assert capsys.readouterr().out.count("work_order.status_changed") == 1  # processed once
    forged = signed_headers(secret=new_secret(), webhook_id="42", body=body, now=datetime.now(UTC))
    assert client.post("/m40", content=body.encode(), headers=forged).status_code == 401
    tampered = body.replace('"id":1', '"id":2')
    assert client.post("/m40", content=tampered.encode(), headers=headers).status_code == 401
