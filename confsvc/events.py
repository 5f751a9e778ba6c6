"""Domain events: an outbox written in the same transaction as the change that causes it, published
to in-process subscribers after that transaction commits.

Each event gets a monotonic ``id`` (the outbox's primary key): a live client resumes with
``?since=<id>`` (SPEC "Live channel"). Ids must become visible in increasing order, or a client
resuming after id 6 could miss a late-committing id 5. SQLite serialises writers already
(``BEGIN IMMEDIATE``): an event keeps the id it was inserted with. On PostgreSQL the id an event is
inserted with is provisional: as the transaction commits (``before_commit``, :func:`_order_at_commit`)
it takes a transaction-scoped advisory lock, gives its events fresh ids from the same sequence (in
the order they were recorded) and commits at once; the lock is released only once the commit is
visible, so final ids become visible in increasing order. The lock is held for that short final
step only, not from the first :func:`record` to the commit (issue 16 "Throughput under contention":
event writers used to queue on it for their whole transaction). An :class:`Event`'s ``id`` is final
once its transaction committed. A rolled-back transaction publishes nothing.

The wire shape (SPEC): ``{"id": int, "type": str, "at": ISO-8601 UTC, "data": {...},
"request_id": str | null}``; ``request_id`` is the ``X-Request-ID`` of the HTTP request (or WebSocket
handshake) whose transaction recorded the event (``confsvc.logs.request_id``; null for the scheduler,
the CLI and other background work), as in the log and audit lines of that request. The
``room_ids``/``unit_ids`` an event concerns travel beside it for routing and never reach clients.
Events of :data:`INTERNAL_TYPES` travel the same way between processes but never reach clients.

On PostgreSQL every transaction that recorded events also sends ``NOTIFY`` :data:`NOTIFY_CHANNEL`
with its last event id as the payload, inside the transaction (in the same final step): PostgreSQL
delivers it when (and only if) the transaction commits, in commit order, so other processes listening
there (``live.fanout.PostgresFanout``) learn of every committed event without a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import Field, Session, SQLModel, select

from confsvc import db, logs
from confsvc.clock import iso_utc, utc_now
from confsvc.db import UTCDateTime

log = logging.getLogger(__name__)

#: SPEC "Live channel" message types.
EVENT_TYPES = frozenset({
    "meeting.scheduled", "meeting.updated", "meeting.cancelled", "meeting.reminder", "meeting.started",
    "meeting.ended", "join.instructions", "readiness.changed", "endpoint.status", "call.connected",
    "call.disconnected",
})
#: Events between processes only, never sent to a client: ``access.revoked`` closes the live channels
#: of a revoked token or a disabled user in every process (``confsvc.live.revocation``); ``events.pruned``
#: (:func:`prune`) tells every process's live hub which events are gone, so none is replayed from memory.
INTERNAL_TYPES = frozenset({"access.revoked", "events.pruned"})
#: PostgreSQL ``LISTEN``/``NOTIFY`` channel; the payload is the committing transaction's last event id.
NOTIFY_CHANNEL = "confsvc_events"
#: pg_advisory_xact_lock key serialising the final step of event-writing commits on PostgreSQL, taken by
#: ``confsvc_order_events`` (migration 20261209_events_order)
#: ("confsvc" in ASCII, truncated).
EVENTS_LOCK_KEY = 0x636F6E66737663
_PENDING = "confsvc_pending_events"
_RECORDED = "confsvc_recorded_events"  # provisional ids (PostgreSQL), in recording order
_RECORDED_EVENTS = "confsvc_recorded_event_objects"  # Event objects handed out, whose ids change at commit

_rooms = sa.table("rooms", sa.column("id", sa.Integer), sa.column("unit_id", sa.Integer))
_units = sa.table("units", sa.column("id", sa.Integer), sa.column("parent_id", sa.Integer))


class Event(SQLModel, table=True):
    """One outbox row. ``room_ids``/``unit_ids`` (unit ids include every ancestor) route it to channels."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=40)
    at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    room_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    unit_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    #: ``X-Request-ID`` of the request that recorded it (None outside a request).
    request_id: str | None = Field(default=None, max_length=64)


@dataclass(frozen=True)
class Published:
    """An event as handed to subscribers: the client message plus its routing keys."""

    message: dict[str, Any]
    room_ids: frozenset[int] = field(default_factory=frozenset)
    unit_ids: frozenset[int] = field(default_factory=frozenset)


def to_published(event: Event) -> Published:
    return Published(
        message={"id": event.id, "type": event.type, "at": iso_utc(event.at),
                 "data": event.data, "request_id": event.request_id},
        room_ids=frozenset(event.room_ids), unit_ids=frozenset(event.unit_ids))


def units_with_ancestors(session: Session, room_ids: Iterable[int], unit_ids: Iterable[int] = ()) -> list[int]:
    """The units of ``room_ids`` plus ``unit_ids``, each with every ancestor (recursive CTE), sorted."""
    room_ids, unit_ids = sorted(set(room_ids)), sorted(set(unit_ids))
    if not room_ids and not unit_ids:
        return []
    # One statement (the rooms' units are the CTE's seed): this runs once per event, inside the
    # recording transaction, and a booking records several (issue 16 "Throughput under contention").
    seed = sa.or_(_units.c.id.in_(unit_ids),
                  _units.c.id.in_(sa.select(_rooms.c.unit_id).where(_rooms.c.id.in_(room_ids))))
    tree = sa.select(_units.c.id, _units.c.parent_id).where(seed).cte("up", recursive=True)
    parent = _units.alias("parent")
    tree = tree.union_all(sa.select(parent.c.id, parent.c.parent_id).where(parent.c.id == tree.c.parent_id))
    return sorted(set(session.exec(sa.select(tree.c.id)).scalars()))


def record(session: Session, type: str, data: dict[str, Any], *, room_ids: Iterable[int] = (),
           unit_ids: Iterable[int] = (), at: datetime | None = None) -> Event:
    """Write an event into the outbox inside the caller's transaction; it is published after commit.

    Args:
        type: one of :data:`EVENT_TYPES`.
        data: JSON-serialisable payload (ids, UTC ISO-8601 times; never ORM objects).
        room_ids: rooms the event concerns; their units and all ancestors are added to ``unit_ids``.
        unit_ids: further units the event concerns (ancestors added too).

    Returns the event, its ``request_id`` the current request's (``logs.request_id``). On PostgreSQL
    its ``id`` is provisional until the transaction commits (then set to the final id, see the module
    docstring): read it after the commit.

    Raises:
        ValueError: unknown ``type`` (neither in :data:`EVENT_TYPES` nor in :data:`INTERNAL_TYPES`).
    """
    if type not in EVENT_TYPES and type not in INTERNAL_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return record_each(session, type, [(data, room_ids)], unit_ids=unit_ids, at=at)[0]


def _rooms_units(session: Session, room_sets: list[list[int]], by_room: dict[int, set[int]]) -> list[list[int]]:
    """:func:`units_with_ancestors` of each room list, in one statement (a recursive CTE that keeps
    the room each unit was reached from), or none when ``by_room`` (each room's units with their
    ancestors, read by the event these derive from: :data:`_UNITS_OF_ROOMS`) holds every room.
    ``by_room`` gets the rooms read."""
    wanted = sorted({r for rooms in room_sets for r in rooms if r not in by_room})
    if wanted:
        for room_id, unit_id in session.execute(_ROOMS_UNITS, {"wanted": wanted}).all():
            by_room.setdefault(room_id, set()).add(unit_id)
        for room_id in wanted:  # a room under no unit, or gone
            by_room.setdefault(room_id, set())
    return [sorted(by_room.get(rooms[0], ())) if len(rooms) == 1 else  # a room's own event: most of them
            sorted(set().union(*(by_room.get(r, set()) for r in rooms))) for rooms in room_sets]


#: ``session.info`` key: while the recorders (:func:`on_record`) of an event run, the units (with
#: ancestors) of the rooms that event was routed to, so that the events they derive in the same
#: breath (a booking's ``join.instructions``, one per room of the ``meeting.scheduled``) are routed
#: without reading them again (issue 16, "Throughput under contention"). Nothing is written between.
_UNITS_OF_ROOMS = "confsvc.events.units_of_rooms"


def _rooms_units_query() -> sa.Select[Any]:
    seed = sa.select(_rooms.c.id.label("room_id"), _units.c.id, _units.c.parent_id) \
        .join(_units, _units.c.id == _rooms.c.unit_id).where(_rooms.c.id.in_(sa.bindparam("wanted", expanding=True))) \
        .cte("up", recursive=True)
    parent = _units.alias("parent")
    tree = seed.union_all(sa.select(seed.c.room_id, parent.c.id, parent.c.parent_id)
                          .where(parent.c.id == seed.c.parent_id))
    return sa.select(tree.c.room_id, tree.c.id)


#: :func:`_rooms_units`'s statement (rooms in the ``wanted`` list parameter), built once: building it
#: cost a booking more than running it.
_ROOMS_UNITS = _rooms_units_query()


def record_each(session: Session, type: str, items: Iterable[tuple[dict[str, Any], Iterable[int]]], *,
                unit_ids: Iterable[int] = (), at: datetime | None = None, returning: bool = True) -> list[Event]:
    """:func:`record` for several events of one ``type``, each ``(data, room_ids)``, in recording order:
    one query for their units and one set-based insert for all (a meeting's ``join.instructions``, one
    per room: 3,355 for a national meeting, issue 14).

    ``unit_ids`` (ancestors added) go to every event. ``returning=False``: returns ``[]`` and builds no
    :class:`Event` object unless a recorder (:func:`on_record`) takes this ``type`` (an ORM object costs
    ~0.1 ms; the events are published all the same). Raises ValueError for an unknown ``type``.
    """
    if type not in EVENT_TYPES and type not in INTERNAL_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    wanted = [(data, sorted(set(room_ids))) for data, room_ids in items]
    if not wanted:
        return []
    if session.info.get(_DRY_RUN):  # rolled back anyway: no row, no lock, no derived events
        return [Event(type=type, data=data, room_ids=rooms, unit_ids=[], at=at or utc_now()) for data, rooms in wanted]
    extra = units_with_ancestors(session, (), unit_ids) if unit_ids else []
    by_room: dict[int, set[int]] = dict(session.info.get(_UNITS_OF_ROOMS, {}))
    units = _rooms_units(session, [rooms for _, rooms in wanted], by_room)
    current_request = logs.request_id.get()
    when = at or utc_now()
    rows = [{"type": type, "at": when, "data": data, "room_ids": rooms, "unit_ids": sorted(set(found) | set(extra)),
             "request_id": None if current_request == "-" else current_request}
            for (data, rooms), found in zip(wanted, units, strict=True)]
    # One set-based insert (a national meeting records 3,355 join.instructions: issue 14), ids in recording
    # order. The rows are not tracked by the session: on PostgreSQL their ids change at commit (_order_at_commit).
    ids = db.insert_rows(session, Event, rows, return_ids=True)
    at_text = iso_utc(when)
    session.info.setdefault(_PENDING, []).extend(
        Published(message={"id": event_id, "type": type, "at": at_text, "data": row["data"],
                           "request_id": row["request_id"]},
                  room_ids=frozenset(row["room_ids"]), unit_ids=frozenset(row["unit_ids"]))
        for event_id, row in zip(ids, rows, strict=True))
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        session.info.setdefault(_RECORDED, []).extend(ids)
    recorders = [r for r in _recorders if _recorder_types.get(r) is None or type in _recorder_types[r]]
    if not returning and not recorders:
        return []
    recorded = [Event(id=event_id, **row) for event_id, row in zip(ids, rows, strict=True)]
    if postgresql:  # these objects get their final ids at commit (_order_at_commit)
        session.info.setdefault(_RECORDED_EVENTS, []).extend(recorded)
    outer = session.info.get(_UNITS_OF_ROOMS)
    session.info[_UNITS_OF_ROOMS] = by_room
    try:
        for event in recorded:
            for recorder in recorders:
                recorder(session, event)
    finally:
        if outer is None:
            session.info.pop(_UNITS_OF_ROOMS, None)
        else:
            session.info[_UNITS_OF_ROOMS] = outer
    return recorded if returning else []


_DRY_RUN = "confsvc.events.dry_run"


@contextmanager
def dry_run(session: Session) -> Iterator[None]:
    """Within it :func:`record` writes nothing and takes no lock (returns the event unsaved): for a
    change the caller rolls back whatever happens, e.g. the edit screens' live check (``web.edit``),
    which runs the save itself. Without it each check would hold the events lock (PostgreSQL) and
    write a ``join.instructions`` per room, for nothing."""
    session.info[_DRY_RUN] = True
    try:
        yield
    finally:
        session.info.pop(_DRY_RUN, None)


Recorder = Callable[[Session, "Event"], None]
_recorders: list[Recorder] = []
_recorder_types: dict[Recorder, frozenset[str]] = {}


def on_record(callback: Recorder, *, types: Iterable[str] | None = None) -> None:
    """Call ``callback(session, event)`` inside the recording transaction after every :func:`record`
    of an event of ``types`` (None: of every type).

    Lets a higher layer add derived events atomically without the recording domain importing it
    (live records ``join.instructions`` for scheduling's ``meeting.*``). A callback's exception
    propagates: the change and its events roll back together. Registering twice is a no-op.
    """
    if callback not in _recorders:
        _recorders.append(callback)
        if types is not None:
            _recorder_types[callback] = frozenset(types)


def replay(session: Session, after_id: int, *, limit: int = 1000) -> list[Published]:
    """Events with ``id > after_id`` in id order, at most ``limit``."""
    rows = session.exec(select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)).all()
    return [to_published(e) for e in rows]


def oldest_id(session: Session) -> int | None:
    return session.exec(select(sa.func.min(Event.id))).one()


def latest_id(session: Session) -> int:
    return session.exec(select(sa.func.max(Event.id))).one() or 0


def prune(session: Session, older_than: datetime) -> int:
    """Delete events recorded before ``older_than`` (UTC), except the newest event. Returns how many were deleted.

    The newest row stays because SQLite (no AUTOINCREMENT) numbers a new row max(id) + 1: with the
    table emptied, ids would start again at 1 and a client resuming with ``since`` would miss them.
    When any was deleted, an internal ``events.pruned`` event ``{"oldest_id": <oldest id kept>}`` is
    recorded in the same transaction (the live hubs forget what is gone: ``live.hub``).
    """
    newest = sa.select(sa.func.max(Event.id)).scalar_subquery()
    result = session.execute(sa.delete(Event).where(Event.at < older_than, Event.id < newest))
    count = result.rowcount or 0
    if count:
        record(session, "events.pruned", {"oldest_id": oldest_id(session)})
    return count


# ---------------------------------------------------------------- publishing after commit

Subscriber = Callable[[list[Published]], None]
_subscribers: list[Subscriber] = []


def subscribe(callback: Subscriber) -> None:
    """Call ``callback(events)`` after every commit that recorded events, in the committing thread."""
    _subscribers.append(callback)


def unsubscribe(callback: Subscriber) -> None:
    if callback in _subscribers:
        _subscribers.remove(callback)


def install() -> None:
    """Publish each committed transaction's events to the subscribers, and drop a rolled-back one's;
    on PostgreSQL also give them their final ids and ``pg_notify`` the transaction's last event id,
    delivered at commit (the fan-out without Redis). Listeners on every ``Session``; idempotent;
    ``main.install_hooks`` calls it."""
    for name, listener in (("before_commit", _order_at_commit), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not sa_event.contains(Session, name, listener):
            sa_event.listen(Session, name, listener)


#: The final step of an event-writing commit on PostgreSQL in one round trip (migration
#: ``20261209_events_order``): the events' lock, fresh ids from the events' sequence paired by rank
#: with the provisional ones (recording order kept), the NOTIFY of the last one. Pairs list only rows
#: still there (a rolled-back savepoint's are not).
_ORDER = sa.text("SELECT old_id, new_id FROM confsvc_order_events(CAST(:ids AS integer[]), :channel)")


def _order_at_commit(session: Session) -> None:
    """PostgreSQL: the short final step of a transaction that recorded events (module docstring).

    Takes :data:`EVENTS_LOCK_KEY` (held until the commit is visible), renumbers the transaction's
    events in recording order, updates the :class:`Event` objects and the pending messages, and
    notifies :data:`NOTIFY_CHANNEL` (delivered at commit, never for a rolled-back transaction).
    """
    if session.in_nested_transaction():  # a savepoint's release: SQLAlchemy fires before_commit for it too
        return
    recorded: list[int] | None = session.info.pop(_RECORDED, None)
    objects: list[Event] = session.info.pop(_RECORDED_EVENTS, [])
    if not recorded:
        return
    if session.new or session.dirty or session.deleted:
        session.flush()  # the commit's own flush would come after this step
    rows = session.execute(_ORDER, {"ids": recorded, "channel": NOTIFY_CHANNEL}).all()
    final = {old: new for old, new in rows}
    for event in objects:
        event.id = final.get(event.id)  # never in the session: only the object changes
    pending: list[Published] = session.info.get(_PENDING, [])
    kept = [p for p in pending if p.message["id"] in final]
    for published in kept:
        published.message["id"] = final[published.message["id"]]
    session.info[_PENDING] = kept


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    for callback in list(_subscribers):
        try:
            callback(pending)
        except Exception:  # a broken subscriber must not undo or block a committed change
            log.exception("event subscriber %r failed", callback)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_RECORDED, None)
    session.info.pop(_RECORDED_EVENTS, None)
