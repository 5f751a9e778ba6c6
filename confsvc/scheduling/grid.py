"""The scheduling grid (rooms × time): what each chosen room holds over one to seven local days,
and each bridge's port load, for the booking page's planner (issue 13).

One query for the rooms, one for their bookings (room bookings of meetings, endpoint bookings of
maintenance windows), one for the bridges' port bookings; the port load is a step function
computed in memory (peak, SPEC rule 2). Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import as_utc
from confsvc.config import Settings
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit
from confsvc.errors import Invalid
from confsvc.scheduling import repository, site_groups, visibility
from confsvc.scheduling.booking import max_window
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceBlock, ResourceKind
from confsvc.users.principal import Principal

#: Upper bounds of one grid request (bounded work): days shown and rooms listed.
MAX_DAYS = 7
MAX_ROOMS = 500


@dataclass(frozen=True)
class GridRequest:
    """``first_day`` (local date), ``days`` (1…7), and the rooms: ``room_ids``, else the rooms of site
    group ``site_group_id`` the principal may see, else every room of ``unit_id`` and its sub-units
    (all empty: every room the principal may see)."""

    first_day: date
    days: int = 1
    unit_id: int | None = None
    room_ids: tuple[int, ...] = ()
    site_group_id: int | None = None


def local_range(settings: Settings, first_day: date, days: int) -> Window:
    """``[first_day 00:00, first_day + days 00:00)`` in the configured zone, as UTC."""
    start = datetime.combine(first_day, datetime.min.time())
    end = datetime.combine(first_day + timedelta(days=days), datetime.min.time())
    return Window(as_utc(start, settings.zone), as_utc(end, settings.zone))


def _rooms(session: Session, principal: Principal, request: GridRequest) -> list[tuple[Room, Unit]]:
    if request.room_ids:
        if len(request.room_ids) > MAX_ROOMS:
            raise Invalid(f"at most {MAX_ROOMS} rooms in one grid", code="too_many_rooms")
        rooms = [inventory.get_room(session, principal, room_id) for room_id in dict.fromkeys(request.room_ids)]
    elif request.site_group_id is not None:
        group = site_groups.get_group(session, principal, request.site_group_id)
        room_ids = [r["id"] for r in site_groups.rooms_of(session, group) if principal.can_see_unit(r["unit_id"])]
        if len(room_ids) > MAX_ROOMS:
            raise Invalid(f"{len(room_ids)} rooms in the group (at most {MAX_ROOMS} in one grid)",
                          code="too_many_rooms")
        by_id = {r.id: r for r in session.exec(select(Room).where(Room.id.in_(room_ids))).all()} if room_ids else {}
        rooms = [by_id[i] for i in room_ids]
    else:
        rooms, total = inventory.list_rooms(session, principal, unit_id=request.unit_id, limit=MAX_ROOMS)
        if total > MAX_ROOMS:
            raise Invalid(f"{total} rooms match; choose a unit (at most {MAX_ROOMS} rooms in one grid)",
                          code="too_many_rooms")
    units = {u.id: u for u in session.exec(select(Unit).where(Unit.id.in_({r.unit_id for r in rooms}))).all()}
    return [(room, units[room.unit_id]) for room in rooms]


def _local(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.zone).replace(tzinfo=None).isoformat(timespec="minutes")


def _meeting_blocks(session: Session, settings: Settings, principal: Principal, room_ids: list[int], span: Window,
                    ) -> dict[int, list[dict[str, Any]]]:
    """Meeting blocks per room; a confidential meeting is titled "Cuộc họp" for those who may not see its
    details (``scheduling.visibility``, SPEC "Confidential meeting")."""
    audience = visibility.Audience.of_principal(principal)
    seen: dict[int, bool] = {}

    def shown(meeting_id: int, title: str, confidential: bool) -> str:
        if confidential and meeting_id not in seen:
            seen[meeting_id] = visibility.sees_details(
                audience, confidential=True, participant_unit_ids=repository.meeting_units(session, meeting_id))
        return title if not confidential or seen[meeting_id] else visibility.CONFIDENTIAL_TITLE

    query = (select(Booking.resource_id, Booking.window_start, Booking.window_end, Occurrence.id, Occurrence.start,
                    Occurrence.end, Meeting.id, Meeting.title, Meeting.status, Meeting.confidential)
             .join(Occurrence, Occurrence.id == Booking.occurrence_id)
             .join(Meeting, Meeting.id == Booking.meeting_id)
             .where(Booking.resource_kind == ResourceKind.room, Booking.resource_id.in_(room_ids),
                    repository.overlap_filter(span, max_window(settings)))
             .order_by(Booking.window_start, Booking.id))
    blocks: dict[int, list[dict[str, Any]]] = {}
    for room_id, w_start, w_end, occ_id, start, end, meeting_id, title, status, confidential in session.exec(query).all():
        blocks.setdefault(room_id, []).append({
            "kind": "meeting", "meeting_id": meeting_id, "occurrence_id": occ_id,
            "title": shown(meeting_id, title, confidential),
            "status": status.value, "start": start, "end": end, "window_start": w_start, "window_end": w_end,
            "start_local": _local(start, settings), "end_local": _local(end, settings),
            "window_start_local": _local(w_start, settings), "window_end_local": _local(w_end, settings)})
    return blocks


def _maintenance_blocks(session: Session, settings: Settings, room_ids: list[int], span: Window,
                        ) -> dict[int, list[dict[str, Any]]]:
    query = (select(Endpoint.room_id, Endpoint.id, Endpoint.name, Booking.window_start, Booking.window_end,
                    Booking.maintenance_id)
             .join(Booking, sa.and_(Booking.resource_kind == ResourceKind.endpoint,
                                    Booking.resource_id == Endpoint.id))
             .where(Endpoint.room_id.in_(room_ids), Booking.maintenance_id.is_not(None),
                    repository.overlap_filter(span, max_window(settings)))
             .order_by(Booking.window_start, Booking.id))
    merged: dict[tuple[int, int, int], list[Any]] = {}
    for room_id, endpoint_id, name, w_start, w_end, maintenance_id in session.exec(query).all():
        key = (room_id, endpoint_id, maintenance_id)  # a long window is several booking rows: show it once
        if key in merged:
            merged[key][1] = max(merged[key][1], w_end)
        else:
            merged[key] = [w_start, w_end, name]
    blocks: dict[int, list[dict[str, Any]]] = {}
    for (room_id, endpoint_id, _maintenance), (w_start, w_end, name) in merged.items():
        blocks.setdefault(room_id, []).append({
            "kind": "maintenance", "endpoint_id": endpoint_id, "endpoint_name": name,
            "start": w_start, "end": w_end, "window_start": w_start, "window_end": w_end,
            "start_local": _local(w_start, settings), "end_local": _local(w_end, settings),
            "window_start_local": _local(w_start, settings), "window_end_local": _local(w_end, settings)})
    return blocks


def _day_blocks(session: Session, settings: Settings, room_ids: list[int], span: Window,
                ) -> dict[int, list[dict[str, Any]]]:
    """Whole-day blocks of the rooms and of their endpoints (repairs, an election, a holiday)."""
    on_room = sa.and_(Booking.resource_kind == ResourceKind.room, Booking.resource_id.in_(room_ids))
    endpoint_rooms = dict(session.exec(select(Endpoint.id, Endpoint.room_id).where(Endpoint.room_id.in_(room_ids))).all())
    on_endpoint = sa.and_(Booking.resource_kind == ResourceKind.endpoint,
                          Booking.resource_id.in_(list(endpoint_rooms) or [-1]))
    query = (select(Booking.resource_kind, Booking.resource_id, Booking.window_start, Booking.window_end,
                    ResourceBlock.id, ResourceBlock.reason)
             .join(ResourceBlock, ResourceBlock.id == Booking.block_id)
             .where(sa.or_(on_room, on_endpoint), repository.overlap_filter(span, max_window(settings)))
             .order_by(Booking.window_start, Booking.id))
    merged: dict[tuple[int, int, ResourceKind, int], list[Any]] = {}
    for kind, resource_id, w_start, w_end, block_id, reason in session.exec(query).all():
        room_id = resource_id if kind is ResourceKind.room else endpoint_rooms[resource_id]
        # A long block is stored as several booking rows (bounded windows): show it once.
        key = (room_id, block_id, kind, resource_id)
        if key in merged:
            merged[key][1] = max(merged[key][1], w_end)
        else:
            merged[key] = [w_start, w_end, reason]
    blocks: dict[int, list[dict[str, Any]]] = {}
    for (room_id, block_id, kind, _resource), (w_start, w_end, reason) in merged.items():
        blocks.setdefault(room_id, []).append({
            "kind": "block", "block_id": block_id, "reason": reason, "resource_kind": kind.value,
            "start": w_start, "end": w_end, "window_start": w_start, "window_end": w_end,
            "start_local": _local(w_start, settings), "end_local": _local(w_end, settings),
            "window_start_local": _local(w_start, settings), "window_end_local": _local(w_end, settings)})
    return blocks


def port_load(span: Window, uses: list[tuple[Window, int]]) -> list[tuple[datetime, datetime, int]]:
    """The step function of ports in use over ``span``: ``[(start, end, ports), …]`` with ports > 0,
    consecutive equal steps merged. Half-open windows: a release at t comes before an acquire at t."""
    events: list[tuple[datetime, int]] = []
    for use, ports in uses:
        if ports and use.overlaps(span):
            clipped = use.intersection(span)
            events += [(clipped.start, ports), (clipped.end, -ports)]
    events.sort(key=lambda e: (e[0], e[1]))
    steps: list[tuple[datetime, datetime, int]] = []
    current, since = 0, span.start
    for moment, delta in events:
        if moment > since and current:
            if steps and steps[-1][1] == since and steps[-1][2] == current:
                steps[-1] = (steps[-1][0], moment, current)
            else:
                steps.append((since, moment, current))
        since = max(since, moment)
        current += delta
    return steps


def _bridges(session: Session, settings: Settings, span: Window) -> list[dict[str, Any]]:
    bridges = session.exec(select(Bridge).where(Bridge.active == sa.true()).order_by(Bridge.id)).all()
    rows = session.exec(select(Booking.resource_id, Booking.window_start, Booking.window_end, Booking.ports)
                        .where(Booking.resource_kind == ResourceKind.bridge,
                               Booking.resource_id.in_([b.id for b in bridges]),
                               repository.overlap_filter(span, max_window(settings)))).all()
    uses: dict[int, list[tuple[Window, int]]] = {}
    for bridge_id, w_start, w_end, ports in rows:
        uses.setdefault(bridge_id, []).append((Window(w_start, w_end), ports))
    result = []
    for bridge in bridges:
        steps = port_load(span, uses.get(bridge.id, []))
        result.append({"id": bridge.id, "name": bridge.name, "port_capacity": bridge.port_capacity,
                       "peak": max((p for _, _, p in steps), default=0),
                       "load": [{"start": s, "end": e, "ports": p, "start_local": _local(s, settings),
                                 "end_local": _local(e, settings)} for s, e, p in steps]})
    return result


def scheduling_grid(session: Session, settings: Settings, principal: Principal, request: GridRequest,
                    ) -> dict[str, Any]:
    """Rooms × time over ``request.days`` local days from ``request.first_day``.

    Returns ``{"from", "to" (UTC), "from_local", "to_local", "timezone", "working_hours":
    {"start", "end"} (local "HH:MM"), "rooms": [{"id", "name", "unit_id", "unit_name", "unit_code",
    "blocks": [...]}], "bridges": [{"id", "name", "port_capacity", "peak", "load": [...]}]}``.
    A meeting block gives the meeting's own ``start``/``end`` and, apart, the booking window it
    holds (``window_start`` = start − check lead, ``window_end`` = end + teardown); a maintenance
    block is an endpoint of the room out of service; a ``block`` is a whole-day block of the room or
    of one of its endpoints (``reason``). Only rooms the principal may see are listed.

    Raises:
        Invalid: ``invalid_range`` (days outside 1…7), ``too_many_rooms`` (over 500).
        Forbidden / NotFound: a named room outside the principal's units or missing.
        NotFound: ``site_group_not_found`` (a group unknown or not visible to the principal).
    """
    if not 1 <= request.days <= MAX_DAYS:
        raise Invalid(f"days must be 1…{MAX_DAYS}", code="invalid_range")
    span = local_range(settings, request.first_day, request.days)
    rooms = _rooms(session, principal, request)
    ids = [room.id for room, _ in rooms]
    meetings = _meeting_blocks(session, settings, principal, ids, span) if ids else {}
    maintenance = _maintenance_blocks(session, settings, ids, span) if ids else {}
    day_blocks = _day_blocks(session, settings, ids, span) if ids else {}
    return {
        "from": span.start, "to": span.end, "from_local": _local(span.start, settings),
        "to_local": _local(span.end, settings), "timezone": settings.timezone,
        "working_hours": {"start": settings.working_hours_start.strftime("%H:%M"),
                          "end": settings.working_hours_end.strftime("%H:%M")},
        "rooms": [{"id": room.id, "name": room.name, "unit_id": unit.id, "unit_name": unit.name,
                   "unit_code": unit.code,
                   "blocks": sorted(meetings.get(room.id, []) + maintenance.get(room.id, []) + day_blocks.get(room.id, []),
                                    key=lambda b: b["window_start"])}
                  for room, unit in rooms],
        "bridges": _bridges(session, settings, span),
    }
