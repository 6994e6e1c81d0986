"""The cold tier's hour index (migration 0010): readings() decodes a compacted day from the hour
it is asked for, and returns exactly what the whole row's decoding (telemetry_cold_points)
returns — same instants to the microsecond, same value bytes — for any range: inside a day,
across midnight, at hour boundaries, in hours without readings, with both forms of values
(`milli` deltas and plain float8), after late readings are folded in, for rows indexed by the
migration, and for a row without an index."""

from __future__ import annotations

import random
import struct
from datetime import datetime, timedelta

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from db.session import libpq_url
from engine.maintenance import ensure_day_partitions, maintain
from db.session import session_scope
from tests.conftest import insert_points
from tests.db.test_partition_migration import migrate
from tests.db.test_storage import odd_values
from tests.engine.helpers import NOW, ids

ASSET = "CAS-S1-CHILLER_1"
DAY = (NOW - timedelta(days=10)).replace(hour=0)  # and DAY + 1: both compacted (TELEMETRY_HOT_DAYS 7)
US = timedelta(microseconds=1)

# the whole row decoded as before 0010, cut to the range: what readings() must return
WHOLE = ("SELECT u.ts, float8send(u.value) FROM telemetry_cold c CROSS JOIN LATERAL "
         "telemetry_cold_points(c.day, c.dts, c.vals, c.milli) u WHERE c.asset_id = %s AND c.metric_id = %s "
         "AND u.ts >= %s AND u.ts <= %s ORDER BY 1")
READ = "SELECT ts, float8send(value) FROM readings(%s, %s, %s, %s) ORDER BY ts"


def day_times(day: datetime, seed: int) -> list[datetime]:
    """About every 10 s with microsecond jitter; no reading in hours 5 and 6, one in hour 14;
    readings exactly on some hour boundaries, at the day's first and last microsecond."""
    rng = random.Random(seed)
    out = {day, day + timedelta(days=1) - US}
    out |= {day + timedelta(hours=h) for h in (1, 3, 8, 12, 15, 23)}
    for i in range(8640):
        t = day + timedelta(seconds=10 * i, microseconds=rng.randrange(1, 1_000_000))
        if t.hour in (5, 6) or (t.hour == 14 and t.minute != 30):
            continue
        out.add(t)
    return sorted(out)


def filled(pg) -> dict[int, list[tuple]]:
    """Two compacted days of two metrics of ASSET: water_temp_out with 3 decimals (stored as
    `milli` deltas), water_temp_in with any double (stored as is). Returns, by metric, the
    readings as readings() gives them: (ts, the value's 8 bytes)."""
    aid, milli = ids(pg, ASSET, "water_temp_out")
    _, plain = ids(pg, ASSET, "water_temp_in")
    with session_scope() as s:
        ensure_day_partitions(s, start=DAY, end=DAY + timedelta(days=1))
    rng = random.Random(3)
    points = []
    for d, day in enumerate((DAY, DAY + timedelta(days=1))):
        times = day_times(day, seed=d)
        points += [(aid, milli, t, round(rng.uniform(-40, 120), rng.choice([0, 1, 2, 3])) + 0.0) for t in times]
        points += [(aid, plain, t, v) for t, v in zip(times, odd_values(len(times), seed=d + 11), strict=True)]
    with pg.transaction():
        insert_points(pg, points)
    maintain(now=NOW, hot_days=7)
    rows = dict(pg.execute("SELECT metric_id, bool_and(milli) FROM telemetry_cold WHERE asset_id = %s GROUP BY 1",
                           (aid,)).fetchall())
    assert rows == {milli: True, plain: False}  # both forms of values
    assert pg.execute("SELECT count(*) FROM telemetry WHERE asset_id = %s", (aid,)).fetchone()[0] == 0
    return {m: sorted((t, struct.pack(">d", v)) for a, mm, t, v in points if mm == m) for m in (milli, plain)}


def expected_index(readings: list[tuple], day: datetime, milli: bool) -> list[list[float]]:
    """For h = 0..24: the readings before day + h hours, the microseconds and the value × 1000
    (milli) of the last of them."""
    out: list[list[float]] = [[], [], []]
    mine = [(t, struct.unpack(">d", b)[0]) for t, b in readings if day <= t < day + timedelta(days=1)]
    for h in range(25):
        before = [r for r in mine if r[0] < day + timedelta(hours=h)]
        out[0].append(float(len(before)))
        out[1].append(float((before[-1][0] - day) // US) if before else 0.0)
        out[2].append(float(round(before[-1][1] * 1000)) if before and milli else 0.0)
    return out


def test_the_hour_index_of_a_compacted_day_is_where_each_hour_starts(pg):
    stored = filled(pg)
    aid, _ = ids(pg, ASSET, "water_temp_out")
    rows = pg.execute("SELECT metric_id, day, milli, hours FROM telemetry_cold WHERE asset_id = %s ORDER BY 1, 2",
                      (aid,)).fetchall()
    assert len(rows) == 4
    for mid, day, milli, hours in rows:
        assert hours == expected_index(stored[mid], day, milli)
    # hours 5 and 6 hold no reading: hours 5, 6 and 7 start at the same place
    h = rows[0][3]
    assert h[0][5] == h[0][6] == h[0][7] and h[0][8] > h[0][7]


def test_readings_of_any_range_are_those_of_the_whole_rows_decoding(pg):
    stored = filled(pg)
    aid, _ = ids(pg, ASSET, "water_temp_out")

    def check(mid: int, lo: datetime, hi: datetime) -> None:
        got = pg.execute(READ, (aid, mid, lo, hi)).fetchall()
        assert got == pg.execute(WHOLE, (aid, mid, lo, hi)).fetchall()
        assert got == [r for r in stored[mid] if lo <= r[0] <= hi]

    span = int(timedelta(hours=52) / US)

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(sorted(stored)), st.integers(0, span), st.integers(0, int(timedelta(hours=5) / US)))
    def random_ranges(mid: int, start_us: int, length_us: int) -> None:
        lo = DAY - timedelta(hours=2) + start_us * US
        check(mid, lo, lo + length_us * US)

    random_ranges()
    for mid in stored:
        for day in (DAY, DAY + timedelta(days=1)):
            for h in (0, 1, 3, 5, 6, 7, 8, 12, 14, 23, 24):
                b = day + timedelta(hours=h)
                check(mid, b, b)  # a reading exactly on the boundary (or none)
                check(mid, b - US, b - US)
                check(mid, b, b + timedelta(hours=1) - US)  # one whole hour
                check(mid, b - timedelta(minutes=15), b + timedelta(minutes=15))  # across the boundary
                check(mid, b - timedelta(hours=1), b - US)
        check(mid, DAY + timedelta(hours=22), DAY + timedelta(hours=27))  # across midnight
        check(mid, DAY - timedelta(days=1), DAY + timedelta(days=3))  # everything
        check(mid, datetime.min.replace(tzinfo=DAY.tzinfo), datetime.max.replace(tzinfo=DAY.tzinfo))
        for t, _ in stored[mid][::997]:
            check(mid, t, t)  # one reading: the duplicate check of a late re-send looks this way
            assert pg.execute("SELECT telemetry_in_cold(%s, %s, %s), telemetry_in_cold(%s, %s, %s)",
                              (aid, mid, t, aid, mid, t + US)).fetchone() == (True, t + US in {r[0] for r in stored[mid]})
    got = pg.execute("SELECT count(*) FROM readings(%s, %s, '-infinity', 'infinity')", (aid, min(stored))).fetchone()
    assert got[0] == len(stored[min(stored)])


def test_late_readings_folded_into_a_compacted_day_are_indexed_and_read(pg):
    stored = filled(pg)
    aid, mid = ids(pg, ASSET, "water_temp_out")
    # late readings of the compacted day: in hour 6 (empty until now), and before the first one
    late = [(aid, mid, DAY + timedelta(hours=6, minutes=m, microseconds=7), 55.125) for m in range(0, 60, 7)]
    with pg.transaction():
        insert_points(pg, late)
    maintain(now=NOW, hot_days=7)  # folds them into the cold row (decoded, merged, rewritten)
    assert pg.execute("SELECT count(*) FROM telemetry WHERE asset_id = %s", (aid,)).fetchone()[0] == 0
    everything = sorted(stored[mid] + [(t, struct.pack(">d", v)) for _, _, t, v in late])
    hours = pg.execute("SELECT hours FROM telemetry_cold WHERE asset_id = %s AND metric_id = %s AND day = %s",
                       (aid, mid, DAY)).fetchone()[0]
    assert hours == expected_index(everything, DAY, True)
    for lo, hi in ((DAY + timedelta(hours=6), DAY + timedelta(hours=7)), (DAY + timedelta(hours=5, minutes=59),
                                                                           DAY + timedelta(hours=8, seconds=1))):
        got = pg.execute(READ, (aid, mid, lo, hi)).fetchall()
        assert got == [r for r in everything if lo <= r[0] <= hi] == pg.execute(WHOLE, (aid, mid, lo, hi)).fetchall()
    assert len(pg.execute(READ, (aid, mid, DAY + timedelta(hours=6), DAY + timedelta(hours=7))).fetchall()) == len(late)


def test_a_row_without_an_index_is_decoded_whole_and_an_update_indexes_it_again(pg):
    stored = filled(pg)
    aid, mid = ids(pg, ASSET, "water_temp_in")
    lo, hi = DAY + timedelta(hours=9, minutes=3), DAY + timedelta(hours=10, minutes=41)
    expected = [r for r in stored[mid] if lo <= r[0] <= hi]
    with pg.transaction():  # as a writer that bypassed the trigger would leave it
        pg.execute("ALTER TABLE telemetry_cold DISABLE TRIGGER telemetry_cold_index")
        pg.execute("UPDATE telemetry_cold SET hours = NULL WHERE asset_id = %s", (aid,))
        assert pg.execute(READ, (aid, mid, lo, hi)).fetchall() == expected
        pg.execute("ALTER TABLE telemetry_cold ENABLE TRIGGER telemetry_cold_index")
        pg.execute("UPDATE telemetry_cold SET hours = NULL WHERE asset_id = %s", (aid,))  # the trigger fills it
        assert pg.execute("SELECT count(*) FROM telemetry_cold WHERE hours IS NULL").fetchone()[0] == 0
        # a row whose readings change is indexed again, even if the writer gave a (stale) index
        pg.execute("UPDATE telemetry_cold SET dts = dts[1:100], vals = vals[1:100], n = 100, "
                   "hours = hours WHERE asset_id = %s AND metric_id = %s AND day = %s", (aid, mid, DAY))
        hours = pg.execute("SELECT hours FROM telemetry_cold WHERE asset_id = %s AND metric_id = %s AND day = %s",
                           (aid, mid, DAY)).fetchone()[0]
        assert hours == expected_index(stored[mid][:100], DAY, False)


def test_0010_indexes_the_cold_rows_already_stored(scratch_db):
    migrate(scratch_db, "0011")
    rng = random.Random(9)
    times = day_times(DAY, seed=4)
    values = [round(rng.uniform(0, 30), 2) + 0.0 for _ in times]
    dts = [(t - (times[i - 1] if i else DAY)) // US for i, t in enumerate(times)]
    milli = [round(v * 1000) - (round(values[i - 1] * 1000) if i else 0) for i, v in enumerate(values)]
    with psycopg.connect(libpq_url(scratch_db), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE telemetry_cold_p{DAY:%Y%m} PARTITION OF telemetry_cold "
                     f"FOR VALUES FROM ('{DAY.replace(day=1).isoformat()}') TO ('{(DAY.replace(day=28) + timedelta(days=4)).replace(day=1).isoformat()}')")
        conn.execute("INSERT INTO telemetry_cold VALUES (1, 1, %s, %s, %s, %s, true), (1, 2, %s, %s, %s, %s, false)",
                     (DAY, len(times), dts, [float(m) for m in milli], DAY, len(times), dts, values))
    migrate(scratch_db, "head")
    stored = [(t, struct.pack(">d", v)) for t, v in zip(times, values, strict=True)]
    with psycopg.connect(libpq_url(scratch_db), autocommit=True) as conn:
        got = dict(conn.execute("SELECT metric_id, hours FROM telemetry_cold").fetchall())
        assert got == {1: expected_index(stored, DAY, True), 2: expected_index(stored, DAY, False)}
        lo, hi = DAY + timedelta(hours=7, minutes=59), DAY + timedelta(hours=9, seconds=30)
        for mid in (1, 2):
            assert conn.execute(READ, (1, mid, lo, hi)).fetchall() == [r for r in stored if lo <= r[0] <= hi]
