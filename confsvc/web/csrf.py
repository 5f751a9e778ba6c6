"""CSRF guard for JSON API writes authenticated by the web session cookie.

``users.deps.resolve_user`` accepts the web session cookie on ``/api/v1`` too, so the browser's
scripts (the booking form's live check) call the same API as every other client. A cookie is
sent by the browser on its own, so a write (POST, PUT, PATCH, DELETE) under ``/api/`` that carries
the cookie's user must also carry the session's CSRF token in the ``X-CSRF-Token`` header (the
page puts it in ``<meta name="csrf-token">``), unless it carries a *well-formed* ``Authorization:
Bearer`` header: a header a client sets itself is not something a foreign site can forge, and such
a request is authenticated by its token alone. Any other ``Authorization`` header (``Basic …``, an
empty ``Bearer``) does not exempt the request (issue 16, defect 7), and ``users.deps`` answers it
401, never falling back to the cookie.

Installed by ``create_app`` inside ``SessionMiddleware`` (it reads ``scope["session"]``).
"""

from __future__ import annotations

import hmac

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from confsvc.errors import Unauthorized
from confsvc.users.deps import SESSION_USER_KEY, bearer_token
from confsvc.web.common import CSRF_HEADER, CSRF_KEY

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _has_bearer(header: bytes | None) -> bool:
    if header is None:
        return False
    try:
        return bearer_token(header.decode("latin-1")) is not None
    except Unauthorized:
        return False


class ApiCsrfGuard:
    """Answers 403 ``csrf_failed`` to a cookie-authenticated API write without the right header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and scope["path"].startswith("/api/"):
            headers = dict(scope["headers"])
            session = scope.get("session") or {}
            if session.get(SESSION_USER_KEY) is not None and not _has_bearer(headers.get(b"authorization")):
                expected = str(session.get(CSRF_KEY, ""))
                sent = headers.get(CSRF_HEADER.encode(), b"").decode("latin-1")
                if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
                    response = JSONResponse({"detail": "CSRF token missing or wrong in X-CSRF-Token; reload the page",
                                             "code": "csrf_failed"}, status_code=403)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
