"""Use cases for users and API tokens. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from confsvc.users import security
from confsvc.users.models import ApiToken, Role, User, UserUnit, WebSession
from confsvc.users.principal import Principal
from confsvc.users.throttle import LoginThrottle

#: Roles that act only within assigned units (and their sub-units).
SCOPED_ROLES = frozenset({Role.operator, Role.requester})

# A light reference to the inventory's unit tree, so scope expansion needs no import of the
# endpoints domain (imports flow core ← endpoints, never back).
_units = sa.table("units", sa.column("id", sa.Integer), sa.column("parent_id", sa.Integer),
                  sa.column("code", sa.String), sa.column("level", sa.String))



def province_count(session: Session) -> int:
    """How many provinces the deployment holds (units of level ``province``)."""
    return int(session.exec(sa.select(sa.func.count()).select_from(_units)
                            .where(_units.c.level == "province")).scalar_one())


def provinces_of(session: Session, unit_ids: set[int]) -> set[int]:
    """The provinces (top units of level ``province``) ``unit_ids`` lie in, through a recursive CTE."""
    if not unit_ids:
        return set()
    up = sa.select(_units.c.id, _units.c.parent_id, _units.c.level).where(_units.c.id.in_(unit_ids)).cte(
        "up", recursive=True)
    up = up.union_all(sa.select(_units.c.id, _units.c.parent_id, _units.c.level)
                      .where(_units.c.id == up.c.parent_id))
    return set(session.exec(sa.select(up.c.id).where(up.c.level == "province")).scalars())


def default_province(session: Session, role: Role, unit_ids: list[int]) -> int | None:
    """The province a new user acts in (issue 14): the province of their units, or the deployment's
    only province, or none (a national user).

    Raises Invalid (``units_in_several_provinces``) when the units lie in more than one province."""
    if unit_ids:
        provinces = provinces_of(session, set(unit_ids))
        if len(provinces) > 1:
            raise Invalid("a user's units must lie in one province", code="units_in_several_provinces")
        if provinces:
            return provinces.pop()
    only = session.exec(sa.select(_units.c.id).where(_units.c.level == "province").limit(2)).scalars().all()
    return only[0] if len(only) == 1 else None


def require_province(session: Session, province_id: int, unit_ids: set[int]) -> None:
    """``province_id`` may be a user's province (issue 14): a unit of level ``province`` holding every unit
    of ``unit_ids`` (an operator's or requester's units).

    Raises Invalid ``not_a_province`` or ``units_outside_province``."""
    if province_id not in provinces_of(session, {province_id}):
        raise Invalid("a user's province must be a unit of level province", code="not_a_province")
    if unit_ids and provinces_of(session, unit_ids) - {province_id}:
        raise Invalid("a user's units must lie in their province", code="units_outside_province")


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
    province_id: int | None = None,
    creator: Principal | None = None,
) -> User:
    """Create a user. Operators must have at least one unit; other roles must have none.

    ``province_id`` (a unit of level ``province``) is the tenant the user acts in (issue 14); by default
    :func:`default_province`. A ``creator`` kept in a province creates users of that province only.

    Raises:
        Invalid: bad role/unit combination; ``weak_password`` (``security.password_weakness``);
        ``not_a_province``, ``units_outside_province``, ``units_in_several_provinces``.
        NotFound: ``creator`` names a unit outside their province.
        Conflict: ``username`` taken (code ``duplicate_username``).
    """
    unit_ids = unit_ids or []
    if creator is not None:
        for unit_id in unit_ids:
            creator.require_in_scope(unit_id, "unit")
        if creator.scope is not None:
            province_id = creator.province_id
    if province_id is None:
        province_id = default_province(session, role, unit_ids)
    else:
        require_province(session, province_id, set(unit_ids))
    if role in SCOPED_ROLES and not unit_ids:
        raise Invalid(f"{'an operator' if role is Role.operator else 'a requester'} needs at least one unit",
                      code="operator_without_units")
    if role not in SCOPED_ROLES and unit_ids:
        raise Invalid("only operators and requesters are scoped to units", code="units_for_unscoped_role")
    _require_strong(password, username, full_name, email)
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise Conflict(f"username {username!r} already exists", code="duplicate_username")
    user = User(username=username, password_hash=security.hash_password(password), role=role,
                full_name=full_name, email=email, province_id=province_id)
    session.add(user)
    session.flush()
    for unit_id in dict.fromkeys(unit_ids):
        session.add(UserUnit(user_id=user.id, unit_id=unit_id))
    session.flush()
    return user


def _require_strong(password: str, *user_inputs: str | None) -> None:
    weakness = security.password_weakness(password, *user_inputs)
    if weakness is not None:
        raise Invalid(weakness, code="weak_password")


def change_password(session: Session, user_id: int, current_password: str, new_password: str) -> User:
    """The user's own password change: checks the current one, the new one's strength, and ends
    every web session of the user (issue 16, defect 6).

    Raises:
        Unauthorized: ``current_password`` is wrong (``bad_credentials``).
        Invalid: ``weak_password``.
    """
    user = session.get(User, user_id)
    if user is None or not security.verify_password(user.password_hash, current_password):
        raise Unauthorized("wrong username or password", code="bad_credentials")
    _require_strong(new_password, user.username, user.full_name, user.email)
    user.password_hash = security.hash_password(new_password)
    session.add(user)
    revoke_web_sessions(session, user.id)
    return user


def user_in_scope(session: Session, principal: Principal, user_id: int) -> bool:
    """``user_id`` acts inside ``principal``'s province (issue 14): always without a scope; else the
    user's province is inside it (national and province-less users are outside every province)."""
    if principal.scope is None:
        return True
    user = session.get(User, user_id)
    return user is not None and user.province_id is not None and principal.in_scope(user.province_id)


def users_filter(principal: Principal) -> Any:
    """SQL condition keeping the users of ``principal``'s province (``sa.true()`` without a scope)."""
    if principal.scope is None:
        return sa.true()
    return principal.scope_filter(User.province_id)


def list_users(session: Session, principal: Principal) -> list[User]:
    """Every user an administrator manages, by username: all without a province scope, else those of
    their province (:func:`users_filter`). Raises Forbidden for anyone but an administrator."""
    principal.require_role(Role.admin)
    return list(session.exec(select(User).where(users_filter(principal)).order_by(User.username)).all())


def update_user(session: Session, principal: Principal, user_id: int, *, role: Role | None = None,
                active: bool | None = None, password: str | None = None,
                province_id: int | None | EllipsisType = ...) -> User:
    """An administrator changes a user's role, disables or enables them, sets a password, or moves them
    to another province (``province_id``; ``None``: a national user; ``...``: unchanged).

    Any change ends every web session of the user (a moved user signs in again, in the new scope;
    their live channels close through ``live.revocation``), and disabling also makes their API tokens
    refused (``user_for_token`` checks ``active``). Tokens carry no scope: the next request is scoped
    by the user's province as it is then (``principal_for``).

    Province (issue 14): only an administrator without a province scope (national, or the admin of a
    one-province deployment) changes it; the province must be a unit of level province holding the
    user's units (:func:`require_province`).

    Raises:
        Forbidden: not an admin; ``province_outside_scope``: a province's administrator moves a user
        out of their province (or makes them national).
        NotFound: no such user (or one of another province).
        Invalid: ``weak_password``; ``operator_without_units`` when made an operator without units,
        ``units_for_unscoped_role`` when an operator with units is given another role;
        ``own_admin_access``: an administrator may not disable or demote themselves (no lock-out);
        ``not_a_province``, ``units_outside_province``.
    """
    principal.require_role(Role.admin)
    user = session.get(User, user_id)
    if user is None or not user_in_scope(session, principal, user_id):
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    if user.id == principal.user_id and (active is False or (role is not None and role is not Role.admin)):
        raise Invalid("an administrator may not disable or demote themselves", code="own_admin_access")
    if role is not None and role is not user.role:
        has_units = session.exec(select(UserUnit.unit_id).where(UserUnit.user_id == user.id)).first() is not None
        if role is Role.operator and not has_units:
            raise Invalid("an operator needs at least one unit", code="operator_without_units")
        if role is not Role.operator and has_units:
            raise Invalid("only operators are scoped to units", code="units_for_unscoped_role")
        user.role = role
    if not isinstance(province_id, EllipsisType) and province_id != user.province_id:
        if principal.scope is not None:
            raise Forbidden("a province's administrator cannot move a user to another province",
                            code="province_outside_scope")
        if province_id is not None:
            units = set(session.exec(select(UserUnit.unit_id).where(UserUnit.user_id == user.id)).all())
            require_province(session, province_id, units)
        user.province_id = province_id
    if active is not None:
        user.active = active
    if password is not None:
        _require_strong(password, user.username, user.full_name, user.email)
        user.password_hash = security.hash_password(password)
    session.add(user)
    revoke_web_sessions(session, user.id)
    return user


# ---------------------------------------------------------------- web sessions (server-side, revocable)

def start_web_session(session: Session, user: User, *, ttl: timedelta) -> str:
    """A new browser session of ``user`` for ``ttl``; returns the secret the cookie carries."""
    secret, digest = security.new_token()
    session.add(WebSession(user_id=user.id, token_hash=digest, expires_at=utc_now() + ttl))
    session.flush()
    return secret


def user_for_web_session(session: Session, user_id: object, secret: object, *,
                         now: datetime | None = None) -> User | None:
    """The active user of a live web session, or ``None``: no such session (logged out, revoked),
    expired, another user's, or the user is disabled."""
    if not isinstance(secret, str) or not isinstance(user_id, int):
        return None
    row = session.exec(select(WebSession).where(WebSession.token_hash == security.hash_token(secret))).first()
    if row is None or row.user_id != user_id or row.expires_at <= (now or utc_now()):
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def end_web_session(session: Session, secret: object) -> None:
    """Logout: the session's row is deleted, so a copy of the cookie is worth nothing (and the live
    channels its pages opened are closed: ``live.revocation`` sees the deleted row)."""
    if isinstance(secret, str):
        for row in session.exec(select(WebSession).where(WebSession.token_hash == security.hash_token(secret))).all():
            session.delete(row)
        session.flush()


def revoke_web_sessions(session: Session, user_id: int) -> None:
    """Ends every web session of ``user_id`` (password, role or status changed), and so the live
    channels those sessions' pages opened (``live.revocation``)."""
    for row in session.exec(select(WebSession).where(WebSession.user_id == user_id)).all():
        session.delete(row)
    session.flush()


def principal_for(session: Session, user: User) -> Principal:
    """The principal of ``user``: assigned units (operators, requesters) expanded to sub-units, and the
    province scope (issue 14) — none for a national user (no province) or in a deployment holding one
    province (which behaves as before)."""
    scope: frozenset[int] | None = None
    province_id = user.province_id
    if province_id is not None and province_count(session) > 1:
        scope = expand_units(session, {province_id})
    unit_ids: frozenset[int] | None = scope
    if user.role in SCOPED_ROLES:
        assigned = set(session.exec(select(UserUnit.unit_id).where(UserUnit.user_id == user.id)).all())
        unit_ids = expand_units(session, assigned)
        if scope is not None:
            unit_ids &= scope
    return Principal(user_id=user.id, username=user.username, role=user.role, unit_ids=unit_ids,
                     province_id=province_id, scope=scope)


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


def login(session: Session, throttle: LoginThrottle, username: str, password: str, address: str | None) -> User:
    """:func:`authenticate` behind the login throttle (API token login and the web form).

    Raises:
        TooManyRequests: ``login_throttled`` with ``retry_after`` (seconds): too many failures for the
        account or the address in the window (checked before the password).
        Unauthorized: ``bad_credentials`` (counted as a failure).
    """
    throttle.check(username, address)
    try:
        user = authenticate(session, username, password)
    except Unauthorized:
        throttle.failed(username, address)
        raise
    throttle.succeeded(username)
    return user


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
    return token_and_user(session, secret, now=now)[1]


def token_and_user(session: Session, secret: str, *, now: datetime | None = None) -> tuple[ApiToken, User]:
    """:func:`user_for_token` with the token row (its ``expires_at`` bounds a cached verification:
    ``users.token_cache``). Raises as :func:`user_for_token`."""
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
    return token, user


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)).all())


def revoke_token(session: Session, principal: Principal, token_id: int) -> ApiToken:
    """Revoke a token of one's own (admins: anyone's in their province). Raises NotFound for others' tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user_id and not (
            principal.is_admin and user_in_scope(session, principal, token.user_id))):
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utc_now()
        session.add(token)
        session.flush()
    return token
