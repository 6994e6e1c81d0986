"""A real browser (Debian's headless Chromium, driven by Playwright) uses the running dashboard as
its users do: every page in French and in English (no French word left in English), each action
done by clicking (acknowledge, move and assign a work order, start and stop a fault), a "Traiter"
link that opens exactly its alert even outside the Alerts page's filters, a cut list's link to
the rest, and pages that refresh by themselves without losing what is being typed. Screenshots
of every page in both languages go to artifacts/screenshots (docs/screenshots has the French ones)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.browser
SHOTS = PROJECT / "artifacts" / "screenshots"
WAIT = 30_000
# sidebar link -> (url path of a page, its French title, its English title)
PAGES = {
    "overview": ("", "Vue d'ensemble des sites", "Sites overview"),
    "site": ("site?site=CAS-S1", "Site CAS-S1", "Site CAS-S1"),
    "asset": ("asset?asset=CAS-S1-ELEVATOR_1", "Équipement CAS-S1-", "Asset CAS-S1-"),
    "alerts": ("alerts", "Alertes", "Alerts"),
    "workorders": ("workorders", "Ordres de travail", "Work orders"),
    "kpis": ("kpis", "Indicateurs de maintenance", "Maintenance KPIs"),
    "policies": ("policies", "Règles de maintenance", "Maintenance policies"),
    "silences": ("silences", "Silences (fenêtres de maintenance)", "Silences (maintenance windows)"),
    "simulator": ("simulator_control", "Contrôle du simulateur", "Simulator control"),
}
NAV_EN = {"overview": "Overview", "site": "Site", "asset": "Asset", "alerts": "Alerts", "workorders": "Work orders",
          "kpis": "KPIs", "policies": "Policies", "silences": "Silences", "simulator": "Simulator control"}
# Words a French page shows and an English one must not: the interface, the statuses, the data
# (policy titles, asset names, fault names and descriptions, alert messages, audit words).
FRENCH = ["Équipement", "Alertes", "Ouverte", "Acquitté", "Clôturé", "Tous les", "Toutes", "Aucun", "Surchauffe",
          "Centrale de traitement", "Ascenseur", "Groupe froid", "Panne", "Température", "dernières mesures",
          "Règle", "non assigné", "Enregistrer", "Commentaire", "depuis", "Dérive", "Perte de", "Criticité",
          "Haute", "Moyenne", "Basse", "Période", "Historique", "Vue d'ensemble", "Ordres de travail",
          "Indicateurs", "Sous surveillance", "Sans données", "Évaluée", "Déclenchée", "Votre nom", "responsable",
          "création", "Intensité", "Durée", "Démarrer", "Arrêter", "Contexte", "Emplacement", "Courbes", "Heures",
          "Vibration ventilateur", "Risque mécanique", "Refroidissement", "Maintenance préventive", "Inspection portes"]


@pytest.fixture
def dashboard(dashboard_server, live_data, pg):
    """The dashboard, with fresh readings, an R5 alert and its work order, and a fault running."""
    from db.session import session_scope
    from engine.faults import start_fault

    with session_scope() as s:
        start_fault(s, asset_code="CAS-S2-HVAC_1", fault="fan_vibration", intensity=0.5, duration_s=600,
                    actor="demo", now=datetime.now(UTC))
    return dashboard_server


def open_page(browser, url: str, expected: str):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(url, wait_until="domcontentloaded", timeout=WAIT)
    page.get_by_text(expected).first.wait_for(timeout=WAIT)
    return page


def settle(page) -> None:
    page.wait_for_timeout(1500)  # let fragments finish drawing, and charts (drawn last) appear
    charts = page.locator("[data-testid='stVegaLiteChart']")
    if charts.count():
        charts.first.locator("canvas, svg").first.wait_for(timeout=WAIT)
        page.wait_for_timeout(1000)
    assert page.locator("[data-testid='stException']").count() == 0, page.url


def shown_text(page) -> str:
    """Every word on screen: text, table cells (drawn on a canvas, read from their grid cells),
    the values of inputs and of the selected options."""
    parts = [page.locator("[data-testid='stMain']").inner_text(),
             page.locator("[data-testid='stSidebar']").inner_text()]
    parts += page.locator("[role='gridcell']").all_inner_texts()
    parts += page.locator("input, textarea").evaluate_all("els => els.map(e => e.value)")
    return "\n".join(parts)


def choose_english(page) -> None:
    page.get_by_role("combobox", name="Langue · Language").click()
    page.get_by_role("option", name="English").click()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert (SHOTS / f"{name}.png").stat().st_size > 10_000


def test_every_page_in_french_then_in_english_without_a_french_word(dashboard, browser):
    page = open_page(browser, dashboard, "Vue d'ensemble des sites")
    for name, (path, french, _) in PAGES.items():  # French: each page from its address
        page.goto(f"{dashboard}/{path}", wait_until="domcontentloaded", timeout=WAIT)
        page.get_by_text(french).first.wait_for(timeout=WAIT)
        settle(page)
        shot(page, name)
    choose_english(page)
    page.get_by_text(PAGES["simulator"][2]).first.wait_for(timeout=WAIT)
    for name, (_, _, english) in PAGES.items():  # English: each page through the menu, as a user
        page.get_by_role("link", name=NAV_EN[name], exact=True).click()
        page.get_by_role("heading", name=english).first.wait_for(timeout=WAIT)
        settle(page)
        text = shown_text(page)
        left = [w for w in FRENCH if w in text]
        assert not left, f"French on the English {name} page: {left}"
        shot(page, f"{name}-en")


def test_a_manager_acknowledges_an_alert_by_clicking(dashboard, browser, pg, live_data):
    page = open_page(browser, f"{dashboard}/alerts", "Surchauffe moteur ascenseur")
    page.get_by_label("Commentaire").fill("Je m'en occupe")
    page.get_by_role("button", name="Acquitter").click()
    page.get_by_text(f"Alerte {live_data['alert_id']} acquittée").wait_for(timeout=15_000)
    assert pg.execute("SELECT status, acked_by FROM alerts WHERE id = %s", (live_data["alert_id"],)).fetchone() == (
        "ack", "responsable")


def test_a_technician_moves_and_takes_a_work_order_by_clicking(dashboard, browser, pg, live_data):
    wo = live_data["work_order_id"]
    page = open_page(browser, f"{dashboard}/workorders", "Contexte de l'alerte")
    page.get_by_text("Tour Alpha – Casanearshore").first.wait_for(timeout=WAIT)  # where: the site's name
    page.get_by_role("combobox", name="Nouveau statut").click()
    options = page.get_by_role("option").all_inner_texts()
    assert "Terminé" not in options and "En cours" in options  # only what the service allows from "Ouvert"
    page.get_by_role("option", name="En cours").click()
    page.get_by_label("Assigné à", exact=True).fill("Youssef")
    page.get_by_role("button", name="Enregistrer").click()
    page.get_by_text(f"Ordre {wo} enregistré").wait_for(timeout=15_000)
    assert pg.execute("SELECT status, assigned_to FROM work_orders WHERE id = %s", (wo,)).fetchone() == (
        "in_progress", "Youssef")
    page.get_by_role("link", name=re.compile("autour de l'alerte")).click()  # the asset's curves, that range
    page.get_by_text("Équipement CAS-S1-ELEVATOR_1").first.wait_for(timeout=WAIT)
    assert "from=" in page.url and "to=" in page.url
    page.get_by_text("Autour de l'alerte").first.wait_for(timeout=WAIT)


def test_a_presenter_starts_and_stops_a_fault_by_clicking(dashboard, browser, pg):
    page = open_page(browser, f"{dashboard}/simulator_control", "Contrôle du simulateur")
    page.get_by_role("button", name="Démarrer la panne").click()
    page.get_by_text("démarrée sur CAS-S1-ELEVATOR_1").wait_for(timeout=15_000)
    row = pg.execute("SELECT f.id, f.fault FROM simulator_faults f JOIN assets a ON a.id = f.asset_id "
                     "WHERE a.code = 'CAS-S1-ELEVATOR_1'").fetchone()
    assert row[1] == "motor_overheat"
    page.get_by_role("button", name="Arrêter").first.wait_for(timeout=WAIT)
    stop = page.locator(f"[class*='st-key-stop_{row[0]}'] button")
    stop.click()
    page.get_by_text(f"Panne {row[0]} arrêtée").wait_for(timeout=15_000)
    assert pg.execute("SELECT stopped_at IS NOT NULL FROM simulator_faults WHERE id = %s", (row[0],)).fetchone()[0]


def test_traiter_opens_exactly_its_alert_even_outside_the_alerts_page_filters(dashboard, browser, pg, live_data):
    """The sidebar chose CAS-S2 and the alert is 9 days old: the Alerts page (CAS-S2, 7 days by
    default) widens its filters, says so, and acts on that alert, not on another."""
    from db.session import session_scope
    from engine.evaluate import evaluate_all
    from tests.engine.helpers import put, series

    old = live_data["alert_id"]
    pg.execute("UPDATE alerts SET created_at = created_at - interval '9 days' WHERE id = %s", (old,))
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)  # after live_data's readings
    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([95.0] * 5, end=now))  # another alert, on CAS-S2
    with session_scope() as s:
        other = evaluate_all(s, now=now).fired[0]["alert_id"]
    page = open_page(browser, dashboard, "Vue d'ensemble des sites")
    page.get_by_role("combobox", name="Site").first.click()
    page.get_by_role("option", name="CAS-S2").click()
    page.wait_for_timeout(1000)
    rows = page.locator("[data-testid='stHorizontalBlock']").filter(has_text="CAS-S1 · CAS-S1-ELEVATOR_1")
    rows.get_by_role("link", name="Traiter").first.click()
    page.get_by_text("ils ont été élargis pour l'afficher").wait_for(timeout=WAIT)
    chosen = page.get_by_role("combobox", name="Alerte à traiter").input_value()
    assert chosen.startswith(f"#{old} ·"), chosen
    page.get_by_role("button", name="Acquitter").click()
    page.get_by_text(f"Alerte {old} acquittée").wait_for(timeout=15_000)
    assert pg.execute("SELECT status FROM alerts WHERE id = %s", (old,)).fetchone()[0] == "ack"
    assert pg.execute("SELECT status FROM alerts WHERE id = %s", (other,)).fetchone()[0] == "open"


def test_the_overview_says_how_many_more_alerts_and_links_to_them(dashboard, browser, pg):
    pg.execute(
        "INSERT INTO alerts (asset_id, policy_id, created_at, severity, status, message, message_fr, started_at) "
        "SELECT a.id, p.id, now() - interval '20 days', p.severity, 'open', 'm', 'm', now() - interval '20 days' "
        "FROM assets a JOIN policies p ON p.asset_type = a.type WHERE NOT (a.code = 'CAS-S1-ELEVATOR_1' AND "
        "p.code = 'R5') ORDER BY a.code, p.code LIMIT 12")
    page = open_page(browser, dashboard, "Alertes à traiter")
    page.get_by_text("… et 3 de plus, non affichées ici.").wait_for(timeout=WAIT)
    page.get_by_role("link", name="Tout voir").click()
    page.get_by_role("heading", name="Alertes").wait_for(timeout=WAIT)
    page.wait_for_timeout(1500)
    ids = page.get_by_role("combobox", name="Alerte à traiter")
    ids.click()
    assert page.get_by_role("option").count() == 13  # all 13 live alerts, 20 days old included


def test_pages_refresh_by_themselves_without_losing_what_is_typed(dashboard, browser, pg, live_data):
    from db.session import session_scope
    from engine.evaluate import evaluate_all
    from engine.faults import start_fault
    from tests.engine.helpers import put, series

    alerts = open_page(browser, f"{dashboard}/alerts", "Surchauffe moteur ascenseur")
    alerts.get_by_label("Commentaire").fill("en cours de frappe")
    sim = open_page(browser, f"{dashboard}/simulator_control", "Contrôle du simulateur")
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)  # after live_data's readings
    put(pg, "CAS-S2-ELEVATOR_1", "motor_temp", series([95.0] * 5, end=now))
    with session_scope() as s:
        evaluate_all(s, now=now)  # a new alert, as the scheduler would raise it
    with session_scope() as s:
        start_fault(s, asset_code="CAS-S1-CHILLER_1", fault="cooling_loss", intensity=1.0, duration_s=600,
                    actor="api", now=datetime.now(UTC))  # a fault started by someone else (the API)
    alerts.locator("[role='gridcell']").filter(has_text="CAS-S2-ELEVATOR_1").first.wait_for(
        state="attached", timeout=25_000)  # without a click (table cells are drawn; their text is hidden)
    assert alerts.get_by_label("Commentaire").input_value() == "en cours de frappe"
    sim.get_by_text("Perte de froid").first.wait_for(timeout=25_000)
