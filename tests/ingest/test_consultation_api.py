"""The consultation endpoints of §7.2 and health."""

from __future__ import annotations


def test_sites_are_the_seeded_ones(api):
    r = api.get("/sites")
    assert r.status_code == 200
    sites = {s["code"]: s for s in r.json()}
    assert set(sites) == {"CAS-S1", "CAS-S2"}
    assert sites["CAS-S1"]["name"] == "Tour Alpha – Casanearshore"
    assert sites["CAS-S1"]["assets"] == 3
    assert sites["CAS-S1"]["open_alerts"] == {"high": 0, "medium": 0, "low": 0}


def test_site_assets_are_one_of_each_type(api):
    s2 = next(s for s in api.get("/sites").json() if s["code"] == "CAS-S2")
    assets = api.get(f"/sites/{s2['id']}/assets").json()
    assert {(a["code"], a["type"]) for a in assets} == {
        ("CAS-S2-HVAC_1", "HVAC"),
        ("CAS-S2-CHILLER_1", "CHILLER"),
        ("CAS-S2-ELEVATOR_1", "ELEVATOR"),
    }
    assert all(a["last_seen"] is None for a in assets)


def test_site_assets_show_last_values(api):
    s1 = next(s for s in api.get("/sites").json() if s["code"] == "CAS-S1")
    for ts, v in (("2025-12-09T10:00:00Z", 1.0), ("2025-12-09T10:00:10Z", 2.0)):
        api.post(
            "/telemetry",
            json={"site_code": "CAS-S1", "asset_code": "CAS-S1-CHILLER_1", "timestamp": ts, "metrics": {"power_kw": v}},
        )
    chiller = next(a for a in api.get(f"/sites/{s1['id']}/assets").json() if a["type"] == "CHILLER")
    assert chiller["last_values"] == {"power_kw": 2.0}
    assert chiller["last_seen"] == "2025-12-09T10:00:10Z"


def test_unknown_site_is_404(api):
    r = api.get("/sites/999999/assets")
    assert r.status_code == 404
    assert "site 999999" in r.json()["detail"]


def test_metrics_range_must_have_zone_and_order(api):
    aid = api.get("/sites/1/assets").json()[0]["id"]
    r = api.get(f"/assets/{aid}/metrics", params={"from": "2025-12-09T10:00:00"})
    assert r.status_code == 422 and "from" in r.json()["detail"]
    r = api.get(f"/assets/{aid}/metrics", params={"from": "2025-12-09T11:00:00Z", "to": "2025-12-09T10:00:00Z"})
    assert r.status_code == 422


def test_alerts_and_workorders_filter_by_status(api):
    assert api.get("/alerts", params={"status": "open"}).json() == []
    assert api.get("/workorders", params={"status": "open"}).json() == []
    r = api.get("/alerts", params={"status": "bogus"})
    assert r.status_code == 422 and "status" in r.json()["errors"][0]["field"]


def test_health_reports_database(api):
    r = api.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "down": []}


def test_openapi_docs_are_served(live_api):
    import httpx

    spec = httpx.get(live_api.url + "/openapi.json").json()
    assert "/api/v1/telemetry" in spec["paths"]
    assert "/api/v1/telemetry/batch" in spec["paths"]
    assert httpx.get(live_api.url + "/docs").status_code == 200
