"""Invites and subscription feeds from the database: loads rows, hands values to ``notify.ical``.

Reads only (no flush, no commit). A feed holds every meeting of its scope with an occurrence of
that scope ending after ``now − feed_past_days`` (all future ones included); occurrences of a
series that do not involve the scope are hidden with EXDATE (RFC 5545 §3.8.5.1).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
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
from confsvc.users.models import User
from confsvc.users.service import expand_units

#: ``involved(chair_room_id, endpoint_ids, room_ids) -> bool``: does an occurrence belong to a feed.
Involvement = Callable[[int, frozenset[int], frozenset[int]], bool]


@dataclass(frozen=True)
class Document:
    """A rendered calendar: ``etag`` is a quoted strong validator (SHA-256 of the body, RFC 9110
    §8.8.3); ``last_modified`` is UTC, whole seconds."""

    body: bytes
    etag: str
    last_modified: datetime


def _document(body: bytes, last_modified: datetime) -> Document:
    return Document(body=body, etag='"' + hashlib.sha256(body).hexdigest() + '"',
                    last_modified=last_modified.astimezone(UTC).replace(microsecond=0))


@dataclass
class _Occ:
    row: Occurrence
    chair_room_id: int
    endpoint_ids: frozenset[int]
    room_ids: frozenset[int]


class _Loader:
    """Bulk-loads everything the calendars of ``meetings`` mention (a fixed number of queries)."""

    def __init__(self, session: Session, meetings: list[Meeting]) -> None:
        self.session = session
        ids = [m.id for m in meetings]
        self.occurrences: dict[int, list[Occurrence]] = {i: [] for i in ids}
        self.defaults: dict[int, set[int]] = {i: set() for i in ids}
        self.overrides: dict[int, set[int]] = {}
        if ids:
            for occ in session.exec(select(Occurrence).where(Occurrence.meeting_id.in_(ids))
                                    .order_by(Occurrence.start, Occurrence.id)).all():
                self.occurrences[occ.meeting_id].append(occ)
            for meeting_id, endpoint_id in session.exec(
                    select(MeetingParticipant.meeting_id, MeetingParticipant.endpoint_id)
                    .where(MeetingParticipant.meeting_id.in_(ids))).all():
                self.defaults[meeting_id].add(endpoint_id)
        overridden = [o.id for occs in self.occurrences.values() for o in occs if o.participants_overridden]
        if overridden:
            for occ_id, endpoint_id in session.exec(
                    select(OccurrenceParticipant.occurrence_id, OccurrenceParticipant.endpoint_id)
                    .where(OccurrenceParticipant.occurrence_id.in_(overridden))).all():
                self.overrides.setdefault(occ_id, set()).add(endpoint_id)
        endpoint_ids = set().union(*self.defaults.values(), *self.overrides.values())
        self.endpoint_room = dict(session.exec(select(Endpoint.id, Endpoint.room_id)
                                               .where(Endpoint.id.in_(endpoint_ids))).all()) if endpoint_ids else {}
        room_ids = {m.chair_room_id for m in meetings} | set(self.endpoint_room.values()) | {
            o.chair_room_id for occs in self.occurrences.values() for o in occs if o.chair_room_id}
        self.rooms = {r.id: r for r in session.exec(select(Room).where(Room.id.in_(room_ids))).all()} \
            if room_ids else {}
        unit_ids = {r.unit_id for r in self.rooms.values()}
        self.units = {u.id: u for u in session.exec(select(Unit).where(Unit.id.in_(unit_ids))).all()} \
            if unit_ids else {}
        bridge_ids = {m.bridge_id for m in meetings if m.bridge_id}
        self.bridges = {b.id: b for b in session.exec(select(Bridge).where(Bridge.id.in_(bridge_ids))).all()} \
            if bridge_ids else {}
        user_ids = {m.organizer_user_id for m in meetings if m.organizer_user_id}
        self.users = {u.id: u for u in session.exec(select(User).where(User.id.in_(user_ids))).all()} \
            if user_ids else {}

    def rooms_of(self, chair_room_id: int, endpoint_ids: Iterable[int]) -> frozenset[int]:
        return frozenset({chair_room_id} | {self.endpoint_room[e] for e in endpoint_ids if e in self.endpoint_room})

    def occ(self, meeting: Meeting, row: Occurrence) -> _Occ:
        chair = row.chair_room_id or meeting.chair_room_id
        endpoints = frozenset(self.overrides.get(row.id, set()) if row.participants_overridden
                              else self.defaults[meeting.id])
        return _Occ(row, chair, endpoints, self.rooms_of(chair, endpoints))

    def place(self, room_id: int, *, private: bool) -> ical.Place:
        room = self.rooms[room_id]
        unit = self.units[room.unit_id]
        return ical.Place(room_id=room.id, room_name=room.name, unit_name=unit.name,
                          contact_email=None if private else room.contact_email)

    def places(self, chair_room_id: int, room_ids: Iterable[int], *, private: bool) -> tuple[ical.Place, ...]:
        others = sorted(set(room_ids) - {chair_room_id})
        return tuple(self.place(r, private=private) for r in [chair_room_id, *others])


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _meeting_cal(loader: _Loader, settings: Settings, meeting: Meeting, *, base_url: str, private: bool,
                 involved: Involvement | None = None, window_start: datetime | None = None) -> ical.MeetingCal | None:
    """The calendar view of ``meeting``; ``None`` when no occurrence of it belongs to the feed.

    ``involved`` filters occurrences (feeds); ``window_start`` (UTC) requires an involved
    occurrence ending after it.
    """
    occs = [loader.occ(meeting, row) for row in loader.occurrences[meeting.id]]
    shown = [o for o in occs if involved is None or involved(o.chair_room_id, o.endpoint_ids, o.room_ids)]
    if not shown or (window_start is not None and not any(o.row.end > window_start for o in shown)):
        return None
    hidden = [o for o in occs if o not in shown]

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


# ---------------------------------------------------------------- feeds

def _scope(session: Session, token: FeedToken) -> tuple[str, Involvement, sa.Select]:
    """Feed name (Vietnamese), the occurrence predicate, and a query of candidate meeting ids."""
    if token.scope is FeedScope.endpoint:
        endpoint = session.get(Endpoint, token.scope_id)
        if endpoint is None:
            raise NotFound("not found", code="not_found")
        room = session.get(Room, endpoint.room_id)
        name = f"Lịch họp – thiết bị {endpoint.name} ({room.name})"
        candidates = sa.union(
            select(MeetingParticipant.meeting_id).where(MeetingParticipant.endpoint_id == endpoint.id),
            select(Occurrence.meeting_id).join(OccurrenceParticipant,
                                               OccurrenceParticipant.occurrence_id == Occurrence.id)
            .where(OccurrenceParticipant.endpoint_id == endpoint.id))
        return name, (lambda _chair, endpoints, _rooms: endpoint.id in endpoints), candidates
    if token.scope is FeedScope.room:
        room = session.get(Room, token.scope_id)
        if room is None:
            raise NotFound("not found", code="not_found")
        unit = session.get(Unit, room.unit_id)
        name = f"Lịch họp – {room.name}, {unit.name}"
        room_ids = frozenset({room.id})
        room_query: sa.Select = select(Room.id).where(Room.id == room.id)
    else:
        unit = session.get(Unit, token.scope_id)
        if unit is None:
            raise NotFound("not found", code="not_found")
        units = expand_units(session, {unit.id}) if token.include_sub_units else frozenset({unit.id})
        name = f"Lịch họp – {unit.name}" + (" (gồm đơn vị trực thuộc)"
                                            if token.include_sub_units and token.scope is FeedScope.unit else "")
        room_query = select(Room.id).where(Room.unit_id.in_(units))
        room_ids = frozenset(session.exec(room_query).all())
    candidates = sa.union(
        select(Meeting.id).where(Meeting.chair_room_id.in_(room_query)),
        select(MeetingParticipant.meeting_id).join(Endpoint, Endpoint.id == MeetingParticipant.endpoint_id)
        .where(Endpoint.room_id.in_(room_query)),
        select(Occurrence.meeting_id).where(Occurrence.chair_room_id.in_(room_query)),
        select(Occurrence.meeting_id)
        .join(OccurrenceParticipant, OccurrenceParticipant.occurrence_id == Occurrence.id)
        .join(Endpoint, Endpoint.id == OccurrenceParticipant.endpoint_id).where(Endpoint.room_id.in_(room_query)))
    return name, (lambda _chair, _endpoints, rooms: bool(rooms & room_ids)), candidates


def feed(session: Session, settings: Settings, token: FeedToken, *, base_url: str,
         now: datetime | None = None) -> Document:
    """The feed of ``token``'s scope over ``[now − feed_past_days, ∞)`` (UTC).

    ``last_modified`` is the latest change of any meeting in the deployment (or the token's
    creation): coarse, so an ``If-Modified-Since`` answer is never a stale 304 when a meeting
    left the scope; ``etag`` is exact.

    Raises:
        NotFound: the scope object no longer exists.
    """
    now = now or utc_now()
    window_start = now - timedelta(days=settings.feed_past_days)
    name, involved, candidates = _scope(session, token)
    in_window = select(Occurrence.meeting_id).where(Occurrence.end > window_start)
    meetings = list(session.exec(select(Meeting).where(Meeting.id.in_(candidates), Meeting.id.in_(in_window))
                                 .order_by(Meeting.dtstart, Meeting.id)).all())
    loader = _Loader(session, meetings)
    cals = [c for m in meetings if (c := _meeting_cal(loader, settings, m, base_url=base_url, private=True,
                                                        involved=involved, window_start=window_start))]
    latest = session.exec(select(sa.func.max(Meeting.updated_at))).one()
    stamps = [token.created_at, *(c.updated_at for c in cals), *([_utc(latest)] if latest else [])]
    body = ical.feed(name, cals, refresh=timedelta(minutes=settings.feed_refresh_minutes))
    return _document(body, max(stamps))
