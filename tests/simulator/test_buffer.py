"""The gateway's on-disk buffer: a backlog drains in batches that always carry the freshest
readings (live values are never stuck behind the history), bounded, persistent."""

from __future__ import annotations

from simulator.client import Buffer


def test_a_batch_carries_the_freshest_readings_and_the_oldest_of_the_backlog(tmp_path):
    buf = Buffer(tmp_path, max_items=10_000)
    for i in range(1000):
        buf.put({"i": i})
    batch = [r["i"] for _, r in buf.take(500, fresh=100)]
    assert batch == list(range(400)) + list(range(900, 1000))  # oldest first, then the newest 100
    assert len(buf) == 1000  # taken is not removed: only what the API acknowledged is


def test_delivered_readings_leave_and_the_backlog_moves_on(tmp_path):
    buf = Buffer(tmp_path, max_items=10_000)
    for i in range(1000):
        buf.put({"i": i})
    buf.remove([rid for rid, _ in buf.take(500, fresh=100)])
    assert len(buf) == 500
    assert [r["i"] for _, r in buf.take(500, fresh=100)] == list(range(400, 900))


def test_a_full_buffer_drops_the_oldest_and_survives_a_restart(tmp_path):
    buf = Buffer(tmp_path, max_items=3)
    dropped = sum(buf.put({"i": i}) for i in range(5))
    assert dropped == 2 and len(buf) == 3
    buf.close()
    again = Buffer(tmp_path, max_items=3)
    assert [r["i"] for _, r in again.take(10, fresh=1)] == [2, 3, 4]
