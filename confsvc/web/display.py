"""Room display page (màn hình điểm cầu): ``/display/rooms/{room_id}?token=<display token>``.

No login: the display token in the link (``POST /api/v1/rooms/{id}/display-tokens``) is the only
credential, and it opens this room's page and live channel (``/ws/rooms/{id}``) and nothing else.
The page is meant for a TV in the room: clock (local time of ``Settings.timezone``), the current and
next meeting with countdowns to the technical check and the start, join instructions in large type,
this room's readiness and its endpoints' status. ``static/display.js`` renders the channel's
``snapshot`` and applies live messages; it reconnects by itself with backoff and resumes with
``?since=<last id>`` (SPEC "Live channel"). The script never puts the token in a URL it opens: the
channel gets it in the first WebSocket message (``/ws/rooms/{id}?auth=message``), the chair-room
names in ``Authorization: Bearer``.

Every failure to open a display (unknown, revoked or another room's token; unknown room) is the same
404 page, which names nothing. Answers are ``Cache-Control: no-store`` and ``Referrer-Policy:
no-referrer``: the link is a secret.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from confsvc.clock import iso_utc, utc_now
from confsvc.db import MAX_ID, SessionDep, row_id
from confsvc.errors import NotFound, Unauthorized
from confsvc.live import display
from confsvc.users.deps import bearer_token
from confsvc.web import i18n
from confsvc.web.common import language, settings_of, templates
from confsvc.web.i18n import _

router = APIRouter(include_in_schema=False)
SECRET_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
Token = Annotated[str, Query(max_length=200)]


def _texts() -> dict[str, str]:
    """The strings ``display.js`` shows, in the request's language (keys are the script's)."""
    return {
        "current": _("Current meeting"), "upcoming": _("Upcoming meeting"), "next": _("Next meeting"),
        "in_progress": _("In progress"), "checking": _("Technical check in progress"),
        "none": _("No meeting scheduled"), "none_hint": _("The room's schedule appears here as soon as it is booked."),
        "check": _("Technical check"), "check_in": _("Technical check in"), "start_in": _("Starts in"),
        "end_in": _("Ends in"), "started": _("Started"), "days": _("days"),
        "chair": _("Chair room"), "this_chair": _("This room chairs the meeting"),
        "join": _("Join instructions"), "dial": _("Dial string"), "conference_number": _("Conference number"),
        "pin": _("PIN"), "no_pin": _("No PIN"), "dial_out": _("The MCU calls this room's endpoint; no dialling needed."),
        "no_join": _("Join details will be announced."),
        "readiness": _("Readiness"), "ready": _("Ready"), "problem": _("Problem"), "not_checked": _("Not checked"),
        "connected": _("Connected"),
        "endpoints": _("Endpoints"), "no_endpoints": _("No endpoint in this room"),
        "online": _("Online"), "offline": _("Offline"), "in_call": _("In a call"), "fault": _("Fault"),
        "unknown": _("Unknown"),
        "live": _("Live"), "connecting": _("Connecting…"), "reconnecting": _("Connection lost, reconnecting…"),
        "invalid": _("This display link is no longer valid."),
        "reminder_check": _("Time for the technical check"), "reminder_soon": _("The meeting starts in 5 minutes"),
        "cancelled": _("A meeting of this room was cancelled"),
        "tentative": _("Awaiting a new time"),
        "displaced": _("A meeting of this room gave way to a meeting of higher priority"),
    }


def _not_found(request: Request) -> HTMLResponse:
    i18n.activate(language(request))
    return templates.TemplateResponse(request, "display_error.html", {"lang": i18n.current_language()},
                                      status_code=404, headers=SECRET_HEADERS)


@router.get("/display/rooms/{room_id}", response_class=HTMLResponse)
def display_page(request: Request, room_id: int, session: SessionDep, token: Token = ""):
    """The room's display page; the same 404 page for any token or room that does not open it."""
    if not 1 <= room_id <= MAX_ID:
        return _not_found(request)
    try:
        room = display.open_display(session, token, room_id)
    except NotFound:
        return _not_found(request)
    i18n.activate(language(request))
    settings = settings_of(request)
    zone = settings.zone
    now = utc_now()
    monday = date(2024, 1, 1)  # a Monday: weekday names Thứ Hai … Chủ nhật in order
    config = {"room_id": room_id, "token": token, "timezone": settings.timezone, "now": iso_utc(now),
              "ping_seconds": settings.ws_ping_seconds,
              "weekdays": [i18n.weekday(monday + timedelta(days=i)) for i in range(7)], "text": _texts()}
    return templates.TemplateResponse(request, "display.html", {
        "lang": i18n.current_language(), "room": room, "config": config,
        "clock": i18n.fmt_time(now, zone), "today": i18n.fmt_day(i18n.local(now, zone).date()),
    }, headers=SECRET_HEADERS)


def _header_token(request: Request) -> str:
    """The ``Authorization: Bearer`` token, or ``""`` (a malformed header opens nothing: the same 404)."""
    try:
        return bearer_token(request.headers.get("authorization")) or ""
    except Unauthorized:
        return ""


@router.get("/display/rooms/{room_id}/chair-rooms")
def display_chair_rooms(request: Request, room_id: int, session: SessionDep, token: Token = "",
                        ids: Annotated[str, Query(max_length=600)] = ""):
    """``{"<room id>": name}`` for the chair rooms (``ids``, comma-separated) of this room's meetings.

    The display token comes as ``Authorization: Bearer`` (what ``display.js`` sends) or, deprecated,
    ``?token=``. 404 ``display_not_found`` for a token that does not open this room's display; ids
    that are not numbers, or rooms that chair nothing this room takes part in, are left out.
    """
    if not 1 <= room_id <= MAX_ID:
        raise NotFound("no such room display", code="display_not_found")
    display.open_display(session, token or _header_token(request), room_id)
    wanted = {room for part in ids.split(",") if (room := row_id(part)) is not None}
    names = display.chair_room_names(session, room_id, wanted)
    return JSONResponse({str(k): v for k, v in sorted(names.items())}, headers=SECRET_HEADERS)
