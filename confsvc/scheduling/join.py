"""Join instructions (hướng dẫn kết nối): how each endpoint of a room joins one occurrence. Pure.

Values in, JSON-ready dicts out; no session, no clock. The one place dial strings are made
(``ical.JoinDetails`` is this module's :class:`JoinDetails`):

- SIP: ``sip:<conference_number>@<bridge.sip_domain>`` (RFC 3261 §19.1.1 SIP URI);
- H.323: ``<bridge.h323_prefix><conference_number>``, an E.164-style digit string dialled through
  the gatekeeper (ITU-T H.225.0 dialedDigits).

Dial mode (``Settings.join_dial_mode``): ``dial_in`` — the endpoint dials the dial string and
enters the PIN; ``dial_out`` — the MCU calls the endpoint at its own dial address and the PIN is
not needed by the room. The technical check (kiểm tra kỹ thuật) is at ``start − check_lead_minutes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from confsvc.clock import iso_utc

DIAL_MODES = ("dial_in", "dial_out")
LOCAL_FORMAT = "%d/%m/%Y %H:%M"


def time_line(start_local: str, end_local: str) -> str:
    """The meeting's time, local (``LOCAL_FORMAT``), in the join instructions' Vietnamese (live text and invites)."""
    return f"Thời gian họp: {start_local} – {end_local}"


def check_line(check_at_local: str, check_lead_minutes: int) -> str:
    """The technical check's time (``start − check_lead_minutes``, local), in the join instructions' Vietnamese."""
    return f"Kiểm tra kỹ thuật: {check_at_local} ({check_lead_minutes} phút trước giờ họp)"


def conference_line(conference_number: int) -> str:
    return f"Số hội nghị: {conference_number}"


def pin_line(pin: str) -> str:
    return f"Mã PIN: {pin}"


def upstream_line(upstream_dial: str) -> str:
    """A relay's line (issue 14): the meeting is chaired outside confsvc, the MCU links to this address."""
    return f"Tiếp sóng hội nghị từ điểm cầu chủ trì: {upstream_dial}"


def sip_uri(conference_number: int | None, sip_domain: str | None) -> str | None:
    """``sip:<conference_number>@<sip_domain>``, or None without a number or domain."""
    if conference_number is None or not sip_domain:
        return None
    return f"sip:{conference_number}@{sip_domain}"


def h323_number(conference_number: int | None, h323_prefix: str = "") -> str | None:
    """``<h323_prefix><conference_number>`` (digits only when both are), or None without a number."""
    if conference_number is None:
        return None
    return f"{h323_prefix}{conference_number}"


@dataclass(frozen=True)
class JoinDetails:
    """How endpoints reach a meeting: the bridge's dial domain / prefix, the conference number and PIN."""

    conference_number: int | None
    sip_domain: str | None
    h323_prefix: str = ""
    pin: str = ""

    @property
    def sip_uri(self) -> str | None:
        return sip_uri(self.conference_number, self.sip_domain)

    @property
    def h323_number(self) -> str | None:
        return h323_number(self.conference_number, self.h323_prefix)

    def dial_string(self, protocol: str) -> str | None:
        """The string an endpoint speaking ``protocol`` (``sip`` or ``h323``) dials.

        Raises:
            ValueError: unknown protocol.
        """
        if protocol == "sip":
            return self.sip_uri
        if protocol == "h323":
            return self.h323_number
        raise ValueError(f"unknown protocol {protocol!r}")


@dataclass(frozen=True)
class EndpointRef:
    """A participating endpoint of the room: ``protocol`` is ``sip`` or ``h323``."""

    endpoint_id: int
    name: str
    protocol: str
    dial_address: str


def instructions(*, meeting_id: int, occurrence_id: int, title: str, start: datetime, end: datetime,
                 check_lead_minutes: int, timezone: str, room_id: int, room_name: str, chair_room_id: int,
                 details: JoinDetails | None, endpoints: Iterable[EndpointRef],
                 dial_mode: str = "dial_in", upstream_dial: str | None = None,
                 bridge_name: str | None = None) -> dict[str, Any]:
    """The join instructions of one room for one occurrence.

    ``start``/``end`` are aware (any zone); the answer carries them in UTC (``...Z``) and in
    ``timezone`` (ISO-8601 with offset, and ``dd/mm/yyyy HH:MM`` inside ``text``).

    Shape::

        {"meeting_id", "occurrence_id", "room_id", "room_name", "is_chair", "title",
         "start", "end", "check_at" (UTC), "start_local", "end_local", "check_at_local", "timezone",
         "check_lead_minutes", "conference_number", "pin", "sip_uri", "h323_number", "dial_mode",
         "bridge_name", "upstream_dial",
         "endpoints": [{"endpoint_id", "name", "protocol", "dial_string", "call_address"}],
         "text": Vietnamese lines joined by "\\n"}

    ``details`` are those of the bridge the room joins (``bridge_name``; in a cascaded meeting each
    province's own, issue 14). ``upstream_dial``: a relay's external chair (one more line).

    ``dial_string`` is what the endpoint dials (``dial_in``; None in ``dial_out``); ``call_address``
    is the endpoint address the MCU calls (``dial_out``; None in ``dial_in``).

    Raises:
        ValueError: unknown ``dial_mode`` or endpoint protocol.
    """
    if dial_mode not in DIAL_MODES:
        raise ValueError(f"unknown dial mode {dial_mode!r}")
    when = _times(start, end, check_lead_minutes, timezone)
    details = details or JoinDetails(conference_number=None, sip_domain=None)
    items = []
    for ep in sorted(endpoints, key=lambda e: e.endpoint_id):
        dial = details.dial_string(ep.protocol)
        items.append({"endpoint_id": ep.endpoint_id, "name": ep.name, "protocol": ep.protocol,
                      "dial_string": dial if dial_mode == "dial_in" else None,
                      "call_address": ep.dial_address if dial_mode == "dial_out" else None})
    is_chair = room_id == chair_room_id
    lines = [f"Hướng dẫn kết nối – {title}",
             f"Điểm cầu: {room_name}" + (" (điểm cầu chủ trì)" if is_chair else ""),
             *when.lines]
    if details.conference_number is not None:
        lines.append(conference_line(details.conference_number))
    if dial_mode == "dial_in":
        for item in items:
            if item["dial_string"]:
                kind = "SIP" if item["protocol"] == "sip" else "H.323"
                lines.append(f"{item['name']}: quay số {item['dial_string']} ({kind})")
        if details.pin:
            lines.append(pin_line(details.pin))
    else:
        lines.append("MCU sẽ gọi tới thiết bị của điểm cầu; không cần quay số.")
    if upstream_dial:
        lines.append(upstream_line(upstream_dial))
    return {
        "meeting_id": meeting_id, "occurrence_id": occurrence_id, "room_id": room_id, "room_name": room_name,
        "is_chair": is_chair, "title": title, **when.fields, "timezone": timezone,
        "check_lead_minutes": check_lead_minutes, "conference_number": details.conference_number,
        "pin": details.pin, "sip_uri": details.sip_uri, "h323_number": details.h323_number,
        "dial_mode": dial_mode, "bridge_name": bridge_name, "upstream_dial": upstream_dial, "endpoints": items,
        "text": "\n".join(lines),
    }


@dataclass(frozen=True)
class _Times:
    """What the join instructions of every room of one occurrence say about its times."""

    fields: dict[str, str]  # start, end, check_at (UTC …Z), and their *_local (ISO-8601 with offset)
    lines: tuple[str, str]  # time_line, check_line


@lru_cache(maxsize=256)
def _times(start: datetime, end: datetime, check_lead_minutes: int, timezone: str) -> _Times:
    """Computed once per occurrence, not once per room (a national meeting has 3,355 rooms: issue 14).
    The caller copies ``fields`` into a fresh dict."""
    zone = ZoneInfo(timezone)
    check_at = start - timedelta(minutes=check_lead_minutes)
    local = {name: value.astimezone(zone) for name, value in (("start", start), ("end", end), ("check_at", check_at))}
    fields = {"start": iso_utc(start), "end": iso_utc(end), "check_at": iso_utc(check_at),
              **{f"{name}_local": value.isoformat() for name, value in local.items()}}
    return _Times(fields, (time_line(local["start"].strftime(LOCAL_FORMAT), local["end"].strftime(LOCAL_FORMAT)),
                           check_line(local["check_at"].strftime(LOCAL_FORMAT), check_lead_minutes)))
