"""Domain errors. Each carries its HTTP status; the API renders them with one handler and the
dashboard with one helper (`st.error`). Services raise these, never HTTPException."""

from __future__ import annotations


NOTHING_STORED = "nothing was stored"  # said once, by to_dict, of every refused write


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ([{"field": field, "reason": message}] if field else [])

    def to_dict(self, *, refused_write: bool = False) -> dict:
        """The documented error body; a refused write also says that nothing was stored."""
        body: dict = {"detail": f"{self.message}; {NOTHING_STORED}" if refused_write else self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class InvalidInput(DomainError):
    status_code = 422

    @classmethod
    def from_validation(cls, errors: list[dict], *, prefix_fields: tuple = ("body", "query", "path")) -> InvalidInput:
        """From pydantic's error list: each error named by its field path (`readings[3].timestamp`,
        `asset_id`), without FastAPI's location prefix."""
        items = [{"field": field_path(e["loc"], skip=prefix_fields), "reason": e["msg"]} for e in errors]
        first = items[0] if items else {"field": "body", "reason": "invalid"}
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        return cls(f"{first['field']}: {first['reason']}{more}", errors=items)


def field_path(loc, *, skip: tuple = ("body",)) -> str:
    """('body', 'readings', 3, 'timestamp') -> 'readings[3].timestamp'."""
    out = ""
    for p in loc:
        if p in skip:
            continue
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "body"


class NotFound(DomainError):
    status_code = 404


class UnknownSite(InvalidInput):
    pass


class UnknownAsset(InvalidInput):
    pass


class UnknownMetric(InvalidInput):
    pass


class InvalidTransition(DomainError):
    status_code = 409


class PayloadTooLarge(DomainError):
    status_code = 413


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    """A valid key without the right for this operation (a gateway key on an action)."""

    status_code = 403


class Unavailable(DomainError):
    """The API cannot serve this now (database unreachable, ingest queue full): retry later.
    Rendered as 503 with a Retry-After header."""

    status_code = 503

    def __init__(self, message: str, *, retry_after_s: int = 2, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s

    def to_dict(self, *, refused_write: bool = True) -> dict:
        body = super().to_dict(refused_write=True)
        body["detail"] += ", retry later"
        return body
