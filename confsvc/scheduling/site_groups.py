"""Site groups (nhóm điểm cầu): create, read, change and delete saved groups of rooms, and expand
them into room ids when a meeting is booked.

Who sees a group (``SiteGroupVisibility``): its owner and admins always; ``units`` — users who share
an assigned unit with the owner (``user_units``, direct assignment), or, for an owner with a
province-wide role (no assigned unit: the provincial office), the other province-wide users;
``province`` — everyone.
Who changes or deletes it: its owner, or an admin. Creating: admin, secretariat, operator (an
operator only with rooms of their units). Services flush; the request's unit of work commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlmodel import Session, col, func, select

from confsvc.clock import utc_now
from confsvc.db import IdField
from confsvc.endpoints.models import Room, Unit
from confsvc.errors import Conflict, Forbidden, Invalid, NotFound
from confsvc.scheduling.site_group_models import SiteGroup, SiteGroupRoom, SiteGroupVisibility
from confsvc.text import nfc, one_line
from confsvc.users.models import User, UserUnit
from confsvc.users.principal import Principal

MAX_ROOMS = 5000

GroupName = Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=200)]
GroupDescription = Annotated[str, AfterValidator(nfc), Field(max_length=1000)]
RoomIds = Annotated[list[IdField], Field(max_length=MAX_ROOMS)]


class SiteGroupCreate(BaseModel):
    """A new group: ``room_ids`` in the order they should be listed (duplicates refused)."""

    model_config = ConfigDict(extra="forbid")
    name: GroupName
    description: GroupDescription = ""
    visibility: SiteGroupVisibility = SiteGroupVisibility.private
    room_ids: RoomIds = []


class SiteGroupUpdate(BaseModel):
    """Given fields replace the group's; ``room_ids`` replaces the whole list."""

    model_config = ConfigDict(extra="forbid")
    name: GroupName | None = None
    description: GroupDescription | None = None
    visibility: SiteGroupVisibility | None = None
    room_ids: RoomIds | None = None


class SiteGroupRoomPublic(BaseModel):
    id: int
    name: str
    unit_id: int
    unit_name: str


class SiteGroupPublic(BaseModel):
    """A group with its rooms (ordered by unit name, then room name) and whether the caller may change it."""

    id: int
    name: str
    description: str
    visibility: SiteGroupVisibility
    owner_user_id: int
    owner_name: str
    room_ids: list[int]
    rooms: list[SiteGroupRoomPublic]
    editable: bool
    created_at: datetime
    updated_at: datetime


def _assigned_units(session: Session, user_id: int) -> set[int]:
    return set(session.exec(select(col(UserUnit.unit_id)).where(col(UserUnit.user_id) == user_id)).all())


def _visible(session: Session, principal: Principal) -> Any:
    """A WHERE clause keeping the groups ``principal`` may see."""
    if principal.scope is not None:  # a province's user (issue 14): groups of its province's users only
        province = select(col(User.id)).where(principal.scope_filter(col(User.province_id)))
        return sa.and_(col(SiteGroup.owner_user_id).in_(province), _visible(session, dataclasses.replace(
            principal, scope=None, unit_ids=None if not principal.unit_scoped else principal.unit_ids)))
    if principal.is_admin:
        return sa.true()
    if not principal.unit_scoped:  # a province-wide role: the owner is one too (no assigned unit)
        same_units = ~sa.exists().where(col(UserUnit.user_id) == col(SiteGroup.owner_user_id))
    else:
        mine = select(col(UserUnit.unit_id)).where(col(UserUnit.user_id) == principal.user_id)
        sharing = select(col(UserUnit.user_id)).where(col(UserUnit.unit_id).in_(mine))
        same_units = col(SiteGroup.owner_user_id).in_(sharing)
    return sa.or_(col(SiteGroup.owner_user_id) == principal.user_id,
                  col(SiteGroup.visibility) == SiteGroupVisibility.province,
                  sa.and_(col(SiteGroup.visibility) == SiteGroupVisibility.units, same_units))


def _editable(group: SiteGroup, principal: Principal) -> bool:
    return principal.is_admin or group.owner_user_id == principal.user_id


def get_group(session: Session, principal: Principal, group_id: int) -> SiteGroup:
    """Raises NotFound (``site_group_not_found``) when unknown or not visible to ``principal``."""
    group = session.exec(select(SiteGroup).where(col(SiteGroup.id) == group_id, _visible(session, principal))).first()
    if group is None:
        raise NotFound(f"site group {group_id} not found", code="site_group_not_found")
    return group


def _room_rows(session: Session, group_ids: Iterable[int | None]) -> dict[int | None, list[dict[str, Any]]]:
    ids = list(group_ids)
    rows: dict[int | None, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return rows
    for group_id, room_id, room_name, unit_id, unit_name in session.execute(
            sa.select(col(SiteGroupRoom.group_id), col(Room.id), col(Room.name), col(Unit.id), col(Unit.name))
            .join(Room, col(Room.id) == col(SiteGroupRoom.room_id)).join(Unit, col(Unit.id) == col(Room.unit_id))
            .where(col(SiteGroupRoom.group_id).in_(ids)).order_by(col(Unit.name), col(Room.name), col(Room.id))).all():
        rows[group_id].append({"id": room_id, "name": room_name, "unit_id": unit_id, "unit_name": unit_name})
    return rows


def public(session: Session, principal: Principal, groups: list[SiteGroup]) -> list[dict[str, Any]]:
    """The JSON shape (:class:`SiteGroupPublic`) of ``groups``."""
    rooms = _room_rows(session, [g.id for g in groups])
    owners = dict(session.exec(select(col(User.id), col(User.full_name)).where(
        col(User.id).in_({g.owner_user_id for g in groups}))).all()) if groups else {}
    return [{"id": g.id, "name": g.name, "description": g.description, "visibility": g.visibility,
             "owner_user_id": g.owner_user_id, "owner_name": owners.get(g.owner_user_id, ""),
             "room_ids": [r["id"] for r in rooms[g.id]], "rooms": rooms[g.id], "editable": _editable(g, principal),
             "created_at": g.created_at, "updated_at": g.updated_at} for g in groups]


def rooms_of(session: Session, group: SiteGroup) -> list[dict[str, Any]]:
    """The group's rooms now, as ``{"id", "name", "unit_id", "unit_name"}`` by unit name then room name."""
    return _room_rows(session, [group.id])[group.id]


def list_groups(session: Session, principal: Principal, *, limit: int = 50,
                offset: int = 0) -> tuple[list[SiteGroup], int]:
    """Groups visible to ``principal``, by name; and their total."""
    query = select(SiteGroup).where(_visible(session, principal))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    by_name = query.order_by(col(SiteGroup.name), col(SiteGroup.id))
    return list(session.exec(by_name.limit(limit).offset(offset)).all()), total


def _check_rooms(session: Session, principal: Principal, room_ids: list[int]) -> None:
    if len(set(room_ids)) != len(room_ids):
        raise Invalid("a room is listed twice", code="duplicate_room")
    units: dict[int | None, int] = {}
    if room_ids:
        units = dict(session.exec(select(col(Room.id), col(Room.unit_id)).where(col(Room.id).in_(room_ids))).all())
    missing = [r for r in room_ids if r not in units]
    if missing:
        raise Invalid(f"unknown room(s): {', '.join(map(str, missing))}", code="unknown_room", room_ids=missing)
    outside = [r for r in room_ids if not principal.can_see_unit(units[r])]
    if outside:
        raise Forbidden("a room is outside your units", code="forbidden_scope", room_ids=outside)


def _set_rooms(session: Session, group: SiteGroup, room_ids: list[int]) -> None:
    session.execute(sa.delete(SiteGroupRoom).where(col(SiteGroupRoom.group_id) == group.id))
    assert group.id is not None  # flushed
    session.add_all(SiteGroupRoom(group_id=group.id, room_id=r) for r in room_ids)


def _require_unique_name(session: Session, owner_user_id: int, name: str, group_id: int | None = None) -> None:
    query = select(col(SiteGroup.id)).where(col(SiteGroup.owner_user_id) == owner_user_id, col(SiteGroup.name) == name)
    if group_id is not None:
        query = query.where(col(SiteGroup.id) != group_id)
    if session.exec(query).first() is not None:
        raise Conflict(f"you already have a site group named «{name}»", code="site_group_name_taken")


def create_group(session: Session, principal: Principal, data: SiteGroupCreate,
                 *, now: datetime | None = None) -> SiteGroup:
    """Save a group owned by ``principal``.

    Raises: Forbidden (role, or a room outside an operator's units), Invalid (``duplicate_room``,
    ``unknown_room``), Conflict (``site_group_name_taken``: the owner has a group of that name).
    """
    if not principal.can_manage_site_groups:
        raise Forbidden(f"role {principal.role.value!r} may not save site groups", code="forbidden_role")
    _check_rooms(session, principal, data.room_ids)
    _require_unique_name(session, principal.user_id, data.name)
    now = now or utc_now()
    group = SiteGroup(name=data.name, description=data.description, visibility=data.visibility,
                      owner_user_id=principal.user_id, created_at=now, updated_at=now)
    session.add(group)
    session.flush()
    _set_rooms(session, group, data.room_ids)
    session.flush()
    return group


def update_group(session: Session, principal: Principal, group: SiteGroup, data: SiteGroupUpdate,
                 *, now: datetime | None = None) -> SiteGroup:
    """Change a group (owner or admin). Booked meetings keep their participants.

    Raises: Forbidden (``not_group_owner``, or a room outside an operator's units), Invalid, Conflict.
    """
    if not _editable(group, principal):
        raise Forbidden("only the group's owner or an admin may change it", code="not_group_owner")
    if data.name is not None and data.name != group.name:
        _require_unique_name(session, group.owner_user_id, data.name, group.id)
        group.name = data.name
    if data.description is not None:
        group.description = data.description
    if data.visibility is not None:
        group.visibility = data.visibility
    if data.room_ids is not None:
        _check_rooms(session, principal, data.room_ids)
        _set_rooms(session, group, data.room_ids)
    group.updated_at = now or utc_now()
    session.add(group)
    session.flush()
    return group


def delete_group(session: Session, principal: Principal, group: SiteGroup) -> None:
    """Delete a group (owner or admin). Raises Forbidden ``not_group_owner``."""
    if not _editable(group, principal):
        raise Forbidden("only the group's owner or an admin may delete it", code="not_group_owner")
    session.delete(group)
    session.flush()


def expand(session: Session, principal: Principal, group_ids: list[int], *, exclude: set[int]) -> list[int]:
    """The room ids of ``group_ids`` (visible to ``principal``), in group order then each group's
    order, each room once, without the rooms in ``exclude`` (the chair and rooms listed already).

    Raises: Invalid ``unknown_site_group`` naming the groups that do not exist or are not visible.
    """
    visible = set(session.exec(select(col(SiteGroup.id)).where(col(SiteGroup.id).in_(group_ids),
                                                          _visible(session, principal))).all())
    missing = [g for g in group_ids if g not in visible]
    if missing:
        raise Invalid(f"unknown site group(s): {', '.join(map(str, missing))}", code="unknown_site_group",
                      site_group_ids=missing)
    rooms = _room_rows(session, dict.fromkeys(group_ids))
    seen = set(exclude)
    out: list[int] = []
    for group_id in dict.fromkeys(group_ids):
        for room in rooms[group_id]:
            if room["id"] not in seen:
                seen.add(room["id"])
                out.append(room["id"])
    return out
