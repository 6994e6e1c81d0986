"""Hourly roll-up of telemetry, so a 30-day chart reads ~720 rows per metric, not 260,000."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

FIRST_RUN = timedelta(days=35)


def roll_up(session: Session, *, now: datetime, since: datetime | None = None) -> int:
    """(Re)compute the complete hours from `since` up to the hour of `now`; returns the rows
    written. By default: nothing until a new hour is complete, then the new hour(s) and the last
    rolled one again (late readings); 35 days back on an empty table. One index range scan per
    (asset, metric) pair: the cost follows the hours rolled, not the history."""
    until = now.replace(minute=0, second=0, microsecond=0)
    if since is None:
        last = session.execute(text("SELECT max(hour) FROM telemetry_hourly")).scalar()
        if last is not None and last + timedelta(hours=1) >= until:
            return 0
        since = last if last is not None else until - FIRST_RUN
    result = session.execute(
        text(
            "INSERT INTO telemetry_hourly (asset_id, metric_id, hour, n, total, min, max) "
            "SELECT a.id, m.id, x.hour, x.n, x.total, x.min, x.max "
            "FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
            "CROSS JOIN LATERAL (SELECT date_trunc('hour', t.ts) AS hour, count(*) AS n, sum(t.value) AS total, "
            "                           min(t.value) AS min, max(t.value) AS max FROM telemetry t "
            "                    WHERE t.asset_id = a.id AND t.metric_id = m.id AND t.ts >= :since AND t.ts < :until "
            "                    GROUP BY 1) x "
            "ON CONFLICT (asset_id, metric_id, hour) DO UPDATE SET n = excluded.n, total = excluded.total, "
            "min = excluded.min, max = excluded.max"
        ),
        {"since": since, "until": until},
    )
    return result.rowcount
