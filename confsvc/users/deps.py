"""FastAPI dependencies that turn a request into a :class:`Principal`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from confsvc.db import make_session
from confsvc.errors import Unauthorized
from confsvc.users import service
from confsvc.users.models import Role, User
from confsvc.users.principal import Principal

SESSION_USER_KEY = "user_id"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def resolve_user(request: Request, session: Session) -> User | None:
    """The user behind a bearer token or the web session cookie; ``None`` when neither is present.

    Raises:
        Unauthorized: a bearer token is present but invalid (never silently anonymous).
    """
    secret = _bearer(request)
    if secret is not None:
        return service.user_for_token(session, secret)
    user_id = request.session.get(SESSION_USER_KEY) if "session" in request.scope else None
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active:
        request.session.clear()
        return None
    return user


def get_principal(request: Request) -> Principal:
    """The caller, resolved in a short read session of its own.

    Raises Unauthorized (401) when the request carries no valid credentials.

    Not the request's write session: on SQLite the first statement of a write session takes the
    database lock (BEGIN IMMEDIATE), and FastAPI runs each sync dependency and the handler in
    separate thread-pool hops. A request that took the lock in a dependency hop would then wait
    for a free thread while every pool thread waits for its lock (seen: 50 concurrent bookings
    stalled until the pool timeout). Authentication therefore never touches the write session.
    """
    with make_session(request.app.state.engine, write=False) as session:
        user = resolve_user(request, session)
        if user is None:
            raise Unauthorized("authentication required: send `Authorization: Bearer <token>`",
                               code="not_authenticated")
        return service.principal_for(session, user)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Any:
    """A dependency that answers 403 ``forbidden_role`` unless the caller has one of ``roles``.

    Write routes that read their path object on the request's write session use it, so that the role
    is checked before any write transaction starts (issue 16 defect 2: on SQLite the first statement
    of a write session takes the write lock, and forbidden writes queued for it). The service still
    checks the role itself; this only moves the refusal before the lock. ``async`` on purpose: no I/O,
    so no thread-pool hop.
    """
    async def guard(principal: CurrentPrincipal) -> Principal:
        principal.require_role(*roles)
        return principal

    return Depends(guard)
