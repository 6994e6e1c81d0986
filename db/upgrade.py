"""`python -m db upgrade`: apply the migrations, then load the seed and the policy file."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from db.seed import seed
from db.session import get_engine
from core.settings import get_settings

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def upgrade(*, sites: int | None = None, assets_per_type: int | None = None) -> None:
    """Migrate to head and refresh the seed, in one transaction; safe to run concurrently."""
    cfg = Config(str(ALEMBIC_INI))
    with get_engine().begin() as conn:
        # Several processes may start at once (docker compose, make run): one upgrades at a time.
        conn.execute(text("SELECT pg_advisory_xact_lock(7340001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        seed(conn, sites=sites, assets_per_type=assets_per_type)
        set_reader_password(conn, get_settings().grafana_db_password)


def set_reader_password(conn, password: str | None) -> None:
    """Give Grafana's read-only role (migration 0007) the password of GRAFANA_DB_PASSWORD; unset
    leaves it as it is. PostgreSQL quotes the literal (format %L), so any character is safe."""
    if not password:
        return
    statement = conn.execute(text("SELECT format('ALTER ROLE grafana_reader PASSWORD %L', CAST(:pw AS text))"),
                             {"pw": password}).scalar_one()
    conn.connection.driver_connection.execute(statement)  # no parameters: a '%' stays a '%'
