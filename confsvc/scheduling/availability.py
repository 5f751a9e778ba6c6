"""Free-slot search (khung giờ trống, SPEC rule 8): every start, at the slot step and earliest
first, where the dry run would succeed (every requested endpoint and room free, enough bridge ports
and a conference number), inside working hours and never straddling the lunch break.

Two bounded queries (resources, bridges) load the busy windows of the whole range; the search
itself is in memory.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Endpoint, LifecycleState, Room
from confsvc.errors import Invalid
from confsvc.scheduling import booking, cascade, repository
from confsvc.scheduling.conflicts import Window, booking_window, merge, peak_ports
from confsvc.scheduling.models import ResourceKind
from confsvc.users.principal import Principal

MAX_COUNT = 50


def find_free_slots(session: Session, settings: Settings, principal: Principal, *, endpoint_ids: list[int],
                    room_ids: list[int], duration_minutes: int, from_date: date, to_date: date, count: int = 5,
                    check_lead_minutes: int | None = None, teardown_minutes: int | None = None,
                    bridge_id: int | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every meeting time ``[start, end)`` of ``duration_minutes`` where the dry run
    (``POST /meetings/check``) would succeed, earliest first, at most ``count`` (SPEC rule 8).

    Starts lie on the ``slot_step_minutes`` grid from the opening of working hours, on working days
    (``working_weekdays``) between local dates ``from_date`` and ``to_date`` inclusive; the meeting
    itself lies inside one working period: ``[working_hours_start, lunch_break_start)`` or
    ``[lunch_break_end, working_hours_end)`` (never straddling the lunch break; one period when no
    break is set). Proposals may overlap each other: each is an alternative. Not in the past, not
    past the booking horizon. When the asked days hold no free slot, the search goes on through at
    most ``availability_extra_days`` following days (the answer's dates say which).

    A slot is free when its booking window (check lead and teardown included) overlaps no booking
    of the requested endpoints, of the rooms (``room_ids`` bring their active endpoints), and some
    active bridge (or ``bridge_id``) has enough ports at its peak and a free conference number. Sites
    spanning provinces form a cascade (issue 14): then the root (the chair's province's bridge, or
    ``bridge_id``) and one bridge of each other province with its own must each have their ports
    (sites + cascade legs, ``cascade.slot_demand``) and a number free.
    Work is bounded: at most 62 + ``availability_extra_days`` days, a fixed number of queries.

    Raises:
        Forbidden: a room or endpoint outside an operator's units (``forbidden_scope``).
        Invalid: no resources, bad range (over ``settings.availability_max_range_days``), duration over the maximum,
            unknown ids.
    """
    if not endpoint_ids and not room_ids:
        raise Invalid("give endpoint_ids or room_ids", code="no_participants")
    max_days = settings.availability_max_range_days
    if to_date < from_date or (to_date - from_date).days > max_days:
        raise Invalid(f"to_date must be on or after from_date, at most {max_days} days later",
                      code="invalid_range")
    if not 0 < duration_minutes <= settings.max_meeting_duration_minutes:
        raise Invalid(f"duration_minutes must be 1…{settings.max_meeting_duration_minutes}", code="invalid_duration")
    if not 1 <= count <= MAX_COUNT:
        raise Invalid(f"count must be 1…{MAX_COUNT}", code="invalid_count")
    lead = settings.default_check_lead_minutes if check_lead_minutes is None else check_lead_minutes
    teardown = settings.default_teardown_minutes if teardown_minutes is None else teardown_minutes
    if lead > settings.max_check_lead_minutes or teardown > settings.max_teardown_minutes:
        raise Invalid("check lead or teardown too long", code="check_lead_too_long")
    _require_scope(session, principal, room_ids, endpoint_ids)
    chair, *others = room_ids or [None]
    if chair is None:
        participants = _endpoints_only(session, endpoint_ids)
    else:
        participants = booking.resolve_participants(session, chair_room_id=chair, room_ids=others,
                                                    endpoint_ids=endpoint_ids)
    zone = settings.zone
    now = now or utc_now()
    latest_start = now + timedelta(days=settings.booking_horizon_days)
    last_date = to_date + timedelta(days=settings.availability_extra_days)
    range_start = datetime.combine(from_date, datetime.min.time(), zone).astimezone(UTC)
    range_end = datetime.combine(last_date + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    whole = Window(range_start - timedelta(minutes=lead), range_end + timedelta(minutes=teardown))
    rows = repository.overlapping(session, [(ResourceKind.endpoint, participants.endpoint_ids),
                                            (ResourceKind.room, participants.room_ids)], whole,
                                  booking.max_window(settings))
    busy = merge(Window(b.window_start, b.window_end) for b, _ in rows)
    busy_ends = [w.end for w in busy]
    demand = cascade.slot_demand(session, participants, bridge_id=bridge_id) or [
        (_bridges(session, bridge_id), len(participants.endpoint_ids))]
    uses: dict[int | None, list[tuple[Window, int, int | None]]] = {b.id: [] for bridges, _ in demand for b in bridges}
    for u, _ in repository.overlapping(session, [(ResourceKind.bridge, sorted(b for b in uses if b is not None))],
                                       whole, booking.max_window(settings)):
        uses[u.resource_id].append((Window(u.window_start, u.window_end), u.ports, u.conference_number))
    step = timedelta(minutes=settings.slot_step_minutes)
    duration = timedelta(minutes=duration_minutes)
    found: list[dict[str, Any]] = []
    day = from_date
    while day <= last_date and len(found) < count and (day <= to_date or not found):
        if day.weekday() in settings.working_weekday_set:
            day_open = datetime.combine(day, settings.working_hours_start, zone)
            for period_start, period_end in _periods(settings, day, zone):
                # The first grid start (from the day's opening) inside the period.
                start = day_open + -(-(period_start - day_open) // step) * step
                while start + duration <= period_end and len(found) < count:
                    if now <= start <= latest_start:
                        window = booking_window(start, start + duration, check_lead_minutes=lead,
                                                teardown_minutes=teardown)
                        i = bisect.bisect_right(busy_ends, window.start)
                        if not (i < len(busy) and busy[i].start < window.end):
                            chosen = _fitting(demand, window, uses)
                            if chosen is not None:
                                end = start + duration
                                found.append({"start": start.astimezone(UTC), "end": end.astimezone(UTC),
                                              "start_local": start.replace(tzinfo=None),
                                              "end_local": end.replace(tzinfo=None), "bridge_id": chosen})
                    start += step
        day += timedelta(days=1)
    return found


def _periods(settings: Settings, day: date, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The day's working periods (aware, local): split by the lunch break when it lies inside."""
    opening, closing = settings.working_hours_start, settings.working_hours_end
    lunch_start, lunch_end = settings.lunch_break_start, settings.lunch_break_end
    if lunch_start is None or lunch_end is None or not opening <= lunch_start < lunch_end <= closing:
        bounds = [(opening, closing)]
    else:
        bounds = [(opening, lunch_start), (lunch_end, closing)]
    return [(datetime.combine(day, a, zone), datetime.combine(day, b, zone)) for a, b in bounds if a < b]


def _fitting(demand: list[tuple[list[Bridge], int]], window: Window,
             uses: dict[int | None, list[tuple[Window, int, int | None]]]) -> int | None:
    """The root bridge's id when every entry of ``demand`` (the root first, then a cascade's child
    provinces) has a bridge with its ports and a number free over ``window``; else None."""
    chosen = [next((b.id for b in bridges if _bridge_fits(b, window, uses[b.id], ports)), None)
              for bridges, ports in demand]
    return None if None in chosen else chosen[0]


def _bridge_fits(bridge: Bridge, window: Window, uses: list[tuple[Window, int, int | None]], ports: int) -> bool:
    """Enough ports at the peak over ``window`` and a free conference number (SPEC rules 2, 3)."""
    overlapping = [(w, p, n) for w, p, n in uses if w.overlaps(window)]
    if peak_ports(window, [(w, p) for w, p, _ in overlapping]) + ports > bridge.port_capacity:
        return False
    used = {n for _, _, n in overlapping
            if n is not None and bridge.conference_number_min <= n <= bridge.conference_number_max}
    return len(used) < bridge.conference_number_max - bridge.conference_number_min + 1


def _require_scope(session: Session, principal: Principal, room_ids: list[int], endpoint_ids: list[int]) -> None:
    """Free/busy is a scoped read: an operator asks only about rooms and endpoints of their units.

    Raises:
        Forbidden: ``forbidden_scope`` (403), as for any other scoped read.
    """
    if principal.unit_ids is None:
        return
    units: set[int] = set()
    if room_ids:
        units |= set(session.exec(select(Room.unit_id).where(Room.id.in_(room_ids))).all())
    if endpoint_ids:
        units |= set(session.exec(select(Room.unit_id).join(Endpoint, Endpoint.room_id == Room.id)
                                  .where(Endpoint.id.in_(endpoint_ids))).all())
    for unit_id in sorted(units):
        principal.require_unit(unit_id)


def _endpoints_only(session: Session, endpoint_ids: list[int]) -> booking.Participants:
    """Participants from endpoints alone (no chair room): their rooms are occupied too."""
    if len(set(endpoint_ids)) != len(endpoint_ids):
        raise Invalid("a participant endpoint is listed twice", code="duplicate_participant")
    rows = session.exec(select(Endpoint).where(Endpoint.id.in_(endpoint_ids))).all()
    if len(rows) != len(endpoint_ids):
        raise Invalid("unknown endpoint(s)", code="unknown_endpoint")
    if any(e.lifecycle_state is not LifecycleState.active for e in rows):
        raise Invalid("endpoint(s) not bookable", code="endpoint_not_bookable")
    rooms = sorted({e.room_id for e in rows})
    return booking.Participants(chair_room_id=rooms[0], endpoint_ids=sorted(endpoint_ids), room_ids=rooms)


def _bridges(session: Session, bridge_id: int | None) -> list[Bridge]:
    query = select(Bridge).where(Bridge.active == sa.true()).order_by(Bridge.id)
    if bridge_id is not None:
        query = query.where(Bridge.id == bridge_id)
    bridges = list(session.exec(query).all())
    if not bridges:
        raise Invalid("no active bridge (MCU) matches", code="no_bridge")
    return bridges
