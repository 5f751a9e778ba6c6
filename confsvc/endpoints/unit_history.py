"""Unit mergers and renames with history (issue 15): units have a validity period and successors, and
the names (and rooms) they had before keep showing on what happened then.

- A **merge** ends units A, B, … on a local date (``effective``, in ``Settings.timezone``) and hands
  their rooms (with the endpoints inside) to a successor S, an existing current unit or a new one.
  Each moved room keeps a ``room_units`` row "in A, named …, until ``effective``"; A gets a
  ``unit_lifetimes`` row ``valid_to = effective, successor_id = S``; users scoped to A are scoped to S
  too. Nothing else is touched: meetings, bookings, call records and feeds keep their rows.
- A **rename** keeps the old name (and code, division type) in ``unit_names`` until ``effective``.
- :class:`History` answers "which unit was this room in at instant t, under which names": feeds,
  meeting pages and reports show an occurrence with the names in force at its start.

Rule source: Nghị quyết 202/2025/QH15 and the provinces' resolutions on the arrangement of
commune-level units (sắp xếp đơn vị hành chính cấp xã): a merged unit ends, its successor takes
over its offices; the names of past acts stay as they were.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from confsvc.endpoints.models import Endpoint, Room, RoomUnit, Unit, UnitLevel, UnitLifetime, UnitName
from confsvc.errors import Conflict, Invalid, NotFound
from confsvc.text import search_key
from confsvc.users.models import User, UserUnit
from confsvc.users.principal import MANAGE_INVENTORY, Principal


class UnitMerged(Conflict):
    """The unit has ended (merged into a successor): nothing new may be placed in it (HTTP 409).
    The body names the successor: ``successor_id``, ``successor_code``, ``successor_name``."""

    code = "unit_merged"


def midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The local midnight starting ``day`` in ``zone``, as UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _date_vi(day: date) -> str:
    return day.strftime("%d/%m/%Y")


# ---------------------------------------------------------------- reading the history

@dataclass
class History:
    """The whole history (the tables are small: one row per moved room and per rename), loaded once.

    ``rooms[room_id]`` and ``names[unit_id]`` are lists of ``(valid_until_at, value)`` sorted by time; the
    value in force at an instant is the first entry ending after it, else the current one."""

    rooms: dict[int, list[tuple[datetime, int, str]]] = field(default_factory=dict)
    names: dict[int, list[tuple[datetime, str, str]]] = field(default_factory=dict)

    def room_at(self, room_id: int, unit_id: int, name: str, at: datetime) -> tuple[int, str]:
        """``(unit id, room name)`` of room ``room_id`` (now in ``unit_id``, named ``name``) at ``at`` (UTC)."""
        for until, old_unit, old_name in self.rooms.get(room_id, ()):
            if at < until:
                return old_unit, old_name
        return unit_id, name

    def unit_name_at(self, unit_id: int, name: str, at: datetime) -> str:
        """The name unit ``unit_id`` (now named ``name``) had at ``at`` (UTC)."""
        for until, old_name, _code in self.names.get(unit_id, ()):
            if at < until:
                return old_name
        return name

    def __bool__(self) -> bool:
        return bool(self.rooms or self.names)


def load_history(session: Session) -> History:
    """Every ``room_units`` and ``unit_names`` row, ordered for :class:`History`."""
    history = History()
    for r in session.exec(select(RoomUnit).order_by(col(RoomUnit.valid_until_at), col(RoomUnit.id))):
        history.rooms.setdefault(r.room_id, []).append((r.valid_until_at, r.unit_id, r.name))
    for n in session.exec(select(UnitName).order_by(col(UnitName.valid_until_at), col(UnitName.id))):
        history.names.setdefault(n.unit_id, []).append((n.valid_until_at, n.name, n.code))
    return history


def room_unit_at(room_id: Any, unit_id: Any, at: Any) -> Any:
    """SQL expression: the unit the room ``room_id`` (a column; ``unit_id`` its current unit column) was in at
    the instant ``at`` (a column, UTC): the earliest ``room_units`` row ending after ``at``, else ``unit_id``."""
    h = RoomUnit.__table__
    former = (sa.select(h.c.unit_id).where(h.c.room_id == room_id, h.c.valid_until_at > at)
              .order_by(h.c.valid_until_at, h.c.id).limit(1).scalar_subquery())
    return sa.func.coalesce(former, unit_id)


def successors(session: Session) -> dict[int, int]:
    """``{merged unit id: the current unit it ended in}``, following chains (A → B, B → S gives A → S)."""
    direct = dict(session.exec(select(col(UnitLifetime.unit_id), col(UnitLifetime.successor_id))
                               .where(col(UnitLifetime.successor_id).is_not(None))).all())
    final: dict[int, int] = {}
    for unit_id in direct:
        seen, at = {unit_id}, direct[unit_id]
        while at in direct and at not in seen:
            seen.add(at)
            at = direct[at]
        final[unit_id] = at
    return final


@dataclass(frozen=True)
class Lifetime:
    unit_id: int
    valid_from: date | None
    valid_to: date | None
    successor_id: int | None
    successor_name: str | None
    former_names: tuple[tuple[str, date], ...]  # (name, until), oldest first


def lifetimes(session: Session, unit_ids: list[int]) -> dict[int, Lifetime]:
    """Validity, successor and former names of ``unit_ids`` (units with none of these are left out)."""
    rows = {lt.unit_id: lt for lt in session.exec(select(UnitLifetime).where(col(UnitLifetime.unit_id).in_(unit_ids)))}
    names: dict[int, list[tuple[str, date]]] = defaultdict(list)
    for n in session.exec(select(UnitName).where(col(UnitName.unit_id).in_(unit_ids))
                          .order_by(col(UnitName.valid_until_at), col(UnitName.id))):
        names[n.unit_id].append((n.name, n.valid_until))
    succ_ids = {lt.successor_id for lt in rows.values() if lt.successor_id is not None}
    succ_names = dict(session.exec(select(col(Unit.id), col(Unit.name)).where(col(Unit.id).in_(succ_ids))).all()) \
        if succ_ids else {}
    out: dict[int, Lifetime] = {}
    for unit_id in set(rows) | set(names):
        lt = rows.get(unit_id)
        succ = lt.successor_id if lt else None
        out[unit_id] = Lifetime(unit_id, lt.valid_from if lt else None, lt.valid_to if lt else None, succ,
                                succ_names.get(succ) if succ else None, tuple(names.get(unit_id, ())))
    return out


def require_current(session: Session, unit: Unit) -> None:
    """Raises :class:`UnitMerged` when ``unit`` has ended (merged), naming its successor, so a booking or a new
    room on a former unit's name is refused with a clear message instead of landing on a unit that no longer
    exists."""
    lt = session.get(UnitLifetime, unit.id)
    if lt is None or lt.valid_to is None:
        return
    final = successors(session).get(unit.id or 0)
    succ = session.get(Unit, final) if final is not None else None
    if succ is None:
        raise UnitMerged(f"Đơn vị «{unit.name}» đã hết hiệu lực từ ngày {_date_vi(lt.valid_to)}.",
                         valid_to=lt.valid_to.isoformat())
    raise UnitMerged(f"Đơn vị «{unit.name}» đã sáp nhập vào «{succ.name}» (mã {succ.code}) từ ngày "
                     f"{_date_vi(lt.valid_to)}; hãy chọn «{succ.name}».", valid_to=lt.valid_to.isoformat(),
                     successor_id=succ.id, successor_code=succ.code, successor_name=succ.name)


# ---------------------------------------------------------------- merge

@dataclass
class MergePlan:
    """What a merge changes: ``sources`` (``{"id", "code", "name"}``) end on ``effective`` and their
    ``rooms`` (``{"id", "name", "new_name", "from_unit"}``; ``new_name`` differs when the successor already
    has a room of that name), with the ``endpoints`` in them (``{"id", "name", "serial", "room"}``), move to
    ``successor`` (``{"id", "code", "name", "new"}``; ``id`` None when it is to be created); ``users`` (usernames)
    scoped to a source are scoped to the successor too."""

    sources: list[dict[str, Any]]
    successor: dict[str, Any]
    effective: date
    rooms: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    users: list[str]
    successor_parent_id: int | None = None
    successor_division_type: str = ""
    successor_level: UnitLevel = UnitLevel.commune

    def as_dict(self) -> dict[str, Any]:
        return {"sources": self.sources, "successor": self.successor, "effective": self.effective.isoformat(),
                "rooms": self.rooms, "endpoints": self.endpoints, "users": self.users}

    def lines(self) -> list[str]:
        """The plan in Vietnamese, one change a line (the CLI's ``--dry-run`` prints these)."""
        s = self.successor
        merged = ", ".join(f"{u['name']} ({u['code']})" for u in self.sources)
        out = [f"Sáp nhập {merged} vào "
               f"{s['name']} ({s['code']}{', đơn vị mới' if s['new'] else ''}) từ ngày {_date_vi(self.effective)}"]
        for r in self.rooms:
            renamed = f" → «{r['new_name']}»" if r["new_name"] != r["name"] else ""
            out.append(f"  điểm cầu #{r['id']} «{r['name']}»{renamed}: {r['from_unit']} → {s['name']}")
        for e in self.endpoints:
            out.append(f"  thiết bị #{e['id']} {e['name']} ({e['serial']}) trong «{e['room']}»")
        for username in self.users:
            out.append(f"  người dùng {username}: thêm phạm vi {s['name']}")
        return out


def _unit_by_code(session: Session, code: str) -> Unit:
    unit = session.exec(select(Unit).where(Unit.code == code)).first()
    if unit is None:
        raise NotFound(f"no unit with code {code}", code="unit_not_found")
    return unit


def plan_merge(session: Session, source_codes: list[str], successor_code: str, *, effective: date,
               successor_name: str | None = None, division_type: str | None = None) -> MergePlan:
    """Check a merge of the units ``source_codes`` into ``successor_code`` (an existing current unit, or a new one
    named ``successor_name``) on the local date ``effective``, and list what it would change. Writes nothing.

    Raises: NotFound (``unit_not_found``), Invalid (``merge_needs_sources``, ``merge_into_itself``,
    ``unit_has_subunits``, ``successor_needs_name``, ``sources_in_different_parents``), UnitMerged (a source or
    the successor has already ended).
    """
    codes = list(dict.fromkeys(c.strip() for c in source_codes if c.strip()))
    if not codes:
        raise Invalid("a merge needs at least one unit to merge", code="merge_needs_sources")
    if successor_code in codes:
        raise Invalid(f"unit {successor_code} cannot be merged into itself", code="merge_into_itself")
    sources = [_unit_by_code(session, c) for c in codes]
    for unit in sources:
        require_current(session, unit)
        if session.exec(select(Unit.id).where(Unit.parent_id == unit.id)).first() is not None:
            raise Invalid(f"unit {unit.code} has sub-units; merge those first", code="unit_has_subunits")
    succ = session.exec(select(Unit).where(Unit.code == successor_code)).first()
    if succ is not None:
        require_current(session, succ)
        successor = {"id": succ.id, "code": succ.code, "name": succ.name, "new": False}
        parent_id, dtype, level = succ.parent_id, succ.division_type, succ.level
    else:
        if not successor_name or not successor_name.strip():
            raise Invalid(f"no unit with code {successor_code}: a new successor needs a name",
                          code="successor_needs_name")
        parents = {u.parent_id for u in sources}
        if len(parents) > 1:
            raise Invalid("the units to merge have different parents", code="sources_in_different_parents")
        parent_id, level = parents.pop(), sources[0].level
        dtype = division_type or sources[0].division_type
        successor = {"id": None, "code": successor_code, "name": successor_name.strip(), "new": True}
    source_ids = [u.id for u in sources]
    names = {u.id: u.name for u in sources}
    taken = set(session.exec(select(Room.name).where(Room.unit_id == succ.id)).all()) if succ is not None else set()
    rooms = []
    for room in session.exec(select(Room).where(col(Room.unit_id).in_(source_ids)).order_by(col(Room.id))):
        new_name = room.name if room.name not in taken else f"{room.name} ({names[room.unit_id]})"
        taken.add(new_name)
        rooms.append({"id": room.id, "name": room.name, "new_name": new_name, "from_unit": names[room.unit_id],
                      "from_unit_id": room.unit_id})
    room_names = {r["id"]: r["name"] for r in rooms}
    endpoints = [{"id": e.id, "name": e.name, "serial": e.serial, "room": room_names[e.room_id]}
                 for e in session.exec(select(Endpoint).where(col(Endpoint.room_id).in_(list(room_names)))
                                       .order_by(col(Endpoint.id)))]
    scoped = session.exec(select(User.username).join(UserUnit, col(UserUnit.user_id) == col(User.id))
                          .where(col(UserUnit.unit_id).in_(source_ids)).distinct().order_by(col(User.username))).all()
    if succ is not None:
        already = set(session.exec(select(User.username).join(UserUnit, col(UserUnit.user_id) == col(User.id))
                                   .where(UserUnit.unit_id == succ.id)).all())
        scoped = [u for u in scoped if u not in already]
    return MergePlan([{"id": u.id, "code": u.code, "name": u.name} for u in sources], successor, effective, rooms,
                     endpoints, list(scoped), parent_id, dtype, level)


def apply_merge(session: Session, plan: MergePlan, zone: ZoneInfo) -> Unit:
    """Carry out ``plan`` (from :func:`plan_merge`, in the same transaction). Flushes, does not commit.
    Returns the successor."""
    effective_at = midnight_utc(plan.effective, zone)
    if plan.successor["id"] is None:
        succ = Unit(code=plan.successor["code"], name=plan.successor["name"], division_type=plan.successor_division_type,
                    level=plan.successor_level, parent_id=plan.successor_parent_id,
                    search_text=search_key(plan.successor["name"], plan.successor_division_type))
        session.add(succ)
        session.flush()
        session.add(UnitLifetime(unit_id=succ.id, valid_from=plan.effective))
        plan.successor["id"] = succ.id
    else:
        found = session.get(Unit, plan.successor["id"])
        assert found is not None
        succ = found
    for r in plan.rooms:
        room = session.get(Room, r["id"])
        assert room is not None
        session.add(RoomUnit(room_id=room.id, unit_id=room.unit_id, name=room.name, valid_until=plan.effective,
                             valid_until_at=effective_at))
        room.unit_id = succ.id
        room.name = r["new_name"]
        room.search_text = search_key(room.name, succ.name, room.location, room.contact_name)
        session.add(room)
    for s in plan.sources:
        lt = session.get(UnitLifetime, s["id"]) or UnitLifetime(unit_id=s["id"])
        lt.valid_to, lt.valid_to_at, lt.successor_id = plan.effective, effective_at, succ.id
        session.add(lt)
    if plan.users:
        user_ids = session.exec(select(User.id).where(col(User.username).in_(plan.users))).all()
        for user_id in user_ids:
            session.add(UserUnit(user_id=user_id, unit_id=succ.id))
    session.flush()
    return succ


def merge_units(session: Session, principal: Principal, zone: ZoneInfo, source_codes: list[str], successor_code: str,
                *, effective: date, successor_name: str | None = None, division_type: str | None = None,
                dry_run: bool = False) -> MergePlan:
    """:func:`plan_merge`, then (unless ``dry_run``) :func:`apply_merge`. Admin only (``MANAGE_INVENTORY``).

    Raises: Forbidden, and the errors of :func:`plan_merge`."""
    principal.require(MANAGE_INVENTORY)
    plan = plan_merge(session, source_codes, successor_code, effective=effective, successor_name=successor_name,
                      division_type=division_type)
    if not dry_run:
        apply_merge(session, plan, zone)
    return plan


# ---------------------------------------------------------------- rename

def rename_unit(session: Session, principal: Principal, zone: ZoneInfo, code: str, *, name: str, effective: date,
                new_code: str | None = None, division_type: str | None = None,
                dry_run: bool = False) -> dict[str, Any]:
    """Rename the unit ``code`` to ``name`` (optionally a new official code and division type) from the local
    date ``effective``; the old name, code and type stay in ``unit_names`` until then, so occurrences before
    ``effective`` keep showing the old name. Admin only. Flushes, does not commit.

    Returns ``{"id", "code", "name", "new_code", "new_name", "effective"}``.
    Raises: Forbidden, NotFound (``unit_not_found``), UnitMerged, Invalid (``same_name``), Conflict
    (``duplicate_unit_code``)."""
    principal.require(MANAGE_INVENTORY)
    unit = _unit_by_code(session, code)
    require_current(session, unit)
    name = name.strip()
    new_code = (new_code or unit.code).strip()
    dtype = division_type or unit.division_type
    if name == unit.name and new_code == unit.code and dtype == unit.division_type:
        raise Invalid(f"unit {code} is already named {name!r}", code="same_name")
    if new_code != unit.code and session.exec(select(Unit.id).where(Unit.code == new_code)).first() is not None:
        raise Conflict(f"unit code {new_code} already exists", code="duplicate_unit_code")
    out = {"id": unit.id, "code": unit.code, "name": unit.name, "new_code": new_code, "new_name": name,
           "effective": effective.isoformat()}
    if dry_run:
        return out
    session.add(UnitName(unit_id=unit.id, code=unit.code, name=unit.name, division_type=unit.division_type,
                         valid_until=effective, valid_until_at=midnight_utc(effective, zone)))
    unit.name, unit.code, unit.division_type = name, new_code, dtype
    unit.search_text = search_key(name, dtype)
    session.add(unit)
    session.flush()
    return out
