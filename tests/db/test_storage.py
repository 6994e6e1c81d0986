"""Telemetry tiers (issue 12): day partitions, the cold tier, readings(), late data, retention,
the maintenance pass (idempotent, killed with -9 and finished by the next pass)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from db.session import session_scope
from engine.maintenance import day_partitions, ensure_day_partitions, maintain, month_partitions
from ingest.telemetry import AsyncWriter
from tests.conftest import PROJECT, insert_points
from tests.engine.helpers import NOW, ids

ASSET = "CAS-S1-CHILLER_1"
# every reading of every (asset, metric), through readings(): count and an order-free checksum
# of (asset, metric, ts, the value's 8 bytes)
CHECKSUM = (
    "SELECT count(*), coalesce(sum(hashtextextended(r.asset_id || '/' || r.metric_id || '/' || "
    "(extract(epoch FROM r.ts) * 1000000)::bigint || '/' || float8send(r.value)::text, 0)::numeric), 0) "
    "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
    "CROSS JOIN LATERAL readings(a.id, m.id, '-infinity', 'infinity') r"
)


def odd_values(n: int, seed: int = 7) -> list[float]:
    """Finite doubles of every kind: random bit patterns, tiny, huge, signed zero, sensor-like
    (below 1e300, so the hourly roll-up's sum cannot overflow)."""
    rng = random.Random(seed)
    fixed = [0.0, -0.0, 5e-324, -9.99e299, 0.1 + 0.2, 21.375, 1e-300]
    out = []
    while len(out) < n:
        v = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if v == v and abs(v) < 1e300:
            out.append(v)
            out.append(round(rng.uniform(5, 25), 3))
    return (fixed + out)[:n]


def readings_of(pg, aid: int, mid: int, start: datetime, end: datetime) -> list[tuple]:
    """(ts, the value's 8 bytes) of one (asset, metric), through readings()."""
    return pg.execute("SELECT ts, float8send(value) FROM readings(%s, %s, %s, %s) ORDER BY ts",
                      (aid, mid, start, end)).fetchall()


def store(pg, points) -> int:
    """Write points through the application's writer (COPY, then the ON CONFLICT path on a
    re-send); returns how many it stored."""
    async def go() -> int:
        writer = AsyncWriter(pg.info.dsn, connections=1)
        await writer.start()
        try:
            return await writer.submit(list(points))
        finally:
            await writer.stop()

    return asyncio.run(go())


def irregular(aid: int, mid: int, start: datetime, n: int, step_s: float = 10.0, seed: int = 1) -> list[tuple]:
    """n readings from `start`, about every step_s, with microsecond jitter and odd values."""
    rng = random.Random(seed)
    values = odd_values(n, seed)
    return [(aid, mid, start + timedelta(seconds=i * step_s, microseconds=rng.randrange(1_000_000)), values[i])
            for i in range(n)]


def partitioned_days(days: list[datetime]) -> None:
    with session_scope() as s:
        ensure_day_partitions(s, start=min(days), end=max(days))


def test_compaction_keeps_every_reading_bit_exact_and_drops_the_hot_partition(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    first = (NOW - timedelta(days=12)).replace(hour=0)
    partitioned_days([first, first + timedelta(days=2)])
    pts = irregular(aid, mid, first + timedelta(hours=1), 3 * 8640 - 720)  # three days, every 10 s
    store(pg, pts)
    span = (first, first + timedelta(days=3))
    before = readings_of(pg, aid, mid, *span)
    assert len(before) == len(pts)

    report = maintain(now=NOW, hot_days=7)

    assert report.days_compacted >= 3 and report.points_compacted >= len(pts)
    assert readings_of(pg, aid, mid, *span) == before  # same instants to the microsecond, same bytes
    assert pg.execute("SELECT count(*) FROM telemetry WHERE ts < %s", (span[1],)).fetchone()[0] == 0
    cold = pg.execute("SELECT count(*), sum(n) FROM telemetry_cold WHERE asset_id = %s", (aid,)).fetchone()
    assert cold == (3, len(pts))  # one row per (asset, metric, day)
    with session_scope() as s:
        assert not [d for d in day_partitions(s) if d < span[1]]  # the day partitions are gone
    # a sub-range inside a compacted day, and across the hot/cold border
    some = readings_of(pg, aid, mid, first + timedelta(hours=30), first + timedelta(hours=31))
    assert some == [r for r in before if first + timedelta(hours=30) <= r[0] <= first + timedelta(hours=31)]


def test_readings_across_hot_and_cold_are_the_same_before_and_after_a_pass(pg):
    aid, mid = ids(pg, ASSET, "water_temp_in")
    start = NOW - timedelta(days=9, hours=5)
    partitioned_days([start, NOW])
    store(pg, irregular(aid, mid, start, 9 * 1440, step_s=60.0, seed=3))  # 9 days at 1 min: 2 hot, 7 cold
    window = (NOW - timedelta(days=8, hours=3), NOW - timedelta(days=6))
    before_all = pg.execute(CHECKSUM).fetchone()
    before = readings_of(pg, aid, mid, *window)
    maintain(now=NOW, hot_days=7)
    assert pg.execute("SELECT count(*) FROM telemetry_cold").fetchone()[0] > 0
    assert pg.execute("SELECT count(*) FROM telemetry WHERE asset_id = %s", (aid,)).fetchone()[0] > 0
    assert readings_of(pg, aid, mid, *window) == before
    assert pg.execute(CHECKSUM).fetchone() == before_all
    # the "latest N" reader sees the same points whichever tier holds them
    latest = pg.execute("SELECT ts, float8send(value) FROM latest_readings(%s, %s, %s, 5)",
                        (aid, mid, window[1])).fetchall()
    assert latest == sorted(before, reverse=True)[:5]


def test_a_second_pass_finds_nothing_to_do(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    day = (NOW - timedelta(days=10)).replace(hour=0)
    partitioned_days([day])
    store(pg, irregular(aid, mid, day, 1000))
    maintain(now=NOW, hot_days=7)
    snapshot = pg.execute("SELECT asset_id, metric_id, day, xmin::text FROM telemetry_cold ORDER BY 1, 2, 3").fetchall()
    hourly = pg.execute("SELECT hour, xmin::text FROM telemetry_hourly ORDER BY 1").fetchall()
    again = maintain(now=NOW, hot_days=7)
    assert (again.days_compacted, again.points_compacted, again.late_points_merged, again.hours_rolled_up) == (0, 0, 0, 0)
    assert again.partitions_created == [] and again.partitions_dropped == []
    assert pg.execute("SELECT asset_id, metric_id, day, xmin::text FROM telemetry_cold ORDER BY 1, 2, 3").fetchall() == snapshot
    assert pg.execute("SELECT hour, xmin::text FROM telemetry_hourly ORDER BY 1").fetchall() == hourly


def test_a_late_reading_of_a_compacted_hour_is_stored_once_visible_and_rolled_up(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    day = (NOW - timedelta(days=10)).replace(hour=0)
    partitioned_days([day])
    hour = day + timedelta(hours=5)
    store(pg, [(aid, mid, hour + timedelta(seconds=10 * i), 7.0) for i in range(360)])
    maintain(now=NOW, hot_days=7)
    assert pg.execute("SELECT n, max FROM telemetry_hourly WHERE hour = %s", (hour,)).fetchone() == (360, 7.0)

    late = (aid, mid, hour + timedelta(seconds=5), 42.5)
    assert store(pg, [late]) == 1
    assert (late[2], struct.pack(">d", 42.5)) in readings_of(pg, aid, mid, hour, hour + timedelta(hours=1))
    assert store(pg, [late]) == 0  # re-sent while hot: stored once
    assert pg.execute("SELECT count(*) FROM telemetry_dirty_hours WHERE hour = %s", (hour,)).fetchone()[0] == 1

    maintain(now=NOW, hot_days=7)  # folds it into the cold tier, recomputes that hour
    assert pg.execute("SELECT n, max FROM telemetry_hourly WHERE hour = %s", (hour,)).fetchone() == (361, 42.5)
    assert pg.execute("SELECT count(*) FROM telemetry WHERE ts < %s", (day + timedelta(days=1),)).fetchone()[0] == 0
    # re-sent once it is cold, alone and mixed with a new reading: stored once, counted right
    assert store(pg, [late]) == 0
    new = (aid, mid, hour + timedelta(seconds=6), 1.5)
    assert store(pg, [late, (aid, mid, hour, 99.0), new]) == 1
    got = readings_of(pg, aid, mid, hour, hour + timedelta(hours=1))
    assert len(got) == 362 and len({ts for ts, _ in got}) == 362
    assert (hour, struct.pack(">d", 7.0)) in got  # the first value stays


def test_a_gateway_resending_compacted_readings_through_the_api_stores_nothing(api, pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    day = (NOW - timedelta(days=10)).replace(hour=0)
    reading = {"site_code": "CAS-S1", "asset_code": ASSET, "timestamp": (day + timedelta(hours=3)).isoformat(),
               "metrics": {"water_temp_out": 6.5, "water_temp_in": 12.0}}
    assert api.post("/telemetry", json=reading).json()["inserted_points"] == 2
    maintain(now=NOW, hot_days=7)
    assert pg.execute("SELECT count(*) FROM telemetry_cold").fetchone()[0] == 2
    r = api.post("/telemetry/batch", json={"readings": [reading]})
    assert r.status_code == 200 and r.json()["inserted_points"] == 0
    assert pg.execute(CHECKSUM).fetchone()[0] == 2


def test_retention_drops_whole_partitions_and_never_alerts_work_orders_or_audit(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    old_day = datetime(2025, 12, 10, tzinfo=UTC)  # NOW - 82 days
    kept_day = datetime(2026, 2, 10, tzinfo=UTC)
    partitioned_days([old_day])
    store(pg, [(aid, mid, old_day + timedelta(minutes=i), 1.0) for i in range(100)])
    maintain(now=NOW, hot_days=7)  # compacted into the cold month 2025-12, rolled up
    partitioned_days([datetime(2025, 12, 20, tzinfo=UTC)])  # a hot day partition past retention too
    store(pg, [(aid, mid, datetime(2025, 12, 20, 1, tzinfo=UTC), 2.0), (aid, mid, kept_day, 3.0)])
    policy = pg.execute("SELECT id FROM policies WHERE code = 'R3'").fetchone()[0]
    alert = pg.execute(
        "INSERT INTO alerts (asset_id, policy_id, created_at, started_at, severity, status, resolution, message) "
        "VALUES (%s, %s, %s, %s, 'high', 'closed', 'dismissed', 'old') RETURNING id",
        (aid, policy, old_day, old_day)).fetchone()[0]
    pg.execute("INSERT INTO work_orders (alert_id, asset_id, title, created_at, updated_at, status, priority, notes) "
               "VALUES (%s, %s, 'old', %s, %s, 'done', 1, '')", (alert, aid, old_day, old_day))
    pg.execute("INSERT INTO audit_trail (entity, entity_id, at, actor, action, comment) "
               "VALUES ('alert', %s, %s, 'tech', 'close', '')", (alert, old_day))

    report = maintain(now=NOW, hot_days=7, telemetry_retention_days=60, rollup_retention_days=60)

    assert {"telemetry_cold_p202512", "telemetry_p20251220", "telemetry_hourly_p202512"} <= set(report.partitions_dropped)
    with session_scope() as s:
        assert datetime(2025, 12, 1, tzinfo=UTC) not in month_partitions(s, table="telemetry_cold")
        assert datetime(2025, 12, 1, tzinfo=UTC) not in month_partitions(s, table="telemetry_hourly")
    assert pg.execute("SELECT min(ts) FROM readings(%s, %s, '-infinity', 'infinity')", (aid, mid)).fetchone()[0] == kept_day
    assert pg.execute("SELECT count(*) FROM telemetry_hourly WHERE hour < '2026-01-01'").fetchone()[0] == 0
    assert [pg.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("alerts", "work_orders", "audit_trail")] == [1, 1, 1]
    # forever (0) keeps everything
    again = maintain(now=NOW + timedelta(days=30), hot_days=7)
    assert again.partitions_dropped == []


def test_partitions_are_created_ahead_and_take_the_readings_already_there(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    ahead = NOW + timedelta(days=2)
    with session_scope() as s:
        assert ahead.replace(hour=0) not in day_partitions(s)
    store(pg, [(aid, mid, ahead, 5.0)])  # no partition yet: kept by telemetry_late
    report = maintain(now=NOW, hot_days=7)
    assert f"telemetry_p{ahead:%Y%m%d}" in report.partitions_created
    assert pg.execute(f"SELECT count(*) FROM telemetry_p{ahead:%Y%m%d}").fetchone()[0] == 1
    assert pg.execute("SELECT count(*) FROM telemetry_late WHERE ts >= %s", (NOW,)).fetchone()[0] == 0


def test_maintain_killed_in_the_middle_loses_nothing_and_the_next_pass_finishes(pg, database_url):
    """`python -m db maintain` killed with SIGKILL while it compacts: every reading is still
    readable, and the next pass compacts everything (real clock: the command reads it)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=14)
    partitioned_days([first, first + timedelta(days=3)])
    pg.execute(
        "INSERT INTO telemetry SELECT a.id, m.id, ts, round((10 + 3 * sin(extract(epoch FROM ts) / 3600.0 + a.id) "
        "  + random())::numeric, 3)::float8 FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types), "
        "generate_series(%s::timestamptz, %s::timestamptz - interval '1 second', interval '10 seconds') ts",
        (first, first + timedelta(days=4)))
    before = pg.execute(CHECKSUM).fetchone()
    env = {**os.environ, "DATABASE_URL": database_url}
    proc = subprocess.Popen([sys.executable, "-m", "db", "maintain"], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:  # wait until it is inside a compaction, then kill it
        busy = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                          "AND query LIKE 'INSERT INTO telemetry_cold_stage%%'").fetchone()[0]
        if busy:
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert pg.execute(CHECKSUM).fetchone() == before  # nothing lost

    done = subprocess.run([sys.executable, "-m", "db", "maintain"], cwd=PROJECT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "days compacted:" in done.stdout
    assert pg.execute(CHECKSUM).fetchone() == before
    assert pg.execute("SELECT count(*) FROM telemetry WHERE ts < %s", (first + timedelta(days=4),)).fetchone()[0] == 0
    assert pg.execute("SELECT count(DISTINCT day) FROM telemetry_cold").fetchone()[0] == 4


def test_the_scheduler_runs_the_maintenance_pass(pg, database_url):
    """`python -m engine` (an active instance and a standby): a late reading of a day older than
    the hot days is folded into the cold tier by the maintenance job."""
    aid, mid = ids(pg, ASSET, "water_temp_out")
    old = datetime.now(UTC) - timedelta(days=20)
    insert_points(pg, [(aid, mid, old, 3.25)])
    env = {**os.environ, "DATABASE_URL": database_url, "RULES_INTERVAL_S": "30", "MAINTENANCE_INTERVAL_S": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "engine"], cwd=PROJECT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not pg.execute("SELECT count(*) FROM telemetry_cold").fetchone()[0]:
            assert time.monotonic() < deadline, "no maintenance pass within 60 s"
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    assert pg.execute("SELECT count(*) FROM telemetry WHERE ts < %s", (old + timedelta(days=1),)).fetchone()[0] == 0
    assert pg.execute("SELECT ts, value FROM readings(%s, %s, %s, %s)", (aid, mid, old, old)).fetchall() == [(old, 3.25)]


def test_sensor_values_with_three_decimals_are_stored_as_milli_deltas_and_come_back_exact(pg):
    aid, mid_a = ids(pg, ASSET, "water_temp_out")
    _, mid_b = ids(pg, ASSET, "water_temp_in")
    _, mid_c = ids(pg, ASSET, "run_hours")
    day = (NOW - timedelta(days=10)).replace(hour=0)
    partitioned_days([day])
    rng = random.Random(5)
    sensor = [round(rng.uniform(-40, 120), rng.choice([0, 1, 2, 3])) + 0.0 for _ in range(3000)] + [0.0, 999999999.999]  # + 0.0: no -0.0
    counter = [round(100 + i * 0.0028, 3) for i in range(3000)]
    with_minus_zero = [round(rng.uniform(5, 9), 3) for _ in range(100)] + [-0.0]
    t = [day + timedelta(seconds=10 * i, microseconds=i) for i in range(3100)]
    store(pg, [(aid, mid_a, t[i], v) for i, v in enumerate(sensor)] + [(aid, mid_c, t[i], v) for i, v in enumerate(counter)]
          + [(aid, mid_b, t[i], v) for i, v in enumerate(with_minus_zero)])
    span = (day, day + timedelta(days=1))
    before = {m: readings_of(pg, aid, m, *span) for m in (mid_a, mid_b, mid_c)}
    maintain(now=NOW, hot_days=7)
    milli = dict(pg.execute("SELECT metric_id, milli FROM telemetry_cold WHERE asset_id = %s", (aid,)).fetchall())
    assert milli == {mid_a: True, mid_c: True, mid_b: False}  # -0.0 would come back as 0.0: stored as is
    for m in (mid_a, mid_b, mid_c):
        assert readings_of(pg, aid, m, *span) == before[m]


def test_compaction_on_two_connections_writes_the_same_cold_rows_as_on_one(pg):
    """MAINTENANCE_WORKERS: the day's asset ranges are encoded on several connections (snapshot
    of the compacting transaction, staged, then moved in one commit): the very same cold rows."""
    from engine.maintenance import STAGE, asset_chunks, compact_day

    one, two = (NOW - timedelta(days=12)).replace(hour=0), (NOW - timedelta(days=11)).replace(hour=0)
    partitioned_days([one, two])
    for day in (one, two):  # the same readings on both days, every seeded asset and metric
        pg.execute(
            "INSERT INTO telemetry SELECT a.id, m.id, %s::timestamptz + s * interval '10 seconds' + (a.id * s %% 997) "
            "* interval '1 microsecond', CASE WHEN m.id %% 2 = 0 THEN round((10 + sin(s / 50.0 + a.id))::numeric, 3)::float8 "
            "ELSE (a.id * 1.0e-7 + s) * pi() END FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types), "
            "generate_series(0, 2999) s", (day,))
    with session_scope() as s:
        assert len(asset_chunks(s, table=f"telemetry_p{one:%Y%m%d}", readings=1, chunks=2)) == 2
        moved = compact_day(s, day=one, workers=1)
        assert compact_day(s, day=two, workers=2) == moved  # two days in one transaction: no self-deadlock
    rows = pg.execute("SELECT day, asset_id, metric_id, n, dts, vals::text, milli FROM telemetry_cold "
                      "ORDER BY asset_id, metric_id, day").fetchall()
    assert {r[6] for r in rows} == {True, False}  # both forms of values
    by_day = {d: [r[1:] for r in rows if r[0] == d] for d in (one, two)}
    assert by_day[one] == by_day[two] and len(by_day[one]) == len(rows) // 2 > 2
    assert pg.execute(f"SELECT count(*) FROM {STAGE}").fetchone()[0] == 0  # the stage is emptied by the commit
    assert pg.execute("SELECT count(*) FROM telemetry WHERE ts < %s", (two + timedelta(days=1),)).fetchone()[0] == 0
