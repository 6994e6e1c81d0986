"""Arrange telemetry for engine tests: readings written straight to the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from tests.conftest import insert_points

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def ids(pg: psycopg.Connection, asset_code: str, metric: str) -> tuple[int, int]:
    aid = pg.execute("SELECT id FROM assets WHERE code = %s", (asset_code,)).fetchone()[0]
    mid = pg.execute("SELECT id FROM metrics WHERE name = %s", (metric,)).fetchone()[0]
    return aid, mid


def put(pg: psycopg.Connection, asset_code: str, metric: str, readings: list[tuple[datetime, float]]) -> None:
    """Store readings (ts, value) of one metric of one asset."""
    aid, mid = ids(pg, asset_code, metric)
    with pg.transaction():
        insert_points(pg, [(aid, mid, ts, float(v)) for ts, v in readings])


def series(values: list[float], *, end: datetime = NOW, step_s: int = 10) -> list[tuple[datetime, float]]:
    """Readings every step_s ending at `end` (the last value at `end`)."""
    n = len(values)
    return [(end - timedelta(seconds=step_s * (n - 1 - i)), v) for i, v in enumerate(values)]


def evaluate(now: datetime = NOW, codes: list[str] | None = None):
    from db.session import session_scope
    from engine.evaluate import evaluate_all

    with session_scope() as s:
        return evaluate_all(s, now=now, policy_codes=codes)


def fired(result) -> set[tuple[str, str]]:
    return {(f["policy_code"], f["asset_code"]) for f in result.fired}
