"""Two transactions creating the same partition at once (the scheduler's roll-up and its storage
maintenance both start at once on a fresh database): the second waits for the first and finds
the partition made, instead of failing with DuplicateTable."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from db.session import session_scope
from engine.maintenance import ensure_day_partitions, ensure_month_partitions, month_partitions

MONTH = datetime(2031, 5, 1, tzinfo=UTC)  # far from any partition the other tests make
DAY = datetime(2031, 5, 17, tzinfo=UTC)


def _race(create):
    """`create(session)` in a first transaction left open, then in a second one on another
    connection; the first commits after a while. The second's result and error."""
    outcome: dict = {}

    def second():
        try:
            with session_scope() as s:
                outcome["created"] = create(s)
        except Exception as exc:  # noqa: BLE001 - the failure is what the test looks at
            outcome["error"] = exc

    with session_scope() as first:
        made = create(first)
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(1.0)
        outcome["waited"] = worker.is_alive()  # it waits for the first transaction
    worker.join(timeout=30)
    return made, outcome


def test_the_second_creator_of_a_month_partition_waits_and_finds_it(pg):
    try:
        made, outcome = _race(lambda s: ensure_month_partitions(s, table="telemetry_hourly", start=MONTH, end=MONTH))
        assert made == ["telemetry_hourly_p203105"]
        assert "error" not in outcome, outcome.get("error")
        assert outcome["waited"] and outcome["created"] == []
        with session_scope() as s:
            assert MONTH in month_partitions(s, table="telemetry_hourly")
    finally:
        pg.execute("DROP TABLE IF EXISTS telemetry_hourly_p203105")


def test_the_second_creator_of_a_day_partition_waits_and_finds_it(pg):
    try:
        made, outcome = _race(lambda s: ensure_day_partitions(s, start=DAY, end=DAY))
        assert made == ["telemetry_p20310517"]
        assert "error" not in outcome, outcome.get("error")
        assert outcome["waited"] and outcome["created"] == []
    finally:
        pg.execute("DROP TABLE IF EXISTS telemetry_p20310517")
