"""Feed tokens (lịch đăng ký iCal): created and revoked through the API, stored hashed.

Permissions (SPEC "Who uses it"): admin and secretariat for any scope; an operator only for
units, rooms and endpoints inside their units (never the whole province); viewers not at all.
Services flush, never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.endpoints.models import Endpoint, Room, Unit, UnitLevel
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.calendar.models import FeedScope, FeedToken
from confsvc.users.models import Role
from confsvc.users.principal import Principal

#: Secrets look like ``cal_<43 url-safe characters>`` (256 random bits).
SECRET_PREFIX = "cal_"
#: Roles that manage every feed within their reach. Every other role (viewer: the leaders) may create
#: feeds for what it may see and list or revoke only its own (issue 13: leaders could not get a link).
MANAGERS = (Role.admin, Role.secretariat, Role.operator)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of ``secret`` (what the table stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def scope_unit_id(session: Session, scope: FeedScope, scope_id: int) -> int:
    """The unit a scope belongs to (for permission checks).

    Raises:
        NotFound: the unit, room or endpoint does not exist.
        Invalid: ``province`` names a unit that is not a province.
    """
    if scope in (FeedScope.unit, FeedScope.province):
        unit = session.get(Unit, scope_id)
        if unit is None:
            raise NotFound(f"unit {scope_id} not found", code="unit_not_found")
        if scope is FeedScope.province and unit.level is not UnitLevel.province:
            raise Invalid(f"unit {scope_id} is not a province", code="not_a_province")
        return unit.id
    if scope is FeedScope.room:
        room = session.get(Room, scope_id)
        if room is None:
            raise NotFound(f"room {scope_id} not found", code="room_not_found")
        return room.unit_id
    endpoint = session.get(Endpoint, scope_id)
    if endpoint is None:
        raise NotFound(f"endpoint {scope_id} not found", code="endpoint_not_found")
    return session.get(Room, endpoint.room_id).unit_id


def _require_manage(session: Session, principal: Principal, scope: FeedScope, scope_id: int, *,
                    created_by: int | None = None) -> None:
    """The one permission check of feeds: the scope is within what ``principal`` may see (a province
    feed for a unit-scoped role only for admin/secretariat), and an existing feed (``created_by``) is the
    caller's own unless their role manages feeds (:data:`MANAGERS`).

    Raises Forbidden (reach or owner), NotFound, Invalid."""
    if created_by is not None and principal.role not in MANAGERS and created_by != principal.user_id:
        raise Forbidden("this calendar feed belongs to someone else", code="forbidden_scope")
    unit_id = scope_unit_id(session, scope, scope_id)
    if principal.unit_ids is not None:
        if scope is FeedScope.province:
            principal.require_role(Role.admin, Role.secretariat)
        principal.require_unit(unit_id)


def create_feed_token(session: Session, principal: Principal, *, scope: FeedScope, scope_id: int,
                      include_sub_units: bool = True, name: str = "") -> tuple[FeedToken, str]:
    """A new feed token. Returns the row and the secret, which is never stored or shown again.

    Raises: Forbidden, NotFound (unknown scope object), Invalid (province scope on a non-province).
    """
    _require_manage(session, principal, scope, scope_id)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = FeedToken(scope=scope, scope_id=scope_id, name=name,
                      include_sub_units=include_sub_units or scope is FeedScope.province,
                      prefix=secret[:12], token_hash=hash_secret(secret), created_by=principal.user_id)
    session.add(token)
    session.flush()
    return token, secret


def list_feed_tokens(session: Session, principal: Principal) -> list[FeedToken]:
    """Tokens the caller may manage, newest first (an operator's: those inside their units; a viewer's:
    their own)."""
    query = select(FeedToken).order_by(FeedToken.created_at.desc(), FeedToken.id.desc())
    if principal.role not in MANAGERS:
        query = query.where(FeedToken.created_by == principal.user_id)
    tokens = session.exec(query).all()
    if principal.unit_ids is None:
        return list(tokens)
    visible = []
    for token in tokens:
        try:
            unit_id = scope_unit_id(session, token.scope, token.scope_id)
        except (NotFound, Invalid):
            continue
        if token.scope is not FeedScope.province and principal.can_see_unit(unit_id):
            visible.append(token)
    return visible


def revoke_feed_token(session: Session, principal: Principal, token_id: int, *,
                      now: datetime | None = None) -> FeedToken:
    """Revoke at once (idempotent). Raises NotFound for a token outside the caller's reach."""
    token = session.get(FeedToken, token_id)
    if token is None:
        raise NotFound(f"feed token {token_id} not found", code="feed_token_not_found")
    try:
        _require_manage(session, principal, token.scope, token.scope_id, created_by=token.created_by)
    except NotFound:
        # The scope object is gone; only a manager with global reach may still revoke.
        principal.require_role(Role.admin, Role.secretariat)
    if token.revoked_at is None:
        token.revoked_at, token.revoked_by = now or utc_now(), principal.user_id
        session.add(token)
        session.flush()
    return token


def authenticate_feed(session: Session, scope: FeedScope, scope_id: int, secret: str | None) -> FeedToken:
    """The live token for ``scope``/``scope_id`` whose secret is ``secret``.

    Every live token of the scope is compared with ``hmac.compare_digest`` on the SHA-256 digests,
    without stopping at the first match, so timing tells nothing about the secret.

    Raises:
        NotFound: missing, wrong or revoked token, or an unknown scope object: one answer for all,
        so the response reveals nothing.
    """
    digest = hash_secret(secret or "")
    candidates = session.exec(select(FeedToken).where(FeedToken.scope == scope, FeedToken.scope_id == scope_id,
                                                      FeedToken.revoked_at.is_(None))).all()
    found = None
    for token in candidates:
        if hmac.compare_digest(token.token_hash, digest) and secret:
            found = token
    if found is None:
        raise NotFound("not found", code="not_found")
    return found
