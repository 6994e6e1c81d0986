"""Health: the API answers and the database is reachable."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from db.session import get_engine

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> JSONResponse:
    """200 when the database answers, 503 otherwise."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"status": "degraded", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
