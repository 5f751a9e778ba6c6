"""Bridge (MCU) edits that bookings constrain (SPEC rule 2: capacity cannot be lowered below what
is booked). The inventory fields are set by ``endpoints.service.update_bridge``; this use case runs
it under the bridge's row lock (the lock every booking takes to count ports, SPEC rule 7) and then
checks what is booked from ``now`` on against the new capacity.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import Bridge
from confsvc.endpoints.schemas import BridgeUpdate
from confsvc.errors import NotFound
from confsvc.scheduling import repository
from confsvc.scheduling.conflicts import (
    Conflict,
    Other,
    Window,
    make_conflict,
    port_overloads,
)
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind
from confsvc.users.principal import MANAGE_INVENTORY, Principal


def update_bridge(session: Session, settings: Settings, principal: Principal, bridge_id: int, data: BridgeUpdate,
                  *, now: datetime | None = None) -> Bridge:
    """``PATCH /bridges/{id}``: admin only. A lower ``port_capacity`` is refused (409
    ``booking_conflict``) when the ports booked from ``now`` on would exceed it at some instant;
    the conflicts name each interval where they would, the peak there and the occurrences holding
    ports then (as a booking's port conflicts do).

    Raises: Forbidden, NotFound (``bridge_not_found``), Invalid (conference range inverted),
    BookingConflict.
    """
    principal.require(MANAGE_INVENTORY)  # before the lock: a refused caller takes no write lock
    inventory.get_bridge(session, principal, bridge_id)  # 404 before any lock
    bridge = repository.lock_bridge(session, bridge_id)
    if bridge is None:
        raise NotFound(f"bridge {bridge_id} not found", code="bridge_not_found")
    before = bridge.port_capacity
    updated = inventory.update_bridge(session, principal, bridge, data)
    if updated.port_capacity < before:
        conflicts = capacity_conflicts(session, settings, updated, now=now or utc_now())
        if conflicts:
            raise BookingConflict(f"{updated.name}: {updated.port_capacity} ports are fewer than the peak booked",
                                  conflicts)
    return updated


def capacity_conflicts(session: Session, settings: Settings, bridge: Bridge, *, now: datetime) -> list[Conflict]:
    """Where the bridge's bookings ending after ``now`` exceed ``bridge.port_capacity``: one conflict
    per interval and occurrence holding ports there (``window_*`` the interval, ``ports_in_use`` the
    peak, ``ports_requested`` 0)."""
    rows = session.exec(
        select(Booking, Meeting.title, Occurrence.start, Occurrence.end)
        .join(Meeting, Meeting.id == Booking.meeting_id).join(Occurrence, Occurrence.id == Booking.occurrence_id)
        .where(Booking.resource_kind == ResourceKind.bridge, Booking.resource_id == bridge.id,
               Booking.window_end > now, Booking.ports > 0)
        .order_by(Booking.window_start, Booking.id)).all()
    if not rows:
        return []
    span = Window(max(now, min(b.window_start for b, *_ in rows)), max(b.window_end for b, *_ in rows))
    overloads = port_overloads(span, [(Window(b.window_start, b.window_end), b.ports, i)
                                      for i, (b, *_rest) in enumerate(rows)], requested=0,
                               capacity=bridge.port_capacity)
    out: list[Conflict] = []
    for overload in overloads:
        for index in overload.holders:
            b, title, start, end = rows[int(index)]
            out.append(make_conflict(
                zone=settings.zone, resource_kind=ResourceKind.bridge.value, resource_id=bridge.id,
                resource_name=bridge.name, overlap=overload.window, requested_start=overload.window.start,
                requested_occurrence_id=None,
                other=Other(meeting_id=b.meeting_id, meeting_title=title, occurrence_id=b.occurrence_id, start=start,
                            end=end, check_start=b.window_start),
                port_capacity=bridge.port_capacity, ports_in_use=overload.in_use, ports_requested=0))
    return out

