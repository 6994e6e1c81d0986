"""Domain errors. Each carries its HTTP status; the API renders them with one handler and the
dashboard with one helper (`st.error`). Services raise these, never HTTPException."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ([{"field": field, "reason": message}] if field else [])

    def to_dict(self) -> dict:
        body: dict = {"detail": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class InvalidInput(DomainError):
    status_code = 422


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
