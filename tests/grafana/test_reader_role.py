"""Grafana's database role (migration 0007): it reads what the dashboards need, writes nothing,
and gets its password from GRAFANA_DB_PASSWORD at `python -m db upgrade`."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from db.session import get_engine, libpq_url
from db.upgrade import set_reader_password

READER = "grafana_reader"


def reader_dsn(database_url: str) -> str:
    return make_url(libpq_url(database_url)).set(username=READER, password=None).render_as_string(hide_password=False)


@pytest.fixture
def reader(database_url):
    with psycopg.connect(reader_dsn(database_url), autocommit=True) as conn:
        yield conn


def test_the_reader_reads_the_tables_of_the_dashboards(reader):
    for table in ("sites", "assets", "metrics", "telemetry", "telemetry_hourly", "policies", "alerts", "work_orders",
                  "rule_runs"):
        reader.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert reader.execute("SELECT count(*) FROM sites").fetchone()[0] >= 2


@pytest.mark.parametrize("statement", [
    "INSERT INTO telemetry (asset_id, metric_id, ts, value) VALUES (1, 1, now(), 1)",
    "UPDATE alerts SET status = 'closed'",
    "DELETE FROM sites",
    "TRUNCATE telemetry",
    "CREATE TABLE grafana_scratch (x int)",
    "CREATE TEMP TABLE grafana_scratch (x int)",
    "SELECT set_config('default_transaction_read_only', 'off', false); INSERT INTO sites (code, name, city) VALUES ('X', 'X', 'X')",
])
def test_the_reader_cannot_write(reader, pg, statement):
    before = pg.execute("SELECT (SELECT count(*) FROM sites), (SELECT count(*) FROM alerts)").fetchone()
    with pytest.raises((psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
        reader.execute(statement)
    assert pg.execute("SELECT (SELECT count(*) FROM sites), (SELECT count(*) FROM alerts)").fetchone() == before


def test_even_out_of_read_only_mode_the_grants_refuse_writes(reader):
    """Read-only transactions are the first lock; the grants are the second."""
    reader.execute("SET default_transaction_read_only = off")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("INSERT INTO sites (code, name, city) VALUES ('X', 'X', 'X')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("CREATE TABLE public.grafana_scratch (x int)")


def test_upgrade_sets_the_password_from_the_setting(pg):
    password = "un % mot de passe avec ' et \\"
    with get_engine().begin() as conn:
        set_reader_password(conn, password)
    hashed = pg.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (READER,)).fetchone()[0]
    assert hashed.startswith("SCRAM-SHA-256$")
    # the server verifies a password against that hash: check it by recomputing from its salt
    import base64, hashlib, hmac

    _, rest = hashed.split("$", 1)
    iter_salt, keys = rest.split("$")
    iterations, salt = iter_salt.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert hashlib.sha256(client_key).digest() == stored_key


def test_slow_statements_answers_even_without_pg_stat_statements(reader):
    rows = reader.execute("SELECT * FROM slow_statements(5)").fetchall()
    assert rows, "one row either way: the statements, or why there are none"
    if rows[0][0].startswith("pg_stat_statements non disponible"):
        assert len(rows) == 1
