"""Maintenance windows (bảo trì): an endpoint out of service for ``[start, end)`` is a booking
(SPEC rule 4); and the bound on every resource window one request writes (issue 16 defect 1),
shared with room and endpoint blocks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from confsvc.clock import as_utc, utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Endpoint, Room
from confsvc.errors import Invalid
from confsvc.scheduling import booking, repository
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Booking, MaintenanceWindow, ResourceKind
from confsvc.users import principal as capabilities
from confsvc.users.principal import Principal


def require_bounded_window(settings: Settings, start_utc: datetime, end_utc: datetime, *, now: datetime,
                           max_days: int, what: str) -> None:
    """Refuse a resource window ``[start_utc, end_utc)`` (UTC) that would make one request write
    unbounded rows: it must start at most ``settings.maintenance_past_days`` before ``now``, last at
    most ``max_days`` days and end within ``settings.booking_horizon_days`` of ``now``.

    Raises Invalid: end_not_after_start, window_starts_too_early, window_too_long, beyond_booking_horizon.
    """
    if end_utc <= start_utc:
        raise Invalid("end must be after start", code="end_not_after_start")
    if start_utc < now - timedelta(days=settings.maintenance_past_days):
        raise Invalid(f"{what} may start at most {settings.maintenance_past_days} day(s) in the past",
                      code="window_starts_too_early")
    if end_utc - start_utc > timedelta(days=max_days):
        raise Invalid(f"{what} lasts at most {max_days} days", code="window_too_long")
    if end_utc > now + timedelta(days=settings.booking_horizon_days):
        raise Invalid(f"{what} must end within {settings.booking_horizon_days} days from now",
                      code="beyond_booking_horizon")


def create_maintenance(session: Session, settings: Settings, principal: Principal, endpoint: Endpoint, room: Room,
                       *, start: datetime, end: datetime, note: str, now: datetime | None = None) -> MaintenanceWindow:
    """Take an endpoint out of service for ``[start, end)``; the window is a booking (SPEC rule 4).

    Admin and secretariat anywhere, operators in their units. Windows longer than the largest
    booking window are stored as consecutive bookings so overlap queries stay bounded.

    The work of one request is bounded by settings (issue 16 defect 1): the window starts at most
    ``maintenance_past_days`` before now, lasts at most ``max_maintenance_days`` and ends within
    ``booking_horizon_days``.

    Raises: Forbidden, Invalid (end_not_after_start, window_starts_too_early, window_too_long,
    beyond_booking_horizon), BookingConflict (meetings booked then).
    """
    principal.require(capabilities.MANAGE_MAINTENANCE)
    principal.require_unit(room.unit_id)
    zone = settings.zone
    start_utc, end_utc = as_utc(start, zone), as_utc(end, zone)
    require_bounded_window(settings, start_utc, end_utc, now=now or utc_now(),
                           max_days=settings.max_maintenance_days, what="a maintenance window")
    step = booking.max_window(settings)
    chunks: list[Window] = []
    cursor = start_utc
    while cursor < end_utc:
        chunks.append(Window(cursor, min(cursor + step, end_utc)))
        cursor = chunks[-1].end
    participants = Participants(chair_room_id=room.id, endpoint_ids=[endpoint.id], room_ids=[])
    plans = [Plan(start=c.start, end=c.end, recurrence_id=c.start, participants=participants, window=c)
             for c in chunks]
    names = Names(session)
    repository.lock_rooms(session, [room.id])  # the endpoint's bookings are serialised through its room
    booking.resource_conflicts(session, settings, plans, names)
    conflicts = [c for p in plans for c in p.conflicts]
    if conflicts:
        raise BookingConflict(f"{endpoint.name}: maintenance collides with {len(conflicts)} booking(s)", conflicts)
    window = MaintenanceWindow(endpoint_id=endpoint.id, start=start_utc, end=end_utc, note=note,
                               created_by=principal.user_id, created_at=now or utc_now())

    def write() -> None:
        session.add(window)
        session.flush()
        session.execute(sa.insert(Booking), [
            {"meeting_id": None, "occurrence_id": None, "maintenance_id": window.id,
             "resource_kind": ResourceKind.endpoint, "resource_id": endpoint.id, "window_start": c.start,
             "window_end": c.end, "ports": 0, "conference_number": None} for c in chunks])
        session.flush()

    booking.insert_guarded(session, settings, write, plans, f"maintenance of {endpoint.name}")
    audit(session, principal, "maintenance.created", meeting_id=None, endpoint_id=endpoint.id, start=start_utc,
          end=end_utc)
    session.flush()
    return window

