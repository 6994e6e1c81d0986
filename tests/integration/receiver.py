"""A real webhook receiver on 127.0.0.1 for the relay tests: checks every signature with the
`standardwebhooks` library, records every attempt, and can fail or stall the first attempts."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Hit:
    webhook_id: str
    signature_ok: bool
    body: dict
    answered: int
    started: float
    ended: float = 0.0


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0  # answer 500 to the first N attempts of each webhook-id
    stall_first_s: float = 0.0  # hold the very first request this long before answering
    hits: list[Hit] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.lock = threading.Lock()
        self.first_request = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.request_queue_size = 64  # the relay connects in parallel
        self.server.server_bind()
        self.server.server_activate()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k: v for k, v in req.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
            ok = True
        except WebhookVerificationError:
            ok = False
        wid = headers.get("webhook-id", "")
        with self.lock:
            seen = sum(1 for h in self.hits if h.webhook_id == wid)
            stall = self.stall_first_s if not self.hits else 0.0
            status = 500 if seen < self.fail_first else 200
            hit = Hit(wid, ok, json.loads(body), status, time.monotonic())
            self.hits.append(hit)
            self.in_flight[wid] = self.in_flight.get(wid, 0) + 1
            if self.in_flight[wid] > 1:
                self.overlaps.append(wid)
        self.first_request.set()
        if stall:
            time.sleep(stall)
        try:
            req.send_response(status)
            req.send_header("content-length", "0")
            req.end_headers()
        finally:
            with self.lock:
                self.in_flight[wid] -= 1
                hit.ended = time.monotonic()

    def delivered(self) -> list[Hit]:
        """The attempts answered 2xx, in the order they arrived."""
        return [h for h in self.hits if h.answered == 200]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
