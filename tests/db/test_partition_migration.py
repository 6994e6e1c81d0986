"""Migration 0006 on a database filled by the old schema: every reading kept, bit for bit; the
arrivals trigger of 0005 recreated on the partitioned table, firing for INSERT and COPY."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from db.session import libpq_url
from db.upgrade import ALEMBIC_INI


def migrate(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = Config(str(ALEMBIC_INI))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def test_0006_converts_a_filled_database_keeping_every_reading_and_the_arrivals_trigger(scratch_db):
    migrate(scratch_db, "0005")
    dsn = libpq_url(scratch_db)
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # 40 days of readings, 3 pairs, microsecond timestamps, values with every bit used
        conn.execute(
            "INSERT INTO telemetry SELECT a, m, ts + make_interval(secs => (a * 7 + m) / 1000000.0), "
            "  (random() - 0.5) * 1e6 / 3 FROM generate_series(1, 3) a, generate_series(1, 2) m, "
            "  generate_series(%s::timestamptz, %s, interval '97 seconds') ts",
            (now - timedelta(days=40), now))
        conn.execute("INSERT INTO telemetry_hourly SELECT asset_id, metric_id, date_trunc('hour', ts), count(*), "
                     "sum(value), min(value), max(value) FROM telemetry WHERE ts > %s GROUP BY 1, 2, 3",
                     (now - timedelta(days=35),))
        conn.execute("TRUNCATE telemetry_arrivals")
        before = conn.execute("SELECT asset_id, metric_id, ts, float8send(value) FROM telemetry ORDER BY 1, 2, 3").fetchall()
        hourly = conn.execute("SELECT * FROM telemetry_hourly ORDER BY 1, 2, 3").fetchall()
    assert len(before) > 200_000

    migrate(scratch_db, "head")

    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'telemetry'").fetchone()[0] == "p"
        after = conn.execute("SELECT asset_id, metric_id, ts, float8send(value) FROM telemetry ORDER BY 1, 2, 3").fetchall()
        assert after == before
        assert conn.execute("SELECT * FROM telemetry_hourly ORDER BY 1, 2, 3").fetchall() == hourly
        days = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry'::regclass").fetchone()[0]
        assert days >= 41  # one per day of data, the days ahead, telemetry_late
        assert conn.execute("SELECT count(*) FROM telemetry_late").fetchone()[0] == 0
        # the roll-up never saw days 36-40: they wait as dirty hours for the first pass
        assert conn.execute("SELECT min(hour) FROM telemetry_dirty_hours").fetchone()[0] < now - timedelta(days=39)
        assert conn.execute("SELECT count(*) FROM telemetry_arrivals").fetchone()[0] == 0  # the copy is no arrival

        trig = conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'telemetry'::regclass AND NOT tgisinternal "
                            "ORDER BY 1").fetchall()
        assert trig == [("telemetry_arrivals",), ("telemetry_dirty_hours",)]  # 0005's, recreated, and 0006's
        # INSERT and COPY into the partitioned table still record arrivals
        conn.execute("INSERT INTO telemetry VALUES (1, 1, %s, 1.0), (1, 1, %s, 2.0)",
                     (now + timedelta(seconds=1), now + timedelta(seconds=2)))
        with conn.cursor() as cur, cur.copy("COPY telemetry (asset_id, metric_id, ts, value) FROM STDIN") as cp:
            cp.write_row((2, 1, now + timedelta(seconds=3), 3.0))
            cp.write_row((2, 1, now - timedelta(days=50), 4.0))  # into telemetry_late
        rows = conn.execute("SELECT asset_id, metric_id, n FROM telemetry_arrivals ORDER BY 1").fetchall()
        assert rows == [(1, 1, 2), (2, 1, 2)]
