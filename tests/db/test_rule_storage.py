"""Storage of the rule engine's inputs and state.
- telemetry's primary key (migration 0013): (asset_id, metric_id, ts) INCLUDE (value). A series'
  range is read from the index alone once its partition is vacuumed (no heap page per reading),
  and the key still makes a reading unique (ingest's ON CONFLICT arbiter).
- policy_evaluations pages keep room for the updates of every run (migration 0014)."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import insert_points
from tests.engine.helpers import NOW, ids

ASSET = "CAS-S1-CHILLER_1"


def test_the_key_covers_the_value(pg):
    keys, columns = pg.execute(
        "SELECT i.indnkeyatts, i.indnatts FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'telemetry_pkey'").fetchone()
    assert (keys, columns) == (3, 4)
    definition = pg.execute("SELECT pg_get_indexdef('telemetry_pkey'::regclass)").fetchone()[0]
    assert definition.endswith("(asset_id, metric_id, ts) INCLUDE (value)")


def test_a_vacuumed_range_is_read_from_the_index_alone(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    start = (NOW - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    insert_points(pg, [(aid, mid, start + timedelta(seconds=10 * i), 7.0 + i / 100) for i in range(2000)])
    pg.execute("VACUUM ANALYZE telemetry")  # as every past day is: all-visible
    lo, hi = start + timedelta(minutes=30), start + timedelta(minutes=90)
    with pg.transaction():  # a tiny table: keep the planner off the sequential scans it would prefer
        pg.execute("SET LOCAL enable_seqscan = off")
        pg.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in pg.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT ts, value FROM readings(%s, %s, %s, %s)", (aid, mid, lo, hi)))
    assert "Index Only Scan" in plan and "Heap Fetches: 0" in plan, plan
    got = pg.execute("SELECT count(*), min(value), max(value) FROM readings(%s, %s, %s, %s)", (aid, mid, lo, hi)).fetchone()
    assert got == (361, 7.0 + 180 / 100, 7.0 + 540 / 100)


def test_the_key_still_refuses_a_second_reading_at_the_same_instant(pg):
    aid, mid = ids(pg, ASSET, "water_temp_out")
    insert_points(pg, [(aid, mid, NOW - timedelta(minutes=5), 7.0)])
    n = pg.execute("INSERT INTO telemetry (asset_id, metric_id, ts, value) VALUES (%s, %s, %s, 9.0) "
                   "ON CONFLICT (asset_id, metric_id, ts) DO NOTHING", (aid, mid, NOW - timedelta(minutes=5))).rowcount
    assert n == 0
    assert pg.execute("SELECT value FROM telemetry WHERE asset_id = %s AND metric_id = %s AND ts = %s",
                      (aid, mid, NOW - timedelta(minutes=5))).fetchone()[0] == 7.0


def test_rule_state_pages_keep_room_for_their_updates(pg):
    # migration 0014: every run rewrites each (asset, policy) row; 40 % free per page keeps the
    # update on its page (HOT: no new index entry, fewer pages written)
    options = pg.execute("SELECT reloptions FROM pg_class WHERE relname = 'policy_evaluations'").fetchone()[0]
    assert "fillfactor=60" in (options or [])
