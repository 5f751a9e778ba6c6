"""The booking engine: participants → per-occurrence plans → conflicts → bookings.

Used by the meeting, occurrence and maintenance use cases in ``service.py``. Functions flush,
never commit. The friendly checks here produce the conflict lists of SPEC rule 8 as
:class:`~confsvc.scheduling.conflicts.Conflict` values; the guarantee under concurrency (rule 7) is
the PostgreSQL exclusion constraints, the rooms' advisory locks (taken before any bridge lock), the
conference numbers' claims (``repository.claim_number``), the bridge's ports counted again at COMMIT
under its lock (``port_guard``), and SQLite's ``BEGIN IMMEDIATE`` write transactions. Lock order,
everywhere: meeting row → rooms (ascending) → bridges (ascending).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Endpoint, LifecycleState, Room
from confsvc.errors import Invalid
from confsvc.scheduling import repository
from confsvc.scheduling.conflicts import (
    Conflict,
    Other,
    Window,
    booking_window,
    bridge_ports,
    make_conflict,
    port_overloads,
)
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind


@dataclass
class Participants:
    """Resolved participants: endpoint ids (sorted) and the rooms they occupy (chair room included)."""

    chair_room_id: int
    endpoint_ids: list[int]
    room_ids: list[int]


@dataclass
class Plan:
    """What one occurrence needs: its times (UTC), window and resources."""

    start: datetime
    end: datetime
    recurrence_id: datetime
    participants: Participants
    window: Window
    occurrence: Occurrence | None = None
    conflicts: list[Conflict] = field(default_factory=list)
    conference_number: int | None = None
    #: A relay (issue 14): the root bridge also holds the leg to the upstream chair outside confsvc.
    upstream_leg: bool = False
    #: A cascaded meeting's bridges for this occurrence: bridge id → (ports, conference number), the root
    #: included (``cascade.choose_bridges``); None: the meeting's one bridge holds :attr:`ports`.
    cascade: dict[int, tuple[int, int | None]] | None = None

    @property
    def ports(self) -> int:
        """Ports of the meeting's one bridge: every site endpoint, and the relay's upstream leg."""
        return bridge_ports(len(self.participants.endpoint_ids), parent_leg=self.upstream_leg)


def max_window(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.max_booking_window_minutes)


def resolve_participants(session: Session, *, chair_room_id: int, room_ids: list[int],
                         endpoint_ids: list[int]) -> Participants:
    """Expand rooms into their active endpoints and check explicit endpoints.

    The chair room's active endpoints always participate. An endpoint reached both through a
    room and explicitly counts once.

    Raises:
        Invalid: ``duplicate_participant`` (a room or endpoint listed twice, or the chair room
            listed as a participant room), ``unknown_room``, ``unknown_endpoint``,
            ``endpoint_not_bookable`` (in maintenance or retired, SPEC rule 4), ``no_participants``.
    """
    if len(set(room_ids)) != len(room_ids) or chair_room_id in room_ids:
        raise Invalid("a participant room is listed twice (the chair room participates already)",
                      code="duplicate_participant")
    if len(set(endpoint_ids)) != len(endpoint_ids):
        raise Invalid("a participant endpoint is listed twice", code="duplicate_participant")
    all_rooms = [chair_room_id, *room_ids]
    # One query: the rooms that exist, each with its active endpoints (none: one row with NULL).
    found = session.exec(
        select(Room.id, Endpoint.id).outerjoin(Endpoint, sa.and_(Endpoint.room_id == Room.id,
                                                                 Endpoint.lifecycle_state == LifecycleState.active))
        .where(repository.ids_in(session, Room.id, all_rooms))).all()
    found_rooms = {room_id for room_id, _ in found}
    missing_rooms = [r for r in all_rooms if r not in found_rooms]
    if missing_rooms:
        raise Invalid(f"unknown room(s): {', '.join(map(str, missing_rooms))}", code="unknown_room",
                      room_ids=missing_rooms)
    chosen: dict[int, int] = {endpoint_id: room_id for room_id, endpoint_id in found
                              if endpoint_id is not None and room_id is not None}
    if endpoint_ids:
        rows = {e.id: e for e in session.exec(
            select(Endpoint).where(repository.ids_in(session, Endpoint.id, endpoint_ids))).all()}
        missing = [e for e in endpoint_ids if e not in rows]
        if missing:
            raise Invalid(f"unknown endpoint(s): {', '.join(map(str, missing))}", code="unknown_endpoint",
                          endpoint_ids=missing)
        unusable = [e for e in endpoint_ids if rows[e].lifecycle_state is not LifecycleState.active]
        if unusable:
            states = ", ".join(f"{e} ({rows[e].lifecycle_state.value})" for e in unusable)
            raise Invalid(f"endpoint(s) not bookable: {states}", code="endpoint_not_bookable", endpoint_ids=unusable)
        for endpoint_id in endpoint_ids:
            chosen[endpoint_id] = rows[endpoint_id].room_id
    if not chosen:
        raise Invalid("the meeting has no active endpoint", code="no_participants")
    rooms = sorted({chair_room_id, *chosen.values()})
    return Participants(chair_room_id=chair_room_id, endpoint_ids=sorted(chosen), room_ids=rooms)


def make_plan(start: datetime, end: datetime, recurrence_id: datetime, participants: Participants, *,
              check_lead_minutes: int, teardown_minutes: int, occurrence: Occurrence | None = None) -> Plan:
    window = booking_window(start, end, check_lead_minutes=check_lead_minutes, teardown_minutes=teardown_minutes)
    return Plan(start=start, end=end, recurrence_id=recurrence_id, participants=participants, window=window,
                occurrence=occurrence)


# ---------------------------------------------------------------- conflict descriptions

_NAMED: dict[ResourceKind, Any] = {ResourceKind.endpoint: Endpoint, ResourceKind.room: Room,
                                   ResourceKind.bridge: Bridge}


class Names:
    """Resource names for conflict messages, loaded once per request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[tuple[ResourceKind, int], str] = {}

    def get(self, kind: ResourceKind, resource_id: int) -> str:
        key = (kind, resource_id)
        if key not in self.cache:
            row = self.session.get(_NAMED[kind], resource_id)
            self.cache[key] = row.name if row is not None else f"{kind.value} {resource_id}"
        return self.cache[key]

    def load(self, keys: Iterable[tuple[ResourceKind, int]]) -> None:
        """Read the names of ``keys`` not read yet in one query (a refusal names every resource it
        lists: one query instead of one per resource)."""
        missing = {key for key in keys if key not in self.cache}
        if not missing:
            return
        parts = [sa.select(sa.literal(kind.value).label("kind"), model.id, model.name)
                 .where(repository.ids_in(self.session, model.id, [i for k, i in missing if k is kind]))
                 for kind, model in _NAMED.items() if any(k is kind for k, _ in missing)]
        query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
        for kind, resource_id, name in self.session.execute(query).all():
            self.cache[(ResourceKind(kind), resource_id)] = name
        for kind, resource_id in missing:
            self.cache.setdefault((kind, resource_id), f"{kind.value} {resource_id}")


def _other(held: repository.Held) -> Other:
    b = held.booking
    if b.maintenance_id is not None:
        return Other(maintenance_id=b.maintenance_id, start=b.window_start, end=b.window_end)
    if b.block_id is not None:  # a whole-day block (blocks.py)
        return Other(block_id=b.block_id, start=b.window_start, end=b.window_end)
    return Other(meeting_id=b.meeting_id, meeting_title=held.title, occurrence_id=b.occurrence_id,
                 start=held.start, end=held.end, check_start=b.window_start)


def _conflict(plan: Plan, zone: ZoneInfo, kind: ResourceKind, resource_id: int, name: str, overlap: Window,
              held: repository.Held | None = None, **bridge: Any) -> Conflict:
    return make_conflict(zone=zone, resource_kind=kind.value, resource_id=resource_id, resource_name=name,
                         overlap=overlap, requested_start=plan.start,
                         requested_occurrence_id=plan.occurrence.id if plan.occurrence is not None else None,
                         other=_other(held) if held is not None else None, **bridge)


def resource_conflicts(session: Session, settings: Settings, plans: list[Plan], names: Names, *,
                       lock: bool = True, partial: bool = False) -> None:
    """Fill each plan's ``conflicts`` with endpoint and room collisions (SPEC rules 1, 4).

    With ``lock``, when the bookings may be written (nothing collides in what is committed, or,
    ``partial``, some plan is free: the caller skips the others), the rooms' locks are taken
    (``repository.lock_rooms``) and the check runs again, so that what it finds is still true when
    the bookings are written. A refusal takes no lock (what it saw is committed). A dry run passes
    ``lock=False``.
    """
    _resource_conflicts(session, settings, plans, names)
    writable = any(not p.conflicts for p in plans) if partial else not any(p.conflicts for p in plans)
    if lock and writable and plans:
        repository.lock_rooms(session, {r for p in plans for r in p.participants.room_ids})
        if session.get_bind().dialect.name == "postgresql":  # SQLite: the write lock was held already
            for plan in plans:
                plan.conflicts = []
            _resource_conflicts(session, settings, plans, names)


def _resource_conflicts(session: Session, settings: Settings, plans: list[Plan], names: Names) -> None:
    found = [(plan, repository.holdings(
        session, [(ResourceKind.endpoint, plan.participants.endpoint_ids),
                  (ResourceKind.room, plan.participants.room_ids)], plan.window, max_window(settings)))
        for plan in plans]
    names.load((held.booking.resource_kind, held.booking.resource_id) for _, rows in found for held in rows)
    for plan, rows in found:
        for held in rows:
            b = held.booking
            overlap = Window(b.window_start, b.window_end).intersection(plan.window)
            plan.conflicts.append(_conflict(plan, settings.zone, b.resource_kind, b.resource_id,
                                            names.get(b.resource_kind, b.resource_id), overlap, held))


def bridge_check(session: Session, settings: Settings, bridge: Bridge, plans: list[Plan], *,
                 holdings: list[list[repository.Held]] | None = None, requested: list[int] | None = None,
                 province_name: str | None = None,
                 ) -> tuple[dict[int, list[Conflict]], list[dict[int, list[repository.Held]]]]:
    """Port conflicts per plan index, and per plan the conference numbers in use with their holders.

    A port conflict names the interval(s) where the peak would exceed the capacity and the
    occurrences holding ports there (SPEC rules 2, 8; :func:`conflicts.port_overloads`).
    ``holdings``: each plan's bookings of this bridge, read already (one query for many bridges:
    ``cascade``); ``requested``: each plan's ports on it (default :attr:`Plan.ports`);
    ``province_name``: named in the conflicts (a cascaded meeting's bridge of a province).
    """
    conflicts: dict[int, list[Conflict]] = {}
    used: list[dict[int, list[repository.Held]]] = []
    for index, plan in enumerate(plans):
        rows = holdings[index] if holdings is not None else repository.holdings(
            session, [(ResourceKind.bridge, [bridge.id])], plan.window, max_window(settings))
        wanted = requested[index] if requested is not None else plan.ports
        numbers: dict[int, list[repository.Held]] = {}
        for held in rows:
            if held.booking.conference_number is not None:
                numbers.setdefault(held.booking.conference_number, []).append(held)
        used.append(numbers)
        overloads = port_overloads(plan.window, [(Window(h.booking.window_start, h.booking.window_end),
                                                  h.booking.ports, i) for i, h in enumerate(rows)],
                                   requested=wanted, capacity=bridge.port_capacity)
        for overload in overloads:
            ports = {"port_capacity": bridge.port_capacity, "ports_in_use": overload.in_use,
                     "ports_requested": wanted, "province_name": province_name}
            items = [_conflict(plan, settings.zone, ResourceKind.bridge, bridge.id, bridge.name, overload.window,
                               rows[int(i)], **ports) for i in overload.holders]
            conflicts.setdefault(index, []).extend(items or [_conflict(
                plan, settings.zone, ResourceKind.bridge, bridge.id, bridge.name, overload.window, **ports,
                reason="more sites than the MCU has ports")])
    return conflicts, used


@dataclass
class BridgeChoice:
    """The bridge, the meeting's conference number, and each conflict-free plan's number (by plan
    index; it differs from the meeting's only where that one is taken then)."""

    bridge: Bridge | None
    conference_number: int | None
    conflicts: dict[int, list[Conflict]]
    numbers: dict[int, int] = field(default_factory=dict)


def choose_bridge(session: Session, settings: Settings, plans: list[Plan], names: Names, *,
                  bridge_id: int | None, keep_number: int | None = None, lock: bool = True,
                  allowed: Any = None, meeting_id: int | None = None) -> BridgeChoice:
    """Pick the bridge and conference numbers for ``plans`` (SPEC rules 2, 3).

    A named bridge is used as is; otherwise the first active bridge (by id) with enough free
    ports for every plan, counted as committed now. No bridge lock is taken: on PostgreSQL the
    ports are counted again at COMMIT under the bridge's lock (``port_guard``, the guarantee of
    SPEC rule 7), so bookings of different rooms do not queue on their bridge (issue 16
    "Throughput under contention"); on SQLite the write transaction serialises writers. The
    meeting's number is ``keep_number`` when still free in every plan, else the lowest number free
    in every plan. A plan whose occurrence has its own number keeps it while free; a plan where the
    meeting's number is taken gets the lowest number free then (issue 12: a move never fails on
    the number while the bridge has a free one). Only a plan with no free number at all conflicts,
    naming the occurrences holding the numbers. With ``lock`` the numbers are claimed
    (``repository.claim_number``: a number a concurrent booking is claiming is skipped);
    ``meeting_id``: the meeting being changed, whose own bookings do not hold numbers.

    ``allowed``: an SQL condition on ``bridges`` the bridge must meet (the booker's province's and the
    shared ones, ``participants.bridges_in_scope``); a named bridge outside it is unknown.

    Raises:
        Invalid: ``unknown_bridge`` (named bridge missing or inactive), ``no_bridge``.
    """
    allowed = sa.true() if allowed is None else allowed
    if bridge_id is not None:
        candidates = repository.current_bridges(session, sa.and_(Bridge.id == bridge_id, allowed))
        if not candidates or not candidates[0].active:
            raise Invalid(f"bridge {bridge_id} does not exist or is inactive", code="unknown_bridge")
    else:
        # Every candidate as committed now, in one query (``repository.current_bridges``).
        candidates = repository.current_bridges(session, sa.and_(Bridge.active == sa.true(), allowed))
        if not candidates:
            raise Invalid("no active bridge (MCU) is configured", code="no_bridge")
    first: BridgeChoice | None = None
    for bridge in candidates:
        conflicts, used = bridge_check(session, settings, bridge, plans)
        claim = claimer(session, bridge, meeting_id) if lock and not conflicts else None
        choice = numbers_for(settings, bridge, plans, keep_number, conflicts, used, claim=claim)
        if not choice.conflicts:
            return choice
        first = first or choice
    assert first is not None
    return first


#: Claims the first free number of ``candidates`` over ``windows`` (``repository.claim_number``).
Claim = Callable[[list[int], list[Window]], int | None]


def claimer(session: Session, bridge: Bridge, meeting_id: int | None = None) -> Claim:
    """Claims numbers on ``bridge`` in ``session``'s transaction (``repository.claim_number``)."""
    def claim(candidates: list[int], windows: list[Window]) -> int | None:
        return repository.claim_number(session, bridge.id, candidates, windows, meeting_id=meeting_id)
    return claim


def numbers_for(settings: Settings, bridge: Bridge, plans: list[Plan], keep: int | None,
                conflicts: dict[int, list[Conflict]], used: list[dict[int, list[repository.Held]]], *,
                own_numbers: bool = True, claim: Claim | None = None) -> BridgeChoice:
    """The bridge's answer for ``plans`` from :func:`bridge_check`'s: the number common to every plan
    (``keep`` while free), each plan's own (an occurrence's own number while free, with
    ``own_numbers``), and a conflict for a plan with no free number. With ``claim`` (:func:`claimer`)
    the numbers are claimed: one a concurrent booking is claiming is skipped."""
    common = _free_number(bridge, set().union(*used) if used else set(), keep, claim, [p.window for p in plans])
    numbers: dict[int, int] = {}
    for index, plan in enumerate(plans):
        own = plan.occurrence.conference_number if plan.occurrence is not None and own_numbers else None
        wanted = own if own is not None else (common if common is not None else keep)
        if wanted is not None and wanted == common and wanted not in used[index]:
            numbers[index] = wanted  # claimed over every plan's window already
            continue
        number = _free_number(bridge, set(used[index]), wanted, claim, [plan.window])
        if number is not None:
            numbers[index] = number
            continue
        conflicts.setdefault(index, []).extend(
            _conflict(plan, settings.zone, ResourceKind.bridge, bridge.id, bridge.name,
                      Window(h.booking.window_start, h.booking.window_end).intersection(plan.window), h,
                      reason="no free conference number")
            for holders in used[index].values() for h in holders)
    if common is None:
        common = keep if keep is not None and keep in numbers.values() else min(numbers.values(), default=None)
    return BridgeChoice(bridge, common, conflicts, numbers)


#: Conference numbers offered to a claim at most (the lowest free ones; a claim skips those that
#: concurrent bookings are claiming).
CLAIM_CANDIDATES = 256


def _free_number(bridge: Bridge, used: set[int], keep: int | None, claim: Claim | None = None,
                 windows: list[Window] | None = None) -> int | None:
    """``keep`` if free and in the bridge's range, else the lowest free number; with ``claim``, the
    first of those that the claim takes."""
    candidates: list[int] = []
    if keep is not None and keep not in used and bridge.conference_number_min <= keep <= bridge.conference_number_max:
        candidates.append(keep)
    for number in range(bridge.conference_number_min, bridge.conference_number_max + 1):
        if len(candidates) >= (CLAIM_CANDIDATES if claim is not None else 1):
            break
        if number not in used and number != keep:
            candidates.append(number)
    if claim is None:
        return candidates[0] if candidates else None
    return claim(candidates, windows or [])


def new_pin(settings: Settings) -> str:
    """Random digits from ``secrets`` (a PIN is a secret)."""
    return "".join(secrets.choice("0123456789") for _ in range(settings.pin_digits))


# ---------------------------------------------------------------- writing

def booking_rows(meeting: Meeting, plan: Plan, occurrence_id: int) -> list[dict[str, Any]]:
    """Rows for one occurrence: each endpoint, each room, and the bridge's ports (each bridge's, with its
    own number, for a cascaded meeting: ``plan.cascade``)."""
    common = {"meeting_id": meeting.id, "occurrence_id": occurrence_id, "maintenance_id": None,
              "window_start": plan.window.start, "window_end": plan.window.end}
    rows = [{**common, "resource_kind": ResourceKind.endpoint, "resource_id": e, "ports": 0,
             "conference_number": None} for e in plan.participants.endpoint_ids]
    rows += [{**common, "resource_kind": ResourceKind.room, "resource_id": r, "ports": 0,
              "conference_number": None} for r in plan.participants.room_ids]
    if plan.cascade is not None:
        rows += [{**common, "resource_kind": ResourceKind.bridge, "resource_id": bridge_id, "ports": ports,
                  "conference_number": number} for bridge_id, (ports, number) in sorted(plan.cascade.items())]
    elif meeting.bridge_id is not None:
        number = plan.conference_number if plan.conference_number is not None else meeting.conference_number
        rows.append({**common, "resource_kind": ResourceKind.bridge, "resource_id": meeting.bridge_id,
                     "ports": plan.ports, "conference_number": number})
    return rows


def insert_guarded(session: Session, settings: Settings, write: Any, recheck: list[Plan], title: str) -> None:
    """Run ``write()`` (which flushes) in a savepoint; a constraint violation becomes BookingConflict.

    A violation means a concurrent transaction committed a colliding booking after our friendly
    check (SPEC rule 7). The savepoint keeps the transaction usable so the conflicts can be
    listed; the caller's request then rolls back.
    """
    try:
        with session.begin_nested():
            write()
    except IntegrityError as exc:
        for plan in recheck:
            plan.conflicts = []
        resource_conflicts(session, settings, recheck, Names(session), lock=False)
        conflicts = [c for p in recheck for c in p.conflicts]
        raise BookingConflict(f"«{title}» trùng lịch (a concurrent booking took the slot first)",
                              conflicts) from exc


def delete_bookings(session: Session, *, meeting_id: int | None = None, occurrence_id: int | None = None) -> None:
    """Free resources at once (SPEC rule 6)."""
    query = sa.delete(Booking)
    if occurrence_id is not None:
        query = query.where(Booking.occurrence_id == occurrence_id)
    else:
        query = query.where(Booking.meeting_id == meeting_id)
    session.execute(query)
    session.flush()


# ---------------------------------------------------------------- warnings

def holiday_warnings(plans: list[Plan], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Vietnamese public holidays on an occurrence's local date: warnings, not refusals (SPEC rule 9).

    ``name`` is the holiday's Vietnamese name ("Quốc khánh"), ``name_en`` its English one.
    """
    if not plans:
        return []
    local_dates: list[tuple[date, Plan]] = [(p.start.astimezone(zone).date(), p) for p in plans]
    years = tuple(sorted({d.year for d, _ in local_dates}))
    vietnamese, english = _holidays(years, "vi"), _holidays(years, "en_US")
    return [{"code": "public_holiday", "date": d, "name": vietnamese.get(d), "name_en": english.get(d),
             "requested_start": p.start}
            for d, p in local_dates if d in vietnamese]


@functools.lru_cache(maxsize=64)
def _holidays(years: tuple[int, ...], language: str) -> holidays.HolidayBase:
    """Vietnam's public holidays of ``years`` named in ``language``, built once per process (building
    them cost a booking several milliseconds). Only read: every date looked up is in ``years``."""
    return holidays.country_holidays("VN", years=years, language=language)


# ---------------------------------------------------------------- a meeting's conference number

def numbers_held_by_others(session: Session, settings: Settings, bridge: Bridge, meeting_id: int,
                           ) -> list[tuple[Booking, dict[int, list[repository.Held]]]]:
    """For each booking of ``bridge`` by ``meeting_id``: the numbers other meetings hold on ``bridge`` in
    its window, with their holders."""
    own = session.exec(select(Booking).where(Booking.meeting_id == meeting_id,
                                             Booking.resource_kind == ResourceKind.bridge,
                                             Booking.resource_id == bridge.id)
                       .order_by(Booking.window_start)).all()
    out = []
    for b in own:
        held: dict[int, list[repository.Held]] = {}
        for h in repository.holdings(session, [(ResourceKind.bridge, [bridge.id])],
                                     Window(b.window_start, b.window_end), max_window(settings)):
            if h.booking.meeting_id != meeting_id and h.booking.conference_number is not None:
                held.setdefault(h.booking.conference_number, []).append(h)
        out.append((b, held))
    return out


def number_conflicts(bridge: Bridge, zone: ZoneInfo, bookings: list[tuple[Booking, dict[int, list[repository.Held]]]],
                     number: int, occurrences: dict[int, Occurrence]) -> list[Conflict]:
    """Conflicts of giving ``number`` to every booking of ``bookings`` (SPEC rule 3), naming holders."""
    out = []
    for b, held in bookings:
        occ = occurrences.get(b.occurrence_id) if b.occurrence_id is not None else None
        for h in held.get(number, []):
            out.append(make_conflict(
                zone=zone, resource_kind=ResourceKind.bridge.value, resource_id=bridge.id, resource_name=bridge.name,
                overlap=Window(h.booking.window_start, h.booking.window_end).intersection(
                    Window(b.window_start, b.window_end)),
                requested_start=occ.start if occ is not None else b.window_start,
                requested_occurrence_id=b.occurrence_id, other=_other(h), reason="conference number in use"))
    return out
