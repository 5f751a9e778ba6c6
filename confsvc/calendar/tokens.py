"""Feed tokens (lịch đăng ký iCal): created and revoked through the API, stored hashed.

Permissions (SPEC "Who uses it", issue 13): admin and secretariat for any scope; an operator only
for units, rooms and endpoints inside their units (never the whole province); a viewer (leaders)
creates feeds for what they may see and lists or revokes only their own.
Services flush, never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from confsvc.calendar.models import FeedScope, FeedToken
from confsvc.clock import utc_now
from confsvc.endpoints.models import Endpoint, Room, Unit, UnitLevel
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.tokens import digests_match, hash_secret, new_secret
from confsvc.users.principal import MANAGE_FEEDS, MANAGE_PROVINCE_FEEDS, Principal

#: Secrets look like ``cal_<43 url-safe characters>`` (256 random bits).
SECRET_PREFIX = "cal_"


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
    """The one permission check of feeds: every role may create a feed for what it may see (a province
    feed for a unit-scoped role only with ``MANAGE_PROVINCE_FEEDS``), and an existing feed
    (``created_by``) is the caller's own unless they have ``MANAGE_FEEDS`` (issue 13: leaders — the
    viewer role — get their own calendar link; they list and revoke only their own).

    Raises Forbidden (reach or owner), NotFound, Invalid."""
    if created_by is not None and not principal.can(MANAGE_FEEDS) and created_by != principal.user_id:
        raise Forbidden("this calendar feed belongs to someone else", code="forbidden_scope")
    unit_id = scope_unit_id(session, scope, scope_id)
    if principal.unit_ids is not None:
        if scope is FeedScope.province and principal.unit_scoped:
            principal.require(MANAGE_PROVINCE_FEEDS)
        principal.require_unit(unit_id)


def create_feed_token(session: Session, principal: Principal, *, scope: FeedScope, scope_id: int,
                      include_sub_units: bool = True, name: str = "") -> tuple[FeedToken, str]:
    """A new feed token. Returns the row and the secret, which is never stored or shown again.

    Raises: Forbidden, NotFound (unknown scope object), Invalid (province scope on a non-province).
    """
    _require_manage(session, principal, scope, scope_id)
    fresh = new_secret(SECRET_PREFIX)
    secret = fresh.secret
    token = FeedToken(scope=scope, scope_id=scope_id, name=name,
                      include_sub_units=include_sub_units or scope is FeedScope.province,
                      prefix=fresh.shown, token_hash=fresh.digest, created_by=principal.user_id)
    session.add(token)
    session.flush()
    return token, secret


def list_feed_tokens(session: Session, principal: Principal) -> list[FeedToken]:
    """Tokens the caller may manage, newest first (an operator's: those inside their units; a viewer's:
    their own)."""
    query = select(FeedToken).order_by(FeedToken.created_at.desc(), FeedToken.id.desc())
    if not principal.can(MANAGE_FEEDS):
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
        if (token.scope is not FeedScope.province or not principal.unit_scoped) and principal.can_see_unit(unit_id):
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
        # The scope object is gone (or in another province); only a manager with global reach may still revoke.
        if not principal.national:
            raise
        principal.require(MANAGE_PROVINCE_FEEDS)
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
        if digests_match(token.token_hash, digest) and secret:
            found = token
    if found is None:
        raise NotFound("not found", code="not_found")
    return found
