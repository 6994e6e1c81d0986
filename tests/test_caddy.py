"""The HTTPS front (deploy/Caddyfile), run by a real Caddy (Debian's, installed by `make test`)
in plain HTTP on 127.0.0.1, in front of the real API: gateways post telemetry with the API key
alone; the dashboard, the API's reads and actions and its docs need the login; metrics stay
internal."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import API_KEY, FRONT_KEY, GATEWAY_KEYS, PROJECT, free_port

USER, PASSWORD = "responsable", "un mot de passe long"
PAYLOAD = {"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1", "timestamp": "2025-12-09T10:15:23Z",
           "metrics": {"temp_out_air": 32.5, "temp_supply_air": 17.8, "power_kw": 12.3, "vibration_level": 3.1}}


def _start_caddy(tmp_path, api_upstream: str, dashboard_upstream: str, **extra_env: str):
    """Caddy on the deployment's Caddyfile, in plain HTTP on a free local port."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail("Debian's caddy is missing: `make test` installs it (apt-get install caddy)")
    hashed = subprocess.run([caddy, "hash-password", "--plaintext", PASSWORD], capture_output=True, text=True,
                            check=True).stdout.strip()
    hashed = base64.b64encode(hashed.encode()).decode()  # as docs/deployment.md says: no "$" for .env
    port = free_port()
    env = dict(
        os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path),
        DOMAIN=f"http://127.0.0.1:{port}", ACME_EMAIL="ops@example.com", CADDY_ADMIN="off",
        DASHBOARD_USER=USER, DASHBOARD_PASSWORD_HASH=hashed,
        API_UPSTREAM=api_upstream, DASHBOARD_UPSTREAM=dashboard_upstream, FRONT_API_KEY=FRONT_KEY,
        **extra_env,
    )
    proc = subprocess.Popen([caddy, "run", "--config", str(PROJECT / "deploy" / "Caddyfile"), "--adapter", "caddyfile"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "caddy did not start"
            time.sleep(0.2)
    return proc, url


@pytest.fixture
def front(live_api, tmp_path) -> Iterator[str]:
    """The API behind Caddy; it stands in for the dashboard too: what matters is who gets through."""
    upstream = f"127.0.0.1:{live_api.port}"
    proc, url = _start_caddy(tmp_path, upstream, upstream)
    yield url
    proc.terminate()
    proc.wait(10)


def test_gateways_post_telemetry_with_the_api_key_alone(front, pg):
    r = httpx.post(front + "/api/v1/telemetry", json=PAYLOAD, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json() == {"status": "ok", "inserted_points": 4}
    assert httpx.post(front + "/api/v1/telemetry", json=PAYLOAD).status_code == 401  # and the key is still needed


def test_people_need_the_login_for_the_dashboard_the_api_and_its_docs(front, pg):
    for path in ("/", "/api/v1/sites", "/docs", "/openapi.json"):
        r = httpx.get(front + path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), path
    assert httpx.get(front + "/api/v1/sites", auth=(USER, "wrong")).status_code == 401
    r = httpx.get(front + "/api/v1/sites", auth=(USER, PASSWORD))
    assert r.status_code == 200 and {s["code"] for s in r.json()} == {"CAS-S1", "CAS-S2"}
    # an action needs the login (a person): a key alone does not pass the front
    r = httpx.post(front + "/api/v1/rules/evaluate", headers={"X-API-Key": API_KEY})
    assert r.status_code == 401
    r = httpx.post(front + "/api/v1/rules/evaluate", headers={"X-API-Key": API_KEY}, auth=(USER, PASSWORD))
    assert r.status_code == 200
    # the login alone is enough: the front passes its operator key (FRONT_API_KEY) to the API
    r = httpx.post(front + "/api/v1/rules/evaluate", auth=(USER, PASSWORD))
    assert r.status_code == 200
    # a key given by the person is used as is: a gateway key stays telemetry-only
    r = httpx.post(front + "/api/v1/rules/evaluate", headers={"X-API-Key": GATEWAY_KEYS["gw-old"]},
                   auth=(USER, PASSWORD))
    assert r.status_code == 403


def test_the_gmao_reaches_its_signed_route_without_the_login_and_nothing_else(front, pg):
    """Issue 15: the signature is the GMAO's credential (checked by the API: 401 in JSON, not Caddy's)."""
    r = httpx.post(front + "/api/v1/integrations/gmao/workorders/1", content=b"{}")
    assert r.status_code == 401 and "www-authenticate" not in r.headers and r.json()["errors"][0]["field"] == "webhook-signature"
    assert httpx.get(front + "/api/v1/webhooks/deliveries").headers["www-authenticate"].startswith("Basic")


def test_metrics_stay_internal(front):
    assert httpx.get(front + "/metrics", auth=(USER, PASSWORD)).status_code == 404
    assert httpx.get(front + "/metrics").status_code == 404


def test_the_dashboard_works_behind_the_login_in_a_real_browser(live_api, dashboard_server, browser, tmp_path):
    """Streamlit talks over a websocket: it must pass Caddy and its basic auth too."""
    proc, url = _start_caddy(tmp_path, f"127.0.0.1:{live_api.port}", dashboard_server.removeprefix("http://"))
    try:
        assert httpx.get(url + "/").status_code == 401
        assert httpx.get(url + "/_stcore/health").status_code == 401  # Streamlit's own endpoints too
        context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
        page = context.new_page()
        page.goto(url + "/", wait_until="domcontentloaded", timeout=60_000)
        page.get_by_text("Vue d'ensemble des sites").wait_for(timeout=60_000)  # drawn through the websocket
        page.get_by_text("CAS-S1").first.wait_for(timeout=30_000)  # with data from the database
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def grafana_stand_in():
    """An HTTP server in Grafana's place that answers with what it received."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def test_grafana_is_behind_the_same_login_and_learns_who_logged_in(live_api, grafana_stand_in, tmp_path):
    upstream = f"127.0.0.1:{live_api.port}"
    proc, url = _start_caddy(tmp_path, upstream, upstream, GRAFANA_UPSTREAM=grafana_stand_in)
    http = httpx.Client(timeout=60)  # each login is a bcrypt check: seconds on a loaded machine
    try:
        r = http.get(url + "/grafana/d/m40-sites")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert http.get(url + "/grafana/", auth=(USER, "wrong")).status_code == 401
        # a browser that claims to be someone else is not believed
        r = http.get(url + "/grafana/d/m40-sites?orgId=1", auth=(USER, PASSWORD),
                      headers={"X-WEBAUTH-USER": "admin"})
        assert r.status_code == 200
        seen = r.json()
        assert seen["path"] == "/grafana/d/m40-sites?orgId=1"  # served from the sub-path, unchanged
        assert seen["headers"]["x-webauth-user"] == USER
        assert "authorization" not in seen["headers"]  # Grafana never sees the password
        r = http.get(url + "/grafana", auth=(USER, PASSWORD))
        assert r.status_code in (301, 302, 308) and r.headers["location"] == "/grafana/"
        # the rest of the site still goes where it went
        r = http.get(url + "/api/v1/sites", auth=(USER, PASSWORD))
        assert r.status_code == 200 and {s["code"] for s in r.json()} == {"CAS-S1", "CAS-S2"}
    finally:
        http.close()
        proc.terminate()
        proc.wait(10)


def test_caddy_refuses_to_start_without_a_password_hash(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path),
               DOMAIN=f"http://127.0.0.1:{free_port()}", ACME_EMAIL="ops@example.com", CADDY_ADMIN="off",
               DASHBOARD_USER=USER, DASHBOARD_PASSWORD_HASH="")
    out = subprocess.run([shutil.which("caddy") or "caddy", "run", "--config", str(PROJECT / "deploy" / "Caddyfile"),
                          "--adapter", "caddyfile"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "username and password cannot be empty" in out.stdout + out.stderr
