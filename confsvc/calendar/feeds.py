"""Invites and subscription feeds from the database: loads rows, hands values to ``calendar.ical``.

Reads only (no flush, no commit). A feed holds every meeting of its scope with an occurrence of
that scope ending after the window's start, UTC midnight of ``today − feed_past_days`` (all future
ones included); occurrences of a series that do not involve the scope are hidden with EXDATE
(RFC 5545 §3.8.5.1).

A feed's ETag is a fingerprint of its inputs (``feed_state``: the settings, the token, the window
and the database's feed version, one one-row query, no rendering), so an unchanged feed answers
304 in about a millisecond; rendered feeds are kept by fingerprint in ``FEED_DOCUMENTS``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session, select

import confsvc
from confsvc.calendar import feed_ical, ical, tokens
from confsvc.calendar.models import FeedScope, FeedToken, FeedVersion
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints import unit_history
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit
from confsvc.errors import NotFound
from confsvc.scheduling import join, participants, recurrence, visibility
from confsvc.scheduling.models import (
    Meeting,
    MeetingBridge,
    MeetingParticipant,
    MeetingStatus,
    Occurrence,
    OccurrenceParticipant,
    OccurrenceStatus,
    ResourceBlock,
    ResourceKind,
)
from confsvc.users.models import User

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


# ---------------------------------------------------------------- rows → calendar views

#: Tables read by the calendars, as Core columns: a feed reads thousands of rows, so no ORM objects.
_M, _O = Meeting.__table__.c, Occurrence.__table__.c
_MP, _OP = MeetingParticipant.__table__.c, OccurrenceParticipant.__table__.c
_MB = MeetingBridge.__table__.c
_E, _R, _U, _B, _P = Endpoint.__table__.c, Room.__table__.c, Unit.__table__.c, Bridge.__table__.c, User.__table__.c


def _raw(column: sa.ColumnElement) -> sa.ColumnElement:
    """``column`` as the driver returns it, without SQLAlchemy's per-value result processing
    (``UTCDateTime``, enums, booleans): ``_datetime_reader`` and the records convert what a
    calendar needs."""
    return sa.type_coerce(column, sa.types.NullType()).label(column.name)


#: Meeting columns the calendars read; ``exdates`` as JSON text on both backends.
_MEETING_RAW = tuple(_raw(_M[name]) for name in (
    "id", "uid", "title", "description", "organizer_user_id", "chair_room_id", "bridge_id", "conference_number",
    "pin", "status", "check_lead_minutes", "timezone", "dtstart", "duration_minutes", "rrule", "sequence",
    "created_at", "updated_at")) + (sa.cast(_M.exdates, sa.Text).label("exdates"), _raw(_M["confidential"]))
_OCCURRENCE_RAW = tuple(_raw(_O[name]) for name in (
    "id", "meeting_id", "recurrence_id", "start", "end", "status", "chair_room_id", "participants_overridden",
    "is_exception", "updated_at", "is_extra", "conference_number", "tentative"))


def _datetime_reader() -> Callable[[str | datetime], datetime]:
    """A converter of raw driver timestamps to aware UTC datetimes: SQLite returns the text
    SQLAlchemy stored (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), psycopg aware datetimes. Memoised:
    meetings share a few start times, and one load converts thousands."""
    memo: dict[str | datetime, datetime] = {}
    get = memo.get

    def read(value: str | datetime) -> datetime:
        d = get(value)
        if d is None:
            d = datetime.fromisoformat(value) if isinstance(value, str) else value
            d = memo[value] = d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
        return d

    return read


class _MeetingRec(NamedTuple):
    """A meeting as the calendars read it: times aware UTC, ``status`` its value, ``exdates`` UTC."""

    id: int
    uid: str
    title: str
    description: str
    organizer_user_id: int | None
    chair_room_id: int
    bridge_id: int | None
    conference_number: int | None
    pin: str
    status: str
    check_lead_minutes: int
    timezone: str
    dtstart: datetime
    duration_minutes: int
    rrule: str | None
    exdates: tuple[datetime, ...]
    sequence: int
    created_at: datetime
    updated_at: datetime
    confidential: bool = False


class _OccRec(NamedTuple):
    """An occurrence as the calendars read it (times aware UTC)."""

    id: int
    meeting_id: int
    recurrence_id: datetime
    start: datetime
    end: datetime
    cancelled: bool
    chair_room_id: int | None
    participants_overridden: bool
    is_exception: bool
    updated_at: datetime
    is_extra: bool = False
    conference_number: int | None = None
    tentative: bool = False


def _exdates(value: str | list[str]) -> tuple[datetime, ...]:
    items = json.loads(value) if isinstance(value, str) else value
    return tuple(_utc(datetime.fromisoformat(d)) for d in items) if items else ()


def _meeting_recs(rows: Iterable[sa.Row], dt: Callable[[str | datetime], datetime]) -> list[_MeetingRec]:
    """Records of rows of ``_MEETING_RAW`` (unpacked by position: a feed reads thousands)."""
    return [_MeetingRec(id_, uid, title, description, organizer, chair, bridge, number, pin, status, lead, zone,
                        dt(dtstart), duration, rrule, () if exdates == "[]" else _exdates(exdates), sequence,
                        dt(created), dt(updated), bool(confidential))
            for (id_, uid, title, description, organizer, chair, bridge, number, pin, status, lead, zone, dtstart,
                 duration, rrule, sequence, created, updated, exdates, confidential) in rows]


def _load_meetings(session: Session, ids: sa.Select) -> list[_MeetingRec]:
    """The meetings ``ids`` selects, by start (then id), read as Core rows."""
    return _meeting_recs(session.connection().execute(
        sa.select(*_MEETING_RAW).where(_M.id.in_(ids)).order_by(_M.dtstart, _M.id)).all(), _datetime_reader())


def _meeting_rec_of(meeting: Meeting) -> _MeetingRec:
    """The calendar record of an ORM meeting (invites)."""
    return _MeetingRec(meeting.id, meeting.uid, meeting.title, meeting.description, meeting.organizer_user_id,
                       meeting.chair_room_id, meeting.bridge_id, meeting.conference_number, meeting.pin,
                       meeting.status.value, meeting.check_lead_minutes, meeting.timezone, _utc(meeting.dtstart),
                       meeting.duration_minutes, meeting.rrule, _exdates(meeting.exdates), meeting.sequence,
                       _utc(meeting.created_at), _utc(meeting.updated_at), meeting.confidential)


@dataclass
class _Occ:
    row: _OccRec
    chair_room_id: int
    endpoint_ids: frozenset[int]
    room_ids: frozenset[int]


class _Loader:
    """Bulk-loads everything the calendars of ``meetings`` mention, in a fixed number of queries
    whatever their count: occurrences, participants (with their endpoints' rooms), rooms, units,
    bridges, organizers. ``ids`` selects the same meetings' ids in SQL (a feed's
    ``_meeting_ids``), so no query binds one parameter per meeting; without it (an invite) the
    meetings' ids are bound."""

    def __init__(self, session: Session, meetings: list[_MeetingRec], ids: sa.Select | None = None) -> None:
        dt = _datetime_reader()
        in_ids = ids if ids is not None else [m.id for m in meetings]
        self.occurrences: dict[int, list[_OccRec]] = {m.id: [] for m in meetings}
        self.defaults: dict[int, frozenset[int]] = {}
        self.overrides: dict[int, frozenset[int]] = {}
        self.endpoint_room: dict[int, int] = {}
        self._rooms_of: dict[tuple[int, frozenset[int]], frozenset[int]] = {}
        self._places: dict[tuple[int, bool], ical.Place] = {}
        self._place_lists: dict[tuple[int, frozenset[int], bool], tuple[ical.Place, ...]] = {}
        # A feed (``ids`` given) reads in a fresh session: Core results, without the ORM's row
        # processing. An invite may come in the middle of a unit of work: the session autoflushes.
        execute = session.connection().execute if ids is not None else session.execute
        overridden: list[int] = []
        cancelled = OccurrenceStatus.cancelled.value
        occurrences = self.occurrences
        for (id_, meeting_id, recurrence_id, start, end, status, chair, overrides_participants, is_exception,
             updated, is_extra, number, tentative) in execute(sa.select(*_OCCURRENCE_RAW).where(_O.meeting_id.in_(in_ids))
                                 .order_by(_O.start, _O.id)).all():
            occs = occurrences.get(meeting_id)
            if occs is None:  # a meeting booked after the meetings were read (PostgreSQL, READ COMMITTED)
                continue
            occs.append(_OccRec(id_, meeting_id, dt(recurrence_id), dt(start), dt(end), status == cancelled, chair,
                                bool(overrides_participants), bool(is_exception), dt(updated), bool(is_extra),
                                number, bool(tentative)))
            if overrides_participants:
                overridden.append(id_)
        defaults: dict[int, set[int]] = {}
        for meeting_id, endpoint_id, room_id in execute(
                sa.select(_MP.meeting_id, _MP.endpoint_id, _E.room_id).join_from(
                    MeetingParticipant.__table__, Endpoint.__table__, _E.id == _MP.endpoint_id)
                .where(_MP.meeting_id.in_(in_ids))).all():
            defaults.setdefault(meeting_id, set()).add(endpoint_id)
            self.endpoint_room[endpoint_id] = room_id
        self.defaults = {k: frozenset(v) for k, v in defaults.items()}
        overrides: dict[int, set[int]] = {}
        for occurrence_id, endpoint_id, room_id in execute(
                sa.select(_OP.occurrence_id, _OP.endpoint_id, _E.room_id).join_from(
                    OccurrenceParticipant.__table__, Endpoint.__table__, _E.id == _OP.endpoint_id)
                .where(_OP.occurrence_id.in_(overridden))):
            overrides.setdefault(occurrence_id, set()).add(endpoint_id)
            self.endpoint_room[endpoint_id] = room_id
        self.overrides = {k: frozenset(v) for k, v in overrides.items()}
        room_ids = {m.chair_room_id for m in meetings} | set(self.endpoint_room.values()) | {
            o.chair_room_id for occs in self.occurrences.values() for o in occs if o.chair_room_id}
        self.rooms = {r.id: r for r in execute(
            sa.select(_R.id, _R.unit_id, _R.name, _R.contact_email).where(_R.id.in_(room_ids)))}
        # Names in force at each occurrence's start (issue 15: merges and renames keep past events' text).
        self.history = unit_history.load_history(session)
        former_units = {u for r in self.rooms for _, u, _ in self.history.rooms.get(r, ())}
        self.units = {u.id: u for u in execute(
            sa.select(_U.id, _U.name).where(_U.id.in_({r.unit_id for r in self.rooms.values()} | former_units)))}
        self.bridges = {b.id: b for b in execute(sa.select(_B.id, _B.sip_domain, _B.h323_prefix).where(
            _B.id.in_({m.bridge_id for m in meetings if m.bridge_id})))}
        # Cascaded meetings' other bridges and relays' upstream chairs (issue 14): two small reads.
        self.cascade: dict[int, list[tuple[str, tuple[str, str], int | None]]] = {}
        for meeting_id, name, unit_name, sip_domain, h323_prefix, number in execute(
                sa.select(_MB.meeting_id, _B.name, _U.name, _B.sip_domain, _B.h323_prefix, _MB.conference_number)
                .join_from(MeetingBridge.__table__, Bridge.__table__, _B.id == _MB.bridge_id)
                .outerjoin(Unit.__table__, _U.id == _B.unit_id)
                .where(_MB.meeting_id.in_(in_ids)).order_by(_MB.meeting_id, _MB.bridge_id)):
            label = f"{name} ({unit_name})" if unit_name else name
            self.cascade.setdefault(meeting_id, []).append((label, (sip_domain, h323_prefix), number))
        self.upstream = dict(execute(sa.select(_M.id, _M.upstream_dial).where(
            _M.id.in_(in_ids), _M.upstream_dial.is_not(None))).all())
        self.users = {u.id: u for u in execute(sa.select(_P.id, _P.full_name, _P.email).where(
            _P.id.in_({m.organizer_user_id for m in meetings if m.organizer_user_id})))}

    def rooms_of(self, chair_room_id: int, endpoint_ids: frozenset[int]) -> frozenset[int]:
        """The chair room and the rooms of ``endpoint_ids``."""
        key = (chair_room_id, endpoint_ids)
        rooms = self._rooms_of.get(key)
        if rooms is None:
            rooms = self._rooms_of[key] = participants.rooms(chair_room_id, endpoint_ids, self.endpoint_room)
        return rooms

    def occ(self, meeting: _MeetingRec, row: _OccRec) -> _Occ:
        chair = participants.chair_room(row.chair_room_id, meeting.chair_room_id)
        endpoints = participants.endpoints(row.participants_overridden, self.overrides.get(row.id, frozenset()),
                                           self.defaults.get(meeting.id, frozenset()))
        return _Occ(row, chair, endpoints, self.rooms_of(chair, endpoints))

    def place(self, room_id: int, *, private: bool, at: datetime | None = None) -> ical.Place:
        """The room as calendars show it, with the room's and unit's names in force at ``at`` (UTC; None: now)."""
        if at is not None and self.history:
            room = self.rooms[room_id]
            unit_id, room_name = self.history.room_at(room_id, room.unit_id, room.name, at)
            unit_name = self.history.unit_name_at(unit_id, self.units[unit_id].name, at)
            if (unit_id, room_name, unit_name) != (room.unit_id, room.name, self.units[room.unit_id].name):
                return ical.Place(room_id=room.id, room_name=room_name, unit_name=unit_name,
                                  contact_email=None if private else room.contact_email)
        place = self._places.get((room_id, private))
        if place is None:
            room = self.rooms[room_id]
            place = self._places[room_id, private] = ical.Place(
                room_id=room.id, room_name=room.name, unit_name=self.units[room.unit_id].name,
                contact_email=None if private else room.contact_email)
        return place

    def places(self, chair_room_id: int, room_ids: frozenset[int], *, private: bool,
               at: datetime | None = None) -> tuple[ical.Place, ...]:
        if at is not None and self.history:
            others = sorted(set(room_ids) - {chair_room_id})
            return tuple(self.place(r, private=private, at=at) for r in [chair_room_id, *others])
        key = (chair_room_id, room_ids, private)
        places = self._place_lists.get(key)
        if places is None:
            others = sorted(set(room_ids) - {chair_room_id})
            places = self._place_lists[key] = tuple(self.place(r, private=private) for r in [chair_room_id, *others])
        return places


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _meeting_cal(loader: _Loader, settings: Settings, meeting: _MeetingRec, *, base_url: str, private: bool,
                 involved: Involvement | None = None, window_start: datetime | None = None,
                 audience: visibility.Audience = visibility.EVERYONE,
                 with_pin: bool = True) -> ical.MeetingCal | None:
    """The calendar view of ``meeting``; ``None`` when no occurrence of it belongs to the feed.

    ``involved`` filters occurrences (feeds); ``window_start`` (UTC) requires an involved
    occurrence ending after it. A confidential meeting outside ``audience``
    (``visibility.sees_details``) is "Cuộc họp" with its times and rooms: no description, dial
    string or PIN. ``with_pin=False`` leaves the PIN out (dial strings stay).
    """
    occs = [loader.occ(meeting, row) for row in loader.occurrences[meeting.id]]
    shown: list[_Occ] = []
    hidden: list[_Occ] = []
    for o in occs:
        (shown if involved is None or involved(o.chair_room_id, o.endpoint_ids, o.room_ids) else hidden).append(o)
    if not shown or (window_start is not None and not any(o.row.end > window_start for o in shown)):
        return None

    def instance(o: _Occ) -> ical.Instance:
        return ical.Instance(o.row.recurrence_id, o.row.start, o.row.end,
                             loader.place(o.chair_room_id, private=private, at=o.row.start),
                             loader.places(o.chair_room_id, o.room_ids, private=private, at=o.row.start),
                             o.row.cancelled, o.row.conference_number, o.row.tentative)

    if meeting.rrule:
        duration = timedelta(minutes=meeting.duration_minutes)
        default_endpoints = loader.defaults.get(meeting.id, frozenset())
        default_rooms = loader.rooms_of(meeting.chair_room_id, default_endpoints)
        master = ical.Instance(meeting.dtstart, meeting.dtstart, meeting.dtstart + duration,
                               loader.place(meeting.chair_room_id, private=private, at=meeting.dtstart),
                               loader.places(meeting.chair_room_id, default_rooms, private=private, at=meeting.dtstart))
        exceptions = tuple(instance(o) for o in shown if (
            o.row.is_exception or o.row.cancelled or o.row.tentative or o.row.conference_number is not None
            or o.row.start != o.row.recurrence_id
            or o.row.end - o.row.start != duration or o.chair_room_id != meeting.chair_room_id
            or o.room_ids != default_rooms or o.endpoint_ids != default_endpoints
            # A merge or rename since the series began: occurrences under other names than the master's.
            or (loader.history and loader.places(o.chair_room_id, o.room_ids, private=private, at=o.row.start)
                != master.rooms)))
    else:
        master, exceptions = instance(shown[0]), ()
    # Not this feed's: RFC 5545 §3.8.5.1. An added occurrence (RDATE, §3.8.5.2) that is not this feed's
    # is simply not listed.
    exdates = {*meeting.exdates, *(o.row.recurrence_id for o in hidden if not o.row.is_extra)}
    rdates = tuple(sorted(o.row.recurrence_id for o in shown if o.row.is_extra)) if meeting.rrule else ()
    organizer = loader.users.get(meeting.organizer_user_id) if meeting.organizer_user_id else None
    bridge = loader.bridges.get(meeting.bridge_id) if meeting.bridge_id else None
    join = ical.JoinDetails(conference_number=meeting.conference_number, sip_domain=bridge.sip_domain,
                            h323_prefix=bridge.h323_prefix, pin=meeting.pin if with_pin else "") if bridge else None
    title, description = meeting.title, meeting.description
    if meeting.confidential and not visibility.sees_details(audience, confidential=True, participant_unit_ids={
            loader.rooms[r].unit_id for o in occs for r in o.room_ids} | {loader.rooms[meeting.chair_room_id].unit_id}):
        title, description, join = visibility.CONFIDENTIAL_TITLE, "", None
    others = tuple((label, ical.JoinDetails(conference_number=number, sip_domain=domain, h323_prefix=prefix,
                                            pin=join.pin)) for label, (domain, prefix), number in
                   loader.cascade.get(meeting.id, ())) if join is not None else ()
    updated = max([meeting.updated_at, *(o.row.updated_at for o in occs)])
    return ical.MeetingCal(
        uid=meeting.uid, title=title, description=description, status=meeting.status,
        sequence=meeting.sequence, timezone=meeting.timezone, master=master, created_at=meeting.created_at,
        updated_at=updated, check_lead_minutes=meeting.check_lead_minutes,
        organizer_name=(organizer.full_name if organizer and organizer.full_name else "Văn phòng UBND tỉnh"),
        organizer_email=(organizer.email if organizer and organizer.email else settings.calendar_organizer_email),
        join=join, url=f"{base_url.rstrip('/')}/api/v1/meetings/{meeting.id}",
        rrule=recurrence.publishable(meeting.rrule, meeting.timezone) if meeting.rrule else None,
        exdates=tuple(sorted(exdates)), exceptions=exceptions, rdates=rdates, cascade=others,
        upstream_dial=loader.upstream.get(meeting.id) if join is not None else None)


# ---------------------------------------------------------------- invites

def invite(session: Session, settings: Settings, meeting: Meeting, *, base_url: str,
           occurrence_id: int | None = None, cancel: bool = False,
           audience: visibility.Audience = visibility.EVERYONE) -> Document:
    """The iTIP invite of ``meeting`` (caller checked access): REQUEST, or CANCEL once cancelled.

    With ``occurrence_id``: that occurrence alone, a CANCEL with its RECURRENCE-ID when it (or
    the meeting) is cancelled, else a REQUEST with its RECURRENCE-ID (RFC 5546 §3.2.2, §3.2.5).
    ``cancel``: a CANCEL whatever the state, for attendees a change removed (RFC 5546 §3.2.5).
    ``audience``: who downloads it (a confidential meeting outside it is "Cuộc họp"); the e-mailed
    invites go to the participating rooms and the organizer, who see everything.

    Raises:
        NotFound: ``occurrence_id`` is not an occurrence of ``meeting``.
    """
    rec = _meeting_rec_of(meeting)
    loader = _Loader(session, [rec])
    cal = _meeting_cal(loader, settings, rec, base_url=base_url, private=False, audience=audience)
    if cal is None:
        raise NotFound(f"meeting {meeting.id} has no occurrence", code="occurrence_not_found")
    if cancel and (occurrence_id is None or not meeting.rrule):
        cal = dataclasses.replace(cal, status="cancelled")
    if occurrence_id is None:
        return _document(ical.invite(cal), cal.updated_at)
    row = next((o for o in loader.occurrences[meeting.id] if o.id == occurrence_id), None)
    if row is None:
        raise NotFound(f"occurrence {occurrence_id} of meeting {meeting.id} not found", code="occurrence_not_found")
    o = loader.occ(rec, row)
    instance = ical.Instance(recurrence_id=row.recurrence_id, start=row.start, end=row.end,
                             chair=loader.place(o.chair_room_id, private=False, at=row.start),
                             rooms=loader.places(o.chair_room_id, o.room_ids, private=False, at=row.start),
                             cancelled=row.cancelled, conference_number=row.conference_number,
                             tentative=row.tentative)
    if not meeting.rrule:
        return _document(ical.invite(cal), cal.updated_at)
    if cancel or instance.cancelled or meeting.status is MeetingStatus.cancelled:
        return _document(ical.occurrence_cancel(cal, instance), cal.updated_at)
    return _document(ical.occurrence_request(cal, instance), cal.updated_at)


# ---------------------------------------------------------------- feed fingerprint (ETag without rendering)

#: The modules whose code decides a feed's bytes: this one, the serialiser and what it reads.
RENDERING_MODULES = (sys.modules[__name__], feed_ical, ical, join, recurrence, visibility)
#: What else decides a feed's bytes: this code (the modules that render) and the library it uses.
CODE_VERSION = hashlib.sha256(b"".join(
    [confsvc.__version__.encode(), ical.ICALENDAR_VERSION.encode()]
    + [Path(str(module.__file__)).read_bytes() for module in RENDERING_MODULES])).hexdigest()
#: The settings a feed's bytes depend on (``feed_state`` fingerprints them with ``Settings.fingerprint``).
FEED_SETTINGS = ("feed_past_days", "feed_refresh_minutes", "calendar_organizer_email")
#: ``feed_state``'s one query: the deployment-wide feed version (``FeedVersion``, raised by triggers).
_VERSION_QUERY = sa.select(FeedVersion.__table__.c.version, FeedVersion.__table__.c.changed_at).where(
    FeedVersion.__table__.c.id == 1)


def _scope_rooms(scope: FeedScope, include_sub_units: bool, scope_id: int | sa.BindParameter) -> sa.Select:
    """Ids of the rooms of a room, unit (with its sub-units through a recursive CTE) or province
    scope, as SQL."""
    if scope is FeedScope.room:
        return sa.select(_R.id).where(_R.id == scope_id)
    if include_sub_units:
        tree = sa.select(_U.id).where(_U.id == scope_id).cte("feed_units", recursive=True)
        tree = tree.union_all(sa.select(_U.id).where(_U.parent_id == tree.c.id))
        return sa.select(_R.id).where(_R.unit_id.in_(sa.select(tree.c.id)))
    return sa.select(_R.id).where(_R.unit_id == scope_id)


def _candidates(scope: FeedScope, include_sub_units: bool, scope_id: int | sa.BindParameter) -> sa.Select:
    """Ids of meetings that may belong to a feed of ``scope``/``scope_id`` (an occurrence, chair or
    participant in it), as SQL; the exact per-occurrence filter is ``_scope``'s predicate."""
    if scope is FeedScope.endpoint:
        return participants.meetings_involving(endpoint_ids=scope_id, occurrence_overrides=True)
    return participants.meetings_involving(room_ids=_scope_rooms(scope, include_sub_units, scope_id),
                                           occurrence_overrides=True)


def _meeting_ids(scope: FeedScope, include_sub_units: bool, scope_id: int | sa.BindParameter,
                 window_start: datetime | sa.BindParameter) -> sa.Select:
    """Ids of the meetings a feed considers: candidates with an occurrence ending after ``window_start``."""
    in_window = sa.select(_O.meeting_id).where(_O.end > window_start)
    return sa.select(_M.id).where(_M.id.in_(_candidates(scope, include_sub_units, scope_id)), _M.id.in_(in_window))


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
    """The fingerprint of ``token``'s feed from one one-row query, without loading or rendering.

    The ETag is a SHA-256 over everything the feed's bytes depend on:

    - the rendering code (``RENDERING_MODULES``: this module, the serialiser ``feed_ical``, ``ical``
      and the scheduling modules they read) and ``icalendar``'s version (``CODE_VERSION``); ``base_url``, the
      ``feed_*`` and ``calendar_organizer_email`` settings (``FEED_SETTINGS``); the token (id, creation, scope, id,
      sub-units);
    - the window's start day (``window_start_for``);
    - the data: ``FeedVersion``'s ``version`` and ``changed_at``, which database triggers raise in
      the same transaction as any change to meetings, occurrences, participants or a shown column
      of units, rooms, endpoints, bridges and users (migration ``0012_feed_versions``), whatever
      code or process made it. The version is deployment-wide: any such change changes every
      feed's ETag (a feed a change did not touch renders the same bytes again, mostly from
      ``feed_ical.FEED_BLOCKS``).

    ``last_modified`` (RFC 9110 §8.8.2) is the latest of the version's ``changed_at`` (the commit
    of the last change anywhere, so also of a meeting that left the scope), the token's creation
    and the window's last move (UTC midnight today), truncated to whole seconds as HTTP dates are:
    If-Modified-Since misses only a change committed within the same second as the one the client
    saw, and If-None-Match, which ``routes`` compares first, misses none. A database whose version
    row is missing (emptied by TRUNCATE in tests) is at version 0.
    """
    now = now or utc_now()
    window_start = window_start_for(settings, now)
    row = session.execute(_VERSION_QUERY).first()
    version, changed_at = (row.version, _utc(row.changed_at)) if row is not None else (0, None)
    inputs = (CODE_VERSION, base_url, settings.fingerprint(FEED_SETTINGS), token.id,
              _utc(token.created_at).isoformat(), token.scope.value,
              token.scope_id, token.include_sub_units, window_start.isoformat(), version,
              changed_at.isoformat() if changed_at else None)
    etag = '"' + hashlib.sha256(repr(inputs).encode("utf-8")).hexdigest() + '"'
    stamps = [_utc(token.created_at), datetime.combine(now.astimezone(UTC).date(), time.min, UTC)]
    if changed_at is not None:
        stamps.append(changed_at)
    return FeedState(etag=etag, last_modified=max(stamps).replace(microsecond=0), window_start=window_start)


def warm_up(engine: Engine, settings: Settings) -> None:
    """Pays once per process, at startup (the app's lifespan, before it accepts requests), what the
    first feed request would otherwise pay: the ORM mappers' configuration, the compilation of every
    statement a feed runs (the token check, ``feed_state``, each scope kind's ``_scope``,
    ``_meeting_ids`` and ``_Loader`` queries, run for a scope id that matches nothing) and the
    renderer's once-per-zone values for ``settings.timezone`` (``feed_ical.warm_up``). Reads only;
    renders no feed and caches no document."""
    configure_mappers()
    window_start = window_start_for(settings, utc_now())
    with make_session(engine, write=False) as session:
        session.execute(_VERSION_QUERY).first()
        try:
            tokens.authenticate_feed(session, FeedScope.unit, 0, None)
        except NotFound:
            pass
        for scope, include_sub_units in ((FeedScope.unit, True), (FeedScope.unit, False), (FeedScope.room, False),
                                         (FeedScope.endpoint, False), (FeedScope.province, True)):
            probe = FeedToken(scope=scope, scope_id=0, include_sub_units=include_sub_units, prefix="", token_hash="")
            try:
                _scope(session, probe)
            except NotFound:
                pass
            ids = _meeting_ids(scope, include_sub_units, 0, window_start)
            _Loader(session, _load_meetings(session, ids), ids)
    feed_ical.warm_up(settings.timezone)


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

def _scope(session: Session, token: FeedToken) -> tuple[str, Involvement, visibility.Audience]:
    """Feed name (Vietnamese), the occurrence predicate (``_candidates`` is the SQL side) and the
    audience the feed stands for (``visibility``: the unit of its room or endpoint, or its unit).

    Raises:
        NotFound: the scope object no longer exists.
    """
    execute = session.connection().execute
    if token.scope is FeedScope.endpoint:
        endpoint = execute(sa.select(_E.id, _E.name, _R.name.label("room_name"), _R.unit_id)
                           .join_from(Endpoint.__table__, Room.__table__, _R.id == _E.room_id)
                           .where(_E.id == token.scope_id)).first()
        if endpoint is None:
            raise NotFound("not found", code="not_found")
        endpoint_id = endpoint.id
        return (f"Lịch họp – thiết bị {endpoint.name} ({endpoint.room_name})",
                lambda _chair, endpoints, _rooms: endpoint_id in endpoints,
                visibility.Audience.of_units({endpoint.unit_id}))
    if token.scope is FeedScope.room:
        room = execute(sa.select(_R.name, _R.unit_id, _U.name.label("unit_name"))
                       .join_from(Room.__table__, Unit.__table__, _U.id == _R.unit_id)
                       .where(_R.id == token.scope_id)).first()
        if room is None:
            raise NotFound("not found", code="not_found")
        name = f"Lịch họp – {room.name}, {room.unit_name}"
        room_ids = frozenset({token.scope_id})
        audience = visibility.Audience.of_units({room.unit_id})
    else:
        unit = execute(sa.select(_U.name).where(_U.id == token.scope_id)).first()
        room_ids = frozenset(execute(_scope_rooms(token.scope, token.include_sub_units, token.scope_id)).scalars())
        if unit is None:
            raise NotFound("not found", code="not_found")
        name = f"Lịch họp – {unit.name}" + (" (gồm đơn vị trực thuộc)"
                                            if token.include_sub_units and token.scope is FeedScope.unit else "")
        audience = visibility.Audience.of_units({token.scope_id})
    return name, (lambda _chair, _endpoints, rooms: not rooms.isdisjoint(room_ids)), audience


def _day_blocks(session: Session, token: FeedToken, window_start: datetime) -> list[ical.AllDay]:
    """A room's or endpoint's day blocks (``scheduling.blocks``) not over before the window, as all-day
    events (issue 12); other feeds show none. A block raises the feed version (its table has the
    triggers of 0012), so the ETag follows."""
    kinds = {FeedScope.room: ResourceKind.room, FeedScope.endpoint: ResourceKind.endpoint}
    if token.scope not in kinds:
        return []
    rows = session.exec(select(ResourceBlock).where(
        ResourceBlock.resource_kind == kinds[token.scope], ResourceBlock.resource_id == token.scope_id,
        ResourceBlock.last_day >= (window_start - timedelta(days=1)).date())
        .order_by(ResourceBlock.first_day, ResourceBlock.id)).all()
    return [ical.AllDay(uid=f"block-{b.id}@confsvc", first_day=b.first_day, last_day=b.last_day,
                        summary=f"Tạm dừng sử dụng: {b.reason}" if b.reason else "Tạm dừng sử dụng",
                        description="Không đặt lịch họp trong những ngày này.", stamp=_utc(b.created_at))
            for b in rows]


def feed(session: Session, settings: Settings, token: FeedToken, *, base_url: str,
         now: datetime | None = None, state: FeedState | None = None) -> Document:
    """The feed of ``token``'s scope over ``[window_start, ∞)`` (UTC; ``window_start_for``).

    What a feed carries (a feed URL is a bearer secret pasted into calendar clients, so it carries
    less than an invite): the dial strings always, the PIN only when the token's scope is a single
    room or endpoint (unit and province feeds leave it out); a confidential meeting outside the
    feed's audience is "Cuộc họp" with its times and rooms (``scheduling.visibility``).

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
    name, involved, audience = _scope(session, token)
    ids = _meeting_ids(token.scope, token.include_sub_units, token.scope_id, state.window_start)
    meetings = _load_meetings(session, ids)
    loader = _Loader(session, meetings, ids)
    with_pin = token.scope in (FeedScope.room, FeedScope.endpoint)
    cals = [c for m in meetings if (c := _meeting_cal(loader, settings, m, base_url=base_url, private=True,
                                                        involved=involved, window_start=state.window_start,
                                                        audience=audience, with_pin=with_pin))]
    body = feed_ical.feed(name, cals, refresh=timedelta(minutes=settings.feed_refresh_minutes),
                     all_day=_day_blocks(session, token, state.window_start))
    doc = Document(body=body, etag=state.etag, last_modified=state.last_modified)
    FEED_DOCUMENTS.put(doc)
    return doc
