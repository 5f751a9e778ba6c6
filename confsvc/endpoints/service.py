"""Inventory use cases: units, rooms, endpoints, bridges. Scoped by the caller's :class:`Principal`.

Services flush and raise domain errors; the request's unit of work commits (``db.get_session``).
Write access: admin only (SPEC "Who uses it": admin manages units, rooms, endpoints, bridges).
Read access: everyone authenticated; operators see only their units and sub-units (403 outside).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, func, select

from confsvc.clock import utc_now
from confsvc.collation import collated
from confsvc.db import attach
from confsvc.endpoints import schemas, unit_history
from confsvc.endpoints.models import Bridge, Endpoint, EndpointStatus, LifecycleState, Protocol, Room, Unit, UnitLevel
from confsvc.endpoints.validation import normalise_dial_address
from confsvc.errors import Conflict, Forbidden, Invalid, NotFound
from confsvc.text import search_key, search_pattern
from confsvc.users.principal import MANAGE_INVENTORY, Principal
from confsvc.users.service import expand_units


def _page(session: Session, query: Any, limit: int, offset: int) -> tuple[list[Any], int]:
    total = session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
    items = list(session.exec(query.limit(limit).offset(offset)).all())
    return items, total


def _scope_filter(principal: Principal, unit_column: Any) -> Any:
    return principal.units_filter(unit_column)


def _units_first() -> Any:
    # Top-level units (the province and its chair room) sort before their communes.
    return Unit.parent_id.is_not(None)


def unit_order() -> tuple[Any, ...]:
    """The one order of units in every list and select: top-level units first, then by name in the
    shared Vietnamese collation (``confsvc.collation``: "Phường Âu Cơ" with A), then by code."""
    return (_units_first(), collated(Unit.name), Unit.code)


def _like(column: Any, query: str) -> Any:
    return column.like(search_pattern(query), escape="\\")


# ---------------------------------------------------------------- units

def get_unit(session: Session, principal: Principal, unit_id: int) -> Unit:
    """Raises NotFound, or Forbidden outside an operator's scope."""
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} not found", code="unit_not_found")
    principal.require_unit(unit.id)
    return unit


def list_units(
    session: Session, principal: Principal, *, level: UnitLevel | None = None, parent_id: int | None = None,
    q: str | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Unit], int]:
    """Units in :func:`unit_order`. ``q`` matches names with or without diacritics."""
    query = select(Unit).where(_scope_filter(principal, Unit.id)).order_by(*unit_order())
    if level is not None:
        query = query.where(Unit.level == level)
    if parent_id is not None:
        query = query.where(Unit.parent_id == parent_id)
    if q:
        query = query.where(_like(Unit.search_text, q))
    return _page(session, query, limit, offset)


def upsert_unit(session: Session, *, code: str, name: str, division_type: str, level: UnitLevel,
                parent_id: int | None) -> tuple[Unit, str]:
    """Create or update the unit with official ``code``.

    Returns ``(unit, outcome)``, outcome one of ``"created"``, ``"updated"``, ``"unchanged"``.
    """
    unit = session.exec(select(Unit).where(Unit.code == code)).first()
    unit, outcome = _upsert(session, unit, code=code, name=name, division_type=division_type, level=level,
                            parent_id=parent_id)
    session.flush()
    return unit, outcome


def upsert_units(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """:func:`upsert_unit` for many units (``rows`` of its keyword arguments) in one read and one flush
    (a province's communes: the national demo loads 3,321). Returns the outcomes in ``rows``' order."""
    codes = [row["code"] for row in rows]
    existing = {u.code: u for u in session.exec(select(Unit).where(Unit.code.in_(codes))).all()} if codes else {}
    outcomes = [_upsert(session, existing.get(row["code"]), **row)[1] for row in rows]
    session.flush()
    return outcomes


def _upsert(session: Session, unit: Unit | None, *, code: str, name: str, division_type: str, level: UnitLevel,
            parent_id: int | None) -> tuple[Unit, str]:
    values = {"name": name, "division_type": division_type, "level": level, "parent_id": parent_id,
              "search_text": search_key(name, division_type)}
    if unit is None:
        unit = Unit(code=code, **values)
        session.add(unit)
        return unit, "created"
    if all(getattr(unit, k) == v for k, v in values.items()):
        return unit, "unchanged"
    for key, value in values.items():
        setattr(unit, key, value)
    session.add(unit)
    return unit, "updated"


def create_unit(session: Session, principal: Principal, data: schemas.UnitCreate) -> Unit:
    """Raises Forbidden (not admin), Conflict (code taken), Invalid (unknown parent)."""
    principal.require(MANAGE_INVENTORY)
    if session.exec(select(Unit.id).where(Unit.code == data.code)).first() is not None:
        raise Conflict(f"unit code {data.code} already exists", code="duplicate_unit_code")
    if data.parent_id is not None and session.get(Unit, data.parent_id) is None:
        raise Invalid(f"parent unit {data.parent_id} does not exist", code="unknown_unit")
    if data.parent_id is None and not principal.national:
        raise Forbidden("a province's administrator creates units inside their province only",
                        code="forbidden_scope")
    if data.parent_id is not None:
        principal.require_in_scope(data.parent_id, "parent unit")
    unit, _ = upsert_unit(session, code=data.code, name=data.name, division_type=data.division_type,
                          level=data.level, parent_id=data.parent_id)
    return unit


def update_unit(session: Session, principal: Principal, unit: Unit, data: schemas.UnitUpdate) -> Unit:
    principal.require(MANAGE_INVENTORY)
    unit = attach(session, unit)
    for key, value in data.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(unit, key, value)
    unit.search_text = search_key(unit.name, unit.division_type)
    session.add(unit)
    _refresh_search_texts(session, unit, list(session.exec(select(Room).where(Room.unit_id == unit.id)).all()))
    session.flush()
    return unit


def _refresh_search_texts(session: Session, unit: Unit, rooms: list[Room]) -> None:
    """Rooms' and their endpoints' search texts hold the room and unit names: renew them after a rename,
    or "q" would keep finding the old name and miss the new one."""
    for room in rooms:
        room.search_text = _room_search(room, unit)
        session.add(room)
        for endpoint in session.exec(select(Endpoint).where(Endpoint.room_id == room.id)).all():
            endpoint.search_text = endpoint_search_text(endpoint, room, unit)
            session.add(endpoint)


# ---------------------------------------------------------------- rooms

def get_room(session: Session, principal: Principal, room_id: int) -> Room:
    room = session.get(Room, room_id)
    if room is None:
        raise NotFound(f"room {room_id} not found", code="room_not_found")
    principal.require_unit(room.unit_id)
    return room


def list_rooms(
    session: Session, principal: Principal, *, unit_id: int | None = None, q: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[Room], int]:
    """Rooms by unit (:func:`unit_order`), then room name (collated). ``unit_id`` includes the unit's sub-units."""
    query = (select(Room).join(Unit, Unit.id == Room.unit_id).where(_scope_filter(principal, Room.unit_id))
             .order_by(*unit_order(), collated(Room.name), Room.id))
    if unit_id is not None:
        query = query.where(Room.unit_id.in_(expand_units(session, {unit_id})))
    if q:
        query = query.where(_like(Room.search_text, q))
    return _page(session, query, limit, offset)


def _room_search(room: Room, unit: Unit) -> str:
    return search_key(room.name, unit.name, room.location, room.contact_name)


def create_room(session: Session, principal: Principal, data: schemas.RoomCreate) -> Room:
    """Raises Forbidden, Invalid (unknown unit), Conflict (name taken in the unit; ``unit_merged``: the unit
    has ended, the message names its successor)."""
    principal.require(MANAGE_INVENTORY)
    unit = session.get(Unit, data.unit_id)
    if unit is None:
        raise Invalid(f"unit {data.unit_id} does not exist", code="unknown_unit")
    unit_history.require_current(session, unit)
    _require_free_room_name(session, unit.id, data.name)
    room = Room(**data.model_dump())
    room.search_text = _room_search(room, unit)
    session.add(room)
    session.flush()
    return room


def _require_free_room_name(session: Session, unit_id: int, name: str, *, except_id: int | None = None) -> None:
    existing = session.exec(select(Room.id).where(Room.unit_id == unit_id, Room.name == name)).first()
    if existing is not None and existing != except_id:
        raise Conflict(f"unit already has a room named {name!r}", code="duplicate_room_name")


def update_room(session: Session, principal: Principal, room: Room, data: schemas.RoomUpdate) -> Room:
    principal.require(MANAGE_INVENTORY)
    room = attach(session, room)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name"):
        _require_free_room_name(session, room.unit_id, changes["name"], except_id=room.id)
    elif "name" in changes:
        del changes["name"]
    for key, value in changes.items():
        setattr(room, key, value)
    _refresh_search_texts(session, session.get(Unit, room.unit_id), [room])
    session.flush()
    return room


def delete_room(session: Session, principal: Principal, room: Room) -> None:
    """Raises Conflict while endpoints are installed in the room."""
    principal.require(MANAGE_INVENTORY)
    room = attach(session, room)
    if session.exec(select(Endpoint.id).where(Endpoint.room_id == room.id)).first() is not None:
        raise Conflict("room still has endpoints; move or delete them first", code="room_has_endpoints")
    session.delete(room)
    session.flush()


# ---------------------------------------------------------------- endpoints

def endpoint_public(endpoint: Endpoint, room: Room) -> schemas.EndpointPublic:
    return schemas.EndpointPublic.model_validate({**endpoint.model_dump(), "unit_id": room.unit_id})


def get_endpoint(session: Session, principal: Principal, endpoint_id: int) -> tuple[Endpoint, Room]:
    """Raises NotFound, or Forbidden when the endpoint's room is outside the caller's units."""
    row = session.exec(select(Endpoint, Room).join(Room, Room.id == Endpoint.room_id)
                       .where(Endpoint.id == endpoint_id)).first()
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} not found", code="endpoint_not_found")
    principal.require_unit(row[1].unit_id)
    return row[0], row[1]


def list_endpoints(
    session: Session, principal: Principal, *, unit_id: int | None = None, room_id: int | None = None,
    status: EndpointStatus | None = None, lifecycle_state: LifecycleState | None = None,
    protocol: Protocol | None = None, vendor: str | None = None, q: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[tuple[Endpoint, Room]], int]:
    """Endpoints with their rooms, by unit (:func:`unit_order`), room name, endpoint name (collated).

    ``unit_id`` includes sub-units; ``q`` searches name, serial, dial address, room and unit names.
    """
    query = (select(Endpoint, Room).join(Room, Room.id == Endpoint.room_id).join(Unit, Unit.id == Room.unit_id)
             .where(_scope_filter(principal, Room.unit_id))
             .order_by(*unit_order(), collated(Room.name), collated(Endpoint.name), Endpoint.id))
    if unit_id is not None:
        query = query.where(Room.unit_id.in_(expand_units(session, {unit_id})))
    if room_id is not None:
        query = query.where(Endpoint.room_id == room_id)
    if status is not None:
        query = query.where(Endpoint.status == status)
    if lifecycle_state is not None:
        query = query.where(Endpoint.lifecycle_state == lifecycle_state)
    if protocol is not None:
        query = query.where(Endpoint.protocol == protocol)
    if vendor:
        query = query.where(func.lower(Endpoint.vendor) == vendor.lower())
    if q:
        query = query.where(_like(Endpoint.search_text, q))
    rows, total = _page(session, query, limit, offset)
    return [(e, r) for e, r in rows], total


def endpoint_search_text(endpoint: Endpoint, room: Room, unit: Unit) -> str:
    return search_key(endpoint.name, endpoint.serial, endpoint.dial_address, endpoint.vendor, endpoint.model,
                      room.name, unit.name)


def _checked_dial_address(protocol: Protocol, value: str) -> str:
    try:
        return normalise_dial_address(protocol, value)
    except ValueError as exc:
        raise Invalid(str(exc), code="invalid_dial_address") from None


def create_endpoint(session: Session, principal: Principal, data: schemas.EndpointCreate) -> tuple[Endpoint, Room]:
    """Raises Forbidden, Invalid (unknown room, bad dial address), Conflict (duplicate serial)."""
    principal.require(MANAGE_INVENTORY)
    room = session.get(Room, data.room_id)
    if room is None:
        raise Invalid(f"room {data.room_id} does not exist", code="unknown_room")
    if session.exec(select(Endpoint.id).where(Endpoint.serial == data.serial)).first() is not None:
        raise Conflict(f"an endpoint with serial {data.serial!r} already exists", code="duplicate_serial")
    values = data.model_dump()
    values["dial_address"] = _checked_dial_address(data.protocol, data.dial_address)
    values["name"] = data.name or f"{room.name} – {data.vendor} {data.model}"
    endpoint = Endpoint(**values)
    endpoint.search_text = endpoint_search_text(endpoint, room, session.get(Unit, room.unit_id))
    session.add(endpoint)
    session.flush()
    return endpoint, room


def update_endpoint(session: Session, principal: Principal, endpoint: Endpoint,
                    data: schemas.EndpointUpdate) -> tuple[Endpoint, Room]:
    principal.require(MANAGE_INVENTORY)
    endpoint = attach(session, endpoint)
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items()
               if v is not None or k in ("management_ip", "firmware")}
    if "room_id" in changes and session.get(Room, changes["room_id"]) is None:
        raise Invalid(f"room {changes['room_id']} does not exist", code="unknown_room")
    for key, value in changes.items():
        setattr(endpoint, key, value)
    endpoint.dial_address = _checked_dial_address(endpoint.protocol, endpoint.dial_address)
    endpoint.updated_at = utc_now()
    room = session.get(Room, endpoint.room_id)
    endpoint.search_text = endpoint_search_text(endpoint, room, session.get(Unit, room.unit_id))
    session.add(endpoint)
    session.flush()
    return endpoint, room


def delete_endpoint(session: Session, principal: Principal, endpoint: Endpoint) -> None:
    principal.require(MANAGE_INVENTORY)
    endpoint = attach(session, endpoint)
    session.delete(endpoint)
    session.flush()


# ---------------------------------------------------------------- bridges

def get_bridge(session: Session, principal: Principal, bridge_id: int) -> Bridge:
    """Raises NotFound (``bridge_not_found``), also for a bridge of another province (issue 14)."""
    bridge = session.get(Bridge, bridge_id)
    if bridge is None or not principal.in_scope(bridge.unit_id):
        raise NotFound(f"bridge {bridge_id} not found", code="bridge_not_found")
    return bridge


def list_bridges(session: Session, principal: Principal, *, limit: int = 50, offset: int = 0) -> tuple[list[Bridge], int]:
    """Bridges by name: a province's own and the shared ones (no ``unit_id``)."""
    query = select(Bridge).where(principal.scope_filter(Bridge.unit_id, shared=True)).order_by(Bridge.name)
    return _page(session, query, limit, offset)


def _bridge_province(session: Session, principal: Principal, unit_id: int | None) -> int | None:
    """The owner of a new or changed bridge: the caller's province when they are kept in one."""
    if not principal.national:
        return principal.province_id
    if unit_id is not None and session.get(Unit, unit_id) is None:
        raise Invalid(f"unit {unit_id} does not exist", code="unknown_unit")
    return unit_id


def create_bridge(session: Session, principal: Principal, data: schemas.BridgeCreate) -> Bridge:
    """Raises Forbidden, Conflict (name taken)."""
    principal.require(MANAGE_INVENTORY)
    if session.exec(select(Bridge.id).where(Bridge.name == data.name)).first() is not None:
        raise Conflict(f"a bridge named {data.name!r} already exists", code="duplicate_bridge_name")
    bridge = Bridge(**data.model_dump())
    bridge.unit_id = _bridge_province(session, principal, data.unit_id)
    session.add(bridge)
    session.flush()
    return bridge


def update_bridge(session: Session, principal: Principal, bridge: Bridge, data: schemas.BridgeUpdate) -> Bridge:
    """Raises Forbidden, Invalid (conference range inverted)."""
    principal.require(MANAGE_INVENTORY)
    bridge = attach(session, bridge)
    if not principal.national and bridge.unit_id is None:
        raise Forbidden("a shared bridge is managed by a national administrator", code="forbidden_scope")
    if "unit_id" in data.model_fields_set:
        bridge.unit_id = _bridge_province(session, principal, data.unit_id)
    for key, value in data.model_dump(exclude_unset=True, exclude_none=True, exclude={"unit_id"}).items():
        setattr(bridge, key, value)
    if bridge.conference_number_min > bridge.conference_number_max:
        raise Invalid("conference_number_min must not exceed conference_number_max", code="invalid_range")
    session.add(bridge)
    session.flush()
    return bridge
