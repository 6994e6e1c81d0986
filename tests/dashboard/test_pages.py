"""Every page of the dashboard with Streamlit's AppTest, against the real test database."""

from __future__ import annotations


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.title] + [m.value for m in at.caption]
    parts += [str(m.value) for m in at.subheader]
    for df in at.dataframe:
        parts.append(df.value.to_string())
    for metric in at.metric:
        parts.append(f"{metric.label} {metric.value}")
    return "\n".join(parts)


def test_overview_lists_the_seeded_sites_at_risk_first(app, live_data):
    at = app()
    body = texts(at)
    assert "Vue d'ensemble des sites" in body
    assert body.index("CAS-S1") < body.index("CAS-S2")  # CAS-S1 has the high alert
    cards = [m.value for m in at.markdown if "À risque" in m.value or "✅ OK]" in m.value]
    assert len(cards) == 2 and "À risque" in cards[0] and "À risque" not in cards[1]
    assert ":red-badge[Haute] **1**" in cards[0] and ":red-badge[Haute] **0**" in cards[1]
    assert "Tour Alpha – Casanearshore" in body
    handle = [m.value for m in at.markdown if "CAS-S1 · CAS-S1-ELEVATOR_1" in m.value]
    assert len(handle) == 1 and "Ouverte depuis" in handle[0] and "OT #" in handle[0] and "non assigné" in handle[0]
    assert "Température moteur : 5 dernières mesures" in handle[0]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Sites à risque"] == "1 / 2"
    assert labels["Ordres de travail ouverts"] == "1"


def test_english_is_available(app, live_data):
    at = app()
    at.sidebar.selectbox[0].set_value("en").run()
    assert "Sites overview" in texts(at)


def test_site_page_shows_assets_with_status_text_and_units(app, live_data):
    at = app("pages/site.py", site="CAS-S1")
    body = texts(at)
    for code in ("CAS-S1-HVAC_1", "CAS-S1-CHILLER_1", "CAS-S1-ELEVATOR_1"):
        assert code in body
    assert "En alerte" in body  # the elevator, as text and not only colour
    assert "88,0 °C" in body  # last value with its unit, the French way
    assert "Surchauffe moteur ascenseur" in body


def test_asset_page_draws_charts_and_policies(app, live_data):
    at = app("pages/asset.py", asset="CAS-S1-ELEVATOR_1")
    body = texts(at)
    assert "Équipement CAS-S1-ELEVATOR_1" in body
    assert "R5" in body and "80" in body
    assert len(at.get("vega_lite_chart")) >= 1


def test_alert_messages_follow_the_language(app, live_data):
    at = app("pages/alerts.py")
    assert "Température moteur : 5 dernières mesures > 80 °C (la plus basse 88 °C)" in texts(at)
    assert "readings each" not in texts(at)
    at.session_state["lang"] = "en"  # the sidebar's language choice (AppTest hides it after switch_page)
    at.run()
    assert "last 5 motor_temp readings each > 80 °C (lowest 88 °C)" in texts(at)


def test_acknowledging_an_alert_changes_it_in_the_database(app, live_data, pg):
    at = app("pages/alerts.py")
    assert "Surchauffe moteur ascenseur" in texts(at)
    at.text_input(key="alert_actor").set_value("Amina")
    at.text_area[0].set_value("Je passe voir")
    at.button[0].click().run()  # Acquitter
    assert not at.exception
    assert pg.execute("SELECT status, acked_by FROM alerts WHERE id = %s", (live_data["alert_id"],)).fetchone() == (
        "ack", "Amina")
    assert any("acquittée" in s.value for s in at.success)


def test_editing_a_work_order_persists(app, live_data, pg):
    at = app("pages/workorders.py")
    at.selectbox[1].set_value("in_progress")
    at.text_input(key="wo_actor").set_value("Youssef")
    next(w for w in at.text_input if w.label == "Assigné à").set_value("Youssef")
    at.text_area[0].set_value("Ventilation machinerie à vérifier")
    at.button[0].click().run()
    assert not at.exception
    row = pg.execute("SELECT status, assigned_to, notes FROM work_orders WHERE id = %s",
                     (live_data["work_order_id"],)).fetchone()
    assert row == ("in_progress", "Youssef", "Ventilation machinerie à vérifier")


def test_an_illegal_work_order_move_shows_the_error_and_changes_nothing(app, live_data, pg):
    at = app("pages/workorders.py")
    at.selectbox[1].set_value("done")  # open -> done is not allowed
    at.text_input[1].set_value("Youssef")
    at.button[0].click().run()
    assert any("cannot go from open to done" in e.value for e in at.error)
    assert pg.execute("SELECT status, assigned_to FROM work_orders").fetchone() == ("open", None)


def test_starting_a_fault_stores_it(app, pg):
    at = app("pages/simulator_control.py")
    at.selectbox[0].set_value("CAS-S2").run()
    at.selectbox[1].set_value("CAS-S2-ELEVATOR_1").run()
    at.selectbox[2].set_value("motor_overheat").run()
    at.button[0].click().run()
    assert not at.exception
    row = pg.execute("SELECT a.code, f.fault, f.intensity FROM simulator_faults f JOIN assets a ON a.id = f.asset_id").fetchone()
    assert row == ("CAS-S2-ELEVATOR_1", "motor_overheat", 1.0)


def test_evaluate_now_from_the_simulator_page(app, pg):
    from tests.engine.helpers import put, series
    from datetime import UTC, datetime

    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([90.0] * 5, end=datetime.now(UTC)))
    at = app("pages/simulator_control.py")
    at.button[-1].click().run()
    assert any("1 alerte" in s.value for s in at.success)
    assert pg.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1


def test_a_database_outage_shows_a_clear_message_not_a_traceback(database_url, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from db.session import reset_caches
    from tests.conftest import PROJECT

    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    reset_caches()
    try:
        st.cache_data.clear()
        at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=30).run()
        assert not at.exception
        assert any("Base de données injoignable" in e.value for e in at.error)
    finally:
        monkeypatch.setenv("DATABASE_URL", database_url)
        reset_caches()


def test_a_technician_sees_only_the_orders_assigned_to_him(app, live_data, pg):
    pg.execute("UPDATE work_orders SET assigned_to = 'Youssef' WHERE id = %s", (live_data["work_order_id"],))
    at = app("pages/workorders.py")
    mine = next(w for w in at.text_input if w.label == "Assigné à (filtre)")
    mine.set_value("youssef").run()
    listed = at.dataframe[0].value
    assert list(listed["#"]) == [live_data["work_order_id"]] and list(listed["Assigné à"]) == ["Youssef"]
    mine.set_value("Amina").run()
    assert not at.dataframe[0].value.shape[0] and any(i.value == "Aucune." for i in at.info)


def test_an_alert_opened_from_the_overview_is_the_one_chosen(app, live_data, pg):
    from datetime import UTC, datetime, timedelta

    from db.session import session_scope
    from engine.evaluate import evaluate_all
    from tests.engine.helpers import put, series

    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)  # after live_data's readings
    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([95.0] * 5, end=now))
    with session_scope() as s:
        newer = evaluate_all(s, now=now).fired[0]["alert_id"]

    def chosen(at) -> int:
        return next(box for box in at.selectbox if box.label == "Alerte à traiter").value

    assert chosen(app("pages/alerts.py")) == newer  # the newest first, by default
    assert chosen(app("pages/alerts.py", alert=str(live_data["alert_id"]))) == live_data["alert_id"]
