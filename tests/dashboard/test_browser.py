"""A real browser (Debian's headless Chromium, driven by Playwright) opens every page of a
running dashboard, finds no exception on any, and saves a screenshot of each."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.browser
SHOTS = PROJECT / "artifacts" / "screenshots"
PAGES = {  # url path -> a text the page must show
    "": "Vue d'ensemble des sites",
    "site?site=CAS-S1": "Site CAS-S1",
    "asset?asset=CAS-S1-ELEVATOR_1": "Équipement CAS-S1-ELEVATOR_1",
    "alerts": "Surchauffe moteur ascenseur",
    "workorders": "Contexte de l'alerte",
    "simulator": "Contrôle du simulateur",
    "kpis": "Indicateurs de maintenance",  # issue 15
}


@pytest.fixture
def dashboard(dashboard_server, live_data):
    """The dashboard, with fresh readings and an R5 alert to show."""
    return dashboard_server


def test_every_page_renders_without_exception_and_is_screenshotted(dashboard, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    for path, expected in PAGES.items():
        page.goto(f"{dashboard}/{path}", wait_until="domcontentloaded", timeout=30_000)
        page.get_by_text(expected).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # let charts and fragments finish drawing
        assert page.locator("[data-testid='stException']").count() == 0, f"exception on /{path}"
        name = (path.split("?")[0] or "overview")
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000


def test_a_manager_acknowledges_an_alert_in_the_browser(dashboard, browser, pg, live_data):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{dashboard}/alerts", wait_until="domcontentloaded", timeout=30_000)
    page.get_by_text("Surchauffe moteur ascenseur").first.wait_for(timeout=30_000)
    page.get_by_label("Commentaire").fill("Je m'en occupe")
    page.get_by_role("button", name="Acquitter").click()
    page.get_by_text(f"Alerte {live_data['alert_id']} acquittée").wait_for(timeout=15_000)
    assert pg.execute("SELECT status FROM alerts WHERE id = %s", (live_data["alert_id"],)).fetchone()[0] == "ack"


def test_switching_to_english_holds_in_the_browser(dashboard, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(dashboard, wait_until="domcontentloaded", timeout=30_000)
    page.get_by_text("Vue d'ensemble des sites").wait_for(timeout=30_000)
    page.get_by_role("combobox", name="Langue · Language").click()
    page.get_by_role("option", name="English").click()
    page.get_by_text("Sites overview").wait_for(timeout=30_000)
    page.get_by_role("link", name="Alerts").click()  # and it stays English on another page
    page.get_by_text("Alerts to handle").or_(page.get_by_role("heading", name="Alerts")).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    assert page.get_by_text("Vue d'ensemble").count() == 0 and page.get_by_text("Alertes").count() == 0
    # the sidebar's site filter reads "All sites", not Streamlit's "Choose an option"
    assert page.get_by_role("combobox", name="Site").first.input_value() == "All sites"
