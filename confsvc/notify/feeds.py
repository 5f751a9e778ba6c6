"""Invites and subscription feeds from the database: loads rows, hands values to ``notify.ical``.

Reads only (no flush, no commit). A feed holds every meeting of its scope with an occurrence of
that scope ending after the window's start, UTC midnight of ``today − feed_past_days`` (all future
ones included); occurrences of a series that do not involve the scope are hidden with EXDATE
(RFC 5545 §3.8.5.1).

A feed's ETag is a fingerprint of its inputs (``feed_state``: a few SQL aggregates, no rendering),
so an unchanged feed answers 304 in a few milliseconds; rendered feeds are kept by fingerprint in
``FEED_DOCUMENTS``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session, select

import confsvc
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import UTCDateTime, make_session
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit
from confsvc.errors import NotFound
from confsvc.notify import ical
from confsvc.notify.models import FeedScope, FeedToken
from confsvc.scheduling.models import (
    Meeting,
    MeetingParticipant,
    MeetingStatus,
    Occurrence,
    OccurrenceParticipant,
    OccurrenceStatus,
)
from confsvc.notify import join
from confsvc.users.models import User
from confsvc.users.service import expand_units

#: ``involved(chair_room_id, endpoint_ids, room_ids) -> bool``: does an occurrence belong to a feed.
Involvement = Callable[[int, frozenset[int], frozenset[int]], bool]


@dataclass(frozen=True)
class Document:
    """A rendered calendar: ``etag`` is a quoted strong validator (RFC 9110 §8.8.3): the SHA-256 of
    the body for an invite, the fingerprint of its inputs for a feed (``feed_state``);
    ``last_modified`` is UTC, whole seconds."""

    body: bytes
    etag: str
    last_modified: datetime


def _document(body: bytes, last_modified: datetime) -> Document:
    return Document(body=body, etag='"' + hashlib.sha256(body).hexdigest() + '"',
                    last_modified=last_modified.astimezone(UTC).replace(microsecond=0))


@dataclass
class _Occ:
    row: sa.Row
    chair_room_id: int
    endpoint_ids: frozenset[int]
    room_ids: frozenset[int]


#: Columns the calendars read, loaded as plain rows (no ORM objects: a feed reads thousands).
MEETING_COLUMNS = tuple(Meeting.__table__.c[name] for name in (
    "id", "uid", "title", "description", "organizer_user_id", "chair_room_id", "bridge_id", "conference_number",
    "pin", "status", "check_lead_minutes", "timezone", "dtstart", "duration_minutes", "rrule", "exdates",
    "sequence", "created_at", "updated_at"))
_OCCURRENCE_COLUMNS = tuple(Occurrence.__table__.c[name] for name in (
    "id", "meeting_id", "recurrence_id", "start", "end", "status", "chair_room_id", "participants_overridden",
    "is_exception", "updated_at"))


class _Loader:
    """Bulk-loads everything the calendars of ``meetings`` (ORM objects or rows of
    ``MEETING_COLUMNS``) mention, as rows, in a fixed number of queries."""

    def __init__(self, session: Session, meetings: list) -> None:
        self.session = session
        ids = [m.id for m in meetings]
        self.occurrences: dict[int, list[sa.Row]] = {i: [] for i in ids}
        self.defaults: dict[int, set[int]] = {i: set() for i in ids}
        self.overrides: dict[int, set[int]] = {}
        self._places: dict[tuple[int, bool], ical.Place] = {}
        self._place_lists: dict[tuple[int, frozenset[int], bool], tuple[ical.Place, ...]] = {}
        if ids:
            for occ in session.execute(select(*_OCCURRENCE_COLUMNS).where(Occurrence.meeting_id.in_(ids))
                                       .order_by(Occurrence.start, Occurrence.id)):
                self.occurrences[occ.meeting_id].append(occ)
            for meeting_id, endpoint_id in session.execute(
                    select(MeetingParticipant.meeting_id, MeetingParticipant.endpoint_id)
                    .where(MeetingParticipant.meeting_id.in_(ids))):
                self.defaults[meeting_id].add(endpoint_id)
        overridden = [o.id for occs in self.occurrences.values() for o in occs if o.participants_overridden]
        if overridden:
            for occ_id, endpoint_id in session.execute(
                    select(OccurrenceParticipant.occurrence_id, OccurrenceParticipant.endpoint_id)
                    .where(OccurrenceParticipant.occurrence_id.in_(overridden))):
                self.overrides.setdefault(occ_id, set()).add(endpoint_id)
        endpoint_ids = set().union(*self.defaults.values(), *self.overrides.values())
        self.endpoint_room = dict(session.execute(select(Endpoint.id, Endpoint.room_id)
                                                  .where(Endpoint.id.in_(endpoint_ids))).all()) if endpoint_ids else {}
        room_ids = {m.chair_room_id for m in meetings} | set(self.endpoint_room.values()) | {
            o.chair_room_id for occs in self.occurrences.values() for o in occs if o.chair_room_id}
        self.rooms = {r.id: r for r in session.execute(
            select(Room.id, Room.unit_id, Room.name, Room.contact_email).where(Room.id.in_(room_ids)))} \
            if room_ids else {}
        unit_ids = {r.unit_id for r in self.rooms.values()}
        self.units = {u.id: u for u in session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids)))} \
            if unit_ids else {}
        bridge_ids = {m.bridge_id for m in meetings if m.bridge_id}
        self.bridges = {b.id: b for b in session.execute(
            select(Bridge.id, Bridge.sip_domain, Bridge.h323_prefix).where(Bridge.id.in_(bridge_ids)))} \
            if bridge_ids else {}
        user_ids = {m.organizer_user_id for m in meetings if m.organizer_user_id}
        self.users = {u.id: u for u in session.execute(
            select(User.id, User.full_name, User.email).where(User.id.in_(user_ids)))} if user_ids else {}

    def rooms_of(self, chair_room_id: int, endpoint_ids: Iterable[int]) -> frozenset[int]:
        return frozenset({chair_room_id} | {self.endpoint_room[e] for e in endpoint_ids if e in self.endpoint_room})

    def occ(self, meeting, row: sa.Row) -> _Occ:
        chair = row.chair_room_id or meeting.chair_room_id
        endpoints = frozenset(self.overrides.get(row.id, set()) if row.participants_overridden
                              else self.defaults[meeting.id])
        return _Occ(row, chair, endpoints, self.rooms_of(chair, endpoints))

    def place(self, room_id: int, *, private: bool) -> ical.Place:
        place = self._places.get((room_id, private))
        if place is None:
            room = self.rooms[room_id]
            place = self._places[room_id, private] = ical.Place(
                room_id=room.id, room_name=room.name, unit_name=self.units[room.unit_id].name,
                contact_email=None if private else room.contact_email)
        return place

    def places(self, chair_room_id: int, room_ids: frozenset[int], *, private: bool) -> tuple[ical.Place, ...]:
        key = (chair_room_id, room_ids, private)
        places = self._place_lists.get(key)
        if places is None:
            others = sorted(set(room_ids) - {chair_room_id})
            places = self._place_lists[key] = tuple(self.place(r, private=private) for r in [chair_room_id, *others])
        return places


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _meeting_cal(loader: _Loader, settings: Settings, meeting, *, base_url: str, private: bool,
                 involved: Involvement | None = None, window_start: datetime | None = None) -> ical.MeetingCal | None:
    """The calendar view of ``meeting`` (an ORM object or a row of ``MEETING_COLUMNS``); ``None``
    when no occurrence of it belongs to the feed.

    ``involved`` filters occurrences (feeds); ``window_start`` (UTC) requires an involved
    occurrence ending after it.
    """
    occs = [loader.occ(meeting, row) for row in loader.occurrences[meeting.id]]
    shown: list[_Occ] = []
    hidden: list[_Occ] = []
    for o in occs:
        (shown if involved is None or involved(o.chair_room_id, o.endpoint_ids, o.room_ids) else hidden).append(o)
    if not shown or (window_start is not None and not any(o.row.end > window_start for o in shown)):
        return None

    def instance(o: _Occ) -> ical.Instance:
        return ical.Instance(recurrence_id=o.row.recurrence_id, start=o.row.start, end=o.row.end,
                             chair=loader.place(o.chair_room_id, private=private),
                             rooms=loader.places(o.chair_room_id, o.room_ids, private=private),
                             cancelled=o.row.status is OccurrenceStatus.cancelled)

    duration = timedelta(minutes=meeting.duration_minutes)
    default_rooms = loader.rooms_of(meeting.chair_room_id, loader.defaults[meeting.id])
    if meeting.rrule:
        master = ical.Instance(recurrence_id=meeting.dtstart, start=meeting.dtstart, end=meeting.dtstart + duration,
                               chair=loader.place(meeting.chair_room_id, private=private),
                               rooms=loader.places(meeting.chair_room_id, default_rooms, private=private))
        exceptions = tuple(instance(o) for o in shown if (
            o.row.is_exception or o.row.status is OccurrenceStatus.cancelled or o.row.start != o.row.recurrence_id
            or o.row.end - o.row.start != duration or o.chair_room_id != meeting.chair_room_id
            or o.room_ids != default_rooms or o.endpoint_ids != frozenset(loader.defaults[meeting.id])))
    else:
        master, exceptions = instance(shown[0]), ()
    exdates = {_utc(datetime.fromisoformat(d)) for d in meeting.exdates}
    exdates |= {o.row.recurrence_id for o in hidden}  # not this feed's: hidden, RFC 5545 §3.8.5.1
    organizer = loader.users.get(meeting.organizer_user_id) if meeting.organizer_user_id else None
    bridge = loader.bridges.get(meeting.bridge_id) if meeting.bridge_id else None
    join = ical.JoinDetails(conference_number=meeting.conference_number,
                            sip_domain=bridge.sip_domain if bridge else None,
                            h323_prefix=bridge.h323_prefix if bridge else "", pin=meeting.pin) if bridge else None
    updated = max([meeting.updated_at, *(o.row.updated_at for o in occs)])
    return ical.MeetingCal(
        uid=meeting.uid, title=meeting.title, description=meeting.description, status=meeting.status.value,
        sequence=meeting.sequence, timezone=meeting.timezone, master=master, created_at=meeting.created_at,
        updated_at=updated, check_lead_minutes=meeting.check_lead_minutes,
        organizer_name=(organizer.full_name if organizer and organizer.full_name else "Văn phòng UBND tỉnh"),
        organizer_email=(organizer.email if organizer and organizer.email else settings.calendar_organizer_email),
        join=join, url=f"{base_url.rstrip('/')}/api/v1/meetings/{meeting.id}", rrule=meeting.rrule,
        exdates=tuple(sorted(exdates)), exceptions=exceptions)


# ---------------------------------------------------------------- invites

def invite(session: Session, settings: Settings, meeting: Meeting, *, base_url: str,
           occurrence_id: int | None = None, cancel: bool = False) -> Document:
    """The iTIP invite of ``meeting`` (caller checked access): REQUEST, or CANCEL once cancelled.

    With ``occurrence_id``: that occurrence alone, a CANCEL with its RECURRENCE-ID when it (or
    the meeting) is cancelled, else a REQUEST with its RECURRENCE-ID (RFC 5546 §3.2.2, §3.2.5).
    ``cancel``: a CANCEL whatever the state, for attendees a change removed (RFC 5546 §3.2.5).

    Raises:
        NotFound: ``occurrence_id`` is not an occurrence of ``meeting``.
    """
    loader = _Loader(session, [meeting])
    cal = _meeting_cal(loader, settings, meeting, base_url=base_url, private=False)
    if cal is None:
        raise NotFound(f"meeting {meeting.id} has no occurrence", code="occurrence_not_found")
    if cancel and (occurrence_id is None or not meeting.rrule):
        cal = dataclasses.replace(cal, status="cancelled")
    if occurrence_id is None:
        return _document(ical.invite(cal), cal.updated_at)
    row = next((o for o in loader.occurrences[meeting.id] if o.id == occurrence_id), None)
    if row is None:
        raise NotFound(f"occurrence {occurrence_id} of meeting {meeting.id} not found", code="occurrence_not_found")
    o = loader.occ(meeting, row)
    instance = ical.Instance(recurrence_id=row.recurrence_id, start=row.start, end=row.end,
                             chair=loader.place(o.chair_room_id, private=False),
                             rooms=loader.places(o.chair_room_id, o.room_ids, private=False),
                             cancelled=row.status is OccurrenceStatus.cancelled)
    if not meeting.rrule:
        return _document(ical.invite(cal), cal.updated_at)
    if cancel or instance.cancelled or meeting.status is MeetingStatus.cancelled:
        return _document(ical.occurrence_cancel(cal, instance), cal.updated_at)
    return _document(ical.occurrence_request(cal, instance), cal.updated_at)


# ---------------------------------------------------------------- feed fingerprint (ETag without rendering)

#: What else decides a feed's bytes: this code (the modules that render) and the library it uses.
CODE_VERSION = hashlib.sha256(b"".join(
    [confsvc.__version__.encode(), ical.ICALENDAR_VERSION.encode()]
    + [Path(module.__file__).read_bytes() for module in (ical, join)]
    + [Path(__file__).read_bytes()])).hexdigest()
#: Row timestamps are summed modulo this prime (µs), so the sum fits 64 bits on any table size.
_MICROS_MODULUS = 2_147_483_647


def _micros(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """``column`` (a UTC timestamp) as integer microseconds since the epoch, per backend.

    SQLite stores ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's format), PostgreSQL ``timestamptz``.
    """
    if dialect == "sqlite":
        return (sa.cast(sa.func.strftime("%s", column), sa.BigInteger) * 1_000_000
                + sa.cast(sa.func.substr(column, 21, 6), sa.BigInteger))
    return sa.cast(sa.extract("epoch", column) * 1_000_000, sa.BigInteger)


def _aggregate(name: str, table: type, dialect: str, *where: sa.ColumnElement) -> sa.Subquery:
    """One row: count, sum of ids, latest ``updated_at`` and the sum of every ``updated_at`` (µs,
    modulo a prime) of ``table``'s rows matching ``where``.

    Any insert or delete changes the count or the id sum; any UPDATE stamps a new ``updated_at``
    and so changes the sum, whatever the order in which concurrent transactions commit (a
    latest-timestamp alone could miss a change committed after a later-stamped one).
    """
    stamp = table.updated_at
    return select(sa.func.count().label(f"{name}_n"),
                  sa.func.coalesce(sa.func.sum(table.id), 0).label(f"{name}_ids"),
                  sa.func.max(stamp).label(f"{name}_latest"),
                  sa.func.coalesce(sa.func.sum(_micros(stamp, dialect) % _MICROS_MODULUS), 0).label(f"{name}_stamps"),
                  ).where(*where).subquery(name)


def _candidates(scope: FeedScope, include_sub_units: bool, scope_id: int | sa.BindParameter) -> sa.Select:
    """Ids of meetings that may belong to a feed of ``scope``/``scope_id`` (an occurrence, chair or
    participant in it), as SQL; the exact per-occurrence filter is ``_scope``'s predicate."""
    if scope is FeedScope.endpoint:
        return sa.union(
            select(MeetingParticipant.meeting_id).where(MeetingParticipant.endpoint_id == scope_id),
            select(Occurrence.meeting_id).join(OccurrenceParticipant,
                                               OccurrenceParticipant.occurrence_id == Occurrence.id)
            .where(OccurrenceParticipant.endpoint_id == scope_id))
    if scope is FeedScope.room:
        room_query: sa.Select = select(Room.id).where(Room.id == scope_id)
    elif include_sub_units:
        tree = select(Unit.id).where(Unit.id == scope_id).cte("feed_units", recursive=True)
        tree = tree.union_all(select(Unit.id).where(Unit.parent_id == tree.c.id))
        room_query = select(Room.id).where(Room.unit_id.in_(select(tree.c.id)))
    else:
        room_query = select(Room.id).where(Room.unit_id == scope_id)
    return sa.union(
        select(Meeting.id).where(Meeting.chair_room_id.in_(room_query)),
        select(MeetingParticipant.meeting_id).join(Endpoint, Endpoint.id == MeetingParticipant.endpoint_id)
        .where(Endpoint.room_id.in_(room_query)),
        select(Occurrence.meeting_id).where(Occurrence.chair_room_id.in_(room_query)),
        select(Occurrence.meeting_id)
        .join(OccurrenceParticipant, OccurrenceParticipant.occurrence_id == Occurrence.id)
        .join(Endpoint, Endpoint.id == OccurrenceParticipant.endpoint_id).where(Endpoint.room_id.in_(room_query)))


def _meeting_ids(scope: FeedScope, include_sub_units: bool, scope_id: int | sa.BindParameter,
                 window_start: datetime | sa.BindParameter) -> sa.Select:
    """Ids of the meetings a feed considers: candidates with an occurrence ending after ``window_start``."""
    in_window = select(Occurrence.meeting_id).where(Occurrence.end > window_start)
    return select(Meeting.id).where(Meeting.id.in_(_candidates(scope, include_sub_units, scope_id)),
                                    Meeting.id.in_(in_window))


@functools.lru_cache(maxsize=16)
def _state_statement(dialect: str, scope: FeedScope, include_sub_units: bool) -> sa.Select:
    """``feed_state``'s one statement (built once per backend and scope kind; binds ``scope_id``
    and ``window_start``): one row of aggregates, columns named ``<part>_<aggregate>``."""
    ids = _meeting_ids(scope, include_sub_units, sa.bindparam("scope_id", type_=sa.Integer),
                       sa.bindparam("window_start", type_=UTCDateTime)).cte("feed_meetings")
    in_feed = select(ids.c.id)
    parts = [
        _aggregate("m", Meeting, dialect, Meeting.id.in_(in_feed)),
        select(sa.func.coalesce(sa.func.sum(Meeting.sequence), 0).label("all_m_sequences"),
               sa.func.max(Meeting.updated_at).label("all_m_latest")).subquery("all_m"),
        _aggregate("o", Occurrence, dialect, Occurrence.meeting_id.in_(in_feed)),
        *(_aggregate(name, model, dialect) for name, model in (
            ("u", Unit), ("r", Room), ("e", Endpoint), ("b", Bridge), ("p", User))),
    ]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, sa.true())
    return select(*(c for part in parts for c in part.c)).select_from(joined)


def window_start_for(settings: Settings, now: datetime) -> datetime:
    """The feed window's start (UTC): midnight UTC of ``now − feed_past_days``. Whole days, so the
    window moves once a day and the fingerprint can name it."""
    day = (now.astimezone(UTC) - timedelta(days=settings.feed_past_days)).date()
    return datetime.combine(day, time.min, UTC)


@dataclass(frozen=True)
class FeedState:
    """What a feed is, without its body: ``etag`` a quoted strong validator (RFC 9110 §8.8.3),
    ``last_modified`` UTC whole seconds (RFC 9110 §8.8.2), ``window_start`` UTC."""

    etag: str
    last_modified: datetime
    window_start: datetime


def feed_state(session: Session, settings: Settings, token: FeedToken, *, base_url: str,
               now: datetime | None = None) -> FeedState:
    """The fingerprint of ``token``'s feed from one SQL statement, without loading or rendering.

    The ETag is a SHA-256 over everything the feed's bytes depend on:

    - the rendering code and ``icalendar``'s version (``CODE_VERSION``); ``base_url``, the
      ``feed_*`` and ``calendar_organizer_email`` settings; the token (scope, id, sub-units);
    - the window's start day (``window_start_for``);
    - the feed's meetings (candidates of the scope with an occurrence in the window) and all their
      occurrences: count, id sum, latest and summed ``updated_at``, SEQUENCE sum. Every write to a
      meeting, its occurrences or its participants stamps the meeting's ``updated_at``
      (``scheduling.service``); occurrences added by the scheduler change the count;
    - units, rooms, endpoints, bridges and users (names, room ↔ unit ↔ parent, endpoint ↔ room,
      dial domain, organizer name and address): the same aggregates over whole tables, every
      UPDATE stamping ``updated_at`` (a rename anywhere changes every feed's ETag: rare, and safe).

    ``last_modified`` is the latest of those timestamps, of every meeting in the deployment (a
    meeting that left the scope changed the feed), of the token's creation and of the window's
    last move (UTC midnight today), so If-Modified-Since never gets a stale 304.
    """
    now = now or utc_now()
    window_start = window_start_for(settings, now)
    statement = _state_statement(session.get_bind().dialect.name, token.scope, token.include_sub_units)
    row = session.execute(statement, {"scope_id": token.scope_id, "window_start": window_start}).one()
    values = row._asdict()
    inputs = (CODE_VERSION, base_url, settings.feed_past_days, settings.feed_refresh_minutes,
              settings.calendar_organizer_email, token.id, _utc(token.created_at).isoformat(), token.scope.value,
              token.scope_id, token.include_sub_units, window_start.isoformat(),
              tuple((k, v.isoformat() if isinstance(v, datetime) else v) for k, v in sorted(values.items())))
    etag = '"' + hashlib.sha256(repr(inputs).encode("utf-8")).hexdigest() + '"'
    stamps = [token.created_at, datetime.combine(now.astimezone(UTC).date(), time.min, UTC),
              *(v for k, v in values.items() if k.endswith("latest") and v is not None)]
    return FeedState(etag=etag, last_modified=max(_utc(s) for s in stamps).replace(microsecond=0),
                     window_start=window_start)


def warm_up(engine: Engine) -> None:
    """Pays once per process, at startup, what the first feed request would otherwise pay: the ORM
    mappers' configuration and the compilation of ``feed_state``'s statement for every scope kind
    (each executed once for a scope id that matches nothing; reads only)."""
    configure_mappers()
    kinds = [(FeedScope.unit, True), (FeedScope.unit, False), (FeedScope.room, False),
             (FeedScope.endpoint, False), (FeedScope.province, True)]
    with make_session(engine, write=False) as session:
        for scope, include_sub_units in kinds:
            session.execute(_state_statement(engine.dialect.name, scope, include_sub_units),
                            {"scope_id": 0, "window_start": utc_now()}).one()


class _Documents:
    """Rendered feeds by ETag, bounded by their total size in bytes (least recently used out first)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Document] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, etag: str) -> Document | None:
        with self._lock:
            doc = self._items.get(etag)
            if doc is not None:
                self._items.move_to_end(etag)
            return doc

    def put(self, doc: Document) -> None:
        if len(doc.body) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(doc.etag, None)
            self._size -= len(old.body) if old else 0
            self._items[doc.etag] = doc
            self._size += len(doc.body)
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped.body)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


#: Rendered feeds of this process by fingerprint: 64 MB (a province's full feed is ~1 MB).
FEED_DOCUMENTS = _Documents(64 * 1024 * 1024)


# ---------------------------------------------------------------- feeds

def _scope(session: Session, token: FeedToken) -> tuple[str, Involvement]:
    """Feed name (Vietnamese) and the occurrence predicate; ``_candidates`` is the SQL side.

    Raises:
        NotFound: the scope object no longer exists.
    """
    if token.scope is FeedScope.endpoint:
        endpoint = session.get(Endpoint, token.scope_id)
        if endpoint is None:
            raise NotFound("not found", code="not_found")
        room = session.get(Room, endpoint.room_id)
        name = f"Lịch họp – thiết bị {endpoint.name} ({room.name})"
        return name, (lambda _chair, endpoints, _rooms: endpoint.id in endpoints)
    if token.scope is FeedScope.room:
        room = session.get(Room, token.scope_id)
        if room is None:
            raise NotFound("not found", code="not_found")
        unit = session.get(Unit, room.unit_id)
        name = f"Lịch họp – {room.name}, {unit.name}"
        room_ids = frozenset({room.id})
    else:
        unit = session.get(Unit, token.scope_id)
        if unit is None:
            raise NotFound("not found", code="not_found")
        units = expand_units(session, {unit.id}) if token.include_sub_units else frozenset({unit.id})
        name = f"Lịch họp – {unit.name}" + (" (gồm đơn vị trực thuộc)"
                                            if token.include_sub_units and token.scope is FeedScope.unit else "")
        room_ids = frozenset(session.exec(select(Room.id).where(Room.unit_id.in_(units))).all())
    return name, (lambda _chair, _endpoints, rooms: bool(rooms & room_ids))


def feed(session: Session, settings: Settings, token: FeedToken, *, base_url: str,
         now: datetime | None = None, state: FeedState | None = None) -> Document:
    """The feed of ``token``'s scope over ``[window_start, ∞)`` (UTC; ``window_start_for``).

    ``state`` is ``feed_state(...)`` for the same arguments (computed here when omitted); its
    ETag and Last-Modified are the document's, and a feed rendered for that ETag before is
    served from ``FEED_DOCUMENTS``. The body is never older than its ETag: the state is read
    before the rows.

    Raises:
        NotFound: the scope object no longer exists.
    """
    state = state or feed_state(session, settings, token, base_url=base_url, now=now)
    cached = FEED_DOCUMENTS.get(state.etag)
    if cached is not None:
        return cached
    name, involved = _scope(session, token)
    ids = _meeting_ids(token.scope, token.include_sub_units, token.scope_id, state.window_start)
    meetings = session.execute(select(*MEETING_COLUMNS).where(Meeting.id.in_(ids))
                               .order_by(Meeting.dtstart, Meeting.id)).all()
    loader = _Loader(session, meetings)
    cals = [c for m in meetings if (c := _meeting_cal(loader, settings, m, base_url=base_url, private=True,
                                                        involved=involved, window_start=state.window_start))]
    body = ical.feed(name, cals, refresh=timedelta(minutes=settings.feed_refresh_minutes))
    doc = Document(body=body, etag=state.etag, last_modified=state.last_modified)
    FEED_DOCUMENTS.put(doc)
    return doc
