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

Feeds (up to thousands of VEVENTs) are written by a small serialiser of our own, ``_event_bytes``
(``_event_text``'s content lines, encoded and folded once per meeting by ``fold_lines``), because
building ``icalendar`` components costs ~1 ms per event. It writes exactly the bytes
``_event(...).to_ical()`` gives for the same values (``tests/test_ical_fast.py`` compares them byte
for byte, ORGANIZER/ATTENDEE lines with ``icalendar``'s parameter quoting and RFC 6868 escapes
included, on fixed and random text); what it does not write itself comes from ``icalendar`` once
per distinct value: the TZID form of a zone, RRULE values, VTIMEZONE. Invites keep the
``icalendar`` components.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
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
    return "TENTATIVE" if meeting.status == "tentative" else "CONFIRMED"


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


# ---------------------------------------------------------------- fast serialisation (feeds)

#: Longest unfolded content line in octets: ``icalendar`` folds before the 75th (RFC 5545 §3.1).
_FOLD_OCTETS = 74
_SAMPLE = datetime(2001, 2, 3, 4, 5, 6)
_SAMPLE_VALUE = "20010203T040506"


def fold(line: bytes) -> bytes:
    """Fold one UTF-8 content line as ``icalendar`` does (RFC 5545 §3.1), byte for byte.

    Each physical line holds at most 74 octets of the content line (a continuation line adds its
    leading space: 75); a cut never falls inside a UTF-8 character, and a TEXT escape ``\\x`` or
    RFC 6868 ``^x`` is never split: its ``\\`` or ``^`` moves to the next line.
    """
    if len(line) <= _FOLD_OCTETS:
        return line
    parts = []
    pos, size = 0, len(line)
    while size - pos > _FOLD_OCTETS:
        cut = pos + _FOLD_OCTETS
        while line[cut] & 0xC0 == 0x80:  # a UTF-8 continuation octet: cut before its character
            cut -= 1
        if line[cut - 1] in b"\\^":  # a segment of >= 71 octets always holds more than one character
            cut -= 1
        parts.append(line[pos:cut])
        pos = cut
    parts.append(line[pos:])
    return b"\r\n ".join(parts)


def escape_text(value: str) -> str:
    """A TEXT value escaped as ``icalendar.vText`` does (RFC 5545 §3.3.11), including its
    normalisation of ``\\N`` to a newline."""
    return (value.replace("\\N", "\n").replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _icalendar_lines(event: Event) -> list[str]:
    """The unfolded content lines ``icalendar`` writes for ``event``'s properties (BEGIN/END dropped)."""
    return [str(line) for line in event.content_lines()[1:-2]]


@functools.lru_cache(maxsize=64)
def _zone_form(timezone: str) -> tuple[str, str, str]:
    """How ``icalendar`` writes a local time of ``timezone``: (DTSTART parameters, EXDATE parameters,
    value suffix), e.g. ``(";TZID=Asia/Ho_Chi_Minh", ";TZID=Asia/Ho_Chi_Minh", "")`` or ``("", "", "Z")`` for UTC."""
    event = Event()
    value = _SAMPLE.replace(tzinfo=ZoneInfo(timezone))
    event.add("dtstart", value)
    event.add("exdate", [value])
    forms = []
    for line in _icalendar_lines(event):
        head, _, tail = line.rpartition(":")
        if not tail.startswith(_SAMPLE_VALUE):
            raise ValueError(f"unexpected date-time form {line!r}")
        forms.append(((head.split(";", 1)[1:] or [""])[0], tail[len(_SAMPLE_VALUE):]))
    (start_params, suffix), (exdate_params, exdate_suffix) = forms
    if suffix != exdate_suffix:
        raise ValueError(f"DTSTART and EXDATE forms of {timezone} differ")
    return (";" + start_params if start_params else ""), (";" + exdate_params if exdate_params else ""), suffix


@functools.lru_cache(maxsize=256)
def _rrule_value(rrule: str) -> str:
    """The RRULE value as ``icalendar.vRecur`` writes it (parts in its canonical order, RFC 5545 §3.3.10)."""
    return str(vRecur.from_ical(rrule).to_ical().decode("utf-8"))


#: RFC 6868 parameter escapes, as ``icalendar``'s ``rfc_6868_escape`` writes them.
_RFC6868 = re.compile(r'\^|\r\n|\r|\n|"')
_RFC6868_ESCAPES = {"^": "^^", "\n": "^n", "\r": "^n", "\r\n": "^n", '"': "^'"}
#: Characters that make ``icalendar`` put a parameter value in double quotes (its ``QUOTABLE``).
_QUOTABLE = re.compile("[,;:\u2019]")


def _param_value(key: str, value: str) -> str:
    """A parameter value as ``icalendar``'s ``Parameters.to_ical`` writes it: RFC 6868 escapes,
    ``"`` replaced by ``'``, double quotes around a value holding ``, ; : ’`` (RFC 5545 §3.2) or,
    for CN, a space or ``'``."""
    always = key == "CN" and (" " in value or "'" in value)
    escaped = _RFC6868.sub(lambda m: _RFC6868_ESCAPES[m.group(0)], value).replace('"', "'")
    return f'"{escaped}"' if always or _QUOTABLE.search(escaped) else escaped


@functools.lru_cache(maxsize=4096)
def _address_line(name: str, address: str, cn: str, params: tuple[tuple[str, str], ...] = ()) -> str:
    """An ORGANIZER / ATTENDEE content line (unfolded) as ``icalendar`` writes a ``vCalAddress``
    with these parameters: sorted by name, quoted and escaped by ``_param_value`` (RFC 5545 §3.2,
    RFC 6868). ``tests/test_ical_fast.py`` compares it with ``icalendar``'s own line.

    Raises:
        ValueError: ``address`` holds a line break (``icalendar`` refuses such a content line).
    """
    if "\r" in address or "\n" in address:
        raise ValueError(f"Content line can not contain unescaped new line characters: {address!r}")
    items = sorted([("CN", cn), *params])
    return f"{name.upper()};" + ";".join(f"{key}={_param_value(key, value)}" for key, value in items) + f":{address}"


def _stamp(v: datetime) -> str:
    """``YYYYMMDDTHHMMSS`` of ``v``'s own fields (RFC 5545 §3.3.5 DATE-TIME, without a zone)."""
    return f"{_year(v.year)}{_D2[v.month]}{_D2[v.day]}T{_D2[v.hour]}{_D2[v.minute]}{_D2[v.second]}"


@functools.lru_cache(maxsize=16_384)
def _local_value(value: datetime, zone: ZoneInfo) -> str:
    """``value`` as a DATE-TIME in ``zone`` (the form a ``TZID`` parameter qualifies); cached like ``_local``."""
    return _stamp(value.astimezone(zone))


def _utc_value(value: datetime) -> str:
    """``value`` as a UTC DATE-TIME (``…Z``, RFC 5545 §3.3.5 form #2)."""
    return _stamp(value.astimezone(UTC)) + "Z"


def fold_lines(text: str) -> bytes:
    """``text`` — unfolded content lines, each ending in CRLF — encoded as UTF-8, every line folded
    by ``fold``. Content lines never hold a bare CR or LF (TEXT escapes them, RFC 5545 §3.3.11;
    parameters by RFC 6868), so CRLF splits them exactly."""
    return b"\r\n".join([fold(line) if len(line) > _FOLD_OCTETS else line
                          for line in text.encode("utf-8").split(b"\r\n")])


@functools.lru_cache(maxsize=4096)
def _text(value: str) -> str:
    """``escape_text(clean_text(value))`` for the short values that repeat (titles, room labels)."""
    return escape_text(clean_text(value))


@functools.lru_cache(maxsize=4096)
def _param_text(value: str) -> str:
    """A CN parameter's text: ``clean_text`` without newlines."""
    return clean_text(value).replace("\n", " ")


@functools.lru_cache(maxsize=64)
def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


def _event_text(meeting: MeetingCal, instance: Instance, *, recurrence_id: bool, with_rule: bool,
                status: str | None = None, extra_exdates: Iterable[datetime] = (), attendees: bool = True) -> str:
    """The unfolded content lines (each ending in CRLF) of ``_event(...)`` for the same arguments."""
    zone = _zone(meeting.timezone)
    start_params, exdate_params, suffix = _zone_form(meeting.timezone)
    updated = _utc_value(meeting.updated_at)
    lines = [
        "BEGIN:VEVENT",
        "SUMMARY:" + _text(meeting.title),
        f"DTSTART{start_params}:{_local_value(instance.start, zone)}{suffix}",
        f"DTEND{start_params}:{_local_value(instance.end, zone)}{suffix}",
        "DTSTAMP:" + updated,
        "UID:" + escape_text(meeting.uid),
    ]
    if recurrence_id:
        lines.append(f"RECURRENCE-ID{start_params}:{_local_value(instance.recurrence_id, zone)}{suffix}")
    lines.append(f"SEQUENCE:{int(meeting.sequence)}")
    if with_rule and meeting.rrule:
        lines.append("RRULE:" + _rrule_value(meeting.rrule))
        if meeting.rdates:
            lines.append(f"RDATE{exdate_params}:" + ",".join(_local_value(d, zone) + suffix
                                                             for d in sorted(meeting.rdates)))
        excluded = sorted({*meeting.exdates, *extra_exdates})
        if excluded:
            lines.append(f"EXDATE{exdate_params}:" + ",".join(_local_value(d, zone) + suffix for d in excluded))
    if attendees:
        chair_id = instance.chair.room_id
        for place in instance.rooms:
            lines.append(_address_line("attendee", place.address(), _param_text(place.label), (
                ("CUTYPE", "ROOM"), ("ROLE", "CHAIR" if place.room_id == chair_id else "REQ-PARTICIPANT"),
                ("PARTSTAT", "NEEDS-ACTION"), ("RSVP", "FALSE"))))
    lines += [
        "CREATED:" + _utc_value(meeting.created_at),
        "DESCRIPTION:" + escape_text(clean_text(join_text(meeting, instance))),
        "LAST-MODIFIED:" + updated,
        "LOCATION:" + _text(instance.chair.label),
        _address_line("organizer", f"mailto:{meeting.organizer_email}", _param_text(meeting.organizer_name)),
        "STATUS:" + escape_text(status or _status(meeting, instance)),
        "TRANSP:OPAQUE",
    ]
    if meeting.url:
        if "\r" in meeting.url or "\n" in meeting.url:  # as icalendar's vUri refuses it
            raise ValueError(f"A URI value may not contain CR or LF characters: {meeting.url!r}")
        lines.append("URL:" + meeting.url)  # a URI: not escaped (RFC 5545 §3.3.13)
    lines.append("END:VEVENT\r\n")
    return "\r\n".join(lines)


def _event_bytes(meeting: MeetingCal, instance: Instance, *, recurrence_id: bool, with_rule: bool,
                 status: str | None = None, extra_exdates: Iterable[datetime] = (), attendees: bool = True) -> bytes:
    """``_event(...).to_ical()`` for the same arguments, written directly (see the module docstring).

    Properties come in ``icalendar``'s order for a VEVENT: its canonical ones (SUMMARY, DTSTART,
    DTEND, DTSTAMP, UID, RECURRENCE-ID, SEQUENCE, RRULE, RDATE, EXDATE), then the rest alphabetically.
    """
    return fold_lines(_event_text(meeting, instance, recurrence_id=recurrence_id, with_rule=with_rule,
                                  status=status, extra_exdates=extra_exdates, attendees=attendees))


class _LRU:
    """A bounded, thread-safe least-recently-used map (request handlers run in a thread pool)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: A meeting's feed VEVENT blocks by its whole calendar view (a ``MeetingCal`` is a frozen value:
#: equal values give equal bytes, so any change in it — times, rooms' names, SEQUENCE, the
#: base URL — is a different key). ~1–3 kB of bytes plus the key's objects per entry.
FEED_BLOCKS = _LRU(8_192)


@functools.lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> Timezone:
    """The VTIMEZONE of ``tzid`` over ``TZ_FIRST_DATE``–``TZ_LAST_DATE`` (~20 ms to build, so built
    once per zone; never mutated after)."""
    return Timezone.from_tzid(tzid, first_date=TZ_FIRST_DATE, last_date=TZ_LAST_DATE)


_vtimezone("Asia/Ho_Chi_Minh")  # SPEC's zone, built at import rather than in the first request


def warm_up(timezone: str) -> None:
    """Builds, once per process at startup, what the first feed of meetings in ``timezone`` (an
    IANA name) would otherwise build: its VTIMEZONE and its date-time forms.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: unknown zone.
    """
    _vtimezone(timezone)
    _zone_form(timezone)


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


def _feed_blocks(meeting: MeetingCal) -> bytes:
    """A meeting's VEVENTs in a feed: the master and every exception as an override, cancelled ones
    with STATUS:CANCELLED (what ``_series_events(meeting, cancelled_as_exdate=False)`` gives)."""
    blocks: bytes | None = FEED_BLOCKS.get(meeting)
    if blocks is None:
        parts = [_event_text(meeting, meeting.master, recurrence_id=False, with_rule=True)]
        if meeting.rrule:
            parts += [_event_text(meeting, instance, recurrence_id=True, with_rule=False)
                      for instance in sorted(meeting.exceptions, key=lambda x: x.recurrence_id)]
        blocks = fold_lines("".join(parts))
        FEED_BLOCKS.put(meeting, blocks)
    return blocks


@functools.lru_cache(maxsize=64)
def _feed_frame(name: str, refresh: timedelta, zones: tuple[str, ...]) -> tuple[bytes, bytes]:
    """The feed's calendar without events, split where the events go (before ``END:VCALENDAR``)."""
    body = _calendar(None, [], zones, name=name, refresh=refresh)
    end = b"END:VCALENDAR\r\n"
    if not body.endswith(end):
        raise ValueError("unexpected calendar framing")
    return body[:-len(end)], end


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


def feed(name: str, meetings: Iterable[MeetingCal], *, refresh: timedelta, all_day: Iterable[AllDay] = ()) -> bytes:
    """A subscription feed: no METHOD (RFC 5545 §3.7.2 — a plain published calendar, never REQUEST).

    NAME and X-WR-CALNAME carry ``name`` (Vietnamese); REFRESH-INTERVAL and X-PUBLISHED-TTL carry
    ``refresh``. Meetings appear in the order given; cancelled meetings and cancelled occurrences
    stay as STATUS:CANCELLED so subscribed clients remove them. The same bytes as
    ``feed_reference`` (``icalendar`` components throughout), written by ``_event_bytes``; each
    meeting's blocks are kept in ``FEED_BLOCKS``. ``all_day`` events (day blocks) come last.
    """
    meetings = list(meetings)
    head, end = _feed_frame(name, refresh, tuple(sorted({m.timezone for m in meetings})))
    return b"".join([head, *(_feed_blocks(m) for m in meetings), *(all_day_bytes(a) for a in all_day), end])


def feed_reference(name: str, meetings: Iterable[MeetingCal], *, refresh: timedelta) -> bytes:
    """``feed`` built from ``icalendar`` components only: the reference the tests compare it with."""
    meetings = list(meetings)
    events: list[Event] = []
    for meeting in meetings:
        events += _series_events(meeting, cancelled_as_exdate=False)
    return _calendar(None, events, [m.timezone for m in meetings], name=name, refresh=refresh)
