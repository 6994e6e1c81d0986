"""GET /assets/{id}/metrics up to a year: raw points up to a limit, otherwise step buckets with
min/avg/max/count; the same answer from hot and cold days (issue 12)."""

from __future__ import annotations

from datetime import timedelta

from db import queries
from db.session import session_scope
from engine.maintenance import maintain
from engine.rollup import roll_up
from tests.conftest import insert_points
from tests.engine.helpers import NOW, ids

ASSET = "CAS-S1-CHILLER_1"
FROM = (NOW - timedelta(days=365)).replace(hour=0)  # a UTC midnight


def year_of_readings(pg) -> tuple[int, int, list]:
    """One reading every 6 hours for a year, value = UTC day number (a day's min = max = avg)."""
    aid, mid = ids(pg, ASSET, "water_temp_out")
    pts = [(aid, mid, FROM + timedelta(hours=6 * i), float(i // 4)) for i in range(365 * 4)]
    insert_points(pg, pts)
    return aid, mid, pts


def params(**kw) -> dict:
    return {"from": FROM.isoformat(), "to": NOW.isoformat(), "metric": ["water_temp_out"], **kw}


def test_a_year_of_few_readings_comes_back_raw(api, pg):
    aid, _, pts = year_of_readings(pg)
    r = api.get(f"/assets/{aid}/metrics", params=params())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolution"] == "raw" and body["step"] is None
    assert len(body["series"][0]["points"]) == len(pts) and body["series"][0]["buckets"] == []


def test_a_year_with_step_1d_gives_daily_min_avg_max_count(api, pg):
    aid, _, pts = year_of_readings(pg)
    with session_scope() as s:
        roll_up(s, now=NOW, since=NOW - timedelta(days=366))  # the hourly roll-up serves whole hours
    r = api.get(f"/assets/{aid}/metrics", params=params(step="1d"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolution"] == "step" and body["step"] == "1d" and body["step_s"] == 86400
    buckets = body["series"][0]["buckets"]
    assert body["series"][0]["points"] == []
    assert sum(b["count"] for b in buckets) == len(pts)
    assert len(buckets) == 365  # one per UTC day holding readings
    assert all(b["min"] == b["avg"] == b["max"] for b in buckets)
    assert buckets[10]["ts"].endswith("T00:00:00Z")


def test_the_answer_is_the_same_after_compaction(api, pg):
    aid, _, _ = year_of_readings(pg)
    before_raw = api.get(f"/assets/{aid}/metrics", params=params()).json()
    before_step = api.get(f"/assets/{aid}/metrics", params=params(step="6h")).json()
    maintain(now=NOW, hot_days=7)
    assert pg.execute("SELECT count(*) FROM telemetry_cold").fetchone()[0] >= 358
    assert api.get(f"/assets/{aid}/metrics", params=params()).json() == before_raw
    assert api.get(f"/assets/{aid}/metrics", params=params(step="6h")).json() == before_step


def test_beyond_the_raw_limit_an_automatic_step_is_chosen(pg):
    aid, mid, pts = year_of_readings(pg)
    with session_scope() as s:
        out = queries.metric_series(s, asset_id=aid, start=FROM, end=NOW, metrics=["water_temp_out"], max_points=1000)
    assert out["resolution"] == "step" and out["step"] == "12h"  # the smallest step giving <= 1,000 buckets
    assert sum(b["count"] for b in out["series"][0]["buckets"]) == len(pts)
    with session_scope() as s:
        raw = queries.metric_series(s, asset_id=aid, start=FROM, end=NOW, metrics=["water_temp_out"],
                                    max_points=len(pts))
    assert raw["resolution"] == "raw"


def test_step_buckets_agree_with_raw_readings_across_rolled_and_recent_hours(pg):
    aid, mid = ids(pg, ASSET, "water_temp_in")
    pts = [(aid, mid, NOW - timedelta(hours=30) + timedelta(seconds=37 * i), float(i % 101)) for i in range(2900)]
    insert_points(pg, pts)
    with session_scope() as s:
        roll_up(s, now=NOW - timedelta(hours=3), since=NOW - timedelta(days=2))  # the last 3 h are not rolled up
    start, end = NOW - timedelta(hours=29, minutes=17), NOW
    with session_scope() as s:
        out = queries.metric_series(s, asset_id=aid, start=start, end=end, metrics=["water_temp_in"], step_s=7200)
    inside = [p for p in pts if start <= p[2] <= end]
    buckets = out["series"][0]["buckets"]
    assert sum(b["count"] for b in buckets) == len(inside)
    for b in buckets:
        vals = [v for _, _, ts, v in inside if b["ts"] <= ts < b["ts"] + timedelta(hours=2)]
        assert (b["min"], b["max"], b["count"]) == (min(vals), max(vals), len(vals))
        assert abs(b["avg"] - sum(vals) / len(vals)) < 1e-9


def test_bad_step_or_range_is_refused_naming_the_field(api, pg):
    aid, _ = ids(pg, ASSET, "water_temp_out")
    r = api.get(f"/assets/{aid}/metrics", params=params(step="fortnight"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "step"
    r = api.get(f"/assets/{aid}/metrics", params=params(step="10s"))  # 3 million buckets
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "step"
    r = api.get(f"/assets/{aid}/metrics", params={**params(), "from": (NOW - timedelta(days=400)).isoformat()})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from"
