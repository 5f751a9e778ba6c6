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
from confsvc.db import PathId, QueryId, SessionDep, row_id
from confsvc.endpoints import service as inventory
from confsvc.endpoints import unit_history
from confsvc.endpoints.models import EndpointStatus, Unit
from confsvc.errors import ConfsvcError, Invalid, NotFound
from confsvc.scheduling import cancellation, cascade, province_sites, reading, views, visibility
from confsvc.scheduling import participants as participation
from confsvc.scheduling import readiness as readiness_service
from confsvc.scheduling.booking import Names
from confsvc.scheduling.models import Meeting, MeetingStatus, OccurrenceStatus, ReadinessState, ResourceKind
from confsvc.users.principal import Principal
from confsvc.web import homes, i18n
from confsvc.web import province_sites as province_sites_web
from confsvc.web import provinces as province_view
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
#: The priorities (``MeetingPriority`` values) in words; the booking form offers them, highest last.
PRIORITY_LABELS = {0: N_("Routine"), 1: N_("Provincial"), 2: N_("Government/Party session")}


def filter_id(value: str) -> int | None:
    """A filter form's row id: ``None`` for "all" (empty) or anything that is not a row id."""
    return row_id(value)


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
        "check_start": occ["start"] - timedelta(minutes=meeting.check_lead_minutes),
        "chair_room": names.get(ResourceKind.room, occ["chair_room_id"]),
        "sites": len(occ["participant_endpoint_ids"]), "status": status,
        "status_label": _(MEETING_STATUS_LABELS[status]), "recurring": bool(meeting.rrule),
        "href": f"/meetings/{meeting.id}?occurrence={occ['id']}",
        "top_minutes": start_local.hour * 60 + start_local.minute,
        # Displaced by a higher priority (scheduling.displacement): tentative, with the slot proposed.
        "displaced": bool(occ.get("tentative")) and not cancelled,
        "alternative": (i18n.fmt_range(occ["alternative_start"], occ["alternative_end"], zone)
                        if occ.get("alternative_start") and occ.get("alternative_end") else ""),
    }


# ---------------------------------------------------------------- dashboard

def dashboard_context(session: Session, settings: Any, who: Viewer, rows: list[dict[str, Any]] | None = None,
                      boards: homes.Boards | None = None) -> dict[str, Any]:
    """The dashboard's panels: today's and the coming week's meetings, the readiness board of the
    next meeting still to end (``board``: :func:`web.readiness.board_view` plus its title, time and
    link; ``None`` without one), for the secretariat's home the board of today's and tomorrow's
    meetings, problems first (``attention``: :func:`web.homes.secretariat_board`; ``None`` for other
    homes), endpoint status counts, and the time of this rendering (local). ``rows``: the
    occurrences of today and the next :data:`UPCOMING_DAYS` days when the caller has them; ``boards``:
    the request's readiness boards by occurrence id (:func:`web.homes.board_of`), filled here."""
    zone = settings.zone
    now = utc_now()
    today = local_today(zone)
    if rows is None:
        rows = upcoming_rows(session, who.principal, zone)
    today_rows = [r for r in rows if r["day"] == today]
    upcoming = [r for r in rows if r["day"] != today and r["status"] != "cancelled"]
    nxt = next((r for r in rows if r["status"] != "cancelled" and r["end"] > now), None)
    board = None
    boards = {} if boards is None else boards
    if nxt is not None:
        shared = homes.board_of(boards, session, settings, who.principal, nxt, now=now)
        homes.by_provinces(session, shared)  # sites spanning provinces: counted by province, not listed
        board = {**shared, "title": nxt["title"], "when": nxt["when"], "href": nxt["href"],
                 "started": nxt["start"] <= now}
        board["problems"] = sum(1 for s in board["sites"] if s["state"] == "problem")
        board["not_checked"] = sum(1 for s in board["sites"] if s["state"] == "not_checked")
        board["open"] = board["total"] <= homes.OPEN_SITES
    kind = homes.home_kind(who.principal)
    attention = (homes.secretariat_board(session, settings, who.principal, rows, now=now, today=today,
                                         boards=boards)
                 if kind == "secretariat" else None)
    return {
        "home_kind": kind, "attention": attention,
        "today": i18n.fmt_day(today), "today_rows": today_rows,
        "upcoming": [{**r, "day_label": i18n.fmt_day(r["day"])} for r in upcoming],
        "board": board, "updated_at": i18n.fmt_time(now, zone) + now.astimezone(zone).strftime(":%S"),
        **endpoint_status_board(session, who.principal),
    }


def upcoming_rows(session: Session, principal: Principal, zone: ZoneInfo) -> list[dict[str, Any]]:
    """Occurrences of today and the next :data:`UPCOMING_DAYS` local days (:func:`occurrence_rows`)."""
    start, end = day_bounds(local_today(zone), UPCOMING_DAYS + 1, zone)
    return occurrence_rows(session, principal, zone, start, end)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep):
    """The dashboard page: the person's home first (an operator's own sites with the readiness
    buttons, the site just marked confirmed from its stored state; a leader's next meetings and
    calendar link), then the panels of :func:`dashboard_context`, which update live."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    settings = settings_of(request)
    rows = upcoming_rows(session, who.principal, settings.zone)
    boards: homes.Boards = {}
    context = dashboard_context(session, settings, who, rows, boards)
    now = utc_now()
    mine = (homes.operator_home(session, settings, who.principal, rows, now=now, saved=pop_saved(request),
                                boards=boards)
            if context["home_kind"] == "operator" else None)
    leader = homes.leader_home(rows, now=now) if context["home_kind"] == "leader" else None
    return render(request, "dashboard.html", {**context, "mine": mine, "leader": leader,
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
    """Counts per status overall and per unit (per province when the caller's units span provinces and
    are more than ``homes.OPEN_SITES``: ``unit_label`` says which); those with offline or faulty endpoints
    first."""
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
    # A national view (issue 14: 3,355 communes) counts by province: one row per province, not per unit.
    by_province = province_view.of_units(session, set(by_unit)) if len(by_unit) > homes.OPEN_SITES else {}
    grouped = len({province for province, _name in by_province.values()}) > 1
    if grouped:
        merged: dict[int, dict[str, Any]] = {}
        for unit_id, unit in by_unit.items():
            province, name = by_province.get(unit_id, (0, ""))
            row = merged.setdefault(province, {"name": name or unit["name"], "counts": Counter(), "down": []})
            row["counts"].update(unit["counts"])
            row["down"] += unit["down"]
        by_unit = merged
    order = [s.value for s in (EndpointStatus.online, EndpointStatus.in_call, EndpointStatus.offline,
                               EndpointStatus.fault, EndpointStatus.unknown)]
    unit_rows = sorted(by_unit.values(), key=lambda u: (-len(u["down"]), sort_key(u["name"])))
    return {
        "status_columns": [{"key": k, "label": _(STATUS_LABELS[EndpointStatus(k)])} for k in order],
        "status_totals": [{"key": k, "label": _(STATUS_LABELS[EndpointStatus(k)]), "count": totals[k]}
                          for k in order],
        "endpoint_total": sum(totals.values()), "unit_label": _("Province") if grouped else _("Unit"),
        "unit_rows": [{"name": u["name"], "counts": [u["counts"][k] for k in order], "down": u["down"],
                       "total": sum(u["counts"].values())} for u in unit_rows],
    }


# ---------------------------------------------------------------- calendar

#: The week view's time axis: local hours shown (``FIRST_HOUR``:00 to ``LAST_HOUR``:00), in quarter-hour
#: grid rows; a meeting outside it is drawn at its edge. At most ``MAX_LANES`` side by side per day.
FIRST_HOUR, LAST_HOUR, MAX_LANES = 6, 22, 4
SLOTS_PER_HOUR = 4


def place_day(rows: list[dict[str, Any]], zone: ZoneInfo) -> tuple[list[dict[str, Any]], int]:
    """One day's rows placed on the time axis: each row plus ``row_start``/``row_end`` (1-based grid
    lines, quarter hours from ``FIRST_HOUR``) and ``lane`` (1…:data:`MAX_LANES`, overlapping meetings
    side by side, greedy in start order); returns them and the number of lanes used (≥ 1)."""
    rows_total = (LAST_HOUR - FIRST_HOUR) * SLOTS_PER_HOUR
    lane_ends: list[int] = []
    placed = []
    for r in rows:
        start_l, end_l = i18n.local(r["start"], zone), i18n.local(r["end"], zone)
        first = (start_l.hour - FIRST_HOUR) * SLOTS_PER_HOUR + start_l.minute // 15
        end_minutes = (end_l.hour * 60 + end_l.minute) if end_l.date() == start_l.date() else 24 * 60
        last = -(-(end_minutes - FIRST_HOUR * 60) // 15)  # ceiling: the quarter the meeting ends in
        first = min(max(first, 0), rows_total - 1)
        last = min(max(last, first + 1), rows_total)
        lane = next((i for i, e in enumerate(lane_ends) if e <= first), None)
        if lane is None:
            lane = min(len(lane_ends), MAX_LANES - 1)
            if lane == len(lane_ends):
                lane_ends.append(last)
        lane_ends[lane] = max(lane_ends[lane], last)
        placed.append({**r, "row_start": first + 1, "row_end": last + 1, "lane": lane + 1})
    return placed, max(len(lane_ends), 1)


def _slot_links(day: date, can_book: bool, now: datetime) -> list[dict[str, Any]]:
    """The week view's free hours of one day still to start after ``now`` (local): a click books that
    hour (the planner's link scheme, ``/meetings/new?date=&start_time=&end_time=``); empty for a person
    who may not book."""
    if not can_book:
        return []
    from urllib.parse import urlencode
    return [{"row_start": (h - FIRST_HOUR) * SLOTS_PER_HOUR + 1, "row_end": (h + 1 - FIRST_HOUR) * SLOTS_PER_HOUR + 1,
             "time": f"{h:02d}:00", "href": "/meetings/new?" + urlencode(
                 {"date": day.isoformat(), "start_time": f"{h:02d}:00", "end_time": f"{h + 1:02d}:00"})}
            for h in range(FIRST_HOUR, LAST_HOUR) if datetime.combine(day, time(h), tzinfo=now.tzinfo) > now]


@router.get("/calendar", response_class=HTMLResponse)
def calendar(request: Request, session: SessionDep, view: Annotated[str, Query(pattern="^(week|day)$")] = "week",
             day: Annotated[str | None, Query(max_length=10, alias="date")] = None,
             unit: Annotated[str, Query(alias="unit_id", max_length=20)] = "",
             room: Annotated[str, Query(alias="room_id", max_length=20)] = ""):
    """Week (Thứ Hai … Chủ nhật) or day view of occurrences, filtered by unit and room (an empty or
    non-id value, as the filter form's "all" option sends, means no filter). The week has a time axis
    (:func:`place_day`); for a person who may book (or request), a click on a free hour opens the
    booking form with that day and hour; on a phone it shows the asked day with a day switcher."""
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
    can_book = who.can_book or who.requests_only
    now_local = utc_now().astimezone(zone)
    for i in range(days):
        d = first + timedelta(days=i)
        day_rows = [r for r in rows if r["day"] == d]
        placed, lanes = place_day(day_rows, zone)
        columns.append({"date": d.isoformat(), "weekday": i18n.weekday(d), "label": i18n.fmt_date(d),
                        "short": i18n.fmt_date(d)[:5], "today": d == local_today(zone), "rows": day_rows,
                        "placed": placed, "lanes": lanes, "slots": _slot_links(d, can_book, now_local),
                        "focus": d == anchor, "past": d < now_local.date(),
                        "book_href": f"/meetings/new?date={d.isoformat()}"})
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
        "hours": [f"{h:02d}:00" for h in range(FIRST_HOUR, LAST_HOUR)], "can_book": can_book,
        "day_links": [link(date=c["date"]) for c in columns],
    }, who=who)


# ---------------------------------------------------------------- meeting page

def _names_then(session: Session, participants: list[dict[str, Any]], at: datetime) -> None:
    """Room and unit names as they were at ``at`` (UTC; the occurrence's start): a merge or rename since
    then does not rewrite a past meeting's sites (``endpoints.unit_history``)."""
    history = unit_history.load_history(session)
    if not history:
        return
    for p in participants:
        unit_id, p["room"] = history.room_at(p["room_id"], p["unit_id"], p["room"], at)
        unit = session.get(Unit, unit_id)
        p["unit"] = history.unit_name_at(unit_id, unit.name if unit else p["unit"], at)

#: The session key of the site just marked (``[occurrence_id, room_id]``): the next page confirms it.
SAVED_KEY = "readiness_saved"


def pop_saved(request: Request) -> tuple[int, int] | None:
    """The ``(occurrence_id, room_id)`` marked by the previous POST (once), or ``None``."""
    value = request.session.pop(SAVED_KEY, None)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0], value[1]
    return None


def readiness_summary(sites: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of a board's sites by state and the sites reporting a problem (for the summaries that
    stand in for a long site list): ``{"ready", "problem", "not_checked", "total", "problems": [site],
    "open"}``; ``open`` is true when the full list is short enough to show unasked."""
    problems = [s for s in sites if s["state"] == "problem"]
    return {"ready": sum(1 for s in sites if s["state"] in ("ready", "connected")), "problem": len(problems),
            "not_checked": sum(1 for s in sites if s["state"] == "not_checked"), "total": len(sites),
            "problems": problems, "open": len(sites) <= homes.OPEN_SITES}


def _meeting_context(session: Session, who: Viewer, meeting: Meeting, settings: Any,
                     occurrence_id: int | None, saved: tuple[int, int] | None = None) -> dict[str, Any]:
    zone = settings.zone
    names = Names(session)
    occurrences = reading.list_occurrences(session, meeting)
    details = views.sees_meeting_details(session, who.principal, meeting)
    # Edit and cancel are offered only to who may make them (a province does not change a national meeting).
    whole = who.principal.can_book and participation.holds_whole_meeting(session, who.principal, meeting)
    title = meeting.title if details else visibility.CONFIDENTIAL_TITLE
    rows = [_occurrence_row(meeting, o, names, zone, title) for o in occurrences]
    now = utc_now()
    selected = next((r for r in rows if r["occurrence_id"] == occurrence_id), None)
    selected = selected or next((r for r in rows if r["status"] != "cancelled" and r["start"] >= now - timedelta(
        hours=12)), None) or (rows[0] if rows else None)
    occ = next((o for o in occurrences if selected and o["id"] == selected["occurrence_id"]), None)
    # The meeting's own root bridge, also when it is another province's (a national meeting seen by a province).
    bridge = cascade.tree_of(session, meeting).root if meeting.bridge_id else None
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
    if occ is not None:
        _names_then(session, participants, occ["start"])
    chair_room_id = occ["chair_room_id"] if occ else meeting.chair_room_id
    for p in participants:
        p["chair"] = p["room_id"] == chair_room_id
    participants.sort(key=lambda p: (not p["chair"], sort_key(p["unit"]), sort_key(p["room"])))
    status = "cancelled" if meeting.status is MeetingStatus.cancelled else meeting.status.value
    board = None
    if occ is not None:
        try:
            board = readiness_view.board_view(session, settings, meeting.id, occ["id"], who.principal, now=now)
        except NotFound:  # a national meeting open to a province with no site in it yet (issue 14)
            board = None
    if occ is not None and board is not None:
        states = {s["room_id"]: s for s in board["sites"]}
        for p in participants:
            site = states.get(p["room_id"])
            p["readiness"] = site["label"] if site else ""
            p["readiness_state"] = site["state"] if site else ""
            p["readiness_note"] = site["note"] if site else ""
    # A meeting spanning provinces (issue 14: the national one's 3,355 sites): its sites by province.
    by_unit = province_view.of_units(session, {int(p["unit_id"]) for p in participants})
    provinces = None
    if len({province for province, _name in by_unit.values()}) > 1:
        chair_unit = next((p["unit_id"] for p in participants if p["chair"]), None)
        provinces = province_view.group(participants, lambda p: by_unit.get(p["unit_id"]),
                                        lambda p: p.get("readiness_state", ""),
                                        first=by_unit[chair_unit][0] if chair_unit in by_unit else None)
    markable = ([s for s in board["sites"] if s["markable"]]
                if board and occ["status"] is OccurrenceStatus.scheduled and status != "cancelled"
                and occ["end"] > now else [])
    # The form shows the stored state of the site it is on (a re-send never silently turns a
    # reported problem into "ready"); right after a mark, that site and a confirmation of what was saved.
    saved_site = next((s for s in markable if saved and occ and saved == (occ["id"], s["room_id"])), None)
    chosen = saved_site or (markable[0] if markable else None)
    stored_form = ({"room_id": chosen["room_id"], "note": chosen["note"],
                    "state": chosen["state"] if chosen["state"] in {m.value for m in readiness_view.MARKABLE}
                    else ""} if chosen else {})
    # A cascaded meeting's other bridges (issue 14): each province's sites dial their own.
    cascaded = []
    for other, number in cascade.tree_of(session, meeting).others.values():
        dial = JoinDetails(conference_number=number, sip_domain=other.sip_domain,
                           h323_prefix=other.h323_prefix or "", pin=meeting.pin)
        cascaded.append({"name": other.name, "sip_uri": dial.sip_uri, "h323_number": dial.h323_number,
                         "conference_number": number})
    if not details:  # confidential (mật): "Cuộc họp", its times and rooms only
        join = JoinDetails(conference_number=None, sip_domain=None)
        cascaded = []
    return {
        "meeting": {"id": meeting.id, "title": title, "description": meeting.description if details else "",
                    "status": status, "status_label": _(MEETING_STATUS_LABELS[status]),
                    "recurring": bool(meeting.rrule), "rrule": meeting.rrule or "",
                    "chair_room": names.get(ResourceKind.room, meeting.chair_room_id),
                    "bridge": bridge.name if bridge else "", "conference_number": number if details else None,
                    "pin": meeting.pin if details else "", "sip_uri": join.sip_uri or "", "h323_number": join.h323_number or "",
                    "check_lead_minutes": meeting.check_lead_minutes,
                    "priority": meeting.priority, "priority_label": _(PRIORITY_LABELS[meeting.priority]),
                    "upstream_dial": meeting.upstream_dial if details else None, "cascade": cascaded},
        "selected": selected,
        "check_at": (i18n.fmt_datetime(occ["start"] - timedelta(minutes=meeting.check_lead_minutes), zone)
                     if occ else ""),
        "occurrences": rows, "participants": participants, "hidden_participants": hidden, "provinces": provinces,
        "can_cancel": whole and who.principal.can_cancel(meeting),
        "can_edit": whole and who.principal.can_edit(meeting),
        "invite_href": f"/api/v1/meetings/{meeting.id}/invite.ics",
        "board": board, "markable": markable, "state_options": readiness_view.state_options(),
        "readiness_error": None, "readiness_form": stored_form, "saved_site": saved_site,
        "summary": readiness_summary(board["sites"]) if board else None,
        "channels": readiness_view.live_channels(session, who.principal),
        "province_sites": province_sites_web.panel(session, settings, who, meeting),
    }


def meeting_context(session: Session, who: Viewer, meeting: Meeting, settings: Any,
                    occurrence_id: int | None) -> dict[str, Any]:
    """The meeting page's context (``meeting.html``), for the pages' own forms that render it again."""
    return _meeting_context(session, who, meeting, settings, occurrence_id)


@router.get("/meetings/{meeting_id}", response_class=HTMLResponse)
def meeting_page(request: Request, session: SessionDep, meeting_id: PathId, occurrence: QueryId = None):
    """Join instructions, participants with status, occurrences, invite download, cancel links."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        # A national meeting open to the provinces is found by every province's secretariat (issue 14).
        meeting = province_sites.find_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    return render(request, "meeting.html", _meeting_context(session, who, meeting, settings_of(request),
                                                            occurrence, pop_saved(request)), who=who)


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
                   note: Annotated[str, Form(max_length=2000)] = "",
                   back: Annotated[str, Form(max_length=10)] = ""):
    """Mark a site "Đã sẵn sàng" or "Gặp sự cố" (with a note) through
    ``scheduling.readiness.set_readiness`` (which records ``readiness.changed`` for the live channel);
    back to the meeting page (303), or to the dashboard when ``back`` is ``home`` (the operator's home),
    where the site's stored state is confirmed once (session key :data:`SAVED_KEY`). A refusal (no note for a problem, another unit's room, an ended
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
    request.session[SAVED_KEY] = [occurrence.id, room_id]
    if back == "home":
        return RedirectResponse(f"/#site-{occurrence.id}-{room_id}", status_code=303)
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
