"""isum(bigint) (migration 0012): the rule engine's exact integer sum. Over a sliding window frame
(its moving-aggregate form: each row added once, taken out once) it equals the sum of the frame's
rows computed anew, beyond float8's 2^53 where a float sum goes wrong; an overflow is an error,
never a wrong sum."""

from __future__ import annotations

import random

import psycopg
import pytest


def test_a_sliding_frame_sum_is_exact_where_float8_is_not(pg):
    rng = random.Random(7)
    # values near 2^60 / 8 with odd low bits: float8 cannot hold them, and the frame slides over them
    rows = [(i, (1 << 57) + rng.randrange(1, 1 << 20) * (1 if i % 3 else -1)) for i in range(300)]
    got = pg.execute(
        "SELECT i, isum(v) OVER w, sum(v) OVER w, sum(CAST(v AS float8)) OVER w "
        "FROM unnest(%s::int[], %s::bigint[]) u(i, v) "
        "WINDOW w AS (ORDER BY i RANGE BETWEEN 4 PRECEDING AND CURRENT ROW) ORDER BY i",
        ([i for i, _ in rows], [v for _, v in rows])).fetchall()
    expected = [sum(v for j, v in rows if i - 4 <= j <= i) for i, _ in rows]
    assert [g[1] for g in got] == expected
    assert [int(g[2]) for g in got] == expected  # numeric agrees, as it must
    assert any(int(g[3]) != e for g, e in zip(got, expected))  # where a float8 sum would be wrong


def test_an_overflow_is_an_error_not_a_wrong_sum(pg):
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        pg.execute("SELECT isum(v) FROM unnest(ARRAY[9223372036854775807, 1]::bigint[]) v").fetchone()


def test_no_rows_and_nulls(pg):
    assert pg.execute("SELECT isum(v) FROM unnest(ARRAY[]::bigint[]) v").fetchone()[0] is None
    assert pg.execute("SELECT isum(v) FROM unnest(ARRAY[NULL, 5, NULL, -2]::bigint[]) v").fetchone()[0] == 3
