"""Issue 10's dashboard parts in a real browser (Debian's headless Chromium, Playwright): the
Policies and Silences pages render without exception (screenshots), a backtest is run and drawn,
a false alarm is dismissed."""

from __future__ import annotations

import re

import pytest

from tests.dashboard.test_browser import SHOTS

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(dashboard_server, live_data):
    """The dashboard, with fresh readings and an R5 alert (CAS-S1-ELEVATOR_1 at 88 °C)."""
    return dashboard_server


def no_exception(page, what: str) -> None:
    page.wait_for_timeout(1500)  # let charts and fragments finish drawing
    assert page.locator("[data-testid='stException']").count() == 0, f"exception on {what}"


def test_a_backtest_in_the_browser_counts_and_draws_the_firings(dashboard, browser, pg):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1200})
    page.goto(f"{dashboard}/policies", wait_until="domcontentloaded", timeout=30_000)
    page.get_by_text("Règles de maintenance").first.wait_for(timeout=30_000)
    page.get_by_role("combobox", name="Règle").first.click()
    page.get_by_role("option", name=re.compile(r"^R5 · ")).click()
    page.get_by_role("button", name="Rejouer").click()
    page.get_by_text("Alertes qu'elle aurait ouvertes").wait_for(timeout=30_000)
    metric = page.locator("[data-testid='stMetric']").filter(has_text="Alertes qu'elle aurait ouvertes")
    assert metric.locator("[data-testid='stMetricValue']").inner_text().strip() == "1"
    page.get_by_text("Zones rouges").wait_for(timeout=30_000)
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)  # the chart is drawn
    no_exception(page, "/policies")
    page.screenshot(path=str(SHOTS / "policies.png"), full_page=True)
    assert pg.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1  # the backtest wrote nothing


def test_a_false_alarm_is_dismissed_in_the_browser_and_the_silence_listed(dashboard, browser, pg, live_data):
    page = browser.new_page(viewport={"width": 1440, "height": 1200})
    page.goto(f"{dashboard}/alerts", wait_until="domcontentloaded", timeout=30_000)
    page.get_by_text("Surchauffe moteur ascenseur").first.wait_for(timeout=30_000)
    page.locator("summary").filter(has_text="Écarter (fausse alerte)").click()
    page.get_by_label("Raison (obligatoire)").fill("sonde débranchée")
    page.get_by_role("button", name="Écarter (fausse alerte)", exact=True).last.click()
    page.get_by_text(f"Alerte n° {live_data['alert_id']} écartée").wait_for(timeout=15_000)
    row = pg.execute("SELECT status, resolution FROM alerts WHERE id = %s", (live_data["alert_id"],)).fetchone()
    assert row == ("closed", "dismissed")
    page.goto(f"{dashboard}/silences", wait_until="domcontentloaded", timeout=30_000)
    page.get_by_text("Silences actifs").wait_for(timeout=30_000)
    page.get_by_role("button", name="Terminer maintenant").wait_for(timeout=30_000)
    no_exception(page, "/silences")
    page.screenshot(path=str(SHOTS / "silences.png"), full_page=True)
