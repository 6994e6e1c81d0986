"""The Prometheus endpoint: ingest rate, latency, rejections, evaluations and alerts."""

from __future__ import annotations

import re

import httpx

from tests.ingest.test_telemetry_api import EXAMPLE


def value(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_ingest_rejections_evaluations_and_alerts(api, live_api, pg):
    before = httpx.get(live_api.url + "/metrics").text
    api.post("/telemetry", json=EXAMPLE)
    api.post("/telemetry", json={**EXAMPLE, "site_code": "nope"})
    from datetime import UTC, datetime

    from tests.engine.helpers import put, series

    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([90.0] * 5, end=datetime.now(UTC)))
    fired = api.post("/rules/evaluate").json()["fired"]
    # R5 on the elevator; N1 on the HVAC unit too: the example's reading is of 2025-12-09, silent since
    assert sorted((f["policy_code"], f["asset_code"]) for f in fired) == [
        ("N1", "CAS-S1-HVAC_1"), ("R5", "CAS-S1-ELEVATOR_1")]
    after = httpx.get(live_api.url + "/metrics").text
    assert value(after, "m40_ingest_points_total") - value(before, "m40_ingest_points_total") == 4
    assert value(after, 'm40_ingest_rejected_requests_total{reason="InvalidInput"}') >= 1
    assert 'm40_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/telemetry"' in after
    assert value(after, "m40_rules_evaluations_total") == 1
    assert value(after, 'm40_alerts_fired_total{severity="high"}') == 1
    assert value(after, 'm40_alerts_live{severity="high"}') == 1
    assert value(after, "m40_rules_last_evaluation_seconds") > 0
