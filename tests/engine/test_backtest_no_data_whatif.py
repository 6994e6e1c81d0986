"""A backtest's what-if parameters must change what N1 (no_data) replays, as they do for the
other rule types: a forced threshold applies over an asset's override; a window is not ignored."""

from __future__ import annotations

from datetime import timedelta

from db.session import session_scope
from engine import overrides
from engine.backtest import backtest
from tests.engine.helpers import NOW, ids, put, series

HVAC = "CAS-S1-HVAC_1"


def test_a_what_if_threshold_of_n1_applies_over_an_override(pg):
    # one metric of one asset: 10 readings, a 20-minute gap, 10 readings
    put(pg, HVAC, "power_kw", series([5.0] * 10, end=NOW - timedelta(minutes=22)))
    put(pg, HVAC, "power_kw", series([5.0] * 10, end=NOW))
    aid = ids(pg, HVAC, "power_kw")[0]
    with session_scope() as s:
        overrides.set_override(s, asset_id=aid, code="N1", actor="a", now=NOW, threshold=60)
    with session_scope() as s:
        r = backtest(s, code="N1", start=NOW - timedelta(hours=1), end=NOW, threshold=15, asset_code=HVAC)
    assert r["parameters"]["threshold"] == 15
    assert r["alerts"] >= 1  # silent 20 min > 15: fires with the what-if, as R-rules do


def test_control_without_override_the_same_what_if_fires(pg):
    put(pg, HVAC, "power_kw", series([5.0] * 10, end=NOW - timedelta(minutes=22)))
    put(pg, HVAC, "power_kw", series([5.0] * 10, end=NOW))
    with session_scope() as s:
        r = backtest(s, code="N1", start=NOW - timedelta(hours=1), end=NOW, threshold=15, asset_code=HVAC)
    assert r["alerts"] >= 1
