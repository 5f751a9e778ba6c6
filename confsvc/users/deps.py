"""FastAPI dependencies that turn a request into a :class:`Principal`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from confsvc.db import make_session
from confsvc.errors import Unauthorized
from confsvc.users import security, service, token_cache
from confsvc.users.models import User
from confsvc.users.principal import Capability, Principal
from confsvc.users.token_cache import PrincipalCache

SESSION_USER_KEY = "user_id"
#: The web session's secret in the signed cookie; its SHA-256 is a ``web_sessions`` row.
SESSION_ID_KEY = "sid"

#: ``Bearer <token68>`` (RFC 6750 §2.1), the scheme case-insensitive (RFC 9110 §11.1).
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Authorization: Bearer`` header; ``None`` without the header.

    Raises:
        Unauthorized (``invalid_authorization``): any other ``Authorization`` header (``Basic …``, an
        empty ``Bearer``, garbage). Such a request is never authenticated by the cookie instead
        (issue 16, defect 7: the CSRF guard trusts only a well-formed bearer header).
    """
    if authorization is None:
        return None
    match = _BEARER.fullmatch(authorization)
    if match is None:
        raise Unauthorized("malformed Authorization header: send `Authorization: Bearer <token>`",
                           code="invalid_authorization")
    return match.group(1)


def resolve_user(request: Request, session: Session) -> User | None:
    """The user behind a bearer token or a live web session; ``None`` when neither is present.

    The cookie counts only while its ``web_sessions`` row exists (logout and revocation delete it).

    Raises:
        Unauthorized: a bearer token is present but invalid, or the ``Authorization`` header is
        malformed (never silently anonymous, never the cookie instead).
    """
    secret = bearer_token(request.headers.get("authorization"))
    if secret is not None:
        return service.user_for_token(session, secret)
    cookie = request.session if "session" in request.scope else {}
    if cookie.get(SESSION_USER_KEY) is None:
        return None
    user = service.user_for_web_session(session, cookie.get(SESSION_USER_KEY), cookie.get(SESSION_ID_KEY))
    if user is None:
        cookie.clear()
    return user


async def get_principal(request: Request) -> Principal:
    """The caller, resolved in a short read session of its own (:func:`resolve_principal`).

    ``async``: a bearer token cached in this process (``users.token_cache``) is answered on the event
    loop, without a thread-pool hop (issue 16, "Throughput under contention"); anything that reads
    the database runs in the thread pool.
    """
    cached = _cached_principal(request)
    if cached is not None:
        return cached
    return await run_in_threadpool(resolve_principal, request)


def _cached_principal(request: Request) -> Principal | None:
    secret = bearer_token(request.headers.get("authorization"))
    cache: PrincipalCache | None = getattr(request.app.state, "principals", None)
    if secret is None or cache is None:
        return None
    return cache.lookup(security.hash_token(secret))


def resolve_principal(request: Request) -> Principal:
    """The caller, resolved in a short read session of its own (blocking: :func:`get_principal` calls
    it in the thread pool).

    Raises Unauthorized (401) when the request carries no valid credentials.

    A bearer token's principal is kept for ``Settings.auth_cache_seconds`` in this process
    (``users.token_cache``: revocation, a disabled user, a role or unit change end it at once here and
    through the live fan-out elsewhere); a miss, and every cookie, reads the database.

    Not the request's write session: on SQLite the first statement of a write session takes the
    database lock (BEGIN IMMEDIATE), and FastAPI runs each sync dependency and the handler in
    separate thread-pool hops. A request that took the lock in a dependency hop would then wait
    for a free thread while every pool thread waits for its lock (seen: 50 concurrent bookings
    stalled until the pool timeout). Authentication therefore never touches the write session.
    """
    secret = bearer_token(request.headers.get("authorization"))
    cache: PrincipalCache | None = getattr(request.app.state, "principals", None)
    if secret is not None and cache is not None:
        digest = security.hash_token(secret)
        cached = cache.lookup(digest)
        if cached is not None:
            return cached
        read_generation = token_cache.generation()
        with make_session(request.app.state.engine, write=False) as session:
            token, owner = service.token_and_user(session, secret)
            principal = service.principal_for(session, owner)
        cache.remember(digest, principal, token.expires_at, read_generation)
        return principal
    with make_session(request.app.state.engine, write=False) as session:
        user = resolve_user(request, session)
        if user is None:
            raise Unauthorized("authentication required: send `Authorization: Bearer <token>`",
                               code="not_authenticated")
        return service.principal_for(session, user)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_capability(capability: Capability) -> Any:
    """A dependency that answers 403 ``forbidden_role`` unless the caller has ``capability``.

    Write routes that read their path object on the request's write session use it, so that the role
    is checked before any write transaction starts (issue 16 defect 2: on SQLite the first statement
    of a write session takes the write lock, and forbidden writes queued for it). The service still
    checks the role itself; this only moves the refusal before the lock. ``async`` on purpose: no I/O,
    so no thread-pool hop.
    """
    async def guard(principal: CurrentPrincipal) -> Principal:
        principal.require(capability)
        return principal

    return Depends(guard)
