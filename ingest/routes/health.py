"""Health: the API answers, and which dependency is down if any."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from db.session import get_engine

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> JSONResponse:
    """200 when the database answers; 503 with Retry-After and `down: ["database"]` otherwise
    (within the connect timeout, DB_CONNECT_TIMEOUT_S)."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "down"
        return JSONResponse({"status": "degraded", "detail": "database unavailable; retry later",
                             "database": f"unreachable: {type(exc).__name__}", "down": ["database"]},
                            status_code=503, headers={"Retry-After": "2"})
    return JSONResponse({"status": "ok", "database": "ok", "down": []})
