"""Domain errors that know their HTTP status, rendered by one handler in ``main.py``.

Body shape (SPEC "Interfaces"): ``{"detail": <human text>, "code": <machine code>, ...extra}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ConfsvcError(Exception):
    """Base of every error a service raises on purpose.

    Attributes:
        status_code: HTTP status the handler answers with.
        code: stable machine-readable identifier (snake_case).
        detail: human-readable message (may be Vietnamese or English).
        extra: additional JSON-serialisable fields merged into the response body.
    """

    status_code: int = 400
    code: str = "bad_request"
    #: :meth:`to_body` holds JSON values only (str, int, float, bool, None, lists, str-keyed dicts): the
    #: API's handler sends it as is instead of walking it with ``jsonable_encoder``, which cost a
    #: refusal listing its conflicts about 1 ms (issue 16, "Throughput under contention").
    body_is_json: bool = False

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


class Invalid(ConfsvcError):
    """Well-formed request whose content breaks a rule (HTTP 422)."""

    status_code = 422
    code = "invalid"


class BadRequest(ConfsvcError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ConfsvcError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ConfsvcError):
    status_code = 403
    code = "forbidden"


class NotFound(ConfsvcError):
    status_code = 404
    code = "not_found"


class Conflict(ConfsvcError):
    """The request collides with existing state (duplicate key, double booking) (HTTP 409)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(ConfsvcError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(ConfsvcError):
    """Throttled (HTTP 429); ``retry_after`` (seconds) goes into the ``Retry-After`` header too."""

    status_code = 429
    code = "too_many_requests"


class ServiceUnavailable(ConfsvcError):
    """A dependency is down or busy (HTTP 503); ``retry_after`` (seconds) when it is transient."""

    status_code = 503
    code = "service_unavailable"


class ErrorBody(BaseModel):
    """Every error answer (SPEC "Interfaces"): human ``detail``, machine ``code``, maybe more fields
    (``errors`` for bad input, ``retry_after`` in seconds, a rule's ``conflicts``)."""

    model_config = ConfigDict(extra="allow", title="ErrorBody")
    detail: str
    code: str
    errors: list[dict[str, Any]] = Field(default=[], description="Bad input: one ``{loc, msg, type}`` per field "
                                         "(``loc`` e.g. ``[\"body\", \"start\"]``); an import: one "
                                         "``{line, reason}`` per refused row.")
