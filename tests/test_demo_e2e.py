"""The 5-minute demo, end to end, as a presenter runs it: the whole platform started as `make run`
starts it (run.py, short intervals); in a real browser, a motor overheat started from the
Simulator control page (its default choice); the R5 alert and its work order seen through the
API within 2 minutes; the order moved to in progress then done on the Work orders page; the
alert closed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import API_KEY, PROJECT, free_port

pytestmark = pytest.mark.slow


class Platform:
    def __init__(self, proc: subprocess.Popen, api: str, dashboard: str, log_path):
        self.proc, self.api, self.dashboard, self.log_path = proc, api, dashboard, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def platform(database_url, tmp_path) -> Iterator[Platform]:
    api_port, dash_port = free_port(), free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        INGEST_API_KEY=API_KEY,
        API_PORT=str(api_port),
        API_URL=f"http://127.0.0.1:{api_port}",
        DASHBOARD_PORT=str(dash_port),
        RULES_INTERVAL_S="5",
        SIM_INTERVAL_S="2",
        SIM_BUFFER_DIR=str(tmp_path / "buffer"),
        WEB_CONCURRENCY="1",
    )
    log_path = tmp_path / "platform.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "run.py"], cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            # as when a shell starts it in the background: SIGINT ignored, Ctrl-C must still work
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    p = Platform(proc, f"http://127.0.0.1:{api_port}/api/v1", f"http://127.0.0.1:{dash_port}", log_path)
    try:
        deadline = time.monotonic() + 180
        while "Maintenance 4.0 is running" not in p.log():
            assert proc.poll() is None, p.log()[-3000:]
            assert time.monotonic() < deadline, "platform did not start in 180 s:\n" + p.log()[-3000:]
            time.sleep(0.5)
        yield p
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user would
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("run.py did not stop within 30 s of Ctrl-C")
        assert "run       | stopped" in p.log()


def _wait_for(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"{what} did not happen within {timeout_s:.0f} s")


def test_demo_motor_overheat_raises_r5_and_its_work_order_closes_it(platform, browser):
    api = httpx.Client(base_url=platform.api, headers={"X-API-Key": API_KEY}, timeout=30)
    # the start command back-filled history and prints where to open things
    assert "Dashboard   http://127.0.0.1:" in platform.log()
    sites = api.get("/sites").json()
    s1 = next(s for s in sites if s["code"] == "CAS-S1")
    elevator = next(a for a in api.get(f"/sites/{s1['id']}/assets").json() if a["type"] == "ELEVATOR")
    assert elevator["last_seen"] is not None  # history is there
    assert api.get("/alerts", params={"status": ["open", "ack"]}).json() == []  # no false alarm at start

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{platform.dashboard}/simulator_control", wait_until="domcontentloaded", timeout=60_000)
    page.get_by_text("Contrôle du simulateur").wait_for(timeout=60_000)
    page.get_by_role("button", name="Démarrer la panne").click()  # the defaults are the demo's
    page.get_by_text("Panne Surchauffe moteur démarrée sur CAS-S1-ELEVATOR_1.").wait_for(timeout=30_000)
    injected = time.monotonic()

    def r5_alert():
        alerts = api.get("/alerts", params={"status": "open"}).json()
        return next((a for a in alerts if a["policy_code"] == "R5" and a["asset_code"] == "CAS-S1-ELEVATOR_1"), None)

    alert = _wait_for(r5_alert, 120, "the R5 alert")
    took = time.monotonic() - injected
    assert alert["severity"] == "high" and "motor_temp" in alert["message"]
    others = [a for a in api.get("/alerts").json() if a["id"] != alert["id"]]
    assert others == [], others  # only the injected fault's policy fired

    orders = api.get("/workorders", params={"status": "open"}).json()
    order = next(o for o in orders if o["alert_id"] == alert["id"])
    assert order["priority"] == 1

    page.goto(f"{platform.dashboard}/workorders", wait_until="domcontentloaded", timeout=60_000)
    page.get_by_text("Contexte de l'alerte").wait_for(timeout=60_000)
    for label, status in (("En cours", "in_progress"), ("Terminé", "done")):
        page.get_by_label("Votre nom").first.fill("tech.demo")
        page.get_by_role("combobox", name="Nouveau statut").click()
        page.get_by_role("option", name=label).click()
        page.get_by_role("button", name="Enregistrer").click()
        _wait_for(lambda s=status: api.get(f"/workorders/{order['id']}").json()["status"] == s, 30, f"order {status}")
        page.get_by_text(f"Ordre {order['id']} enregistré.").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stException']").count() == 0
    closed = api.get(f"/alerts/{alert['id']}").json()
    assert closed["status"] == "closed"
    assert closed["closed_by"] == "tech.demo"
    print(f"R5 alert {took:.0f} s after injection")
