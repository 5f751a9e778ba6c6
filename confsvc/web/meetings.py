"""Dashboard (tổng quan), calendar week/day views (lịch họp), the meeting page with its join
instructions (hướng dẫn kết nối) and readiness (sẵn sàng) marking, and cancelling an occurrence or the
series with a confirmation step.

The dashboard is live: ``static/live.js`` listens on the live channel (``/ws/secretariat``, an
operator ``/ws/units/{id}``, authenticated by the web session cookie) and, on each event, fetches
``GET /dashboard/live`` (the same panels, rendered here) and swaps them in without a reload.

Reads go through ``scheduling.reading`` and ``endpoints.service`` with the caller's principal, so an
operator sees only meetings touching their units.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from confsvc.calendar.ical import JoinDetails
from confsvc.clock import utc_now
from confsvc.collation import sort_key
from confsvc.db import MAX_ID, PathId, QueryId, SessionDep
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import EndpointStatus
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import cancellation, reading, views, visibility
from confsvc.scheduling import participants as participation
from confsvc.scheduling import readiness as readiness_service
from confsvc.scheduling.booking import Names
from confsvc.scheduling.models import Meeting, MeetingStatus, OccurrenceStatus, ReadinessState, ResourceKind
from confsvc.users.principal import Principal
from confsvc.web import i18n
from confsvc.web import readiness as readiness_view
from confsvc.web.common import Viewer, booker, check_csrf, error_page, login_redirect, render, settings_of, viewer
from confsvc.web.i18n import N_, _

router = APIRouter(include_in_schema=False)

#: Enough for a province's week; the calendar says so when a window holds more.
MAX_MEETINGS = 2000
UPCOMING_DAYS = 7

STATUS_LABELS = {
    EndpointStatus.online: N_("Online"), EndpointStatus.offline: N_("Offline"),
    EndpointStatus.in_call: N_("In a call"), EndpointStatus.fault: N_("Fault"),
    EndpointStatus.unknown: N_("Unknown"),
}
MEETING_STATUS_LABELS = {"tentative": N_("Tentative"), "confirmed": N_("Confirmed"), "cancelled": N_("Cancelled")}


def filter_id(value: str) -> int | None:
    """A filter form's row id: ``None`` for "all" (empty) or anything that is not a row id."""
    return int(value) if value.isdigit() and 1 <= int(value) <= MAX_ID else None


def local_today(zone: ZoneInfo) -> date:
    return utc_now().astimezone(zone).date()


def shown_days(day: str | None, view: str, zone: ZoneInfo) -> tuple[date, date]:
    """The asked local date (``YYYY-MM-DD``; missing or malformed: today) and the first day shown:
    the Monday of its week for ``view == "week"``, else the date itself."""
    try:
        anchor = date.fromisoformat(day) if day else local_today(zone)
    except ValueError:
        anchor = local_today(zone)
    return anchor, anchor - timedelta(days=anchor.weekday()) if view == "week" else anchor


def day_bounds(first: date, days: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC bounds ``[first 00:00, first + days 00:00)`` of local days."""
    start = datetime.combine(first, time(0), tzinfo=zone)
    end = datetime.combine(first + timedelta(days=days), time(0), tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def occurrence_rows(session: Session, principal: Principal, zone: ZoneInfo, start: datetime, end: datetime, *,
                    unit_id: int | None = None, room_id: int | None = None) -> list[dict[str, Any]]:
    """Occurrences overlapping ``[start, end)`` (UTC) as plain dicts, in start order."""
    meetings, _total = reading.list_meetings(session, principal, from_=start, to=end, unit_id=unit_id,
                                                room_id=room_id, limit=MAX_MEETINGS)
    names = Names(session)
    rows = []
    for meeting in meetings:
        title = meeting.title if views.sees_meeting_details(session, principal, meeting) \
            else visibility.CONFIDENTIAL_TITLE
        for occ in reading.list_occurrences(session, meeting):
            if not (occ["start"] < end and occ["end"] > start):
                continue
            rows.append(_occurrence_row(meeting, occ, names, zone, title))
    rows.sort(key=lambda r: (r["start"], r["meeting_id"]))
    return rows


def _occurrence_row(meeting: Meeting, occ: dict[str, Any], names: Names, zone: ZoneInfo,
                    title: str | None = None) -> dict[str, Any]:
    cancelled = meeting.status is MeetingStatus.cancelled or occ["status"] is OccurrenceStatus.cancelled
    status = "cancelled" if cancelled else meeting.status.value
    start_local = i18n.local(occ["start"], zone)
    return {
        "meeting_id": meeting.id, "occurrence_id": occ["id"], "title": meeting.title if title is None else title,
        "start": occ["start"], "end": occ["end"], "day": start_local.date(),
        "time": f"{i18n.fmt_time(occ['start'], zone)}–{i18n.fmt_time(occ['end'], zone)}",
        "when": i18n.fmt_range(occ["start"], occ["end"], zone),
        "check_time": i18n.fmt_time(occ["start"] - timedelta(minutes=meeting.check_lead_minutes), zone),
        "chair_room": names.get(ResourceKind.room, occ["chair_room_id"]),
        "sites": len(occ["participant_endpoint_ids"]), "status": status,
        "status_label": _(MEETING_STATUS_LABELS[status]), "recurring": bool(meeting.rrule),
        "href": f"/meetings/{meeting.id}?occurrence={occ['id']}",
        "top_minutes": start_local.hour * 60 + start_local.minute,
    }


# ---------------------------------------------------------------- dashboard

def dashboard_context(session: Session, settings: Any, who: Viewer) -> dict[str, Any]:
    """The dashboard's panels: today's and the coming week's meetings, the readiness board of the
    next meeting still to end (``board``: :func:`web.readiness.board_view` plus its title, time and
    link; ``None`` without one), endpoint status counts, and the time of this rendering (local)."""
    zone = settings.zone
    now = utc_now()
    today = local_today(zone)
    start, end = day_bounds(today, UPCOMING_DAYS + 1, zone)
    rows = occurrence_rows(session, who.principal, zone, start, end)
    today_rows = [r for r in rows if r["day"] == today]
    upcoming = [r for r in rows if r["day"] != today and r["status"] != "cancelled"]
    nxt = next((r for r in rows if r["status"] != "cancelled" and r["end"] > now), None)
    board = None
    if nxt is not None:
        board = {**readiness_view.board_view(session, settings, nxt["meeting_id"], nxt["occurrence_id"],
                                             who.principal, now=now),
                 "title": nxt["title"], "when": nxt["when"], "href": nxt["href"],
                 "started": nxt["start"] <= now}
    return {
        "today": i18n.fmt_day(today), "today_rows": today_rows,
        "upcoming": [{**r, "day_label": i18n.fmt_day(r["day"])} for r in upcoming],
        "board": board, "updated_at": i18n.fmt_time(now, zone) + now.astimezone(zone).strftime(":%S"),
        **endpoint_status_board(session, who.principal),
    }


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep):
    """The dashboard page; its panels come from :func:`dashboard_context` and update live."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    return render(request, "dashboard.html", {**dashboard_context(session, settings_of(request), who),
                                              "channels": readiness_view.live_channels(session, who.principal)},
                  who=who)


@router.get("/dashboard/live", response_class=HTMLResponse)
def dashboard_live(request: Request, session: SessionDep):
    """The dashboard's panels alone (an HTML fragment, no layout), fetched by ``static/live.js`` when
    the live channel reports a change. 401 without a web session (the script then reloads the page,
    which leads to the login form)."""
    who = viewer(request, session)
    if who is None:
        return HTMLResponse("", status_code=401)
    return render(request, "dashboard_live.html", dashboard_context(session, settings_of(request), who), who=who)


def endpoint_status_board(session: Session, principal: Principal) -> dict[str, Any]:
    """Counts per status overall and per unit; units with offline or faulty endpoints first."""
    units, _total = inventory.list_units(session, principal, limit=10000)
    unit_names = {u.id: u.name for u in units}
    endpoints, _total = inventory.list_endpoints(session, principal, limit=100000)
    totals: Counter[str] = Counter()
    by_unit: dict[int, dict[str, Any]] = {}
    for endpoint, room in endpoints:
        key = endpoint.status.value
        totals[key] += 1
        unit = by_unit.setdefault(room.unit_id, {"name": unit_names.get(room.unit_id, "?"), "counts": Counter(),
                                                 "down": []})
        unit["counts"][key] += 1
        if endpoint.status in (EndpointStatus.offline, EndpointStatus.fault):
            unit["down"].append(f"{room.name} – {endpoint.vendor} {endpoint.model}")
    order = [s.value for s in (EndpointStatus.online, EndpointStatus.in_call, EndpointStatus.offline,
                               EndpointStatus.fault, EndpointStatus.unknown)]
    unit_rows = sorted(by_unit.values(), key=lambda u: (-len(u["down"]), sort_key(u["name"])))
    return {
        "status_columns": [{"key": k, "label": _(STATUS_LABELS[EndpointStatus(k)])} for k in order],
        "status_totals": [{"key": k, "label": _(STATUS_LABELS[EndpointStatus(k)]), "count": totals[k]}
                          for k in order],
        "endpoint_total": sum(totals.values()),
        "unit_rows": [{"name": u["name"], "counts": [u["counts"][k] for k in order], "down": u["down"],
                       "total": sum(u["counts"].values())} for u in unit_rows],
    }


# ---------------------------------------------------------------- calendar

@router.get("/calendar", response_class=HTMLResponse)
def calendar(request: Request, session: SessionDep, view: Annotated[str, Query(pattern="^(week|day)$")] = "week",
             day: Annotated[str | None, Query(max_length=10, alias="date")] = None,
             unit: Annotated[str, Query(alias="unit_id", max_length=20)] = "",
             room: Annotated[str, Query(alias="room_id", max_length=20)] = ""):
    """Week (Thứ Hai … Chủ nhật) or day view of occurrences, filtered by unit and room (an empty or
    non-id value, as the filter form's "all" option sends, means no filter)."""
    unit_id, room_id = filter_id(unit), filter_id(room)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    zone = settings_of(request).zone
    anchor, first = shown_days(day, view, zone)
    days = 7 if view == "week" else 1
    start, end = day_bounds(first, days, zone)
    rows = occurrence_rows(session, who.principal, zone, start, end, unit_id=unit_id, room_id=room_id)
    columns = []
    for i in range(days):
        d = first + timedelta(days=i)
        columns.append({"date": d.isoformat(), "weekday": i18n.weekday(d), "label": i18n.fmt_date(d),
                        "today": d == local_today(zone), "rows": [r for r in rows if r["day"] == d]})
    step = timedelta(days=days)
    units, _total = inventory.list_units(session, who.principal, limit=10000)
    rooms, _total = inventory.list_rooms(session, who.principal, unit_id=unit_id, limit=10000)
    filters = {"unit_id": unit_id or "", "room_id": room_id or ""}

    def link(**change: Any) -> str:
        from urllib.parse import urlencode
        params = {"view": view, "date": anchor.isoformat(), **filters, **change}
        return "/calendar?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    title = (f"{i18n.fmt_date(first)} – {i18n.fmt_date(first + timedelta(days=6))}" if view == "week"
             else i18n.fmt_day(first))
    return render(request, "calendar.html", {
        "view": view, "columns": columns, "title": title, "count": len(rows),
        "prev": link(date=(first - step).isoformat()), "next": link(date=(first + step).isoformat()),
        "today_link": link(date=local_today(zone).isoformat()),
        "week_link": link(view="week"), "day_link": link(view="day"), "date": anchor.isoformat(),
        "units": [{"id": u.id, "name": u.name} for u in units],
        "rooms": [{"id": r.id, "name": r.name} for r in rooms],
        "unit_id": unit_id, "room_id": room_id,
        "hours": list(range(6, 22)),
    }, who=who)


# ---------------------------------------------------------------- meeting page

def _meeting_context(session: Session, who: Viewer, meeting: Meeting, settings: Any,
                     occurrence_id: int | None) -> dict[str, Any]:
    zone = settings.zone
    names = Names(session)
    occurrences = reading.list_occurrences(session, meeting)
    details = views.sees_meeting_details(session, who.principal, meeting)
    title = meeting.title if details else visibility.CONFIDENTIAL_TITLE
    rows = [_occurrence_row(meeting, o, names, zone, title) for o in occurrences]
    now = utc_now()
    selected = next((r for r in rows if r["occurrence_id"] == occurrence_id), None)
    selected = selected or next((r for r in rows if r["status"] != "cancelled" and r["start"] >= now - timedelta(
        hours=12)), None) or (rows[0] if rows else None)
    occ = next((o for o in occurrences if selected and o["id"] == selected["occurrence_id"]), None)
    bridge = inventory.get_bridge(session, who.principal, meeting.bridge_id) if meeting.bridge_id else None
    number = occ["conference_number"] if occ else meeting.conference_number
    join = JoinDetails(conference_number=number, sip_domain=bridge.sip_domain if bridge else None,
                       h323_prefix=(bridge.h323_prefix or "") if bridge else "", pin=meeting.pin)
    visible, _total = inventory.list_endpoints(session, who.principal, limit=100000)
    by_id = {e.id: (e, r) for e, r in visible}
    endpoint_ids = occ["participant_endpoint_ids"] if occ else participation.meeting_endpoint_ids(session, meeting.id)
    participants, hidden = [], 0
    for endpoint_id in endpoint_ids:
        if endpoint_id not in by_id:
            hidden += 1
            continue
        endpoint, room = by_id[endpoint_id]
        participants.append({"room": room.name, "room_id": room.id, "unit": "",
                             "unit_id": room.unit_id, "endpoint": f"{endpoint.vendor} {endpoint.model}",
                             "dial_address": endpoint.dial_address, "status": endpoint.status.value,
                             "status_label": _(STATUS_LABELS[endpoint.status])})
    units, _total = inventory.list_units(session, who.principal, limit=10000)
    unit_names = {u.id: u.name for u in units}
    for p in participants:
        p["unit"] = unit_names.get(p["unit_id"], "")
    chair_room_id = occ["chair_room_id"] if occ else meeting.chair_room_id
    for p in participants:
        p["chair"] = p["room_id"] == chair_room_id
    participants.sort(key=lambda p: (not p["chair"], sort_key(p["unit"]), sort_key(p["room"])))
    status = "cancelled" if meeting.status is MeetingStatus.cancelled else meeting.status.value
    board = None
    if occ is not None:
        board = readiness_view.board_view(session, settings, meeting.id, occ["id"], who.principal, now=now)
        states = {s["room_id"]: s for s in board["sites"]}
        for p in participants:
            site = states.get(p["room_id"])
            p["readiness"] = site["label"] if site else ""
            p["readiness_state"] = site["state"] if site else ""
            p["readiness_note"] = site["note"] if site else ""
    markable = ([s for s in board["sites"] if s["markable"]]
                if board and occ["status"] is OccurrenceStatus.scheduled and status != "cancelled"
                and occ["end"] > now else [])
    if not details:  # confidential (mật): "Cuộc họp", its times and rooms only
        join = JoinDetails(conference_number=None, sip_domain=None)
    return {
        "meeting": {"id": meeting.id, "title": title, "description": meeting.description if details else "",
                    "status": status, "status_label": _(MEETING_STATUS_LABELS[status]),
                    "recurring": bool(meeting.rrule), "rrule": meeting.rrule or "",
                    "chair_room": names.get(ResourceKind.room, meeting.chair_room_id),
                    "bridge": bridge.name if bridge else "", "conference_number": number if details else None,
                    "pin": meeting.pin if details else "", "sip_uri": join.sip_uri or "", "h323_number": join.h323_number or "",
                    "check_lead_minutes": meeting.check_lead_minutes},
        "selected": selected,
        "check_at": (i18n.fmt_datetime(occ["start"] - timedelta(minutes=meeting.check_lead_minutes), zone)
                     if occ else ""),
        "occurrences": rows, "participants": participants, "hidden_participants": hidden,
        "can_cancel": who.principal.can_cancel(meeting),
        "can_edit": who.principal.can_edit(meeting),
        "invite_href": f"/api/v1/meetings/{meeting.id}/invite.ics",
        "board": board, "markable": markable, "state_options": readiness_view.state_options(),
        "readiness_error": None, "readiness_form": {},
        "channels": readiness_view.live_channels(session, who.principal),
    }


@router.get("/meetings/{meeting_id}", response_class=HTMLResponse)
def meeting_page(request: Request, session: SessionDep, meeting_id: PathId, occurrence: QueryId = None):
    """Join instructions, participants with status, occurrences, invite download, cancel links."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    return render(request, "meeting.html", _meeting_context(session, who, meeting, settings_of(request),
                                                            occurrence), who=who)


@router.get("/meetings/{meeting_id}/participants", response_class=HTMLResponse)
def meeting_participants(request: Request, session: SessionDep, meeting_id: PathId, occurrence: QueryId = None):
    """The meeting page's participants panel alone (HTML fragment: endpoint status and readiness per
    site), fetched by ``static/live.js`` when the live channel reports a change. 401 without a web
    session; 403/404 like the page."""
    who = viewer(request, session)
    if who is None:
        return HTMLResponse("", status_code=401)
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return HTMLResponse("", status_code=exc.status_code)
    return render(request, "meeting_participants.html",
                  _meeting_context(session, who, meeting, settings_of(request), occurrence), who=who)


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/readiness", response_class=HTMLResponse)
def mark_readiness(request: Request, session: SessionDep, meeting_id: PathId, occurrence_id: PathId,
                   csrf: Annotated[str, Form()] = "", room_id: Annotated[int, Form(ge=1, le=2**63 - 1)] = 0,
                   state: Annotated[str, Form(max_length=20)] = "",
                   note: Annotated[str, Form(max_length=2000)] = ""):
    """Mark a site "Đã sẵn sàng" or "Gặp sự cố" (with a note) through
    ``scheduling.readiness.set_readiness`` (which records ``readiness.changed`` for the live channel);
    back to the meeting page (303). A refusal (no note for a problem, another unit's room, an ended
    occurrence) re-renders the page with the reason in words and the typed note kept (422 / 403)."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    settings = settings_of(request)
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
        occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    try:
        if state not in {s.value for s in readiness_view.MARKABLE}:
            raise Invalid("choose ready or problem", code="invalid_state")
        readiness_service.set_readiness(session, settings, who.principal, meeting, occurrence, room_id,
                                        ReadinessState(state), note)
    except ConfsvcError as exc:
        session.rollback()
        context = _meeting_context(session, who, meeting, settings, occurrence_id)
        message = readiness_view.refusal_text(exc.code, exc.detail)
        return render(request, "meeting.html", {**context, "readiness_error": message, "readiness_form": {
            "room_id": room_id, "state": state, "note": note}}, who=who,
            status_code=exc.status_code if exc.status_code in (403, 404) else 422)
    return RedirectResponse(f"/meetings/{meeting.id}?occurrence={occurrence.id}#readiness", status_code=303)


@router.get("/meetings/{meeting_id}/cancel", response_class=HTMLResponse)
def cancel_confirm(request: Request, session: SessionDep, meeting_id: PathId, occurrence: QueryId = None):
    """The confirmation step: what will be cancelled, and a POST form to do it."""
    who = booker(request, session)
    if not isinstance(who, Viewer):
        return who
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
        occ = reading.get_occurrence(session, meeting, occurrence) if occurrence else None
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    zone = settings_of(request).zone
    return render(request, "cancel.html", {
        "meeting": {"id": meeting.id, "title": meeting.title, "recurring": bool(meeting.rrule)},
        "occurrence": {"id": occ.id, "when": i18n.fmt_range(occ.start, occ.end, zone)} if occ else None,
    }, who=who)


@router.post("/meetings/{meeting_id}/cancel", response_class=HTMLResponse)
def cancel(request: Request, session: SessionDep, meeting_id: PathId, csrf: Annotated[str, Form()] = "",
           occurrence: Annotated[int | None, Form(ge=1)] = None):
    """Cancel one occurrence (``occurrence`` given) or the whole series, through the scheduling service."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
        if occurrence:
            cancellation.cancel_occurrence(session, who.principal, meeting,
                                         reading.get_occurrence(session, meeting, occurrence))
        else:
            cancellation.cancel_meeting(session, who.principal, meeting)
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)
    target = f"/meetings/{meeting.id}" + (f"?occurrence={occurrence}" if occurrence else "")
    return RedirectResponse(target, status_code=303)
