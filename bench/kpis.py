"""KPIs and webhooks: how long the KPI page's computation takes on a year of history, and how
many events per second the relay delivers to a local receiver.

A throwaway database gets a year of alerts on the six seeded assets (one per policy every
8 hours: ~14,000 alerts, each with its work order and an audit entry "in progress"); the KPIs are
computed for 30, 90 and 365 days (with the weekly and monthly series), median of 5 runs. Then
2,000 outbox events (200 work orders × 10 events) are delivered by one relay to a receiver on
127.0.0.1 that answers 204.

    python bench/kpis.py        (DATABASE_URL: a server to create the database on; unset: embedded)

Prints the figures, then one JSON line.
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _support import throwaway_database  # noqa: E402  (puts the project on sys.path)

from core.settings import get_settings  # noqa: E402

HISTORY_SQL = """
INSERT INTO alerts (asset_id, policy_id, created_at, started_at, severity, status, message, acked_by, acked_at,
                    closed_by, closed_at, resolution)
SELECT a.id, p.id, t, t, p.severity, 'closed', 'bench', 'x', t + interval '20 minutes', 'x', t + interval '3 hours',
       CASE WHEN random() < 0.1 THEN 'dismissed' ELSE 'work_order_done' END
FROM assets a JOIN policies p ON p.asset_type = a.type,
     generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz), interval '8 hours') t;
INSERT INTO work_orders (alert_id, asset_id, title, created_at, updated_at, closed_at, status, priority, notes)
SELECT id, asset_id, 'bench', created_at, closed_at, closed_at,
       CASE resolution WHEN 'dismissed' THEN 'cancelled' ELSE 'done' END,
       CASE severity WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, ''
FROM alerts;
INSERT INTO audit_trail (entity, entity_id, at, actor, action, from_value, to_value, comment)
SELECT 'work_order', id, created_at + interval '30 minutes', 'x', 'status', 'open', 'in_progress', ''
FROM work_orders WHERE status = 'done';
ANALYZE alerts; ANALYZE work_orders; ANALYZE audit_trail;
"""


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops concurrent connects (1 s SYN retry): it measures the sink


class Sink(BaseHTTPRequestHandler):
    received = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with Sink.lock:
            Sink.received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    with throwaway_database():
        from sqlalchemy import text

        from db.session import session_scope
        from engine import kpis
        from engine.relay import Relay

        now = datetime(2026, 6, 1, tzinfo=UTC)
        with session_scope() as s:
            for stmt in HISTORY_SQL.split(";\n"):
                if stmt.strip():
                    s.execute(text(stmt), {"start": now - timedelta(days=365), "end": now})
            n_alerts = s.scalar(text("SELECT count(*) FROM alerts"))
        figures: dict = {"alerts": n_alerts}
        for days in (30, 90, 365):
            runs = []
            for _ in range(5):
                t0 = time.perf_counter()
                with session_scope() as s:
                    k = kpis.compute(s, start=now - timedelta(days=days), end=now, now=now)
                runs.append((time.perf_counter() - t0) * 1000)
            figures[f"kpis_{days}d_ms"] = round(statistics.median(runs), 1)
            print(f"KPIs over {days:>3} days ({len(k['weekly'])} weeks, {len(k['monthly'])} months, "
                  f"{n_alerts} alerts in the base): median {figures[f'kpis_{days}d_ms']} ms "
                  f"(availability {k['availability_pct']} %, MTTR {k['mttr_hours']} h)")

        server = Server(("127.0.0.1", 0), Sink)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with session_scope() as s:
            s.execute(text(
                "INSERT INTO outbox_events (created_at, type, entity, entity_id, ordering_key, payload) "
                "SELECT now(), 'work_order.status_changed', 'work_order', w, 'work_order:' || w, "
                "jsonb_build_object('type', 'work_order.status_changed', 'data', jsonb_build_object('n', i)) "
                "FROM generate_series(1, 10) i, generate_series(1, 200) w ORDER BY i, w"))
        # the deployment's WEBHOOK_SECRET (.env.example) when set, else a fresh one per run
        secret = get_settings().webhook_secret or secrets.token_urlsafe(24)
        relay = Relay(urls=[url], secret=secret, schedule=[1], interval_s=0)
        t0 = time.perf_counter()
        while Sink.received < 2000 and time.perf_counter() - t0 < 120:
            relay.step(now=datetime.now(UTC))
        elapsed = time.perf_counter() - t0
        server.shutdown()
        figures["relay_events_per_s"] = round(Sink.received / elapsed, 1)
        print(f"relay: {Sink.received} events delivered in {elapsed:.1f} s "
              f"({figures['relay_events_per_s']} events/s, one relay, 200 work orders × 10 in order)")
        print(json.dumps({"bench": "kpis", **figures}))


if __name__ == "__main__":
    main()
