"""An administrator's change of a user as an audited use case (issue 14), for the API and the web page.

The rules are ``users.service.update_user`` (role, active, password, province); this module adds the
audit trail: one ``user.updated`` entry naming the user and what changed (``fields``), with the
province before and after by name when it moved. Flushes, never commits.
"""

from __future__ import annotations

from types import EllipsisType
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from confsvc.scheduling.audit_log import audit
from confsvc.users import service as users
from confsvc.users.models import Role, User
from confsvc.users.principal import Principal

_units = sa.table("units", sa.column("id", sa.Integer), sa.column("name", sa.String))


def _province_name(session: Session, province_id: int | None) -> str:
    """The province's name; "Toàn quốc" (national) for none."""
    if province_id is None:
        return "Toàn quốc"
    return str(session.execute(sa.select(_units.c.name).where(_units.c.id == province_id)).scalar_one())


def _state(user: User) -> dict[str, Any]:
    return {"role": user.role.value, "active": user.active, "province_id": user.province_id}


def update_user(session: Session, principal: Principal, user_id: int, *, role: Role | None = None,
                active: bool | None = None, password: str | None = None,
                province_id: int | None | EllipsisType = ...) -> User:
    """``users.service.update_user`` (same arguments, rules and errors) and an audit entry ``user.updated``:
    ``{"user": username, "fields": [changed among role, active, password, province_id], "role": new role,
    "active": bool, "province": "old → new" (names)}`` (only what changed). Nothing changed: no entry."""
    existing = session.get(User, user_id)
    before = _state(existing) if existing is not None else {}
    user = users.update_user(session, principal, user_id, role=role, active=active, password=password,
                             province_id=province_id)
    after = _state(user)
    fields = [k for k in ("role", "active", "password", "province_id")
              if (k == "password" and password is not None) or (k != "password" and before.get(k) != after[k])]
    if not fields:
        return user
    details: dict[str, Any] = {k: after[k] for k in fields if k != "password"}
    if "province_id" in fields:
        details["province"] = (f"{_province_name(session, before['province_id'])} → "
                               f"{_province_name(session, after['province_id'])}")
    audit(session, principal, "user.updated", meeting_id=None, user=user.username, fields=fields, **details)
    return user
