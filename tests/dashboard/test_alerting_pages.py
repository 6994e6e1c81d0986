"""The alerting parts of the dashboard (issue 10), with AppTest against the real test database:
resolutions shown, dismiss a false alarm, silences from an alert, an asset or their own page,
the Policies page (overrides listed and edited, the backtest drawn)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.dashboard.test_pages import texts
from tests.engine.helpers import put, series

ELEVATOR, ELEVATOR_S2 = "CAS-S1-ELEVATOR_1", "CAS-S2-ELEVATOR_1"


def click(at, label: str):
    """Press the button (or form button) with this label and run the page again."""
    matches = [b for b in at.button if b.label == label]
    assert len(matches) == 1, [b.label for b in at.button]
    matches[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def one(pg, sql: str, *args):
    return pg.execute(sql, args).fetchone()


# --- Alerts page ----------------------------------------------------------------------------------

def test_dismissing_a_false_alarm_closes_it_cancels_its_work_order_and_silences_the_policy(app, live_data, pg):
    at = app("pages/alerts.py")
    at.text_input(key="dismiss_actor").set_value("Amina")
    at.text_input(key="dismiss_reason").set_value("capteur débranché pendant le nettoyage")
    at.number_input(key="dismiss_minutes").set_value(30)
    click(at, "Écarter (fausse alerte)")
    alert = one(pg, "SELECT status, resolution, closed_by FROM alerts WHERE id = %s", live_data["alert_id"])
    assert alert == ("closed", "dismissed", "Amina")
    assert one(pg, "SELECT status FROM work_orders WHERE id = %s", live_data["work_order_id"]) == ("cancelled",)
    # the silence runs from the end of the alert's episode until 30 minutes after the dismissal
    silence = one(pg, "SELECT p.code, a.code, s.ends_at - x.closed_at, s.starts_at = x.ended_at, s.created_by "
                      "FROM silences s JOIN policies p ON p.id = s.policy_id JOIN assets a ON a.id = s.asset_id "
                      "JOIN alerts x ON x.id = %s", live_data["alert_id"])
    assert silence == ("R5", ELEVATOR, timedelta(minutes=30), True, "Amina")
    assert any("écartée" in s.value for s in at.success)
    at = app("pages/alerts.py", status="closed")  # the resolution is shown, in words
    assert "écartée (fausse alerte)" in texts(at)
    at.session_state["lang"] = "en"
    at.run()
    assert "dismissed (false alarm)" in texts(at)


def test_dismissing_without_a_reason_is_refused_and_changes_nothing(app, live_data, pg):
    at = app("pages/alerts.py")
    click(at, "Écarter (fausse alerte)")
    assert any("reason" in e.value for e in at.error)
    assert one(pg, "SELECT status, resolution FROM alerts") == ("open", None)
    assert one(pg, "SELECT count(*) FROM silences") == (0,)


def test_maintenance_2h_from_an_alert_silences_its_asset(app, live_data, pg):
    at = app("pages/alerts.py")
    click(at, "🛠️ Maintenance en cours 2 h")
    row = one(pg, "SELECT a.code, s.policy_id, s.ends_at - s.starts_at, s.reason FROM silences s "
                  "JOIN assets a ON a.id = s.asset_id")
    assert row == (ELEVATOR, None, timedelta(hours=2), "maintenance en cours")
    assert one(pg, "SELECT status FROM alerts") == ("open",)  # an open alert stays open


def test_a_silence_of_the_alerts_policy_only_with_a_chosen_duration(app, live_data, pg):
    at = app("pages/alerts.py")
    at.radio(key="alert_silence_scope").set_value("policy_asset")
    at.selectbox(key="alert_silence_minutes").set_value(480)
    at.text_input(key="alert_silence_reason").set_value("remplacement sonde")
    click(at, "Créer le silence")
    row = one(pg, "SELECT a.code, p.code, s.ends_at - s.starts_at, s.reason FROM silences s "
                  "JOIN assets a ON a.id = s.asset_id JOIN policies p ON p.id = s.policy_id")
    assert row == (ELEVATOR, "R5", timedelta(hours=8), "remplacement sonde")


# --- Asset page -----------------------------------------------------------------------------------

def test_asset_page_silences_the_asset_and_says_until_when(app, live_data, pg):
    at = app("pages/asset.py", asset=ELEVATOR)
    click(at, "🛠️ Maintenance en cours 2 h")
    assert one(pg, "SELECT a.code FROM silences s JOIN assets a ON a.id = s.asset_id") == (ELEVATOR,)
    at = app("pages/asset.py", asset=ELEVATOR)
    assert "En silence jusqu'à" in texts(at) and "maintenance en cours" in texts(at)
    other = app("pages/asset.py", asset=ELEVATOR_S2)
    assert "En silence jusqu'à" not in texts(other)


def test_asset_page_shows_a_closed_alerts_resolution(app, live_data, pg):
    from db.session import session_scope
    from engine import alerts

    with session_scope() as s:
        alerts.dismiss(s, alert_id=live_data["alert_id"], actor="a", reason="test", now=datetime.now(UTC),
                       silence_minutes=0)
    at = app("pages/asset.py", asset=ELEVATOR)
    assert "Clôturée (écartée (fausse alerte))" in texts(at)


# --- Silences page --------------------------------------------------------------------------------

def test_silences_page_lists_the_active_ones_and_ends_one_early(app, pg):
    at = app("pages/silences.py")
    assert "Aucun silence actif." in [i.value for i in at.info]
    at.selectbox(key="si_site").set_value("CAS-S2")
    at.selectbox(key="si_policy").set_value("R3")
    at.text_input(key="si_new_actor").set_value("Youssef")
    click(at, "Créer le silence")
    assert one(pg, "SELECT si.code, p.code, s.asset_id, s.created_by FROM silences s JOIN sites si ON si.id = s.site_id "
                   "JOIN policies p ON p.id = s.policy_id") == ("CAS-S2", "R3", None, "Youssef")
    at = app("pages/silences.py")
    assert "CAS-S2" in texts(at) and "R3" in texts(at)
    at.text_input(key="si_end_actor").set_value("Amina")
    click(at, "Terminer maintenant")
    ended = one(pg, "SELECT ended_by, ends_at <= now() FROM silences")
    assert ended == ("Amina", True)
    assert "Aucun silence actif." in [i.value for i in app("pages/silences.py").info]


def test_silences_page_refuses_a_silence_without_scope(app, pg):
    at = app("pages/silences.py")
    click(at, "Créer le silence")
    assert at.error and one(pg, "SELECT count(*) FROM silences") == (0,)


# --- Policies page --------------------------------------------------------------------------------

def test_policies_page_lists_thresholds_clear_conditions_and_overrides(app, pg):
    from db.session import session_scope
    from engine import overrides

    aid = one(pg, "SELECT id FROM assets WHERE code = %s", ELEVATOR)[0]
    with session_scope() as s:
        overrides.set_override(s, asset_id=aid, code="R5", actor="a", now=datetime.now(UTC), threshold=90)
    body = texts(app("pages/policies.py"))
    for expected in ("Règles de maintenance", "avg(temp_supply_air) 15 min > 20 °C", "<= 19,5 °C",
                     "5 × motor_temp > 80 °C", "jamais seule", "CAS-S1-ELEVATOR_1: 90", "Δ door_cycles > 100\u202f000 cycles", "flat_line(motor_temp, temp_supply_air, water_temp_out) 30 min"):
        assert expected in body, expected


def test_an_override_edited_on_the_page_applies_to_that_asset_only(app, pg):
    at = app("pages/policies.py")
    at.selectbox(key="ov_asset").set_value(ELEVATOR).run()
    at.selectbox(key="ov_code").set_value("R5").run()
    at.number_input(key=f"ov_thr_{ELEVATOR}_R5").set_value(90.0)
    click(at, "Enregistrer pour cet équipement")
    rows = pg.execute("SELECT a.code, p.code, o.threshold, o.clear_threshold, o.enabled FROM policy_overrides o "
                      "JOIN assets a ON a.id = o.asset_id JOIN policies p ON p.id = o.policy_id").fetchall()
    assert rows == [(ELEVATOR, "R5", 90.0, None, None)]  # the clear threshold left as the policy's
    at = app("pages/policies.py")
    at.selectbox(key="ov_asset").set_value(ELEVATOR).run()
    at.selectbox(key="ov_code").set_value("R5").run()
    click(at, "Revenir aux valeurs de la règle")
    assert pg.execute("SELECT threshold, clear_threshold, enabled FROM policy_overrides").fetchall() == [
        (None, None, None)]


@pytest.fixture
def overheats(pg):
    """Two R5 episodes on CAS-S1-ELEVATOR_1 in the last hours (one cooled down), none elsewhere."""
    now = datetime.now(UTC).replace(microsecond=0)
    put(pg, ELEVATOR, "motor_temp", series([78, 86, 88, 87, 86, 85, 70, 70, 70, 70, 70], end=now - timedelta(hours=3)))
    put(pg, ELEVATOR, "motor_temp", series([85, 86, 87, 88, 89, 90], end=now - timedelta(hours=1)))
    put(pg, ELEVATOR_S2, "motor_temp", series([60.0] * 10, end=now - timedelta(hours=1)))
    return now


def test_backtest_on_the_page_counts_alerts_and_draws_the_firings_over_the_curve(app, overheats, pg):
    at = app("pages/policies.py")
    at.selectbox(key="bt_code").set_value("R5").run()
    click(at, "Rejouer")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Alertes qu'elle aurait ouvertes"] == "2"
    assert labels["Ordres de travail qu'elle aurait créés"] == "2"
    body = texts(at)
    assert body.count(ELEVATOR) >= 2 and "toujours en cours" in body  # the second one still firing
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    spec = charts[0].proto.spec
    assert '"type": "rect"' in spec and '"strokeDash"' in spec  # the firing bands; the threshold replayed
    assert one(pg, "SELECT count(*) FROM alerts") == (0,)  # nothing written

    at.number_input(key="bt_threshold").set_value(86.0)  # what if the threshold were 86?
    click(at, "Rejouer")
    assert {m.label: m.value for m in at.metric}["Alertes qu'elle aurait ouvertes"] == "0"
    assert "Aucun déclenchement sur la période." in [i.value for i in at.info]


def test_backtest_on_the_page_with_a_what_if_and_one_asset(app, overheats):
    at = app("pages/policies.py")
    at.selectbox(key="bt_code").set_value("R5").run()
    at.number_input(key="bt_points").set_value(3)
    at.number_input(key="bt_threshold").set_value(86.0)
    at.selectbox(key="bt_asset").set_value(ELEVATOR)
    click(at, "Rejouer")
    assert {m.label: m.value for m in at.metric}["Alertes qu'elle aurait ouvertes"] == "1"
    assert "consecutive_points = 3" in texts(at) and "threshold = 86" in texts(at)
