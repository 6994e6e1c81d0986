"""The relay against a real HTTP receiver on 127.0.0.1 that fails the first attempts: every event
arrives, in order per work order, signed, with the same webhook-id on every retry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from db.models import WebhookDelivery
from db.session import session_scope
from engine import alerts, outbox, workorders
from engine.relay import Attempt, Relay, record
from tests.conftest import PROJECT
from tests.engine.helpers import put, series
from tests.integration.receiver import Receiver, new_secret

ELEVATOR, HVAC = "CAS-S1-ELEVATOR_1", "CAS-S2-HVAC_1"


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret):
    r = Receiver(secret)
    yield r
    r.stop()


def lifecycle(pg, now: datetime) -> tuple[int, int]:
    """An alert and its work order taken through ack, assignment, in progress and done: 7 events."""
    from engine.evaluate import evaluate_all

    put(pg, ELEVATOR, "motor_temp", series([85.0] * 5, end=now))
    with session_scope() as s:
        f = evaluate_all(s, now=now, policy_codes=["R5"]).fired[0]
    wo, alert = f["work_order_id"], f["alert_id"]
    with session_scope() as s:
        alerts.acknowledge(s, alert_id=alert, actor="amina", now=now)
    with session_scope() as s:
        workorders.update(s, workorder_id=wo, actor="amina", assigned_to="Youssef", now=now)
    with session_scope() as s:
        workorders.transition(s, workorder_id=wo, to_status="in_progress", actor="youssef", now=now)
    with session_scope() as s:
        workorders.transition(s, workorder_id=wo, to_status="done", actor="youssef", now=now)
    return alert, wo


def drive(relay: Relay, start: datetime, *, step_s: float = 10, rounds: int = 60) -> None:
    """Run the relay's rounds on a clock moving `step_s` per round, until nothing is pending."""
    now = start
    for _ in range(rounds):
        relay.step(now=now)
        with session_scope() as s:
            from engine.relay import pending_count

            if pending_count(s) == 0 and s.scalar(__import__("sqlalchemy").text(
                    "SELECT count(*) FROM outbox_events WHERE NOT fanned_out")) == 0:
                return
        now += timedelta(seconds=step_s)
    raise AssertionError("deliveries still pending")


def event_ids(pg, key: str) -> list[str]:
    return [str(r[0]) for r in pg.execute("SELECT id FROM outbox_events WHERE ordering_key = %s ORDER BY id", (key,))]


def test_every_event_arrives_signed_in_order_with_the_same_id_on_every_retry(pg, secret, receiver):
    receiver.fail_first = 2  # each event: two 500s, then accepted
    start = datetime.now(UTC).replace(microsecond=0)
    alert, wo = lifecycle(pg, start)
    relay = Relay(urls=[receiver.url], secret=secret, schedule=[5, 5, 5], interval_s=0)
    drive(relay, start)

    all_ids = [str(r[0]) for r in pg.execute("SELECT id FROM outbox_events ORDER BY id")]
    assert len(all_ids) == 7
    delivered = receiver.delivered()
    assert sorted(h.webhook_id for h in delivered) == sorted(all_ids)  # each exactly once accepted
    assert all(h.signature_ok for h in receiver.hits)
    for wid in all_ids:  # three attempts each, all with that id and the same body
        tries = [h for h in receiver.hits if h.webhook_id == wid]
        assert [h.answered for h in tries] == [500, 500, 200]
        assert all(h.body == tries[0].body for h in tries)
    for key in (f"work_order:{wo}", f"alert:{alert}"):
        ids = event_ids(pg, key)
        got = [h.webhook_id for h in receiver.hits if h.webhook_id in ids]
        # in order: no attempt of an event before the previous event of the same key was accepted
        assert got == [i for i in ids for _ in range(3)]
    types = [h.body["type"] for h in delivered if h.webhook_id in event_ids(pg, f"work_order:{wo}")]
    assert types == ["work_order.created", "work_order.assigned", "work_order.status_changed",
                     "work_order.status_changed"]
    last = [h.body for h in delivered if h.body["type"] == "alert.closed"][0]
    assert last["data"]["alert"]["resolution"] == "work_order_done"
    rows = pg.execute("SELECT status, attempts, last_status_code, next_attempt_at FROM webhook_deliveries").fetchall()
    assert rows == [("delivered", 3, 200, None)] * 7


def test_each_endpoint_gets_every_event(pg, secret, receiver):
    other = Receiver(secret)
    try:
        start = datetime.now(UTC)
        lifecycle(pg, start)
        drive(Relay(urls=[receiver.url, other.url], secret=secret, schedule=[5], interval_s=0), start)
        assert len(receiver.delivered()) == len(other.delivered()) == 7
        assert sorted(h.webhook_id for h in receiver.delivered()) == sorted(h.webhook_id for h in other.delivered())
    finally:
        other.stop()


def test_after_the_schedule_a_delivery_is_failed_and_resend_delivers_it(pg, secret, receiver):
    receiver.fail_first = 3  # one first attempt + two retries, all refused
    start = datetime.now(UTC)
    put(pg, HVAC, "vibration_level", series([9.0] * 5, end=start))
    from engine.evaluate import evaluate_all

    with session_scope() as s:
        evaluate_all(s, now=start, policy_codes=["R2"])
    relay = Relay(urls=[receiver.url], secret=secret, schedule=[5, 5], interval_s=0)
    drive(relay, start)
    rows = pg.execute("SELECT id, status, attempts, last_status_code FROM webhook_deliveries ORDER BY id").fetchall()
    assert [r[1:] for r in rows] == [("failed", 3, 500), ("failed", 3, 500)]
    with session_scope() as s:
        outbox.resend(s, delivery_id=rows[0][0], now=start + timedelta(minutes=1))
    drive(relay, start + timedelta(minutes=1))
    rows = pg.execute("SELECT status, attempts FROM webhook_deliveries ORDER BY id").fetchall()
    assert rows == [("delivered", 4), ("failed", 3)]
    assert len({h.webhook_id for h in receiver.hits}) == 2 and len(receiver.delivered()) == 1


def test_a_later_event_waits_while_an_earlier_one_of_the_same_work_order_is_retried(pg, secret, receiver):
    start = datetime.now(UTC)
    alert, wo = lifecycle(pg, start)
    receiver.fail_first = 1
    relay = Relay(urls=[receiver.url], secret=secret, schedule=[60], interval_s=0)
    relay.step(now=start)  # first attempt of the first event of each key: refused
    wo_ids = event_ids(pg, f"work_order:{wo}")
    assert [h.webhook_id for h in receiver.hits if h.webhook_id in wo_ids] == wo_ids[:1]
    relay.step(now=start + timedelta(seconds=30))  # its retry is not due: the others still wait
    assert [h.webhook_id for h in receiver.hits if h.webhook_id in wo_ids] == wo_ids[:1]
    drive(relay, start + timedelta(seconds=61), step_s=61)
    assert [h.webhook_id for h in receiver.delivered() if h.webhook_id in wo_ids] == wo_ids


def test_two_relays_never_send_the_same_event_twice(pg, secret, receiver):
    """Both relays run their loops at once against a slow receiver: each event is sent once."""
    for i in range(3):
        lifecycle(pg, datetime.now(UTC) + timedelta(minutes=i))
        with session_scope() as s:  # the next lifecycle may raise again
            pass
    receiver.stall_first_s = 0.5
    relays = [Relay(urls=[receiver.url], secret=secret, schedule=[1], interval_s=0.01) for _ in range(2)]
    threads = [threading.Thread(target=r.run) for r in relays]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        total = pg.execute("SELECT count(*) FROM outbox_events").fetchone()[0]
        while len(receiver.delivered()) < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for r in relays:
            r.stop()
        for t in threads:
            t.join(10)
    assert total == 21
    ids = [h.webhook_id for h in receiver.hits]
    assert len(ids) == len(set(ids)) == 21 and receiver.overlaps == []


def test_a_relay_killed_mid_delivery_loses_nothing(pg, secret, receiver, database_url):
    start = datetime.now(UTC)
    put(pg, HVAC, "vibration_level", series([9.0] * 5, end=start))
    from engine.evaluate import evaluate_all

    with session_scope() as s:
        evaluate_all(s, now=start, policy_codes=["R2"])
    receiver.stall_first_s = 30  # the first request hangs: the relay is killed while waiting
    env = dict(os.environ, DATABASE_URL=database_url, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=secret,
               RELAY_INTERVAL_S="0.05")
    proc = subprocess.Popen([sys.executable, "-m", "engine.relay"], cwd=PROJECT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert receiver.first_request.wait(30), "the relay sent nothing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = receiver.hits[0].webhook_id
    assert pg.execute("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'").fetchone()[0] == 2
    drive(Relay(urls=[receiver.url], secret=secret, schedule=[5], interval_s=0), datetime.now(UTC))
    assert pg.execute("SELECT status FROM webhook_deliveries").fetchall() == [("delivered",), ("delivered",)]
    assert sorted({h.webhook_id for h in receiver.delivered()}) == sorted(
        str(r[0]) for r in pg.execute("SELECT id FROM outbox_events"))
    assert first in {h.webhook_id for h in receiver.delivered()}  # the interrupted one came again, same id


def test_a_slow_answer_is_a_failure(pg, secret, receiver):
    start = datetime.now(UTC)
    put(pg, HVAC, "vibration_level", series([9.0] * 5, end=start))
    from engine.evaluate import evaluate_all

    with session_scope() as s:
        evaluate_all(s, now=start, policy_codes=["R2"])
    receiver.stall_first_s = 2  # whichever of the two events (sent in parallel) arrives first
    Relay(urls=[receiver.url], secret=secret, schedule=[5], interval_s=0, timeout_s=0.5).step(now=start)
    rows = pg.execute("SELECT status, attempts, last_error FROM webhook_deliveries ORDER BY status").fetchall()
    assert [r[:2] for r in rows] == [("delivered", 1), ("pending", 1)] and "Timeout" in rows[1][2]


def test_back_off_follows_the_schedule_then_fails():
    d = WebhookDelivery(status="pending", attempts=0, retry_step=0)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    schedule = [5, 300, 1800, 7200, 18000, 36000, 36000]
    waits = []
    for _ in range(7):
        record(d, Attempt(503, None), now=now, schedule=schedule)
        waits.append((d.next_attempt_at - now).total_seconds())
        now = d.next_attempt_at
    assert waits == schedule and d.status == "pending" and d.attempts == 7
    record(d, Attempt(None, "ConnectError"), now=now, schedule=schedule)
    assert (d.status, d.attempts, d.next_attempt_at, d.last_error) == ("failed", 8, None, "ConnectError")


def test_a_2xx_is_a_success_and_a_3xx_is_not():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    d = WebhookDelivery(status="pending", attempts=0, retry_step=0)
    record(d, Attempt(302, None), now=now, schedule=[5])
    assert d.status == "pending" and d.last_error == "HTTP 302"
    record(d, Attempt(204, None), now=now, schedule=[5])
    assert (d.status, d.delivered_at, d.attempts) == ("delivered", now, 2)


def test_the_retry_schedule_comes_from_the_environment(monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE_S", "0.5, 2,10")
    monkeypatch.setenv("WEBHOOK_URL", "http://a.example/h, http://b.example/h")
    get_settings.cache_clear()
    try:
        assert get_settings().webhook_retry_schedule == [0.5, 2.0, 10.0]
        assert get_settings().webhook_urls == ["http://a.example/h", "http://b.example/h"]
    finally:
        get_settings.cache_clear()


def test_the_relay_command_has_help():
    out = subprocess.run([sys.executable, "-m", "engine.relay", "--help"], cwd=PROJECT, capture_output=True, text=True)
    assert out.returncode == 0 and "WEBHOOK_URL" in out.stdout


def test_the_scheduler_process_runs_the_relay_when_webhook_url_is_set(pg, secret, receiver, database_url):
    start = datetime.now(UTC)
    put(pg, HVAC, "vibration_level", series([9.0] * 5, end=start))
    from engine.evaluate import evaluate_all

    with session_scope() as s:
        evaluate_all(s, now=start, policy_codes=["R2"])
    env = dict(os.environ, DATABASE_URL=database_url, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=secret,
               RULES_INTERVAL_S="3600", RELAY_INTERVAL_S="0.05")
    proc = subprocess.Popen([sys.executable, "-m", "engine"], cwd=PROJECT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(receiver.delivered()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        finally:  # one that did not stop must not stay the active scheduler for the next tests
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert sorted(h.body["type"] for h in receiver.delivered()) == ["alert.created", "work_order.created"]
    assert all(h.signature_ok for h in receiver.hits)


def test_without_a_usable_secret_the_relay_refuses_to_start_in_words(database_url):
    env = dict(os.environ, DATABASE_URL=database_url, WEBHOOK_URL="http://127.0.0.1:9/h", WEBHOOK_SECRET="")
    out = subprocess.run([sys.executable, "-m", "engine.relay"], cwd=PROJECT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "WEBHOOK_SECRET" in out.stderr
