"""iCalendar invites and feeds (RFC 5545, iTIP RFC 5546, RFC 7986), built with ``icalendar``. Pure.

Values in, bytes out: callers (``calendar.feeds``) load the database rows and hand over the
dataclasses below; nothing here touches a session or reads the clock.

Every datetime handed in is aware; it is written in the meeting's IANA zone with a ``TZID`` and a
matching VTIMEZONE, except DTSTAMP / CREATED / LAST-MODIFIED, which are UTC. Text is escaped and
folded by ``icalendar``: commas, semicolons, backslashes and newlines are escaped (RFC 5545
§3.3.11), control characters other than newline and tab are dropped, and lines fold at 75 octets
between whole UTF-8 characters (RFC 5545 §3.1).

Output is deterministic: the same values give the same bytes, so an unchanged feed is
byte-identical between fetches.

Feeds (up to thousands of VEVENTs) are written by a serialiser of our own, ``calendar.feed_ical``,
which writes exactly the bytes of ``feed_reference`` (built here from ``icalendar`` components).
Invites and single-occurrence documents keep the ``icalendar`` components.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress, vDuration, vRecur, vText
from icalendar import __version__ as ICALENDAR_VERSION  # noqa: F401 (re-exported: the feed fingerprint covers it)

from confsvc.scheduling import join as join_lines
from confsvc.scheduling.join import JoinDetails

PRODID = "-//confsvc//Lịch họp trực tuyến//VI"
#: VTIMEZONE definitions cover transitions in these years (RFC 5545 §3.6.5).
TZ_FIRST_DATE = date(1970, 1, 1)
TZ_LAST_DATE = date(2050, 1, 1)
#: Control characters RFC 5545 §3.3.11 TEXT excludes (tab and newline are kept; newline is escaped).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(value: str) -> str:
    """NFC text safe for a TEXT value: CRLF and CR become LF, other control characters are dropped.

    ``icalendar`` then escapes ``\\ ; ,`` and newlines (RFC 5545 §3.3.11), so no input can end a
    content line or start a property of its own.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _CONTROL.sub("", value))


@dataclass(frozen=True)
class Place:
    """A room (điểm cầu) as calendars show it. ``contact_email`` becomes the attendee address."""

    room_id: int
    room_name: str
    unit_name: str
    contact_email: str | None = None

    @property
    def label(self) -> str:
        return f"{self.room_name}, {self.unit_name}"

    def address(self) -> str:
        """The cal-address (RFC 5545 §3.3.3): ``mailto:`` the contact, else a URN naming the room."""
        if self.contact_email:
            return f"mailto:{self.contact_email}"
        return f"urn:x-confsvc:room:{self.room_id}"


@dataclass(frozen=True)
class Instance:
    """One occurrence as calendars see it. Times aware; ``recurrence_id`` is the original start.

    ``rooms`` lists every participating room, the chair room included. ``conference_number`` is the
    occurrence's own number when it differs from the meeting's (None: the meeting's).
    """

    recurrence_id: datetime
    start: datetime
    end: datetime
    chair: Place
    rooms: tuple[Place, ...]
    cancelled: bool = False
    conference_number: int | None = None
    #: Displaced by a higher-priority meeting (``scheduling.displacement``): STATUS:TENTATIVE.
    tentative: bool = False


@dataclass(frozen=True)
class MeetingCal:
    """Everything an invite or a feed says about one meeting.

    ``master`` is the meeting itself (a single meeting's only occurrence, or a series' first
    start with the series' default rooms). ``rrule`` is an RRULE value without the ``RRULE:``
    prefix; ``exdates`` are excluded original starts; ``exceptions`` are occurrences of the
    series that differ from what the rule says (moved, other rooms, cancelled), each emitted as
    an override with its RECURRENCE-ID. ``updated_at`` is the last change of the meeting or any
    of its occurrences: it is the DTSTAMP and LAST-MODIFIED of every component.
    """

    uid: str
    title: str
    description: str
    status: str  # tentative | confirmed | cancelled
    sequence: int
    timezone: str
    master: Instance
    created_at: datetime
    updated_at: datetime
    check_lead_minutes: int = 60
    organizer_name: str = "Văn phòng UBND tỉnh"
    organizer_email: str = "lich-hop@confsvc.invalid"
    join: JoinDetails | None = None
    url: str | None = None
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    exceptions: tuple[Instance, ...] = field(default=())
    rdates: tuple[datetime, ...] = ()
    #: A cascaded meeting's other bridges (issue 14): (label, how its sites dial it), by bridge id; the
    #: sites of each province dial their own province's bridge, the others ``join``.
    cascade: tuple[tuple[str, JoinDetails], ...] = ()
    #: A relay's external chair (issue 14), which the root bridge dials.
    upstream_dial: str | None = None

    def __hash__(self) -> int:
        # Equal views have equal hashes from these few fields alone; hashing every nested
        # instance and place twice per meeting (``FEED_BLOCKS`` get and put) cost more than rendering.
        return hash((self.uid, self.sequence, self.updated_at, self.master.start))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


# ---------------------------------------------------------------- text

#: Two-digit forms of 0–99: date and time fields are written by lookup, without format specs.
_D2 = tuple(f"{i:02}" for i in range(100))


def _year(year: int) -> str:
    return str(year) if year > 999 else f"{year:04}"


@functools.lru_cache(maxsize=16_384)
def _local(value: datetime, zone: ZoneInfo) -> str:
    """``value`` in ``zone`` as ``join.LOCAL_FORMAT`` (``dd/mm/yyyy HH:MM``), without strftime's cost.

    Cached: meetings start at a few times of day, and a zone conversion costs more than a lookup."""
    v = value.astimezone(zone)
    return f"{_D2[v.day]}/{_D2[v.month]}/{_year(v.year)} {_D2[v.hour]}:{_D2[v.minute]}"


def join_text(meeting: MeetingCal, instance: Instance) -> str:
    """The Vietnamese join instructions (hướng dẫn kết nối) for one instance, plain text.

    Times are local to the meeting's zone, ``dd/mm/yyyy HH:MM``. The technical-check time is
    ``start − check_lead_minutes``.
    """
    zone = meeting.zone
    lines = []
    if meeting.description.strip():
        lines += [meeting.description.strip(), ""]
    check_at = instance.start - timedelta(minutes=meeting.check_lead_minutes)
    lines.append("Hướng dẫn kết nối:")
    lines.append("- " + join_lines.time_line(_local(instance.start, zone), _local(instance.end, zone)))
    lines.append(f"- Điểm cầu chủ trì: {instance.chair.label}")
    join = meeting.join
    if join is not None and instance.conference_number is not None:
        join = dataclasses.replace(join, conference_number=instance.conference_number)
    if join is not None and join.sip_uri:
        lines.append(f"- Chuỗi quay số (SIP): {join.sip_uri}")
    if join is not None and join.h323_number:
        lines.append(f"- Số quay H.323: {join.h323_number}")
    if join is not None and join.conference_number is not None:
        lines.append("- " + join_lines.conference_line(join.conference_number))
    if join is not None and join.pin:
        lines.append("- " + join_lines.pin_line(join.pin))
    for label, other in meeting.cascade if join is not None else ():
        dial = "; ".join(d for d in (f"SIP {other.sip_uri}" if other.sip_uri else "",
                                      f"H.323 {other.h323_number}" if other.h323_number else "") if d)
        lines.append(f"- Điểm cầu thuộc {label} quay số: {dial}"
                     + (f" ({join_lines.conference_line(other.conference_number)})"
                        if other.conference_number is not None else ""))
    if meeting.upstream_dial and join is not None:
        lines.append("- " + join_lines.upstream_line(meeting.upstream_dial))
    lines.append("- " + join_lines.check_line(_local(check_at, zone), meeting.check_lead_minutes))
    others = [p.label for p in instance.rooms if p.room_id != instance.chair.room_id]
    if others:
        lines.append("- Điểm cầu tham dự: " + "; ".join(others))
    if meeting.url:
        lines += ["", f"Chi tiết: {meeting.url}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- components

def _status(meeting: MeetingCal, instance: Instance) -> str:
    # RFC 5545 §3.8.1.11 STATUS for VEVENT: TENTATIVE / CONFIRMED / CANCELLED.
    if meeting.cancelled or instance.cancelled:
        return "CANCELLED"
    return "TENTATIVE" if meeting.status == "tentative" or instance.tentative else "CONFIRMED"


def _event(meeting: MeetingCal, instance: Instance, *, recurrence_id: bool, with_rule: bool,
           status: str | None = None, extra_exdates: Iterable[datetime] = (), attendees: bool = True) -> Event:
    zone = meeting.zone
    event = Event()
    event.add("uid", meeting.uid)  # RFC 5545 §3.8.4.7: stable for the meeting's whole life
    event.add("dtstamp", meeting.updated_at.astimezone(UTC))  # §3.8.7.2: UTC
    event.add("created", meeting.created_at.astimezone(UTC))  # §3.8.7.1
    event.add("last-modified", meeting.updated_at.astimezone(UTC))  # §3.8.7.3
    event.add("sequence", meeting.sequence)  # §3.8.7.4
    if recurrence_id:
        event.add("recurrence-id", instance.recurrence_id.astimezone(zone))  # §3.8.4.4
    event.add("dtstart", instance.start.astimezone(zone))  # §3.8.2.4 with TZID (§3.2.19)
    event.add("dtend", instance.end.astimezone(zone))  # §3.8.2.2
    if with_rule and meeting.rrule:
        event.add("rrule", vRecur.from_ical(meeting.rrule))  # §3.8.5.3
        if meeting.rdates:
            event.add("rdate", [d.astimezone(zone) for d in sorted(meeting.rdates)])  # §3.8.5.2
        excluded = sorted({*meeting.exdates, *extra_exdates})
        if excluded:
            event.add("exdate", [d.astimezone(zone) for d in excluded])  # §3.8.5.1
    event.add("summary", vText(clean_text(meeting.title)))  # §3.8.1.12, escaped per §3.3.11
    event.add("location", vText(clean_text(instance.chair.label)))  # §3.8.1.7
    event.add("description", vText(clean_text(join_text(meeting, instance))))  # §3.8.1.5
    event.add("status", status or _status(meeting, instance))
    event.add("transp", "OPAQUE")
    if meeting.url:
        event.add("url", meeting.url)  # §3.8.4.6
    organizer = vCalAddress(f"mailto:{meeting.organizer_email}")
    organizer.params["CN"] = clean_text(meeting.organizer_name).replace("\n", " ")
    event.add("organizer", organizer)  # §3.8.4.3
    if attendees:
        for place in instance.rooms:
            attendee = vCalAddress(place.address())
            attendee.params["CN"] = clean_text(place.label).replace("\n", " ")
            attendee.params["CUTYPE"] = "ROOM"  # §3.2.3
            attendee.params["ROLE"] = "CHAIR" if place.room_id == instance.chair.room_id else "REQ-PARTICIPANT"
            attendee.params["PARTSTAT"] = "NEEDS-ACTION"
            attendee.params["RSVP"] = "FALSE"
            event.add("attendee", attendee)  # §3.8.4.1
    return event


@functools.lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> Timezone:
    """The VTIMEZONE of ``tzid`` over ``TZ_FIRST_DATE``–``TZ_LAST_DATE`` (~20 ms to build, so built
    once per zone; never mutated after)."""
    return Timezone.from_tzid(tzid, first_date=TZ_FIRST_DATE, last_date=TZ_LAST_DATE)


_vtimezone("Asia/Ho_Chi_Minh")  # SPEC's zone, built at import rather than in the first request


def _calendar(method: str | None, events: Iterable[Event], zones: Iterable[str], *,
              name: str | None = None, refresh: timedelta | None = None) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)  # RFC 5545 §3.7.3
    calendar.add("version", "2.0")  # §3.7.4
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method)  # §3.7.2 / RFC 5546 §1.4
    if name is not None:
        calendar.add("name", vText(clean_text(name)))  # RFC 7986 §5.1
        calendar.add("x-wr-calname", vText(clean_text(name)))
    if refresh is not None:
        calendar.add("refresh-interval", vDuration(refresh), parameters={"VALUE": "DURATION"})  # RFC 7986 §5.7
        calendar.add("x-published-ttl", vDuration(refresh))
    for tzid in sorted(set(zones)):
        # RFC 5545 §3.6.5: one VTIMEZONE for every TZID used.
        calendar.add_component(_vtimezone(tzid))
    for event in events:
        calendar.add_component(event)
    return bytes(calendar.to_ical())


def _series_events(meeting: MeetingCal, *, cancelled_as_exdate: bool) -> list[Event]:
    """The master VEVENT and one override per exception (RFC 5545 §3.8.4.4).

    ``cancelled_as_exdate``: cancelled exceptions become EXDATEs (invites) instead of overrides
    with STATUS:CANCELLED (feeds, so subscribed clients remove the occurrence).
    """
    cancelled = [x for x in meeting.exceptions if x.cancelled]
    extra = [x.recurrence_id for x in cancelled] if cancelled_as_exdate and meeting.rrule else []
    events = [_event(meeting, meeting.master, recurrence_id=False, with_rule=True, extra_exdates=extra)]
    if meeting.rrule:
        for instance in sorted(meeting.exceptions, key=lambda x: x.recurrence_id):
            if cancelled_as_exdate and instance.cancelled:
                continue
            events.append(_event(meeting, instance, recurrence_id=True, with_rule=False))
    return events


# ---------------------------------------------------------------- documents

def invite(meeting: MeetingCal) -> bytes:
    """The iTIP invitation of a whole meeting (RFC 5546 §3.2.2 REQUEST, §3.2.5 CANCEL).

    A live meeting gives METHOD:REQUEST: the master VEVENT (with RRULE and EXDATE for a series,
    cancelled occurrences added to EXDATE) and one override per edited occurrence. A cancelled
    meeting gives METHOD:CANCEL with STATUS:CANCELLED and the meeting's (already bumped) SEQUENCE.
    """
    if meeting.cancelled:
        event = _event(meeting, meeting.master, recurrence_id=False, with_rule=False, status="CANCELLED")
        return _calendar("CANCEL", [event], [meeting.timezone])  # RFC 5546 §3.2.5
    return _calendar("REQUEST", _series_events(meeting, cancelled_as_exdate=True), [meeting.timezone])


def occurrence_cancel(meeting: MeetingCal, instance: Instance) -> bytes:
    """METHOD:CANCEL of one occurrence of a series, identified by its RECURRENCE-ID (RFC 5546 §3.2.5)."""
    event = _event(meeting, instance, recurrence_id=True, with_rule=False, status="CANCELLED")
    return _calendar("CANCEL", [event], [meeting.timezone])


def occurrence_request(meeting: MeetingCal, instance: Instance) -> bytes:
    """METHOD:REQUEST updating one occurrence of a series (RFC 5546 §3.2.2 with RECURRENCE-ID)."""
    event = _event(meeting, instance, recurrence_id=bool(meeting.rrule), with_rule=False)
    return _calendar("REQUEST", [event], [meeting.timezone])


@dataclass(frozen=True)
class AllDay:
    """An all-day event of a feed (a room or endpoint blocked for whole local days): ``first_day`` to
    ``last_day`` inclusive, written with an exclusive ``DTEND`` (RFC 5545 §3.6.1)."""

    uid: str
    first_day: date
    last_day: date
    summary: str
    description: str
    stamp: datetime


def all_day_bytes(item: AllDay) -> bytes:
    """``VEVENT`` with ``DTSTART;VALUE=DATE`` and ``DTEND;VALUE=DATE`` = the day after ``last_day``
    (RFC 5545 §3.6.1: DTEND is exclusive, so one day is DTSTART + 1), TRANSP:OPAQUE (busy)."""
    event = Event()
    event.add("UID", item.uid)
    event.add("DTSTAMP", item.stamp.astimezone(UTC))
    event.add("DTSTART", item.first_day)
    event.add("DTEND", item.last_day + timedelta(days=1))
    event.add("SUMMARY", item.summary)
    if item.description:
        event.add("DESCRIPTION", item.description)
    event.add("TRANSP", "OPAQUE")
    folded: bytes = event.to_ical()
    return folded


def feed_reference(name: str, meetings: Iterable[MeetingCal], *, refresh: timedelta) -> bytes:
    """A subscription feed built from ``icalendar`` components only: what ``feed_ical.feed`` writes
    (``tests/calendar/test_ical_fast.py`` compares the two byte for byte)."""
    meetings = list(meetings)
    events: list[Event] = []
    for meeting in meetings:
        events += _series_events(meeting, cancelled_as_exdate=False)
    return _calendar(None, events, [m.timezone for m in meetings], name=name, refresh=refresh)
