"""The webhook relay: delivers the outbox events (engine/outbox.py) to every WEBHOOK_URL, signed
the Standard Webhooks way (the `standardwebhooks` library), with back-off, in order per entity.

`python -m engine.relay` runs it on its own; `python -m engine` runs it beside the scheduler.
Several relays may run at once:
- fan-out: each new event gets one delivery row per endpoint; events are claimed with
  FOR UPDATE SKIP LOCKED, so two relays never fan out the same event;
- delivery: due deliveries are claimed with FOR UPDATE SKIP LOCKED and stay locked during the
  HTTP call, so two relays never send the same one at once; a relay killed mid-delivery leaves
  its transaction uncommitted, the delivery stays pending and is sent again (same webhook-id:
  receivers recognise a retry);
- order: a delivery waits while an earlier event of the same work order (or alert) has not been
  handed to its relay yet or is still pending for that endpoint (delivered or failed earlier
  events no longer hold it back).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from db.models import DeliveryStatus, OutboxEvent, WebhookDelivery
from core.settings import get_settings

log = logging.getLogger("engine.relay")

BATCH = 50


class BadSecret(ValueError):
    """WEBHOOK_SECRET is missing or not a Standard Webhooks secret."""


def check_secret(secret: str) -> None:
    """A relay cannot sign without a usable secret: say so in words, at start."""
    try:
        Webhook(secret)
    except Exception as exc:  # noqa: BLE001 - the library raises several kinds
        raise BadSecret("WEBHOOK_SECRET: set it to 'whsec_' + base64 of 24 to 64 random bytes to sign webhooks "
                        f"({type(exc).__name__})") from None


@dataclass
class Attempt:
    """The answer to one HTTP attempt: a status code, or an error in words."""

    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(payload: dict) -> str:
    """The exact text sent (and signed): the same bytes on every attempt."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def signed_headers(*, secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    """webhook-id, webhook-timestamp, webhook-signature (v1, HMAC-SHA256 of id.timestamp.body)."""
    ts = int(now.timestamp())
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(ts, UTC), body)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": signature,
            "content-type": "application/json", "user-agent": "m40-relay/1"}


def fan_out(session: Session, *, urls: list[str], now: datetime, limit: int = 500) -> int:
    """Give the oldest events not handed out yet one pending delivery per endpoint; returns how many
    events were handed out."""
    ids = session.scalars(
        select(OutboxEvent.id).where(OutboxEvent.fanned_out.is_(False)).order_by(OutboxEvent.id).limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        return 0
    if urls:
        session.execute(
            text("INSERT INTO webhook_deliveries (event_id, endpoint, status, attempts, retry_step, next_attempt_at) "
                 "SELECT e, u, 'pending', 0, 0, :now FROM unnest(CAST(:ids AS bigint[])) e, "
                 "unnest(CAST(:urls AS text[])) u ON CONFLICT (event_id, endpoint) DO NOTHING"),
            {"ids": list(ids), "urls": urls, "now": now},
        )
    session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(fanned_out=True))
    return len(ids)


# Due, not locked by another relay, and no earlier event of the same key still on its way to
# this endpoint (not handed out yet, or pending). The NOT EXISTS reads ix_outbox_events_key.
_CLAIM = text("""
SELECT d.id FROM webhook_deliveries d JOIN outbox_events e ON e.id = d.event_id
WHERE d.status = 'pending' AND d.next_attempt_at <= :now
  AND NOT EXISTS (
    SELECT 1 FROM outbox_events e2
    WHERE e2.ordering_key = e.ordering_key AND e2.id < e.id
      AND (NOT e2.fanned_out OR EXISTS (
        SELECT 1 FROM webhook_deliveries d2
        WHERE d2.event_id = e2.id AND d2.endpoint = d.endpoint AND d2.status = 'pending')))
ORDER BY d.next_attempt_at, d.id
LIMIT :limit
FOR UPDATE OF d SKIP LOCKED
""")


def claim(session: Session, *, now: datetime, limit: int = BATCH) -> list[tuple[WebhookDelivery, dict]]:
    """Lock the due deliveries this relay may send now (held until the caller's commit), each
    with its event's payload."""
    ids = session.scalars(_CLAIM, {"now": now, "limit": limit}).all()
    if not ids:
        return []
    return [tuple(r) for r in session.execute(
        select(WebhookDelivery, OutboxEvent.payload).join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.event_id)
    )]


def record(delivery: WebhookDelivery, attempt: Attempt, *, now: datetime, schedule: list[float]) -> None:
    """Note one attempt: delivered, or the next attempt per the schedule, or failed after its end."""
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = attempt.status_code
    delivery.last_error = None if attempt.ok else (attempt.error or f"HTTP {attempt.status_code}")
    if attempt.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED.value, now, None
        return
    delivery.retry_step += 1
    if delivery.retry_step <= len(schedule):
        delivery.next_attempt_at = now + timedelta(seconds=schedule[delivery.retry_step - 1])
    else:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED.value, None


Sender = Callable[[str, bytes, dict[str, str]], Attempt]


def http_sender(client: httpx.Client, timeout_s: float) -> Sender:
    """POST with a deadline: a 2xx within `timeout_s` is a success, anything else a failure."""

    def send(url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        started = time.monotonic()
        try:
            r = client.post(url, content=body, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:500])
        if time.monotonic() - started > timeout_s:
            return Attempt(None, f"answered after more than {timeout_s:g} s")
        return Attempt(r.status_code, None if r.is_success else f"HTTP {r.status_code}: {r.text[:300]}")

    return send


def deliver_due(session: Session, *, now: datetime, secret: str, send: Sender, schedule: list[float],
                limit: int = BATCH, pool: ThreadPoolExecutor | None = None) -> list[tuple[int, Attempt]]:
    """Claim the due deliveries, send them (in parallel), note each outcome. Returns
    (delivery id, attempt) for each; the caller commits."""
    claimed = claim(session, now=now, limit=limit)
    if not claimed:
        return []

    def one(item: tuple[WebhookDelivery, dict]) -> Attempt:
        d, payload = item
        body = body_of(payload)
        return send(d.endpoint, body.encode(), signed_headers(secret=secret, webhook_id=str(d.event_id), body=body, now=now))

    attempts = list(pool.map(one, claimed)) if pool and len(claimed) > 1 else [one(c) for c in claimed]
    for (d, _), attempt in zip(claimed, attempts):
        record(d, attempt, now=now, schedule=schedule)
        log.log(logging.INFO if attempt.ok else logging.WARNING, "webhook %s", d.status,
                extra={"event_id": d.event_id, "endpoint": d.endpoint, "attempts": d.attempts,
                       "status_code": attempt.status_code, "error": attempt.error,
                       "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None})
    return [(d.id, a) for (d, _), a in zip(claimed, attempts)]


class Relay:
    """The loop: hand out new events, deliver what is due, every RELAY_INTERVAL_S (at once again
    while there is more)."""

    def __init__(self, *, urls: list[str] | None = None, secret: str | None = None,
                 schedule: list[float] | None = None, interval_s: float | None = None,
                 timeout_s: float | None = None):
        settings = get_settings()
        self.urls = settings.webhook_urls if urls is None else urls
        self.secret = settings.webhook_secret if secret is None else secret
        self.schedule = settings.webhook_retry_schedule if schedule is None else schedule
        self.interval_s = settings.relay_interval_s if interval_s is None else interval_s
        timeout = settings.webhook_timeout_s if timeout_s is None else timeout_s
        self.stopping = threading.Event()
        self._client = httpx.Client(follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="relay")
        self.send = http_sender(self._client, timeout)
        if self.urls:
            check_secret(self.secret)

    def step(self, *, now: datetime) -> int:
        """One round; returns how many events were handed out plus deliveries attempted."""
        from db.session import session_scope

        with session_scope() as s:
            handed = fan_out(s, urls=self.urls, now=now)
        with session_scope() as s:
            done = deliver_due(s, now=now, secret=self.secret, send=self.send, schedule=self.schedule,
                               pool=self._pool)
        return handed + len(done)

    def run(self) -> None:
        """Until stop(): a failed round (database down…) is logged and tried again."""
        if not self.urls:
            log.warning("WEBHOOK_URL is empty: events wait in the outbox until an endpoint is configured")
        log.info("relay started", extra={"endpoints": len(self.urls), "interval_s": self.interval_s})
        while not self.stopping.is_set():
            busy = 0
            if self.urls:
                try:
                    busy = self.step(now=datetime.now(UTC))
                except Exception:  # noqa: BLE001 - one failed round must not stop the relay
                    log.exception("relay round failed; trying again")
            if not busy:
                self.stopping.wait(self.interval_s)
        self._pool.shutdown(wait=True)
        self._client.close()
        log.info("relay stopped")

    def stop(self) -> None:
        self.stopping.set()


def pending_count(session: Session) -> int:
    """Deliveries still to make (for tests and the log's summary)."""
    return session.scalar(select(func.count()).select_from(WebhookDelivery)
                          .where(WebhookDelivery.status == DeliveryStatus.PENDING.value)) or 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m engine.relay",
        description="Deliver the outbox events to WEBHOOK_URL (Standard Webhooks, signed with WEBHOOK_SECRET), "
                    "with back-off per WEBHOOK_RETRY_SCHEDULE_S. Safe to run several times at once.")
    parser.parse_args(argv)
    from core.logs import setup_logging

    setup_logging("relay")
    try:
        relay = Relay()
    except BadSecret as exc:
        parser.exit(2, f"{exc}\n")

    def stop(signum, _frame) -> None:
        log.info("stopping (signal %s)", signum)
        relay.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    relay.run()


if __name__ == "__main__":
    main()
