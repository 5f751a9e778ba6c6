"""National meetings, province by province (issue 14 "National meetings").

The national office books a meeting across provinces and may set its ``sites_deadline`` (UTC). Until
then each province's secretariat adds or removes its OWN province's sites (:func:`add_sites`,
:func:`remove_site`) without the meeting being re-booked (``site_changes``): only the changed sites'
rows are written or deleted, an added site goes through the same conflict check (SPEC rules 1, 4) as a
booking and the same bridge choice for a province that had no site yet (its bridge, one leg to the
root), only the changed rooms' displays are told; a refusal is the same 409 with ``by_province``. Who may change which site, and
until when, is ``Principal.require_sites_change`` (the one rule).

:func:`province_sites` lists, for a meeting, the rooms of a province: its sites (with the bridge each
joins), the rooms busy then (with what takes them) and the free ones. A province's secretariat sees its
own province's rooms (``Principal.sees_busy_rooms_of``); the national office sees each province's counts
only. Times are aware UTC; windows half-open ``[start − check_lead, end + teardown)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Endpoint, LifecycleState, Room, Unit, UnitLevel
from confsvc.errors import ConfsvcError, Invalid, NotFound
from confsvc.scheduling import booking, cascade, repository, site_changes
from confsvc.scheduling import participants as participation
from confsvc.scheduling.booking import Names, Participants
from confsvc.scheduling.conflicts import Conflict
from confsvc.scheduling.models import Meeting, MeetingParticipant, Occurrence, OccurrenceStatus
from confsvc.scheduling.planning import BookResult, lock_for_change, require_open
from confsvc.users.principal import CHANGE_PROVINCE_SITES, Principal
from confsvc.users.service import expand_units


def deadline_text(meeting: Meeting) -> str:
    """The meeting's ``sites_deadline`` as people read it: ``HH:MM dd/mm/yyyy`` in the meeting's zone."""
    if meeting.sites_deadline is None:
        return ""
    return meeting.sites_deadline.astimezone(ZoneInfo(meeting.timezone)).strftime("%H:%M %d/%m/%Y")


def find_meeting(session: Session, principal: Principal, meeting_id: int) -> Meeting:
    """The meeting as ``reading.get_meeting`` finds it for ``principal``; a meeting open to the provinces
    (a ``sites_deadline``) is also found by every province's admin and secretariat, whose rooms it may
    not include yet (all of them were busy or left out).

    Raises NotFound (``meeting_not_found``), Forbidden (an operator's units not involved)."""
    from confsvc.scheduling import reading

    try:
        return reading.get_meeting(session, principal, meeting_id)
    except NotFound:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None or meeting.sites_deadline is None or not principal.can(CHANGE_PROVINCE_SITES):
            raise
        return meeting


def _room_units(session: Session, room_ids: list[int]) -> dict[int, int]:
    """Room id → unit id; Invalid ``unknown_room`` for a missing room."""
    found = dict(session.exec(select(col(Room.id), Room.unit_id).where(
        repository.ids_in(session, Room.id, room_ids))).all())
    missing = [r for r in room_ids if r not in found]
    if missing:
        raise Invalid(f"unknown room(s): {', '.join(map(str, missing))}", code="unknown_room", room_ids=missing)
    return {r: u for r, u in found.items() if r is not None}


def _require_change(session: Session, principal: Principal, meeting: Meeting, room_ids: list[int],
                    now: datetime) -> None:
    units = _room_units(session, room_ids)
    provinces = cascade.unit_provinces(session, set(units.values()))
    # A room's province decides (a province's scope holds all its units: the province unit is enough).
    principal.require_sites_change(sites_deadline=meeting.sites_deadline, now=now,
                                   site_unit_ids=[provinces.get(units[r]) for r in room_ids],
                                   deadline_text=deadline_text(meeting))


def _id(meeting: Meeting) -> int:
    """A stored meeting's id."""
    assert meeting.id is not None
    return meeting.id


def _active_endpoints(session: Session, room_ids: list[int]) -> dict[int, int]:
    """Active endpoint id → room id of ``room_ids``."""
    return dict((e, r) for e, r in session.exec(select(col(Endpoint.id), Endpoint.room_id).where(
        repository.ids_in(session, Endpoint.room_id, room_ids),
        col(Endpoint.lifecycle_state) == LifecycleState.active)).all() if e is not None)


def _site_endpoints(session: Session, meeting: Meeting, room_ids: list[int]) -> dict[int, int]:
    """The meeting's participant endpoints (its own list) in ``room_ids``: endpoint id → room id (one query)."""
    return {e: r for e, r in session.exec(
        select(col(Endpoint.id), Endpoint.room_id).join(MeetingParticipant, col(MeetingParticipant.endpoint_id)
                                                        == col(Endpoint.id))
        .where(col(MeetingParticipant.meeting_id) == meeting.id,
               repository.ids_in(session, Endpoint.room_id, room_ids))).all() if e is not None}


def _sites_among(session: Session, meeting: Meeting, room_ids: list[int]) -> set[int]:
    """Those of ``room_ids`` taking part in ``meeting`` (its chair room, or a room of its participant
    endpoints: ``participants.of_meeting``'s rule), without reading its every site."""
    return set(_site_endpoints(session, meeting, room_ids).values()) | (
        {meeting.chair_room_id} & set(room_ids))


def add_sites(session: Session, settings: Settings, principal: Principal, meeting: Meeting, room_ids: list[int],
              *, now: datetime | None = None) -> BookResult:
    """Add ``room_ids`` (with their active endpoints) as sites of ``meeting`` (issue 14). Rooms already
    taking part are left as they are. Checked like a booking, for the added sites only (their conflicts,
    the ports they add, the province's bridge, number and leg in each occurrence not holding them yet:
    decided per occurrence, ``site_changes``); only their rows are written
    and only their displays told (``site_changes.add``: the meeting is not re-booked).

    Raises:
        Forbidden: ``Principal.require_sites_change`` (``sites_deadline_passed``, ``forbidden_province_site``,
            ``sites_not_open``, ``forbidden_role``).
        Invalid: ``unknown_room``, ``no_active_endpoint`` (a room without an active endpoint),
            ``meeting_cancelled``, ``duplicate_participant`` (a room listed twice).
        BookingConflict: 409, every conflict listed, with ``by_province``; nothing changes.
    """
    now = now or utc_now()
    if len(set(room_ids)) != len(room_ids):
        raise Invalid("a room is listed twice", code="duplicate_participant")
    lock_for_change(session, meeting)
    require_open(meeting)
    _require_change(session, principal, meeting, room_ids, now)
    taking_part = _sites_among(session, meeting, room_ids)
    new_rooms = [r for r in room_ids if r not in taking_part]
    endpoints = _active_endpoints(session, new_rooms)
    bare = [r for r in new_rooms if r not in set(endpoints.values())]
    if bare:
        raise Invalid(f"room(s) without an active endpoint: {', '.join(map(str, bare))}", code="no_active_endpoint",
                      room_ids=bare)
    if not new_rooms:
        return _unchanged(session, meeting)
    return site_changes.add(session, settings, principal, meeting, endpoints, now=now)


def remove_site(session: Session, settings: Settings, principal: Principal, meeting: Meeting, room_id: int,
                *, now: datetime | None = None) -> BookResult:
    """Remove the site ``room_id`` (all its endpoints) from ``meeting`` (issue 14); its bookings are freed
    at once (SPEC rule 6) and a province left without sites leaves the cascade (its bridge and leg); only
    that site's rows change and only its display is told (``site_changes.remove``).

    Raises:
        Forbidden: as :func:`add_sites`.
        NotFound: ``site_not_found`` (the room does not take part).
        Invalid: ``chair_room_site`` (the chair room is the national office's), ``meeting_cancelled``.
    """
    now = now or utc_now()
    lock_for_change(session, meeting)
    require_open(meeting)
    _require_change(session, principal, meeting, [room_id], now)
    if room_id == meeting.chair_room_id:
        raise Invalid("the chair room cannot be removed from the meeting's sites", code="chair_room_site")
    endpoint_ids = _site_endpoints(session, meeting, [room_id])
    if not endpoint_ids:
        raise NotFound(f"room {room_id} is not a site of this meeting", code="site_not_found")
    return site_changes.remove(session, settings, principal, meeting, room_id, sorted(endpoint_ids), now=now)


def across_provinces(session: Session, meeting: Meeting) -> bool:
    """Whether ``meeting`` is cascaded: its sites join bridges of more than one province."""
    return meeting.bridge_id is not None and cascade.tree_of(session, meeting).cascaded


def _unchanged(session: Session, meeting: Meeting) -> BookResult:
    return BookResult(meeting, len(_occurrences(session, meeting)), [], [])


def _occurrences(session: Session, meeting: Meeting) -> list[Occurrence]:
    """The occurrences that hold resources: scheduled and not displaced, by start."""
    return list(session.exec(select(Occurrence).where(
        Occurrence.meeting_id == meeting.id, Occurrence.status == OccurrenceStatus.scheduled,
        col(Occurrence.tentative).is_(False)).order_by(col(Occurrence.start), col(Occurrence.id))).all())


# ---------------------------------------------------------------- the rooms of each province

@dataclass
class ProvinceRooms:
    """A province's rooms for one meeting: ``sites`` (taking part), ``busy`` (not taking part, taken then:
    room id → the conflicts of its room and endpoints), ``free`` (not taking part, free then). Rooms without
    an active endpoint are not counted (they cannot be a site)."""

    province: cascade.Province
    sites: list[int]
    busy: dict[int, list[Conflict]]
    free: list[int]


def province_rooms(session: Session, settings: Settings, meeting: Meeting,
                   province_ids: set[int] | None) -> list[ProvinceRooms]:
    """:class:`ProvinceRooms` of ``province_ids`` (None: every province), by official code.

    A room is busy when, over the window of one of the meeting's occurrences that hold resources, its
    room or one of its active endpoints is held by something else (another meeting's occurrence, a
    maintenance window, a day block): the same check as a booking's (``booking.resource_conflicts``,
    without locks). Queries: the rooms with their provinces, then one per occurrence."""
    units = session.exec(select(col(Unit.id), Unit.level)).all() if province_ids is None else []
    wanted = ({u for u, level in units if level is UnitLevel.province and u is not None}
              if province_ids is None else province_ids)
    if not wanted:
        return []
    query = select(col(Room.id), Room.unit_id)
    if province_ids is not None:
        query = query.where(repository.ids_in(session, Room.unit_id, expand_units(session, province_ids)))
    rooms = dict(session.exec(query).all())
    provinces = cascade.unit_provinces(session, set(rooms.values()))
    room_province = {r: provinces[u] for r, u in rooms.items() if r is not None and provinces.get(u) in wanted}
    endpoints = _active_endpoints(session, sorted(room_province))
    bookable = sorted(set(endpoints.values()))
    taking_part = set(participation.of_meeting(session, meeting).room_ids)
    candidates = [r for r in bookable if r not in taking_part]
    busy: dict[int, list[Conflict]] = {}
    if candidates:
        wanted_rooms = set(candidates)
        candidate_endpoints = sorted(e for e, r in endpoints.items() if r in wanted_rooms)
        names = Names(session)
        for occ in _occurrences(session, meeting):
            plan = booking.make_plan(occ.start, occ.end, occ.recurrence_id,
                                     Participants(meeting.chair_room_id, candidate_endpoints, candidates),
                                     check_lead_minutes=meeting.check_lead_minutes,
                                     teardown_minutes=meeting.teardown_minutes, occurrence=occ)
            booking.resource_conflicts(session, settings, [plan], names, lock=False)
            for c in plan.conflicts:
                if c.meeting_id == meeting.id:
                    continue
                room = c.resource_id if c.resource_kind == "room" else endpoints.get(c.resource_id)
                if room is not None:
                    busy.setdefault(room, []).append(c)
    named = cascade.provinces_by_id(session, wanted)
    by_province: dict[int, list[int]] = {}
    for r in bookable:
        by_province.setdefault(room_province[r], []).append(r)
    out = []
    for province_id in sorted(wanted, key=lambda p: (named[p].code if p in named else "", p)):
        if province_id not in named:
            continue
        mine = by_province.get(province_id, [])
        out.append(ProvinceRooms(named[province_id], [r for r in mine if r in taking_part],
                                 {r: busy[r] for r in mine if r in busy},
                                 [r for r in mine if r not in taking_part and r not in busy]))
    return out


def province_sites(session: Session, settings: Settings, principal: Principal, meeting: Meeting, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """The rooms of the provinces for ``meeting`` as ``principal`` may see them (issue 14):

    ``{"meeting_id", "sites_deadline" (UTC or None), "can_change" (may ``principal`` add or remove its
    sites now: ``Principal.require_sites_change``), "provinces": [{"province_id", "province_code",
    "province_name", "sites", "busy", "free"} (counts)], "own": None or {"province": {...},
    "sites": [{"room_id", "room_name", "unit_name", "bridge_id", "bridge_name"}], "busy": [{"room_id",
    "room_name", "unit_name", "conflicts": [Conflict]}], "free": [{"room_id", "room_name", "unit_name"}]}}``.

    A province's admin or secretariat gets its own province only, with ``own`` (its busy rooms and what
    takes them); the national office gets every province's counts and no ``own``
    (``Principal.sees_busy_rooms_of``). Other roles: Forbidden (``forbidden_role``).
    """
    principal.require(CHANGE_PROVINCE_SITES)
    now = now or utc_now()
    scope = None if principal.national else ({principal.province_id} if principal.province_id is not None else set())
    listed = province_rooms(session, settings, meeting, scope)
    try:
        principal.require_sites_change(sites_deadline=meeting.sites_deadline, now=now, site_unit_ids=[])
        can_change = True
    except ConfsvcError:
        can_change = False
    own = next((p for p in listed if principal.sees_busy_rooms_of(p.province.id)), None)
    return {"meeting_id": meeting.id, "sites_deadline": meeting.sites_deadline, "can_change": can_change,
            "provinces": [{"province_id": p.province.id, "province_code": p.province.code,
                           "province_name": p.province.name, "sites": len(p.sites), "busy": len(p.busy),
                           "free": len(p.free)} for p in listed],
            "own": _details(session, meeting, own) if own is not None else None}


def _details(session: Session, meeting: Meeting, rooms: ProvinceRooms) -> dict[str, Any]:
    every = [*rooms.sites, *rooms.busy, *rooms.free]
    rows = {r: (name, unit) for r, name, unit in session.exec(
        select(col(Room.id), Room.name, Unit.name).join(Unit, col(Unit.id) == col(Room.unit_id))
        .where(repository.ids_in(session, Room.id, every))).all()} if every else {}
    occurrences = _occurrences(session, meeting)
    bridges = cascade.room_bridges(session, meeting, occurrences[0].id if occurrences else None, set(rooms.sites))

    def room(r: int) -> dict[str, Any]:
        return {"room_id": r, "room_name": rows[r][0], "unit_name": rows[r][1]}

    return {"province": {"province_id": rooms.province.id, "province_code": rooms.province.code,
                         "province_name": rooms.province.name},
            "sites": [{**room(r), "bridge_id": bridges[r][0].id if r in bridges else None,
                       "bridge_name": bridges[r][0].name if r in bridges else None} for r in rooms.sites],
            "busy": [{**room(r), "conflicts": cs} for r, cs in rooms.busy.items()],
            "free": [room(r) for r in rooms.free]}
