"""Drive the simulator's signals in simulated time and write them straight to the database."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from tests.conftest import insert_points
from simulator.fleet import Fleet
from simulator.signals import ActiveFault


def seeded_assets(pg: psycopg.Connection) -> list[dict]:
    rows = pg.execute(
        "SELECT a.code, a.type, s.code FROM assets a JOIN sites s ON s.id = a.site_id ORDER BY a.code"
    ).fetchall()
    return [{"code": c, "type": t, "site_code": s} for c, t, s in rows]


class SimClock:
    """A fleet stepped in simulated time; readings go to the telemetry table."""

    def __init__(self, pg: psycopg.Connection, *, seed: int = 42, step_s: int = 10):
        self.pg = pg
        self.fleet = Fleet(seeded_assets(pg), seed=seed, counters_from=None)
        self.step = timedelta(seconds=step_s)
        self.ids = {c: i for c, i in pg.execute("SELECT code, id FROM assets")}
        self.mids = {n: i for n, i in pg.execute("SELECT name, id FROM metrics")}

    def run(self, start: datetime, end: datetime, faults: dict[str, list[ActiveFault]] | None = None) -> None:
        """Readings every step in [start, end)."""
        points, ts = [], start
        while ts < end:
            for r in self.fleet.readings(ts, faults or {}):
                aid = self.ids[r["asset_code"]]
                points += [(aid, self.mids[m], ts, float(v)) for m, v in r["metrics"].items()]
            ts += self.step
        with self.pg.transaction():
            insert_points(self.pg, points)
