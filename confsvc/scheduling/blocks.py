"""Rooms and endpoints blocked for whole local days (issue 12: repairs, an election, a holiday).

A block is a booking of the resource over ``[first_day 00:00, last_day + 1 00:00)`` in the
deployment's zone (``Settings.timezone``), stored like a long maintenance window (consecutive
bookings no longer than ``booking.max_window``), so every booking over it is refused with a
conflict naming the block (``block_id``), and it refuses to be created over booked meetings (409
listing them, SPEC rule 8). Feeds of the room or endpoint show it as an all-day event
(``calendar.feeds``). Who: admin and secretariat anywhere, operators in their units (as maintenance).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Endpoint, Room
from confsvc.errors import Invalid, NotFound
from confsvc.scheduling import booking
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.maintenance import require_bounded_window
from confsvc.scheduling.models import Booking, ResourceBlock, ResourceKind
from confsvc.users.principal import MANAGE_MAINTENANCE, Principal

KINDS = (ResourceKind.room, ResourceKind.endpoint)


def day_window(settings: Settings, first_day: date, last_day: date) -> Window:
    """UTC ``[first_day 00:00, last_day + 1 00:00)`` of local days in ``settings.zone``."""
    zone = settings.zone
    return Window(datetime.combine(first_day, time.min, zone).astimezone(UTC),
                  datetime.combine(last_day + timedelta(days=1), time.min, zone).astimezone(UTC))


def _require_manager(principal: Principal, room: Room) -> None:
    principal.require(MANAGE_MAINTENANCE)
    principal.require_unit(room.unit_id)


def _participants(kind: ResourceKind, resource: Room | Endpoint, room: Room) -> Participants:
    if kind is ResourceKind.room:
        return Participants(chair_room_id=room.id, endpoint_ids=[], room_ids=[room.id])
    return Participants(chair_room_id=room.id, endpoint_ids=[resource.id], room_ids=[])


def create_block(session: Session, settings: Settings, principal: Principal, kind: ResourceKind,
                 resource: Room | Endpoint, room: Room, *, first_day: date, last_day: date, reason: str,
                 now: datetime | None = None) -> ResourceBlock:
    """Block ``resource`` (a room, or an endpoint in ``room``) for local days ``first_day … last_day``.

    Bounded like maintenance: it starts at most ``maintenance_past_days`` before now, lasts at most
    ``max_block_days`` days and ends within ``booking_horizon_days``.

    Raises: Forbidden, Invalid (``last_day_before_first_day``, ``window_starts_too_early``,
    ``window_too_long``, ``beyond_booking_horizon``), BookingConflict (meetings or maintenance then).
    """
    _require_manager(principal, room)
    if last_day < first_day:
        raise Invalid("last_day must be on or after first_day", code="last_day_before_first_day")
    now = now or utc_now()
    whole = day_window(settings, first_day, last_day)
    require_bounded_window(settings, whole.start, whole.end, now=now, max_days=settings.max_block_days,
                           what="a block")
    session.get(type(resource), resource.id, with_for_update=True)  # serialise blocks of one resource
    step = booking.max_window(settings)
    chunks: list[Window] = []
    cursor = whole.start
    while cursor < whole.end:
        chunks.append(Window(cursor, min(cursor + step, whole.end)))
        cursor = chunks[-1].end
    participants = _participants(kind, resource, room)
    plans = [Plan(start=c.start, end=c.end, recurrence_id=c.start, participants=participants, window=c)
             for c in chunks]
    booking.resource_conflicts(session, settings, plans, Names(session))
    conflicts = [c for p in plans for c in p.conflicts]
    name = getattr(resource, "name", str(resource.id))
    if conflicts:
        raise BookingConflict(f"{name}: the block collides with {len(conflicts)} booking(s)", conflicts)
    block = ResourceBlock(resource_kind=kind, resource_id=resource.id, first_day=first_day, last_day=last_day,
                          reason=reason, created_by=principal.user_id, created_at=now)

    def write() -> None:
        session.add(block)
        session.flush()
        session.execute(sa.insert(Booking), [
            {"meeting_id": None, "occurrence_id": None, "maintenance_id": None, "block_id": block.id,
             "resource_kind": kind, "resource_id": resource.id, "window_start": c.start, "window_end": c.end,
             "ports": 0, "conference_number": None} for c in chunks])
        session.flush()

    booking.insert_guarded(session, settings, write, plans, f"block of {name}")
    audit(session, principal, "block.created", meeting_id=None, resource_kind=kind.value, resource_id=resource.id,
          first_day=first_day.isoformat(), last_day=last_day.isoformat(), reason=reason)
    session.flush()
    return block


def list_blocks(session: Session, kind: ResourceKind, resource_id: int, *,
                include_past: bool = False, today: date | None = None) -> list[ResourceBlock]:
    """Blocks of one room or endpoint by first day; without ``include_past`` those whose last day is
    before ``today`` (local) are left out."""
    query = select(ResourceBlock).where(ResourceBlock.resource_kind == kind, ResourceBlock.resource_id == resource_id)
    if not include_past and today is not None:
        query = query.where(ResourceBlock.last_day >= today)
    return list(session.exec(query.order_by(ResourceBlock.first_day, ResourceBlock.id)).all())


def delete_block(session: Session, principal: Principal, kind: ResourceKind, resource_id: int, room: Room,
                 block_id: int) -> None:
    """Lift a block (its bookings go with it: the days are free at once).

    Raises: Forbidden, NotFound (``block_not_found``, also for another resource's block).
    """
    _require_manager(principal, room)
    block = session.get(ResourceBlock, block_id)
    if block is None or block.resource_kind is not kind or block.resource_id != resource_id:
        raise NotFound(f"block {block_id} not found", code="block_not_found")
    session.execute(sa.delete(Booking).where(Booking.block_id == block.id))
    audit(session, principal, "block.deleted", meeting_id=None, resource_kind=kind.value, resource_id=resource_id,
          first_day=block.first_day.isoformat(), last_day=block.last_day.isoformat())
    session.delete(block)
    session.flush()


def block_public(block: ResourceBlock) -> dict[str, Any]:
    return {"id": block.id, "resource_kind": block.resource_kind.value, "resource_id": block.resource_id,
            "first_day": block.first_day, "last_day": block.last_day, "reason": block.reason,
            "created_by": block.created_by, "created_at": block.created_at}
