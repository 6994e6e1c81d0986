"""Request dependencies: a session whose transaction the request owns, and the API key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Query
from sqlalchemy.orm import Session

from db.errors import Unauthorized
from db.session import session_scope
from db.settings import get_settings


def get_session() -> Iterator[Session]:
    """One transaction per request: committed after the handler, rolled back on error."""
    with session_scope() as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a 200 means the
# change is stored (FastAPI's default would commit after answering).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def require_api_key(x_api_key: Annotated[str | None, Header(description="INGEST_API_KEY")] = None) -> None:
    """Writes need X-API-Key equal to INGEST_API_KEY (the key itself is never logged)."""
    expected = get_settings().ingest_api_key
    if x_api_key is None:
        raise Unauthorized("missing X-API-Key header", field="X-API-Key")
    if not secrets.compare_digest(x_api_key.encode(), expected.encode()):
        raise Unauthorized("invalid API key", field="X-API-Key")


ApiKey = Depends(require_api_key)


# Ids in paths and filters fit their column (sites and assets: integer; alerts, work orders and
# faults: bigint): anything larger is refused with a 422 naming the parameter, before it reaches
# the database (a 40-digit id must not become a 500).
SmallId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SmallIdFilter = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
BigId = Annotated[int, Path(ge=1, le=2**63 - 1)]
