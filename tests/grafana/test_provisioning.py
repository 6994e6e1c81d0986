"""The Grafana provisioning files: each valid against its schema (grafana/schema/), the
dashboards also against grafana-foundation-sdk's model of Grafana's dashboard schema, generated
by `python -m grafana.dashboards` (no hand edits), French titles, panels laid out without
overlap, every data source a panel names provisioned."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from tests.conftest import PROJECT

GRAFANA = PROJECT / "grafana"
PROVISIONING = GRAFANA / "provisioning"
BOARDS = sorted((PROVISIONING / "dashboards").glob("*.json"))
TITLES = {"Vue d'ensemble des sites", "Équipement", "Alertes et ordres de travail", "Arrivée des données",
          "Base de données", "Plateforme"}


def schema(name: str) -> dict:
    return json.loads((GRAFANA / "schema" / name).read_text())


def validate(document, schema_name: str) -> None:
    s = schema(schema_name)
    jsonschema.Draft202012Validator.check_schema(s)
    jsonschema.Draft202012Validator(s).validate(document)


def test_the_data_sources_file_is_valid():
    doc = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    validate(doc, "datasources.schema.json")
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    pg = by_uid["m40-postgres"]
    assert pg["user"] == "grafana_reader"  # the read-only role of migration 0007, never the owner
    assert pg["secureJsonData"]["password"] == "$GRAFANA_DB_PASSWORD"  # from the environment, not the file
    assert by_uid["m40-prometheus"]["url"] == "http://prometheus:9090"


def test_the_schemas_refuse_what_grafana_would_not_load():
    doc = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    doc["datasources"][0]["acess"] = "proxy"  # a typo
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, "datasources.schema.json")
    board = json.loads(BOARDS[0].read_text())
    board["panels"][0]["targets"][0].pop("rawSql")
    with pytest.raises(jsonschema.ValidationError):
        validate(board, "dashboard.schema.json")


def test_the_dashboard_provider_file_is_valid_and_points_at_the_mounted_folder():
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())
    validate(doc, "dashboard-providers.schema.json")
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert doc["providers"][0]["options"]["path"] == "/etc/grafana/provisioning/dashboards"


def test_there_are_the_six_dashboards_with_french_titles():
    assert {json.loads(p.read_text())["title"] for p in BOARDS} == TITLES


@pytest.mark.parametrize("path", BOARDS, ids=[p.name for p in BOARDS])
def test_each_dashboard_is_valid(path):
    board = json.loads(path.read_text())
    validate(board, "dashboard.schema.json")
    # every key is one of Grafana's dashboard schema (the SDK's model drops unknown ones)
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
    for panel in again["panels"]:
        if panel.get("options") is None:
            panel.pop("options", None)
        if panel["fieldConfig"]["defaults"].get("custom") == {}:
            del panel["fieldConfig"]["defaults"]["custom"]  # the model's default, not ours
    assert again == board


@pytest.mark.parametrize("path", BOARDS, ids=[p.name for p in BOARDS])
def test_each_dashboard_has_unique_ids_and_no_overlapping_panels(path):
    board = json.loads(path.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = {}
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_the_dashboards_are_what_the_generator_writes():
    from grafana.dashboards import DASHBOARDS, OUT, render

    assert sorted(DASHBOARDS) == [p.name for p in BOARDS]
    for name, build in DASHBOARDS.items():
        assert (OUT / name).read_text(encoding="utf-8") == render(build), f"{name}: run python -m grafana.dashboards"


def test_every_data_source_a_dashboard_names_is_provisioned():
    provisioned = {d["uid"] for d in yaml.safe_load(
        (PROVISIONING / "datasources" / "datasources.yaml").read_text())["datasources"]}
    for path in BOARDS:
        text = path.read_text()
        for uid in set(__import__("re").findall(r'"uid": "(m40-[a-z]+)"', text)) - {json.loads(text)["uid"]}:
            assert uid in provisioned, (path.name, uid)
