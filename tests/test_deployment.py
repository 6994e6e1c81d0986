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
    assert set(SERVICES) == {"db", "upgrade", "api", "scheduler", "simulator", "dashboard", "caddy"}
    assert SERVICES["db"]["image"].startswith("postgres:16")
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["db"]["volumes"]
    assert SERVICES["caddy"]["profiles"] == ["https"]


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_each_container_runs_a_documented_entry_point(name):
    command = SERVICES[name]["command"]
    assert command[: len(ENTRY_POINTS[name])] == ENTRY_POINTS[name]


def test_run_py_starts_the_same_entry_points_as_the_containers():
    from db.settings import Settings
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
    from db.settings import Settings

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
    [["-m", "db", "--help"], ["-m", "engine", "--help"], ["-m", "simulator", "--help"], ["run.py", "--help"]],
    ids=["db", "engine", "simulator", "run"],
)
def test_every_entry_point_has_help(argv):
    out = subprocess.run([sys.executable, *argv], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout.lower()
