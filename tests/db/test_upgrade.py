"""`python -m db upgrade`: migrations then seed, idempotent; the policy file drives policies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

TABLES = ("sites", "assets", "metrics", "policies")


def snapshot(pg) -> dict:
    return {t: pg.execute(f"SELECT *, xmin::text FROM {t} ORDER BY 1").fetchall() for t in TABLES}


def test_upgrade_twice_changes_no_row(pg, database_url):
    before = snapshot(pg)
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "db", "upgrade"], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert snapshot(pg) == before  # same rows, and xmin unchanged: nothing was rewritten


def test_seed_has_the_requirements_sites_assets_and_catalog(pg):
    sites = dict(pg.execute("SELECT code, name FROM sites").fetchall())
    assert sites == {"CAS-S1": "Tour Alpha – Casanearshore", "CAS-S2": "Tour Beta – Casanearshore"}
    assets = {r[0] for r in pg.execute("SELECT code FROM assets")}
    assert assets == {f"CAS-S{s}-{t}_1" for s in (1, 2) for t in ("HVAC", "CHILLER", "ELEVATOR")}
    catalog = {r[0]: (r[1], r[2], set(r[3])) for r in pg.execute("SELECT name, unit, kind, asset_types FROM metrics")}
    assert catalog["run_hours"] == ("h", "counter", {"HVAC", "CHILLER"})
    assert catalog["door_cycles"][1] == "counter"
    assert catalog["water_temp_out"] == ("°C", "gauge", {"CHILLER"})
    assert catalog["motor_temp"] == ("°C", "gauge", {"ELEVATOR"})


def test_policies_are_the_six_of_the_requirements_plus_a_drift(pg):
    rows = pg.execute(
        "SELECT p.code, p.asset_type, m.name, p.rule_type, p.aggregation, p.condition, p.threshold, "
        "p.window_minutes, p.consecutive_points, p.severity, p.title FROM policies p "
        "JOIN metrics m ON m.id = p.metric_id WHERE p.enabled ORDER BY p.code"
    ).fetchall()
    got = {r[0]: r[1:] for r in rows}
    assert got["R1"] == ("HVAC", "temp_supply_air", "threshold", "avg", ">", 20, 15, None, "medium", "Performance clim dégradée")
    assert got["R2"] == ("HVAC", "vibration_level", "consecutive", None, ">", 7, None, 5, "high", "Risque mécanique ventilateur")
    assert got["R3"] == ("CHILLER", "water_temp_out", "threshold", "avg", ">", 14, 10, None, "high", "Refroidissement insuffisant")
    assert got["R4"] == ("CHILLER", "run_hours", "runtime", None, ">", 500, None, None, "low", "Maintenance préventive due")
    assert got["R5"] == ("ELEVATOR", "motor_temp", "consecutive", None, ">", 80, None, 5, "high", "Surchauffe moteur ascenseur")
    assert got["R6"] == ("ELEVATOR", "door_cycles", "runtime", None, ">", 100000, None, None, "medium", "Inspection portes à planifier")
    drift = [r for r in rows if r[3] == "rate_of_change"]
    assert drift and drift[0][1:3] == ("CHILLER", "water_temp_out")


def test_editing_the_policy_file_and_reloading_changes_policies(pg, tmp_path: Path):
    from db.seed import POLICY_FILE, seed
    from db.session import get_engine

    edited = tmp_path / "policies.yaml"
    text = POLICY_FILE.read_text(encoding="utf-8").replace("threshold: 20\n", "threshold: 22.5\n")
    # drop the drift policy from the file: it must be disabled, not deleted
    text = text[: text.index("  - code: D1")]
    edited.write_text(text, encoding="utf-8")
    with get_engine().begin() as conn:
        seed(conn, policy_file=edited)
    assert pg.execute("SELECT threshold FROM policies WHERE code = 'R1'").fetchone()[0] == 22.5
    assert pg.execute("SELECT enabled FROM policies WHERE code = 'D1'").fetchone()[0] is False


def test_a_bad_policy_file_is_refused_and_changes_nothing(pg, tmp_path: Path):
    from db.errors import InvalidInput
    from db.seed import POLICY_FILE, seed
    from db.session import get_engine

    before = snapshot(pg)
    bad = tmp_path / "policies.yaml"
    bad.write_text(POLICY_FILE.read_text(encoding="utf-8").replace("consecutive_points: 5", "consecutive_points: 0", 1))
    with pytest.raises(InvalidInput, match="consecutive_points"):
        with get_engine().begin() as conn:
            seed(conn, policy_file=bad)
    assert snapshot(pg) == before


def test_schema_matches_the_models(database_url):
    """The migrations produce exactly what db/models.py declares (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.models import Base, include_name
    from db.session import get_engine

    with get_engine().connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_more_sites_and_assets_for_load_tests_through_the_seed_path(pg, database_url):
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "db", "upgrade", "--sites", "4", "--assets-per-type", "2"]
    out = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert pg.execute("SELECT count(*) FROM sites").fetchone()[0] == 4
    assert pg.execute("SELECT count(*) FROM assets").fetchone()[0] == 4 * 3 * 2
    assert pg.execute("SELECT name FROM sites WHERE code = 'CAS-S4'").fetchone()[0] == "Tour 4 – Casanearshore"
