"""The dashboard runs below the ingest path's CPU priority (DASHBOARD_NICE): on a small server a
page being drawn must not delay a gateway's readings (docs/performance.md, soak). Streamlit runs
app.py again at every interaction; this module is imported once per process, so the priority is
lowered once."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
_lowered = False


def lower_once(nice: int) -> None:
    """Add `nice` to this process's niceness, the first time only (0: leave it)."""
    global _lowered
    if _lowered or nice <= 0:
        return
    _lowered = True
    try:
        os.nice(nice)
    except OSError as exc:  # a platform without nice(): the dashboard runs at the default priority
        log.warning("could not lower the dashboard's priority: %s", exc)
