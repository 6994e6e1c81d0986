"""`python -m engine`: the rule scheduler (every RULES_INTERVAL_S; one active instance), and
beside it the webhook relay when WEBHOOK_URL is set (engine/relay.py; also `python -m engine.relay`).
`python -m engine once`: evaluate every policy now and print what fired."""

from __future__ import annotations

import argparse

from core.logs import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "once"], default="serve",
                        help="serve (default): run the scheduler; once: one evaluation now")
    args = parser.parse_args(argv)
    setup_logging("scheduler")
    from engine.scheduler import run_once, serve

    if args.command == "once":
        result = run_once(source="cli")
        print(f"{result.policies} policies, {result.assets} assets, {len(result.fired)} alerts raised")
        for f in result.fired:
            print(f"  {f['policy_code']} {f['asset_code']}: {f['message']}")
    else:
        _relay_beside()
        serve()


def _relay_beside() -> None:
    """The webhook relay in a thread of the scheduler process (any number of relays may run)."""
    import logging
    import threading

    from core.settings import get_settings
    from engine.relay import BadSecret, Relay

    if get_settings().webhook_urls:
        try:
            relay = Relay()
        except BadSecret as exc:  # the rules must run even if the webhooks are misconfigured
            logging.getLogger("engine.relay").error("webhooks not sent: %s", exc)
            return
        threading.Thread(target=relay.run, name="relay", daemon=True).start()


if __name__ == "__main__":
    main()
