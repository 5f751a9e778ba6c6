"""Pure ASGI middleware every response passes through (installed by ``create_app``):

- :class:`SecurityHeaders`: CSP, ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy`` on every
  HTTP response, and the ``Secure`` flag on our cookies when the request came over HTTPS (issue 16,
  defect 6);
- :class:`RequestId`: an ``X-Request-ID`` per request (the client's when it is sane, else a new one),
  echoed in the response and kept in :data:`confsvc.logs.request_id` for every log line;
- :class:`LiveChannels`: WebSocket handshakes to the live channels, past the HTTP-only middlewares.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confsvc import logs

#: Scripts, styles, images and connections (``fetch``, same-origin WebSocket) from this origin only;
#: no inline script (the templates' ``<script type="application/json">`` data blocks do not execute),
#: no framing (``frame-ancestors``, with ``X-Frame-Options`` for older browsers).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
                           "form-action 'self'; frame-ancestors 'none'")
#: FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN with an inline script: they get
#: only the framing and sniffing headers.
_DOCS_PATHS = ("/docs", "/redoc")
_STATIC_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the security headers to every HTTP response, and ``Secure`` to ``Set-Cookie`` when the
    request's scheme is https (directly, or behind a proxy uvicorn trusts: ``--proxy-headers`` with
    ``X-Forwarded-Proto``) or ``always_secure`` (``CONFSVC_COOKIE_SECURE=true``)."""

    def __init__(self, app: ASGIApp, *, always_secure: bool = False) -> None:
        self.app, self.always_secure = app, always_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.always_secure or scope.get("scheme") == "https"
        csp = not scope["path"].startswith(_DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _STATIC_HEADERS:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
                if csp and "content-security-policy" not in headers:
                    headers.append("content-security-policy", CONTENT_SECURITY_POLICY)
                if secure:
                    cookies = headers.getlist("set-cookie")
                    if any("secure" not in c.lower().split("; ") for c in cookies):
                        del headers["set-cookie"]
                        for cookie in cookies:
                            headers.append("set-cookie", cookie if "secure" in cookie.lower().split("; ")
                                           else cookie + "; secure")
            await send(message)

        await self.app(scope, receive, send_with_headers)


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A new request id: 32 hex digits, unique across processes (a random per-process half) and
    within one (a counter). Not a secret; cheaper than ``uuid4()`` (no ``os.urandom`` call for each of
    thousands of display handshakes)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


#: A client's request id is kept when it is this sane (no log injection, bounded); else a new one.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestId:
    """Reads or makes the request id, exposes it to logging, and answers it in ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = sent if _SANE_ID.fullmatch(sent) else new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = logs.request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        try:
            # A WebSocket's messages carry no headers: its sends are not wrapped (one frame less for each
            # message to thousands of displays).
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            logs.request_id.reset(token)


class LiveChannels:
    """Hands every WebSocket handshake to ``channels`` (the live channel's routes), wrapped in
    ``session`` (the web session's middleware) when the handshake carries a cookie, and everything else
    to the HTTP middlewares after it.

    The HTTP middlewares (security headers, metrics, body limit, CSRF) and FastAPI's routing pass a
    WebSocket through untouched, but each layer still costs every connection: ~4,000 room displays
    reconnecting at once after a restart pay them all together (issue 14, ``bench/reconnect.py``).
    A path with no channel is refused by ``channels`` (a handshake closed before it is accepted: HTTP 403).
    """

    def __init__(self, app: ASGIApp, channels: ASGIApp, session: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app, self.channels, self.with_session = app, channels, session(channels)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
        elif any(name == b"cookie" for name, _ in scope["headers"]):  # a page of confsvc: its web session
            await self.with_session(scope, receive, send)
        else:  # a display or client with a token: no session to read
            await self.channels(scope, receive, send)
