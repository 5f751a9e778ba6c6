"""The calendar feeds' own iCalendar serialiser (RFC 5545): ``feed`` writes a subscription feed's bytes.

Why it exists (measured, ``bench/ical_serialiser.py``): building ``icalendar`` components costs about
2 ms per VEVENT; a 1,000-VEVENT unit feed took 2.4 s with ``ical.feed_reference`` and 0.21 s with
this serialiser (11.7×, issue 11), and a feed is rendered again whenever its ETag changes (any
booking in the deployment). It writes exactly the bytes ``ical.feed_reference`` gives for the same
values, ``_event_bytes`` those of ``ical._event(...).to_ical()``: ``tests/calendar/test_ical_fast.py`` compares
them byte for byte (ORGANIZER/ATTENDEE lines with ``icalendar``'s parameter quoting and RFC 6868
escapes included, on fixed and random text). What it does not write itself comes from ``icalendar``
once per distinct value: the TZID form of a zone, RRULE values, VTIMEZONE, the calendar's frame and
all-day events.

Its inputs are the ``ical`` value types (``MeetingCal``, ``Instance``, ``Place``, ``AllDay``), this
module's and ``ical``'s code and ``icalendar``'s version: ``calendar.feeds.CODE_VERSION`` hashes the
modules (``RENDERING_MODULES``) and the version into every feed's ETag. Pure: no session, no clock.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Event, vRecur

from confsvc.calendar.ical import (
    _D2,
    AllDay,
    Instance,
    MeetingCal,
    _calendar,
    _status,
    _vtimezone,
    _year,
    all_day_bytes,
    clean_text,
    join_text,
)

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
    RFC 6868). ``tests/calendar/test_ical_fast.py`` compares it with ``icalendar``'s own line.

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
    """The unfolded content lines (each ending in CRLF) of ``ical._event(...)`` for the same arguments."""
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
    """``ical._event(...).to_ical()`` for the same arguments, written directly (see the module docstring).

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


def warm_up(timezone: str) -> None:
    """Builds, once per process at startup, what the first feed of meetings in ``timezone`` (an
    IANA name) would otherwise build: its VTIMEZONE and its date-time forms.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: unknown zone.
    """
    _vtimezone(timezone)
    _zone_form(timezone)


def _feed_blocks(meeting: MeetingCal) -> bytes:
    """A meeting's VEVENTs in a feed: the master and every exception as an override, cancelled ones
    with STATUS:CANCELLED (what ``ical._series_events(meeting, cancelled_as_exdate=False)`` gives)."""
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


def feed(name: str, meetings: Iterable[MeetingCal], *, refresh: timedelta, all_day: Iterable[AllDay] = ()) -> bytes:
    """A subscription feed: no METHOD (RFC 5545 §3.7.2 — a plain published calendar, never REQUEST).

    NAME and X-WR-CALNAME carry ``name`` (Vietnamese); REFRESH-INTERVAL and X-PUBLISHED-TTL carry
    ``refresh``. Meetings appear in the order given; cancelled meetings and cancelled occurrences
    stay as STATUS:CANCELLED so subscribed clients remove them. The same bytes as
    ``ical.feed_reference`` (``icalendar`` components throughout), written by ``_event_bytes``; each
    meeting's blocks are kept in ``FEED_BLOCKS``. ``all_day`` events (day blocks) come last.
    """
    meetings = list(meetings)
    head, end = _feed_frame(name, refresh, tuple(sorted({m.timezone for m in meetings})))
    return b"".join([head, *(_feed_blocks(m) for m in meetings), *(all_day_bytes(a) for a in all_day), end])
