"""`python -m simulator`: simulated sensors posting to API_URL with INGEST_API_KEY, like a gateway.
`python -m simulator backfill --hours 24`: post simulated history through the batch endpoint."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import UTC, datetime

from core.logs import setup_logging
from core.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run_p = sub.add_parser("run", help="real time (the default)")
    for p in (parser, run_p):
        p.add_argument("--sites", type=int, help="simulate only the first N sites (register more with "
                                                 "`python -m db upgrade --sites N --assets-per-type N`)")
        p.add_argument("--assets-per-type", type=int, help="simulate at most N assets of each type per site")
    bf = sub.add_parser("backfill", help="post simulated history ending now")
    bf.add_argument("--hours", type=float, default=24)
    bf.add_argument("--if-empty", action="store_true", help="only when no asset has telemetry yet")
    args = parser.parse_args(argv)
    setup_logging("simulator")
    settings = get_settings()

    if args.command == "backfill":
        from simulator.backfill import backfill, backfill_if_empty

        fn = backfill_if_empty if args.if_empty else backfill
        n = fn(settings.api_url, settings.ingest_api_key, hours=args.hours, now=datetime.now(UTC),
               interval_s=settings.sim_interval_s, seed=settings.sim_seed)
        print(f"{n} points stored")
        return

    from simulator.runner import run

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(settings, stop=stop, sites=args.sites, assets_per_type=args.assets_per_type)


if __name__ == "__main__":
    main()
