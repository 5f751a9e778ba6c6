"""Domain events: an outbox written in the same transaction as the change that causes it, published
to in-process subscribers after that transaction commits.

Each event gets a monotonic ``id`` (the outbox's primary key): a live client resumes with
``?since=<id>`` (SPEC "Live channel"). Ids must become visible in increasing order, or a client
resuming after id 6 could miss a late-committing id 5. SQLite serialises writers already
(``BEGIN IMMEDIATE``); on PostgreSQL :func:`record` first takes a transaction-scoped advisory lock,
so event-writing transactions commit in id order. A rolled-back transaction publishes nothing.

The wire shape (SPEC): ``{"id": int, "type": str, "at": ISO-8601 UTC, "data": {...}}``; the
``room_ids``/``unit_ids`` an event concerns travel beside it for routing and never reach clients.
Events of :data:`INTERNAL_TYPES` travel the same way between processes but never reach clients.

On PostgreSQL every transaction that recorded events also sends ``NOTIFY`` :data:`NOTIFY_CHANNEL`
with its last event id as the payload, inside the transaction: PostgreSQL delivers it when (and
only if) the transaction commits, in commit order, so other processes listening there
(``live.fanout.PostgresFanout``) learn of every committed event without a broker.
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
#: of a revoked token or a disabled user in every process (``confsvc.live.revocation``).
INTERNAL_TYPES = frozenset({"access.revoked"})
#: PostgreSQL ``LISTEN``/``NOTIFY`` channel; the payload is the committing transaction's last event id.
NOTIFY_CHANNEL = "confsvc_events"
#: pg_advisory_xact_lock key serialising event writers on PostgreSQL ("confsvc" in ASCII, truncated).
EVENTS_LOCK_KEY = 0x636F6E66737663
_PENDING = "confsvc_pending_events"

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


@dataclass(frozen=True)
class Published:
    """An event as handed to subscribers: the client message plus its routing keys."""

    message: dict[str, Any]
    room_ids: frozenset[int] = field(default_factory=frozenset)
    unit_ids: frozenset[int] = field(default_factory=frozenset)


def to_published(event: Event) -> Published:
    return Published(
        message={"id": event.id, "type": event.type, "at": iso_utc(event.at),
                 "data": event.data},
        room_ids=frozenset(event.room_ids), unit_ids=frozenset(event.unit_ids))


def units_with_ancestors(session: Session, room_ids: Iterable[int], unit_ids: Iterable[int] = ()) -> list[int]:
    """The units of ``room_ids`` plus ``unit_ids``, each with every ancestor (recursive CTE), sorted."""
    room_ids, unit_ids = list(room_ids), list(unit_ids)
    seed = set(unit_ids)
    if room_ids:
        seed |= set(session.exec(sa.select(_rooms.c.unit_id).where(_rooms.c.id.in_(room_ids))).scalars())
    if not seed:
        return []
    tree = sa.select(_units.c.id, _units.c.parent_id).where(_units.c.id.in_(seed)).cte("up", recursive=True)
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

    Raises:
        ValueError: unknown ``type`` (neither in :data:`EVENT_TYPES` nor in :data:`INTERNAL_TYPES`).
    """
    if type not in EVENT_TYPES and type not in INTERNAL_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if session.info.get(_DRY_RUN):  # rolled back anyway: no row, no lock, no derived events
        return Event(type=type, data=data, room_ids=sorted(set(room_ids)), unit_ids=[], at=at or utc_now())
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK_KEY})
    rooms = sorted(set(room_ids))
    event = Event(type=type, data=data, room_ids=rooms, unit_ids=units_with_ancestors(session, rooms, unit_ids),
                  at=at or utc_now())
    session.add(event)
    session.flush()
    session.info.setdefault(_PENDING, []).append(to_published(event))
    for recorder in list(_recorders):
        recorder(session, event)
    return event


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


def on_record(callback: Recorder) -> None:
    """Call ``callback(session, event)`` inside the recording transaction after every :func:`record`.

    Lets a higher layer add derived events atomically without the recording domain importing it
    (live records ``join.instructions`` for scheduling's ``meeting.*``). A callback's exception
    propagates: the change and its events roll back together. Registering twice is a no-op.
    """
    if callback not in _recorders:
        _recorders.append(callback)


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
    """
    newest = sa.select(sa.func.max(Event.id)).scalar_subquery()
    result = session.execute(sa.delete(Event).where(Event.at < older_than, Event.id < newest))
    return result.rowcount or 0


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
    on PostgreSQL also ``pg_notify`` the transaction's last event id, delivered at commit (the fan-out
    without Redis). Listeners on every ``Session``; idempotent; ``main.install_hooks`` calls it."""
    for name, listener in (("before_commit", _notify_before_commit), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not sa_event.contains(Session, name, listener):
            sa_event.listen(Session, name, listener)


def _notify_before_commit(session: Session) -> None:
    pending = session.info.get(_PENDING)
    if pending and session.get_bind().dialect.name == "postgresql":
        # Delivered by PostgreSQL at commit, never for a rolled-back transaction.
        session.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": NOTIFY_CHANNEL, "payload": str(pending[-1].message["id"])})


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
