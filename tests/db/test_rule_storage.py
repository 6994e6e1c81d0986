"""Storage of the rule engine's inputs and state.
- telemetry's primary key (migration 0013): (asset_id, metric_id, ts) INCLUDE (value). A series'
  range is read from the index alone once its partition is vacuumed (no heap page per reading),
  and the key still makes a reading unique (ingest's ON CONFLICT arbiter).
- policy_evaluations and telemetry_latest pages keep room for the updates of every run
  (migrations 0014, 0015)."""

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


def test_rule_state_rows_stay_on_their_pages_run_after_run(pg):
    # migrations 0014, 0015: every run rewrites most (asset, policy) rows and the newest reading
    # time of every series that received readings; with half of each page free, a page whose rows
    # are all rewritten keeps every new version (HOT: no new index entry).
    from tests.engine.helpers import evaluate

    site = pg.execute("SELECT id FROM sites ORDER BY id LIMIT 1").fetchone()[0]
    pg.execute("INSERT INTO assets (code, name, type, site_id, expected_cadence_s) "
               "SELECT 'HOT-' || i, 'hot ' || i, (ARRAY['HVAC', 'CHILLER', 'ELEVATOR'])[1 + i %% 3], %s, 10 "
               "FROM generate_series(1, 240) i", (site,))
    metrics = {"HVAC": ("temp_supply_air", "vibration_level"), "CHILLER": ("water_temp_out", "run_hours"),
               "ELEVATOR": ("motor_temp", "door_cycles")}
    assets = pg.execute("SELECT id, type FROM assets").fetchall()
    mid = dict(pg.execute("SELECT name, id FROM metrics").fetchall())

    def minute(k: int, *, minutes: int = 1) -> None:  # readings of every asset, below every threshold
        end = NOW + timedelta(minutes=k)
        insert_points(pg, [(aid, mid[m], end - timedelta(seconds=10 * j), 5.0 + (j + aid) % 3 / 10)
                           for aid, typ in assets for m in metrics.get(typ, ()) for j in range(6 * minutes)])
        evaluate(now=end)

    def places() -> dict:
        return {t: dict(pg.execute(f"SELECT {key}, ctid::text FROM {t}").fetchall())
                for t, key in (("policy_evaluations", "(asset_id, policy_id)::text"),
                               ("telemetry_latest", "(asset_id, metric_id)::text"))}

    def block(ctid: str) -> int:
        return int(ctid.strip("()").split(",")[0])

    minute(0, minutes=35)  # every window full: the rows have their steady size from the first run
    minute(1)
    minute(2)  # (the first rewrites after the first run may still move a few)
    before = places()
    for k in (3, 4, 5):
        minute(k)
    after = places()
    for table in before:
        assert len(before[table]) > 400
        moved = [key for key, ctid in after[table].items() if block(ctid) != block(before[table][key])]
        rewritten = [key for key, ctid in after[table].items() if ctid != before[table][key]]
        assert len(rewritten) > len(before[table]) // 2, table  # the runs did rewrite them
        # (a row may still move when its page also holds rows that grew: a flat_line row storing
        # its buckets again after quiet runs; at the default fillfactor, half of them move each run)
        assert len(moved) <= len(rewritten) // 100, (table, len(moved), len(rewritten))
