"""`python -m db backup FILE` / `python -m db restore FILE`: back up, wipe, restore, and every
table has its rows again, every reading the same bytes; also into an older PostgreSQL (15)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg

from db.backup import restore, restore_script
from db.session import libpq_url
from engine.maintenance import maintain
from tests.conftest import PROJECT, insert_points
from tests.db.test_storage import CHECKSUM
from tests.engine.helpers import NOW, ids


def table_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def checksum(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute(CHECKSUM).fetchone()


def cli(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "db", *args], cwd=PROJECT, capture_output=True, text=True,
                          env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}, timeout=300)


def fill(pg) -> None:
    """Readings in both tiers, a roll-up, an alert with its work order and audit."""
    aid, mid = ids(pg, "CAS-S1-CHILLER_1", "water_temp_out")
    insert_points(pg, [(aid, mid, NOW - timedelta(days=10, seconds=7 * i), 1.0 / (i + 3)) for i in range(5000)])
    insert_points(pg, [(aid, mid, NOW - timedelta(seconds=10 * i, microseconds=i), float(i)) for i in range(500)])
    maintain(now=NOW, hot_days=7)
    policy = pg.execute("SELECT id FROM policies WHERE code = 'R3'").fetchone()[0]
    alert = pg.execute("INSERT INTO alerts (asset_id, policy_id, created_at, started_at, severity, status, message) "
                       "VALUES (%s, %s, %s, %s, 'high', 'open', 'x') RETURNING id", (aid, policy, NOW, NOW)).fetchone()[0]
    pg.execute("INSERT INTO audit_trail (entity, entity_id, at, actor, action, comment) "
               "VALUES ('alert', %s, %s, 'tech', 'ack', '')", (alert, NOW))


def test_backup_wipe_restore_gives_back_every_row_and_reading(pg, database_url, scratch_db, tmp_path: Path):
    fill(pg)
    source = libpq_url(database_url)
    counts, readings = table_counts(source), checksum(source)
    assert readings[0] == 5500 and counts["telemetry_cold"] > 0 and counts["telemetry_hourly"] > 0
    archive = tmp_path / "m40.dump"

    out = cli("backup", str(archive), url=database_url)
    assert out.returncode == 0, out.stderr
    assert archive.stat().st_size > 0

    target = libpq_url(scratch_db)
    out = cli("restore", str(archive), url=scratch_db)
    assert out.returncode == 0, out.stderr
    assert table_counts(target) == counts and checksum(target) == readings
    with psycopg.connect(target) as conn:  # same server: the grants of the read-only role came back
        assert conn.execute("SELECT has_table_privilege('grafana_reader', 'telemetry', 'SELECT')").fetchone()[0]

    # wipe: rows lost in the copy; a restore over it is refused unless forced, then all is back
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry, telemetry_cold, alerts CASCADE")
    out = cli("restore", str(archive), url=scratch_db)
    assert out.returncode == 2 and "--force" in out.stderr
    out = cli("restore", str(archive), "--force", url=scratch_db)
    assert out.returncode == 0, out.stderr
    assert table_counts(target) == counts and checksum(target) == readings


def test_a_failed_restore_changes_nothing(pg, database_url, scratch_db, tmp_path: Path):
    archive = tmp_path / "broken.dump"
    archive.write_bytes(b"PGDMP" + b"\0" * 100)
    target = libpq_url(scratch_db)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int)")
        conn.execute("INSERT INTO keep VALUES (1)")
    out = cli("restore", str(archive), "--force", url=scratch_db)
    assert out.returncode != 0
    assert table_counts(target) == {"keep": 1}


def test_an_archive_of_the_embedded_server_restores_into_an_older_postgresql(pg, database_url, older_server, tmp_path):
    fill(pg)
    archive = tmp_path / "m40.dump"
    assert cli("backup", str(archive), url=database_url).returncode == 0
    admin, major = older_server
    assert major < 17  # an older server: no transaction_timeout
    assert "transaction_timeout" in restore_script(archive, server_major_version=18)
    assert "transaction_timeout" not in restore_script(archive, server_major_version=major)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE restored")
    target = admin.replace("/postgres?", "/restored?")
    restore(archive, url=target)
    assert table_counts(target) == table_counts(libpq_url(database_url))
    assert checksum(target) == checksum(libpq_url(database_url))
