"""Domain errors that the HTTP layer turns into 4xx answers naming the field or the rule."""

from __future__ import annotations

from typing import Any


class SotongError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        body.update(self.details)
        return body


class BadRequest(SotongError):
    pass


class NotFound(SotongError):
    status = 404
    code = "not_found"


class Forbidden(SotongError):
    status = 403
    code = "forbidden"


class Unauthorized(SotongError):
    status = 401
    code = "unauthorized"


class Conflict(SotongError):
    status = 409
    code = "conflict"


class TooManyRequests(SotongError):
    status = 429
    code = "too_many_requests"
