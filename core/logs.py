"""Structured logging for every process: console lines by default, one JSON object a line
with LOG_FORMAT=json. Standard-library loggers (uvicorn, alembic, apscheduler) go through it too."""

from __future__ import annotations

import logging
import sys

import structlog

from core.settings import get_settings


def _drop_color_message(_logger, _method, event: dict) -> dict:
    """uvicorn passes an ANSI-coloured copy of each message as an extra: drop it."""
    event.pop("color_message", None)
    return event


def setup_logging(process: str) -> None:
    """Configure structlog and the standard logging module for this process."""
    settings = get_settings()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _drop_color_message,
                lambda _l, _m, ev: {**ev, "process": process},
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # keep test-capture handlers (pytest's caplog), replace the rest
    root.handlers[:] = [h for h in root.handlers if type(h).__module__.startswith("_pytest")] + [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "apscheduler"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # one line per request, per scheduled job or per queue option is noise; their warnings stay
    for name in ("httpx", "apscheduler", "persistqueue", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
