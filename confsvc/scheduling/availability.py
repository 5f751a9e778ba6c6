"""Free-slot search (khung giờ trống, SPEC rule 8): earliest windows where every requested
endpoint and room, and enough bridge ports, are free, inside working hours.

Two bounded queries (resources, bridges) load the busy windows of the whole range; the search
itself is in memory.
"""

from __future__ import annotations

import bisect
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Endpoint, LifecycleState
from confsvc.errors import Invalid
from confsvc.scheduling import booking, repository
from confsvc.scheduling.conflicts import Window, booking_window, merge, peak_ports
from confsvc.scheduling.models import ResourceKind
from confsvc.users.principal import Principal

MAX_COUNT = 50


def find_free_slots(session: Session, settings: Settings, principal: Principal, *, endpoint_ids: list[int],
                    room_ids: list[int], duration_minutes: int, from_date: date, to_date: date, count: int = 5,
                    check_lead_minutes: int | None = None, teardown_minutes: int | None = None,
                    bridge_id: int | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Earliest ``count`` non-overlapping meeting times ``[start, end)`` of ``duration_minutes`` between
    local dates ``from_date`` and ``to_date`` (inclusive), on working days within working hours
    (``Settings.working_*``), starting on the ``slot_step_minutes`` grid, not in the past.

    A slot is free when its booking window (check lead and teardown included) overlaps no booking
    of the requested endpoints, of the rooms (``room_ids`` bring their active endpoints), and some
    active bridge (or ``bridge_id``) has enough ports at its peak.

    Raises:
        Invalid: no resources, bad range (over ``settings.availability_max_range_days``), duration over the maximum, unknown ids.
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
    chair, *others = room_ids or [None]
    if chair is None:
        participants = _endpoints_only(session, endpoint_ids)
    else:
        participants = booking.resolve_participants(session, chair_room_id=chair, room_ids=others,
                                                    endpoint_ids=endpoint_ids)
    zone = settings.zone
    now = now or utc_now()
    range_start = datetime.combine(from_date, datetime.min.time(), zone).astimezone(now.tzinfo)
    range_end = datetime.combine(to_date + timedelta(days=1), datetime.min.time(), zone).astimezone(now.tzinfo)
    whole = Window(range_start - timedelta(minutes=lead), range_end + timedelta(minutes=teardown))
    rows = repository.overlapping(session, [(ResourceKind.endpoint, participants.endpoint_ids),
                                            (ResourceKind.room, participants.room_ids)], whole,
                                  booking.max_window(settings))
    busy = merge(Window(b.window_start, b.window_end) for b, _ in rows)
    busy_ends = [w.end for w in busy]
    bridges = _bridges(session, bridge_id)
    uses = {b.id: [(Window(u.window_start, u.window_end), u.ports) for u, _ in repository.overlapping(
        session, [(ResourceKind.bridge, [b.id])], whole, booking.max_window(settings))] for b in bridges}
    ports = len(participants.endpoint_ids)
    step = timedelta(minutes=settings.slot_step_minutes)
    duration = timedelta(minutes=duration_minutes)
    found: list[dict[str, Any]] = []
    day = from_date
    while day <= to_date and len(found) < count:
        if day.weekday() in settings.working_weekday_set:
            day_open = datetime.combine(day, settings.working_hours_start, zone)
            day_close = datetime.combine(day, settings.working_hours_end, zone)
            start = day_open
            while start < now:
                start += step
            while start + duration <= day_close and len(found) < count:
                window = booking_window(start, start + duration, check_lead_minutes=lead, teardown_minutes=teardown)
                i = bisect.bisect_right(busy_ends, window.start)
                if i < len(busy) and busy[i].start < window.end:
                    free_from = busy[i].end + timedelta(minutes=lead)
                    while start < free_from:
                        start += step
                    continue
                chosen = next((b.id for b in bridges
                               if peak_ports(window, uses[b.id]) + ports <= b.port_capacity), None)
                if chosen is None:
                    start += step
                    continue
                found.append({"start": start, "end": start + duration, "start_local": start.replace(tzinfo=None),
                              "end_local": (start + duration).replace(tzinfo=None), "bridge_id": chosen})
                start += duration
                while (start - day_open) % step:
                    start += timedelta(minutes=1)
        day += timedelta(days=1)
    return [{**f, "start": f["start"].astimezone(now.tzinfo), "end": f["end"].astimezone(now.tzinfo)} for f in found]


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
