"""The KPI page (Indicateurs) and its GMAO section, with AppTest against the test database;
the CSV download buttons of the Alerts and Work-orders pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.session import session_scope
from engine import workorders
from tests.engine.helpers import put, series


@pytest.fixture
def repaired(pg):
    """An R5 alert opened 10 h ago, its order in progress after 30 min and done 6 h after creation."""
    from engine.evaluate import evaluate_all

    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)
    put(pg, "CAS-S1-ELEVATOR_1", "motor_temp", series([88.0] * 5, end=opened))
    with session_scope() as s:
        f = evaluate_all(s, now=opened, policy_codes=["R5"]).fired[0]
    with session_scope() as s:
        workorders.transition(s, workorder_id=f["work_order_id"], to_status="in_progress", actor="y",
                              now=opened + timedelta(minutes=30))
    with session_scope() as s:
        workorders.transition(s, workorder_id=f["work_order_id"], to_status="done", actor="y",
                              now=opened + timedelta(hours=6))
    return f


def metrics(at) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.proto.help) for m in at.metric}


def test_the_kpi_page_shows_each_figure_with_its_help_in_french(app, repaired):
    at = app("pages/kpis.py")
    assert "Indicateurs de maintenance" in [x.value for x in at.title]
    shown = metrics(at)
    assert shown["MTTR"][0] == "6,0 h" and "correctif" in shown["MTTR"][1] and "terminés dans la période : 1" in shown["MTTR"][1]
    assert shown["MTTA"][0] == "0,5 h" and "acquittement" in shown["MTTA"][1]
    assert shown["MTBF"][0] != "—" and "pannes" in shown["MTBF"][1]
    assert shown["Alertes → OT"][0] == "100,0 %"
    assert shown["Fausses alertes"][0] == "0,0 %"
    assert shown["OT en attente"][0] == "0"
    assert all(help_ for _, help_ in shown.values())  # a help text per figure
    # charts per week (default) and per month
    assert len(at.get("vega_lite_chart")) == 4
    at.radio[0].set_value("month").run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 4
    frames = [df.value for df in at.dataframe]
    per_asset = next(f for f in frames if "MTBF (h)" in f.columns)
    row = per_asset[per_asset["Équipement"] == "CAS-S1-ELEVATOR_1"].iloc[0]
    assert (row["Pannes"], row["Arrêt (h)"]) == (1, "6,0 h")


def test_the_kpi_page_filters_by_asset_type(app, repaired):
    at = app("pages/kpis.py")
    at.selectbox[1].set_value("CHILLER").run()  # [0] is the period
    shown = metrics(at)
    assert shown["MTTR"][0] == "—" and shown["MTBF"][0] == "—" and shown["Disponibilité"][0] == "100,0 %"


def test_the_gmao_section_lists_deliveries_and_resends_a_failed_one(app, repaired, pg):
    pg.execute("INSERT INTO webhook_deliveries (event_id, endpoint, status, attempts, retry_step, last_status_code, "
               "last_error) SELECT id, 'http://gmao.example/hook', 'failed', 8, 7, 503, 'HTTP 503: busy' "
               "FROM outbox_events ORDER BY id LIMIT 1")
    at = app("pages/kpis.py")
    body = "\n".join(c.value for c in at.caption)
    assert "1 en échec" in body
    log = next(df.value for df in at.dataframe if "Tentatives" in df.value.columns)
    assert list(log["Événement"]) == ["alert.created"] and list(log["Tentatives"]) == [8]
    assert list(log["Dernière réponse"]) == ["HTTP 503: busy"]
    at.button(key="FormSubmitter:resend-Renvoyer").click().run()
    assert not at.exception
    assert pg.execute("SELECT status, retry_step FROM webhook_deliveries").fetchall() == [("pending", 0)]
    assert any("remis en file" in s.value for s in at.success)


def test_english_kpi_page(app, repaired):
    at = app("pages/kpis.py")
    at.session_state["lang"] = "en"  # the sidebar's language choice (AppTest hides it after switch_page)
    at.run()
    assert "Maintenance KPIs" in [x.value for x in at.title]
    assert metrics(at)["MTTR"][0] == "6.0 h"


@pytest.mark.parametrize("page,name", [("pages/alerts.py", "alertes.csv"), ("pages/workorders.py",
                                                                              "ordres-de-travail.csv")])
def test_list_pages_offer_a_csv_download(app, live_data, page, name):
    at = app(page)
    buttons = at.get("download_button")
    assert len(buttons) == 1 and "CSV" in buttons[0].proto.label


def test_the_download_has_the_columns_and_rows_of_the_api(live_data):
    import csv
    import io

    from dashboard import reports
    from db import queries
    from db.export import ALERT_COLUMNS

    with session_scope() as s:
        rows = queries.list_alerts(s)
    parsed = list(csv.DictReader(io.StringIO(reports.as_csv(rows, "alerts").decode())))
    assert list(parsed[0]) == ALERT_COLUMNS and [int(r["id"]) for r in parsed] == [live_data["alert_id"]]
