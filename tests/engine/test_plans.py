"""The run's statements are planned once per pooled connection (engine/evaluate.py `_prepared`),
not at every run: prepared on the server, executed with their generic plan."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.engine.helpers import NOW, put, series


def _run(conn, now) -> None:
    from engine.evaluate import evaluate_all

    with Session(bind=conn) as s:
        result = evaluate_all(s, now=now)
        s.commit()
    assert not result.failed, result.failed


def test_each_policy_statement_is_prepared_once_and_runs_its_generic_plan_run_after_run(pg):
    from db.session import get_engine
    from engine.evaluate import live_statement, load_policies

    with get_engine().connect() as conn:
        with Session(bind=conn) as s:
            policies = load_policies(s)
        texts = {live_statement(p) for p in policies}
        ranges = []  # the run's temporary table as each run leaves it
        for k, now in enumerate((NOW, NOW + timedelta(seconds=60), NOW + timedelta(seconds=120))):
            put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0 + k, 15.5, 16.0], end=now))
            _run(conn, now)
            ranges.append(conn.execute(text(
                "SELECT relfilenode, reltuples FROM pg_class WHERE oid = 'pg_temp.run_ranges'::regclass")).one())
            conn.commit()  # (the next run starts its own transaction, as the scheduler's does)
        rows = conn.execute(text(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE :head"
        ), {"head": "WITH %scope AS (%"}).all()
    # one prepared statement per distinct statement text (policies of one rule type share theirs),
    # each executed once per run and per policy with its generic plan, never planned for a run
    assert len(rows) == len(texts)
    assert sum(g for g, _ in rows) == 3 * len(policies), rows
    assert all(c == 0 for _, c in rows), rows
    # what keeps the plans: run_ranges is never truncated (a new file) nor analyzed by a run
    assert len({r.relfilenode for r in ranges}) == 1, ranges
    assert all(r.reltuples < 0 for r in ranges), ranges


def _seq_scans(conn, sql: str) -> set[str]:
    """The relations the generic plan of a policy's statement reads by a sequential scan."""
    import re

    names: list[str] = []

    def number(m: re.Match) -> str:  # :name -> $n, as the server sees the prepared statement
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    raw = conn.connection.driver_connection  # (no parameters: psycopg leaves the % operator alone)
    sql = re.sub(r"(?<![:\w]):(\w+)", number, sql)
    plan = raw.execute("EXPLAIN (GENERIC_PLAN, COSTS OFF) " + sql, prepare=False).fetchall()
    return set(re.findall(r"Seq Scan on (\w+)", "\n".join(r[0] for r in plan)))


def test_a_plan_kept_run_after_run_reads_every_partition_by_its_index_even_one_planned_empty(pg):
    from db.session import get_engine
    from engine.evaluate import RUN_RANGES, _prepared, live_statement, load_policies

    with get_engine().connect() as conn, Session(bind=conn) as s:
        s.execute(text(RUN_RANGES))
        empty = {r[0] for r in s.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'telemetry'::regclass AND NOT EXISTS (SELECT 1 FROM telemetry t "
            "WHERE t.tableoid = c.oid)"))}
        assert empty  # the days ahead: partitions that will fill up under plans made now
        pg.execute("ANALYZE telemetry")  # their statistics then say "empty" (as after any ANALYZE of telemetry)
        policies = load_policies(s)
        sqls = [live_statement(p) for p in policies]
        # planned as PostgreSQL would by default, the empty partitions are read by a sequential scan
        assert any(_seq_scans(s.connection(), sql) & empty for sql in sqls)
        with _prepared(s):
            planned = {p.code: _seq_scans(s.connection(), sql) for p, sql in zip(policies, sqls, strict=True)}
        s.rollback()
    # as the engine plans them: only run_ranges (no index, a few rows per series) is scanned
    assert all(scans <= {"run_ranges"} for scans in planned.values()), planned
