"""Database commands: `python -m db upgrade` (migrations + seed), `python -m db url`."""

from __future__ import annotations

import argparse

from db.logs import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="apply migrations, then load/refresh sites, assets, metrics and policies")
    up.add_argument("--sites", type=int, help="register sites up to CAS-S<N> (load tests)")
    up.add_argument("--assets-per-type", type=int, help="register N assets of each type per site (load tests)")
    sub.add_parser("url", help="print the database URL in use (starts the embedded server if needed)")
    args = parser.parse_args(argv)
    setup_logging("db")
    if args.cmd == "upgrade":
        from db.upgrade import upgrade

        upgrade(sites=args.sites, assets_per_type=args.assets_per_type)
        print("database upgraded and seeded")
    elif args.cmd == "url":
        from db.session import database_url

        print(database_url())


if __name__ == "__main__":
    main()
