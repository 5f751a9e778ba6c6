"""Queries over bookings. Every overlap query scans a bounded index range.

The index is ``(resource_kind, resource_id, window_start)``. Since no booking window is longer
than ``max_window``, a booking overlapping ``[start, end)`` has
``start − max_window < window_start < end``; adding that lower bound turns "everything that
started before ``end``" (which grows with history) into a range of at most ``max_window + (end − start)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, select

from confsvc.endpoints.models import Bridge, Endpoint, Room
from confsvc.scheduling import participants as participation
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind


def ids_in(session: Session, column: Any, ids: Iterable[int]) -> Any:
    """SQL ``column IN ids``; on PostgreSQL as ONE array parameter (``column = ANY(:ids)``): a national
    meeting's 3,355 rooms would otherwise be 3,355 bind parameters, each rendered by SQLAlchemy and parsed
    by the driver (issue 14). SQLite binds a plain ``IN`` list (its driver does not parse the query)."""
    values = sorted(set(ids))
    if session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(sa.Integer())))
    return column.in_(values)


def overlap_filter(window: Window, max_window: timedelta) -> Any:
    """SQL condition: the booking's window overlaps ``window`` (half-open), index-range bounded."""
    return sa.and_(Booking.window_start < window.end,
                   Booking.window_start > window.start - max_window,
                   Booking.window_end > window.start)


def overlapping(session: Session, resources: Iterable[tuple[ResourceKind, Iterable[int]]], window: Window,
                max_window: timedelta) -> list[tuple[Booking, str | None]]:
    """Bookings of the given resources overlapping ``window``, with their meeting's title (or None)."""
    conds = [sa.and_(Booking.resource_kind == kind, ids_in(session, Booking.resource_id, ids))
             for kind, ids in resources if ids]
    if not conds:
        return []
    query = (select(Booking, Meeting.title).outerjoin(Meeting, Meeting.id == Booking.meeting_id)
             .where(sa.or_(*conds), overlap_filter(window, max_window))
             .order_by(Booking.window_start, Booking.id))
    return [(b, t) for b, t in session.exec(query).all()]


class Held(NamedTuple):
    """A booking with what a conflict names: its meeting's title and its occurrence's own times (UTC)."""

    booking: Booking
    title: str | None
    start: datetime | None
    end: datetime | None


def holdings(session: Session, resources: Iterable[tuple[ResourceKind, Iterable[int]]], window: Window,
             max_window: timedelta) -> list[Held]:
    """Like :func:`overlapping`, with the occurrence's own start and end (None for maintenance)."""
    conds = [sa.and_(Booking.resource_kind == kind, ids_in(session, Booking.resource_id, ids))
             for kind, ids in resources if ids]
    if not conds:
        return []
    query = (select(Booking, Meeting.title, Occurrence.start, Occurrence.end)
             .outerjoin(Meeting, Meeting.id == Booking.meeting_id)
             .outerjoin(Occurrence, Occurrence.id == Booking.occurrence_id)
             .where(sa.or_(*conds), overlap_filter(window, max_window))
             .order_by(Booking.window_start, Booking.id))
    return [Held(b, t, s, e) for b, t, s, e in session.exec(query).all()]


def lock_rooms(session: Session, room_ids: Iterable[int]) -> None:
    """Transaction-scoped advisory locks on rooms (PostgreSQL ``pg_advisory_xact_lock``), in
    ascending id order, taken before any bridge lock (issue 16 "Throughput under contention").

    Bookings of the same room (and so of the same endpoint: an endpoint is locked through its room)
    wait for each other here and then see each other's committed rows, instead of racing on the
    exclusion constraints (which can deadlock two concurrent inserts); bookings of different rooms
    do not wait. Every booking path takes rooms first, then bridges (ascending), so no cycle forms.
    SQLite: nothing to do (``BEGIN IMMEDIATE`` serialises writers).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(set(room_ids))
    if ids:  # one round trip; the subquery's order is the order the locks are taken in
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:space, r) FROM (SELECT unnest(CAST(:ids AS int[])) "
                                "AS r ORDER BY 1) AS rooms"), {"space": ROOM_LOCK_SPACE, "ids": ids})


#: First key of the two-int advisory locks on rooms (``pg_advisory_xact_lock(int, int)``).
ROOM_LOCK_SPACE = 0x0C0F


def lock_meeting(session: Session, meeting_id: int) -> Meeting | None:
    """The meeting row, locked until the transaction ends (``SELECT … FOR UPDATE``): edits of one
    meeting are serialised, so two concurrent edits never collide with each other's bookings
    (issue 12 defect 2). SQLite: the clause is dropped; ``BEGIN IMMEDIATE`` serialises already."""
    return session.exec(select(Meeting).where(Meeting.id == meeting_id).with_for_update(key_share=True)
                        .execution_options(populate_existing=True)).first()


def lock_bridge(session: Session, bridge_id: int) -> Bridge | None:
    """The bridge row, locked until the transaction ends (``SELECT … FOR UPDATE``; SPEC rule 7).

    ``FOR NO KEY UPDATE``: it does not conflict with the ``KEY SHARE`` locks that inserting rows
    referencing the bridge (meetings) take, so a booking that wrote its meeting before locking the
    bridge does not deadlock with another (issue 16). On SQLite the clause is dropped; the write
    transaction already holds the database lock.
    """
    return session.exec(select(Bridge).where(Bridge.id == bridge_id).with_for_update(key_share=True)
                        .execution_options(populate_existing=True)).first()


def touching_units(unit_ids: frozenset[int] | set[int]) -> Any:
    """Subquery of meeting ids whose chair room or a participant endpoint is in ``unit_ids``."""
    return participation.meetings_involving(room_ids=participation.rooms_of_units(unit_ids))


def operator_scope(unit_ids: frozenset[int]) -> Any:
    """Subquery of meeting ids in which a room of ``unit_ids`` takes part, occurrence overrides included."""
    return participation.meetings_taking_part(participation.rooms_of_units(unit_ids))


def meeting_units(session: Session, meeting_id: int) -> set[int]:
    """Ids of the units of the rooms taking part in the meeting (chair room included)."""
    rooms = participation.of_meeting(session, session.get(Meeting, meeting_id)).room_ids
    return set(session.exec(select(Room.unit_id).where(Room.id.in_(rooms))).all())


def participant_ids(session: Session, meeting_id: int) -> list[int]:
    """The meeting's participant endpoint ids (``participants.meeting_endpoint_ids``)."""
    return participation.meeting_endpoint_ids(session, meeting_id)


def room_endpoint_ids(session: Session, room_id: int) -> set[int]:
    """Ids of the endpoints in room ``room_id``."""
    return set(session.exec(select(Endpoint.id).where(Endpoint.room_id == room_id)).all())

