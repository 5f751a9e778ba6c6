"""Queries over bookings. Every overlap query scans a bounded index range.

The index is ``(resource_kind, resource_id, window_start)``. Since no booking window is longer
than ``max_window``, a booking overlapping ``[start, end)`` has
``start − max_window < window_start < end``; adding that lower bound turns "everything that
started before ``end``" (which grows with history) into a range of at most ``max_window + (end − start)``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from confsvc import db
from confsvc.endpoints.models import Bridge, Endpoint, Room
from confsvc.scheduling import participants as participation
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind


def ids_in(session: Session, column: Any, ids: Iterable[int]) -> Any:
    """SQL ``column IN ids``; on PostgreSQL as ONE array parameter (``column = ANY(:ids)``): a national
    meeting's 3,355 rooms would otherwise be 3,355 bind parameters, each rendered by SQLAlchemy and parsed
    by the driver (issue 14). SQLite binds a plain ``IN`` list (its driver does not parse the query)."""
    return db.ids_in(session, column, ids)


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


class BookingRow(NamedTuple):
    """A booking's columns as :func:`holdings` reads them (UTC times): read-only, no ORM object (a
    booking reads every booking of its bridge over its window, twice for a refusal: issue 16)."""

    id: int
    meeting_id: int | None
    occurrence_id: int | None
    maintenance_id: int | None
    block_id: int | None
    resource_kind: ResourceKind
    resource_id: int
    window_start: datetime
    window_end: datetime
    ports: int
    conference_number: int | None


class Held(NamedTuple):
    """A booking with what a conflict names: its meeting's title and its occurrence's own times (UTC)."""

    booking: BookingRow
    title: str | None
    start: datetime | None
    end: datetime | None


def holdings(session: Session, resources: Iterable[tuple[ResourceKind, Iterable[int]]], window: Window,
             max_window: timedelta) -> list[Held]:
    """Like :func:`overlapping`, with the occurrence's own start and end (None for maintenance), the
    bookings as :class:`BookingRow` values."""
    wanted = [(kind, sorted(set(ids))) for kind, ids in resources if ids]
    if not wanted:
        return []
    params: dict[str, Any] = {f"ids_{n}": ids for n, (_, ids) in enumerate(wanted)}
    params.update(window_end=window.end, lowest_start=window.start - max_window, window_start=window.start)
    query = _holdings_query(session.get_bind().dialect.name, tuple(kind for kind, _ in wanted))
    width = len(BookingRow._fields)
    return [Held(BookingRow(*row[:width]), *row[width:]) for row in session.execute(query, params).all()]


@functools.cache
def _holdings_query(dialect: str, kinds: tuple[ResourceKind, ...]) -> Any:
    """:func:`holdings`'s statement for resources of ``kinds`` (ids in ``ids_<n>``, one array parameter on
    PostgreSQL like :func:`ids_in`) over ``window_start``, ``window_end`` and ``lowest_start``
    (:func:`overlap_filter`'s bounds), built once: building it cost more than running it."""
    def among(name: str) -> Any:
        if dialect == "postgresql":
            return Booking.resource_id == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.Integer())))
        return col(Booking.resource_id).in_(sa.bindparam(name, expanding=True))

    conds = [sa.and_(Booking.resource_kind == kind, among(f"ids_{n}")) for n, kind in enumerate(kinds)]
    window = sa.and_(Booking.window_start < sa.bindparam("window_end"),
                     Booking.window_start > sa.bindparam("lowest_start"),
                     Booking.window_end > sa.bindparam("window_start"))
    columns = [getattr(Booking, name) for name in BookingRow._fields]
    return (sa.select(*columns, col(Meeting.title), col(Occurrence.start), col(Occurrence.end))
            .outerjoin(Meeting, Meeting.id == Booking.meeting_id)
            .outerjoin(Occurrence, Occurrence.id == Booking.occurrence_id)
            .where(sa.or_(*conds), window)
            .order_by(Booking.window_start, Booking.id))


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
    """The bridge, read as committed now, its ports locked until the transaction ends (SPEC rule 7).

    PostgreSQL: the bridge's advisory lock (``pg_advisory_xact_lock(BRIDGE_LOCK_SPACE, id)``), the
    one the ports count at COMMIT takes (migration ``20261209_bridge_port_guard``): no booking of the
    bridge commits while it is held. For the rare changes that must see a bridge's bookings settle
    (a capacity lowered, a meeting's conference number changed); bookings themselves take it only at
    COMMIT (``port_guard``). SQLite: a plain read; the write transaction holds the database lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :id)"),
                        {"space": BRIDGE_LOCK_SPACE, "id": bridge_id})
    return current_bridge(session, bridge_id)


def current_bridge(session: Session, bridge_id: int) -> Bridge | None:
    """The bridge as committed now (not the session's cached copy), without a lock.

    The session keeps it (``session.info``) until the transaction ends (:func:`install`): the identity
    map holds objects weakly, and the join instructions and the answer read it again by ``session.get``
    (a query each once the choice that held it is gone)."""
    bridge = session.exec(select(Bridge).where(Bridge.id == bridge_id)
                          .execution_options(populate_existing=True)).first()
    if bridge is not None:
        session.info.setdefault(_KEPT_BRIDGES, {})[bridge_id] = bridge
    return bridge


def current_bridges(session: Session, where: Any) -> list[Bridge]:
    """The bridges meeting ``where``, by id, as committed now (kept like :func:`current_bridge`'s)."""
    bridges = list(session.exec(select(Bridge).where(where).order_by(Bridge.id)
                                .execution_options(populate_existing=True)).all())
    kept = session.info.setdefault(_KEPT_BRIDGES, {})
    for bridge in bridges:
        kept[bridge.id] = bridge
    return bridges


_KEPT_BRIDGES = "confsvc.scheduling.kept_bridges"
#: ``session.info`` key: ids of the meetings this transaction created with no bridge besides the root
#: (``cascade.save_tree`` with ``fresh``; any later tree write of the meeting drops its id), whose tree
#: ``cascade.tree_of`` then knows without reading it. Dropped when the transaction ends (:func:`install`).
SINGLE_BRIDGE_MEETINGS = "confsvc.scheduling.single_bridge_meetings"


def _forget_bridges(session: Session, *_: Any) -> None:
    if session.in_nested_transaction():  # a savepoint's release: SQLAlchemy fires after_commit for it too
        return
    session.info.pop(_KEPT_BRIDGES, None)
    session.info.pop(SINGLE_BRIDGE_MEETINGS, None)


def install() -> None:
    """Drop the bridges :func:`current_bridge` kept, and :data:`SINGLE_BRIDGE_MEETINGS`, when the
    session's transaction ends (sessions do not expire on commit: a later transaction must not be
    handed this one's copy). Idempotent."""
    for name in ("after_commit", "after_rollback"):
        if not sa_event.contains(Session, name, _forget_bridges):
            sa_event.listen(Session, name, _forget_bridges)


#: First key of the two-int advisory lock on a bridge's ports (migration 20261209_bridge_port_guard).
BRIDGE_LOCK_SPACE = 0x0C10
#: First key of the two-int advisory locks claiming a conference number (bridge id in the high bits).
NUMBER_LOCK_SPACE = 0x0C11


def claim_number(session: Session, bridge_id: int, candidates: list[int], windows: list[Window], *,
                 meeting_id: int | None = None) -> int | None:
    """Claim the first of ``candidates`` (conference numbers, in order of preference) on the bridge for
    bookings over ``windows`` (UTC) until the transaction ends (SPEC rule 3 under concurrency, rule 7).
    Returns the number claimed, or None when every candidate is being claimed by a concurrent
    transaction or held, in one of ``windows``, by a booking committed meanwhile (other than
    ``meeting_id``'s).

    PostgreSQL: ``pg_try_advisory_xact_lock(NUMBER_LOCK_SPACE, key)`` (key: bridge id × 2^20 +
    number, modulo 2^31) never waits, so bookings of one bridge choose their numbers side by side
    instead of queueing on the bridge. Once a number's lock is held, any other claimer of it has
    committed (its row is seen by the second look, a new statement) or will fail its own try: two
    transactions never write the same number, and the exclusion constraint
    ``ex_bookings_conference_number`` (the guarantee) is not hit by a race. One round trip per try
    of a batch; a number lost to a commit is dropped and the rest tried again. SQLite: the first
    candidate (writers are serialised).
    """
    if not candidates:
        return None
    if session.get_bind().dialect.name != "postgresql":
        return candidates[0]
    overlaps = sa.or_(*(sa.and_(Booking.window_start < w.end, Booking.window_end > w.start) for w in windows))
    remaining = list(candidates)
    while remaining:
        batch = remaining[:NUMBER_CLAIM_BATCH]
        # No ORDER BY: the scan yields the array's order and stops at the first lock taken.
        number = session.execute(sa.text(
            "SELECT n FROM unnest(CAST(:numbers AS integer[])) AS c(n) WHERE pg_try_advisory_xact_lock("
            ":space, CAST((CAST(:bridge AS bigint) * 1048576 + n) % 2147483648 AS integer)) LIMIT 1"),
            {"numbers": batch, "space": NUMBER_LOCK_SPACE, "bridge": bridge_id}).scalar()
        if number is None:
            remaining = remaining[len(batch):]
            continue
        query = select(Booking.id).where(Booking.resource_kind == ResourceKind.bridge,
                                         Booking.resource_id == bridge_id, Booking.conference_number == number)
        if windows:
            query = query.where(overlaps)
        if meeting_id is not None:
            query = query.where(sa.or_(Booking.meeting_id.is_(None), Booking.meeting_id != meeting_id))
        if session.exec(query.limit(1)).first() is None:
            return int(number)
        remaining = remaining[remaining.index(number) + 1:]
    return None


#: Conference numbers tried per round trip by :func:`claim_number`.
NUMBER_CLAIM_BATCH = 32


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

