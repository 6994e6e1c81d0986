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
    from engine.evaluate import _LIVE_RANGES, _NO_DATA_RANGES, load_policies, statement

    with get_engine().connect() as conn:
        with Session(bind=conn) as s:
            policies = load_policies(s)
        texts = {statement(p, ranges=_NO_DATA_RANGES if p.rule_type == "no_data" else _LIVE_RANGES, record=True)
                 for p in policies}
        ranges = []  # the run's temporary table as each run leaves it
        for k, now in enumerate((NOW, NOW + timedelta(seconds=60), NOW + timedelta(seconds=120))):
            put(pg, "CAS-S1-HVAC_1", "temp_supply_air", series([15.0 + k, 15.5, 16.0], end=now))
            _run(conn, now)
            ranges.append(conn.execute(text(
                "SELECT relfilenode, reltuples FROM pg_class WHERE oid = 'pg_temp.run_ranges'::regclass")).one())
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
