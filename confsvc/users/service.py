"""Use cases for users and API tokens. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.errors import Conflict, Invalid, NotFound, Unauthorized
from confsvc.users import security
from confsvc.users.models import ApiToken, Role, User, UserUnit
from confsvc.users.principal import Principal

#: Roles that act only within assigned units (and their sub-units).
SCOPED_ROLES = frozenset({Role.operator, Role.requester})

# A light reference to the inventory's unit tree, so scope expansion needs no import of the
# endpoints domain (imports flow core ← endpoints, never back).
_units = sa.table("units", sa.column("id", sa.Integer), sa.column("parent_id", sa.Integer),
                  sa.column("code", sa.String))


def expand_units(session: Session, unit_ids: set[int]) -> frozenset[int]:
    """``unit_ids`` and all their descendants, through a recursive CTE (one query, any depth)."""
    if not unit_ids:
        return frozenset()
    tree = sa.select(_units.c.id).where(_units.c.id.in_(unit_ids)).cte("tree", recursive=True)
    tree = tree.union_all(sa.select(_units.c.id).where(_units.c.parent_id == tree.c.id))
    return frozenset(session.exec(sa.select(tree.c.id)).scalars())


def unit_ids_for_codes(session: Session, codes: list[str]) -> list[int]:
    """Resolve official unit codes. Raises Invalid naming every unknown code."""
    rows = dict(session.exec(sa.select(_units.c.code, _units.c.id).where(_units.c.code.in_(codes))).all())
    missing = [c for c in codes if c not in rows]
    if missing:
        raise Invalid(f"unknown unit code(s): {', '.join(missing)}", code="unknown_unit")
    return [rows[c] for c in codes]


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    full_name: str = "",
    email: str | None = None,
    unit_ids: list[int] | None = None,
) -> User:
    """Create a user. Operators must have at least one unit; other roles must have none.

    Raises:
        Invalid: bad role/unit combination, short password.
        Conflict: ``username`` taken (code ``duplicate_username``).
    """
    unit_ids = unit_ids or []
    if role in SCOPED_ROLES and not unit_ids:
        raise Invalid(f"{'an operator' if role is Role.operator else 'a requester'} needs at least one unit",
                      code="operator_without_units")
    if role not in SCOPED_ROLES and unit_ids:
        raise Invalid("only operators and requesters are scoped to units", code="units_for_unscoped_role")
    if len(password) < 8:
        raise Invalid("password must have at least 8 characters", code="weak_password")
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise Conflict(f"username {username!r} already exists", code="duplicate_username")
    user = User(username=username, password_hash=security.hash_password(password), role=role,
                full_name=full_name, email=email)
    session.add(user)
    session.flush()
    for unit_id in dict.fromkeys(unit_ids):
        session.add(UserUnit(user_id=user.id, unit_id=unit_id))
    session.flush()
    return user


def principal_for(session: Session, user: User) -> Principal:
    unit_ids: frozenset[int] | None = None
    if user.role in SCOPED_ROLES:
        assigned = set(session.exec(select(UserUnit.unit_id).where(UserUnit.user_id == user.id)).all())
        unit_ids = expand_units(session, assigned)
    return Principal(user_id=user.id, username=user.username, role=user.role, unit_ids=unit_ids)


def authenticate(session: Session, username: str, password: str) -> User:
    """Check a username and password. Raises Unauthorized without saying which was wrong."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        security.verify_password(_DUMMY_HASH, password)  # same cost whether or not the user exists
        raise Unauthorized("wrong username or password", code="bad_credentials")
    if not security.verify_password(user.password_hash, password) or not user.active:
        raise Unauthorized("wrong username or password", code="bad_credentials")
    return user


_DUMMY_HASH = security.hash_password("timing-equaliser")


def issue_token(session: Session, user: User, name: str, *, ttl: timedelta | None = None) -> tuple[ApiToken, str]:
    """Create an API token. Returns the row and the secret, which is never stored or shown again."""
    secret, digest = security.new_token()
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:12], token_hash=digest,
                     expires_at=utc_now() + ttl if ttl else None)
    session.add(token)
    session.flush()
    return token, secret


def user_for_token(session: Session, secret: str, *, now: datetime | None = None) -> User:
    """The active user owning ``secret``.

    The lookup is by SHA-256 digest (an index hit, no timing signal about the secret), then the
    digests are compared with ``hmac.compare_digest``.

    Raises:
        Unauthorized: unknown, revoked or expired token, or an inactive user.
    """
    now = now or utc_now()
    digest = security.hash_token(secret)
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if token is None or not security.token_matches(secret, token.token_hash):
        raise Unauthorized("invalid token", code="invalid_token")
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        raise Unauthorized("token revoked or expired", code="invalid_token")
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        raise Unauthorized("invalid token", code="invalid_token")
    return user


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)).all())


def revoke_token(session: Session, principal: Principal, token_id: int) -> ApiToken:
    """Revoke a token of one's own (admins: anyone's). Raises NotFound for others' tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user_id and not principal.is_admin):
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utc_now()
        session.add(token)
        session.flush()
    return token
