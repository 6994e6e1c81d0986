"""Database commands: `python -m db upgrade` (migrations + seed), `python -m db url`,
`python -m db maintain` (one storage maintenance pass), `python -m db backup FILE` and
`python -m db restore FILE` (pg_dump / pg_restore, custom format)."""

from __future__ import annotations

import argparse

from core.logs import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="apply migrations, then load/refresh sites, assets, metrics and policies")
    up.add_argument("--sites", type=int, help="register sites up to CAS-S<N> (load tests)")
    up.add_argument("--assets-per-type", type=int, help="register N assets of each type per site (load tests)")
    sub.add_parser("url", help="print the database URL in use (starts the embedded server if needed)")
    sub.add_parser("maintain", help="one storage maintenance pass: partitions ahead, retention, compaction, roll-up")
    bk = sub.add_parser("backup", help="dump the database to FILE (pg_dump custom format)")
    bk.add_argument("file")
    rs = sub.add_parser("restore", help="restore FILE (from `backup`) into the database, which must be empty")
    rs.add_argument("file")
    rs.add_argument("--force", action="store_true", help="restore into a non-empty database: its tables are dropped first")
    args = parser.parse_args(argv)
    setup_logging("db")
    if args.cmd == "upgrade":
        from db.upgrade import upgrade

        upgrade(sites=args.sites, assets_per_type=args.assets_per_type)
        print("database upgraded and seeded")
    elif args.cmd == "maintain":
        import sys
        from datetime import UTC, datetime

        from core.settings import get_settings
        from engine.maintenance import maintain

        st = get_settings()
        report = maintain(now=datetime.now(UTC), hot_days=st.telemetry_hot_days,
                          telemetry_retention_days=st.telemetry_retention_days,
                          rollup_retention_days=st.rollup_retention_days, progress=sys.stderr.isatty())
        if report is None:
            print("another maintenance pass is running; nothing done")
        else:
            print("\n".join(report.lines()))
    elif args.cmd in ("backup", "restore"):
        import sys

        from db import backup
        from db.errors import InvalidInput

        try:
            print(backup.backup(args.file) if args.cmd == "backup" else backup.restore(args.file, force=args.force))
        except (InvalidInput, RuntimeError) as exc:
            print(f"{args.cmd}: {exc}", file=sys.stderr)
            sys.exit(2 if isinstance(exc, InvalidInput) else 1)
    elif args.cmd == "url":
        from db.session import database_url

        print(database_url())


if __name__ == "__main__":
    main()
