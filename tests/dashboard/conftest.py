"""AppTest fixtures: the dashboard against the test database, seeded and with some telemetry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT  # noqa: F401
from tests.engine.helpers import put, series


@pytest.fixture
def app(database_url):
    """A function that opens a page of the dashboard (AppTest), caches cleared."""
    import streamlit as st

    def open_page(page: str | None = None, state: dict | None = None, **query) -> AppTest:
        st.cache_data.clear()
        at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=30)
        for k, v in (state or {}).items():  # e.g. the sidebar's choices: {"site_code": "CAS-S2", "lang": "en"}
            at.session_state[k] = v
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return open_page


@pytest.fixture
def live_data(pg):
    """Fresh readings of every seeded asset and an R5 alert on CAS-S1-ELEVATOR_1."""
    from db.session import session_scope
    from engine.evaluate import evaluate_all

    now = datetime.now(UTC).replace(microsecond=0)
    for code, metric, value in [
        ("CAS-S1-HVAC_1", "temp_supply_air", 14.0), ("CAS-S1-CHILLER_1", "water_temp_out", 7.0),
        ("CAS-S1-ELEVATOR_1", "motor_temp", 88.0), ("CAS-S2-HVAC_1", "temp_supply_air", 14.5),
        ("CAS-S2-CHILLER_1", "water_temp_out", 7.1), ("CAS-S2-ELEVATOR_1", "motor_temp", 50.0),
    ]:
        put(pg, code, metric, series([value] * 30, end=now))
    with session_scope() as s:
        fired = evaluate_all(s, now=now).fired
    assert [f["policy_code"] for f in fired] == ["R5"]
    return fired[0]
