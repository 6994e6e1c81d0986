"""The deployment files: no Docker engine runs here, so the compose file is parsed and checked
against the entry points that the tests do run (run.py starts the same commands)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

COMPOSE = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = {
    line.split("=", 1)[0]
    for line in (PROJECT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#") and "=" in line
}
# The entry points of PRODUCT.md; run.py and the containers run exactly these.
ENTRY_POINTS = {
    "upgrade": ["python", "-m", "db", "upgrade"],
    "api": ["uvicorn", "ingest.main:app"],
    "scheduler": ["python", "-m", "engine"],
    "simulator": ["python", "-m", "simulator"],
    "dashboard": ["streamlit", "run", "app.py"],
}


def test_compose_has_every_service_of_the_platform():
    assert set(SERVICES) == {"db", "upgrade", "api", "scheduler", "simulator", "dashboard", "caddy",
                             "grafana", "prometheus", "mosquitto", "mqtt-bridge"}
    assert SERVICES["db"]["image"].startswith("postgres:16")
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["db"]["volumes"]
    assert SERVICES["caddy"]["profiles"] == ["https"]


def test_grafana_prometheus_and_mqtt_are_optional_profiles():
    assert SERVICES["grafana"]["profiles"] == SERVICES["prometheus"]["profiles"] == ["grafana"]
    assert SERVICES["mosquitto"]["profiles"] == SERVICES["mqtt-bridge"]["profiles"] == ["mqtt"]
    for name in ("db", "upgrade", "api", "scheduler", "simulator", "dashboard"):
        assert "profiles" not in SERVICES[name]


def test_grafana_runs_the_official_image_with_the_provisioning_and_no_anonymous_access():
    g = SERVICES["grafana"]
    assert g["image"].startswith("grafana/grafana-oss:")
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in g["volumes"]
    env = g["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert env["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true" and env["GF_SERVER_ROOT_URL"].endswith("/grafana/")
    # the user Caddy logged in (deploy/Caddyfile sets this header), as a Viewer
    assert env["GF_AUTH_PROXY_ENABLED"] == "true" and env["GF_AUTH_PROXY_HEADER_NAME"] == "X-WEBAUTH-USER"
    assert env["GF_USERS_AUTO_ASSIGN_ORG_ROLE"] == "Viewer"
    assert "X-WEBAUTH-USER {http.auth.user.id}" in (PROJECT / "deploy" / "Caddyfile").read_text()
    # the data source's variables ($POSTGRES_DB, $GRAFANA_DB_PASSWORD) are in its environment
    datasources = (PROJECT / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    uncommented = "\n".join(line.split("#")[0] for line in datasources.splitlines())
    assert re.findall(r"\$([A-Z_]+)", uncommented) == ["POSTGRES_DB", "GRAFANA_DB_PASSWORD"]
    for var in re.findall(r"\$([A-Z_]+)", uncommented):
        assert var in env, var
    assert SERVICES["upgrade"]["environment"]["GRAFANA_DB_PASSWORD"] == "${GRAFANA_DB_PASSWORD:-}"
    # pg_stat_statements for the Database dashboard
    assert "shared_preload_libraries=pg_stat_statements" in SERVICES["db"]["command"]
    # a buffer cache sized for the server, not PostgreSQL's 128MB (docs/deployment.md "Memory")
    assert "shared_buffers=1GB" in SERVICES["db"]["command"]


def test_mosquitto_runs_the_official_image_with_the_config_of_the_repository():
    m = SERVICES["mosquitto"]
    assert m["image"].startswith("eclipse-mosquitto:2")
    assert "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in m["volumes"]
    assert "ports" not in m  # inside the compose network only
    assert "mosquitto_passwd -c -b /mosquitto/data/passwd" in m["entrypoint"][-1]
    conf = dict(line.split(None, 1) for line in (PROJECT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
                .splitlines() if line.strip() and not line.startswith("#") and not line.startswith("log_type"))
    assert conf["persistence"] == "true" and conf["allow_anonymous"] == "false"
    assert conf["password_file"] == "/mosquitto/data/passwd"
    assert int(conf["max_queued_messages"]) >= 100 * 1000  # the default 1,000 drops data in a bridge outage
    assert 1000 <= int(conf["max_inflight_messages"]) <= 65535  # paho-mqtt 2's limit of unacknowledged messages
    assert conf["listener"] == "1883"
    b = SERVICES["mqtt-bridge"]
    assert b["command"] == ["python", "-m", "ingest.mqtt"] and b["image"] == "maintenance40:latest"
    assert b["environment"]["MQTT_URL"] == "mqtt://mosquitto:1883"


def test_prometheus_scrapes_the_api_and_the_bridge():
    p = SERVICES["prometheus"]
    assert p["image"].startswith("prom/prometheus:")
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in p["volumes"]
    config = yaml.safe_load((PROJECT / "deploy" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    api_port = SERVICES["api"]["command"][SERVICES["api"]["command"].index("--port") + 1]
    assert jobs["api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    assert jobs["api"].get("metrics_path", "/metrics") == "/metrics"
    bridge_port = SERVICES["mqtt-bridge"]["environment"]["MQTT_METRICS_PORT"]
    assert jobs["mqtt-bridge"]["static_configs"][0]["targets"] == [f"mqtt-bridge:{bridge_port}"]
    assert SERVICES["mqtt-bridge"]["environment"]["MQTT_METRICS_HOST"] == "0.0.0.0"
    datasources = yaml.safe_load((PROJECT / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text())
    assert {d["url"] for d in datasources["datasources"] if d["type"] == "prometheus"} == {"http://prometheus:9090"}


def test_make_run_starts_the_mqtt_bridge_only_when_mqtt_url_is_set():
    from core.settings import Settings
    from run import services

    assert "mqtt" not in services(Settings(mqtt_url=None))
    assert services(Settings(mqtt_url="mqtt://127.0.0.1:1883"))["mqtt"][1:] == ["-m", "ingest.mqtt"]


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_each_container_runs_a_documented_entry_point(name):
    command = SERVICES[name]["command"]
    assert command[: len(ENTRY_POINTS[name])] == ENTRY_POINTS[name]


def test_run_py_starts_the_same_entry_points_as_the_containers():
    from core.settings import Settings
    from run import services

    local = services(Settings())
    for name in ("api", "scheduler", "simulator", "dashboard"):
        cmd = local[name]
        assert cmd[0] == sys.executable
        # `python -m uvicorn …` / `python -m streamlit …` locally, the console script in the image
        tail = cmd[1:] if cmd[1] != "-m" or name in ("scheduler", "simulator") else cmd[2:]
        expected = ENTRY_POINTS[name] if name in ("api", "dashboard") else ENTRY_POINTS[name][1:]
        assert tail[: len(expected)] == expected, (name, cmd)


def test_database_is_not_published_and_only_caddy_is_public():
    assert "ports" not in SERVICES["db"]
    assert SERVICES["caddy"]["ports"] == ["80:80", "443:443"]
    for name, svc in SERVICES.items():
        if name == "caddy":
            continue
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the loopback"


def test_services_wait_for_what_they_need():
    assert SERVICES["upgrade"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("api", "scheduler", "dashboard"):
        assert SERVICES[name]["depends_on"]["upgrade"]["condition"] == "service_completed_successfully"
    assert SERVICES["simulator"]["depends_on"]["api"]["condition"] == "service_healthy"
    for name in ("db", "api", "dashboard"):
        assert "healthcheck" in SERVICES[name]
    assert SERVICES["simulator"]["environment"]["API_URL"] == "http://api:8000"


def test_every_variable_used_has_a_default_or_an_example():
    text = (PROJECT / "docker-compose.yml").read_text() + (PROJECT / "deploy" / "Caddyfile").read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text))  # ${VAR} with no default
    used |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))  # ${VAR:?required}
    used |= set(re.findall(r"\{\$([A-Z_][A-Z0-9_]*)\}", text))  # Caddy's {$VAR}
    missing = sorted(v for v in used if v not in ENV_EXAMPLE)
    assert missing == []


def test_every_setting_is_documented_in_env_example():
    from core.settings import Settings

    assert {name.upper() for name in Settings.model_fields} <= ENV_EXAMPLE


def test_dockerfile_builds_one_image_whose_default_is_the_api():
    text = (PROJECT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in text
    assert 'CMD ["uvicorn", "ingest.main:app"' in text
    assert "USER app" in text
    for name in ENTRY_POINTS:
        assert SERVICES[name]["image"] == "maintenance40:latest"


@pytest.mark.parametrize(
    "argv",
    [["-m", "db", "--help"], ["-m", "engine", "--help"], ["-m", "simulator", "--help"], ["run.py", "--help"],
     ["-m", "ingest.mqtt", "--help"], ["-m", "grafana.dashboards", "--help"]],
    ids=["db", "engine", "simulator", "run", "mqtt", "grafana"],
)
def test_every_entry_point_has_help(argv):
    out = subprocess.run([sys.executable, *argv], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout.lower()
