"""The simulator is the sensor stand-in: one process that speaks HTTP (or MQTT), like a real
gateway. It imports nothing of the database layer, the engine or the API (only core/)."""

from __future__ import annotations

import ast

from tests.conftest import PROJECT


def test_the_simulator_imports_nothing_of_db_engine_or_ingest():
    imported = set()
    for path in (PROJECT / "simulator").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add((path.name, node.module.split(".")[0]))
            elif isinstance(node, ast.Import):
                imported.update((path.name, alias.name.split(".")[0]) for alias in node.names)
    assert ("__main__.py", "core") in imported  # the scan sees the imports
    assert sorted((f, m) for f, m in imported if m in ("db", "engine", "ingest", "dashboard")) == []
