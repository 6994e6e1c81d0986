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
    assert any("acquittée" in s.value for s in at.success)  # under the title of the page drawn again


def test_editing_a_work_order_persists(app, live_data, pg):
    wo = live_data["work_order_id"]
    at = app("pages/workorders.py")
    at.selectbox(key=f"wo_to_{wo}_open").set_value("in_progress")
    at.text_input(key="wo_actor").set_value("Youssef")
    at.text_input(key=f"wo_assigned_{wo}").set_value("Youssef")
    at.text_area(key=f"wo_notes_{wo}").set_value("Ventilation machinerie à vérifier")
    at.button[0].click().run()
    assert not at.exception
    row = pg.execute("SELECT status, assigned_to, notes FROM work_orders WHERE id = %s", (wo,)).fetchone()
    assert row == ("in_progress", "Youssef", "Ventilation machinerie à vérifier")


def test_the_work_order_form_offers_only_the_moves_the_service_allows(app, live_data, pg):
    from dashboard.i18n import FR
    from engine.workorders import allowed_moves

    wo = live_data["work_order_id"]
    at = app("pages/workorders.py")
    # not "Terminé" (open -> done is refused), not "Annulé" (its alert is live: dismiss it instead)
    assert at.selectbox(key=f"wo_to_{wo}_open").options == ["— inchangé", "En cours"]
    at.selectbox(key=f"wo_to_{wo}_open").set_value("in_progress")
    at.button[0].click().run()
    at = app("pages/workorders.py")
    moves = at.selectbox(key=f"wo_to_{wo}_in_progress").options
    assert moves == ["— inchangé", *(FR["wo_" + m] for m in sorted(allowed_moves("in_progress", "open")))]
    assert "Ouvert" in moves and "Terminé" in moves
    at.selectbox(key=f"wo_to_{wo}_in_progress").set_value("done")
    at.button[0].click().run()
    at = app("pages/workorders.py", status="all")
    assert not [b for b in at.selectbox if b.key and b.key.startswith("wo_to_")]  # done: nothing to offer
    assert any("plus aucun changement" in c.value for c in at.caption)
    assert pg.execute("SELECT status FROM work_orders WHERE id = %s", (wo,)).fetchone()[0] == "done"


def test_the_work_order_shows_where_and_links_to_the_curves_around_its_alert(app, live_data):
    at = app("pages/workorders.py")
    body = texts(at)
    assert "Tour Alpha – Casanearshore" in body and "Casanearshore Park" in body  # site name, location
    assert "Ascenseur principal 1" in body
    link = next(p for p in at.get("page_link") if "autour de l'alerte" in p.proto.label)
    assert "asset=CAS-S1-ELEVATOR_1" in link.proto.query_string and "from=" in link.proto.query_string


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


def _many_live_alerts(pg, n: int) -> None:
    """n live alerts on distinct (asset, policy) pairs, straight in the table."""
    pg.execute(
        "INSERT INTO alerts (asset_id, policy_id, created_at, severity, status, message, message_fr, started_at) "
        "SELECT a.id, p.id, now() - interval '1 hour', p.severity, 'open', 'm', 'm', now() - interval '1 hour' "
        "FROM assets a JOIN policies p ON p.asset_type = a.type ORDER BY a.code, p.code LIMIT %s", (n,))


def test_the_overview_says_how_many_alerts_it_leaves_out_and_links_to_them(app, pg):
    _many_live_alerts(pg, 13)
    at = app()
    assert any(c.value == "… et 3 de plus, non affichées ici." for c in at.caption)
    link = next(p for p in at.get("page_link") if p.proto.label == "Tout voir")
    assert link.proto.page.endswith("alerts") and "status=open%2Cack" in link.proto.query_string
    at = app("pages/alerts.py", status="open,ack", period="all")
    assert len(at.dataframe[0].value) == 13


def test_an_alert_outside_the_filters_is_shown_and_the_page_says_the_filters_were_widened(app, live_data, pg):
    alert_id = live_data["alert_id"]
    pg.execute("UPDATE alerts SET created_at = now() - interval '40 days', status = 'closed', "
               "resolution = 'dismissed', closed_at = now(), closed_by = 'x' WHERE id = %s", (alert_id,))
    at = app("pages/alerts.py", alert=str(alert_id))
    assert next(b for b in at.selectbox if b.label == "Alerte à traiter").value == alert_id
    assert any("élargis" in i.value and "État" in i.value and "période" in i.value for i in at.info)
    assert str(alert_id) in at.dataframe[0].value["#"].astype(str).tolist()


def test_a_missing_alert_is_said_and_no_other_is_acted_upon(app, live_data):
    at = app("pages/alerts.py", alert="999999")
    assert any("999999 introuvable" in w.value for w in at.warning)


def test_an_asset_outside_the_sidebar_site_is_shown_and_the_list_widened(app, live_data):
    at = app("pages/asset.py", state={"site_code": "CAS-S2"}, asset="CAS-S1-ELEVATOR_1")
    assert "Équipement CAS-S1-ELEVATOR_1" in texts(at)
    assert any("hors du filtre de site" in i.value for i in at.info)


def in_english(at):
    at.session_state["lang"] = "en"  # the sidebar's choice (AppTest reruns only the page after switch_page)
    return at.run()


def test_english_mode_shows_the_data_in_english_too(app, live_data):
    body = texts(in_english(app("pages/alerts.py")))
    assert "Elevator motor overheating" in body and "Surchauffe" not in body  # the policy's English title
    body = texts(in_english(app("pages/asset.py", asset="CAS-S1-ELEVATOR_1")))
    assert "Main elevator 1" in body and "Ascenseur" not in body
    at = in_english(app("pages/simulator_control.py"))
    assert "Motor overheat" in str([b.options for b in at.selectbox]) and "Surchauffe" not in texts(at)
