"""The booking form (đặt lịch họp).

The form posts here and is booked by ``scheduling.service.book_meeting``, the same call as
``POST /api/v1/meetings``. While the form changes, ``static/booking.js`` calls the dry run
``POST /api/v1/meetings/check`` and the free-slot search ``GET /api/v1/availability`` with the web
session cookie (and the CSRF header, see ``web.csrf``); both answers are explained with the
messages of :func:`conflict_messages`, handed to the script already translated.

Form fields: ``title``, ``description``, ``date`` (dd/mm/yyyy), ``start_time`` / ``end_time``
(HH:MM, 24-hour, local), ``check_lead_minutes``, ``chair_room_id``, ``participant_room_ids`` (many),
``bridge_id`` (empty = automatic), ``repeat`` (``none``/``weekly``/``monthly``) with ``repeat_count``
or ``repeat_until`` (dd/mm/yyyy).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session

from confsvc.config import Settings
from confsvc.db import SessionDep
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import UnitLevel
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import requests
from confsvc.scheduling import service as scheduling
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.text import fold
from confsvc.web import i18n
from confsvc.web import site_groups as site_group_web
from confsvc.web.common import Viewer, booker, check_csrf, login_redirect, render, settings_of, viewer
from confsvc.web.i18n import N_, _
from confsvc.web.meetings import local_today
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)

DATE_FORMAT, TIME_FORMAT = "%d/%m/%Y", "%H:%M"
KIND_LABELS = {"endpoint": N_("endpoint"), "room": N_("room"), "bridge": N_("MCU")}
#: Messages with %(name)s placeholders; the script fills them the same way (``booking.js``).
MESSAGES = {
    "conflict_meeting": N_("Conflicts with the meeting “%(title)s” at %(when)s: %(names)s."),
    "conflict_maintenance": N_("The %(kind)s %(name)s is under maintenance %(when)s."),
    "conflict_ports": N_("The MCU %(name)s has no free ports %(when)s (%(used)s of %(capacity)s in use, "
                         "%(requested)s needed)."),
    "conflict_other": N_("The %(kind)s %(name)s is not free %(when)s."),
    "holiday": N_("Note: %(date)s is a public holiday (%(name)s)."),
    "ok": N_("No conflicts: every room, endpoint and the MCU are free."),
    "checking": N_("Checking the schedule…"),
    "incomplete": N_("Enter the date, times and chair room to check the schedule."),
    "suggest_title": N_("Free slots for these rooms:"),
    "suggest_none": N_("No free slot in the next two weeks."),
    "suggest": N_("Find free slots"),
    "selected": N_("%(n)s rooms selected"),
    "error": N_("The schedule could not be checked: %(detail)s"),
}


def _t(key: str, **values: Any) -> str:
    return _(MESSAGES[key]) % values


def conflict_messages(conflicts: list[dict[str, Any]], zone: Any) -> list[str]:
    """The conflicts of a 409 or a dry run in words, one line per colliding meeting and window
    ("Trùng lịch với cuộc họp «…» lúc 08:00–10:00 Thứ Hai, 02/03/2026: Điểm cầu …"), naming its rooms
    (or, without room collisions, its endpoints); maintenance and MCU ports get their own lines.
    ``static/booking.js`` builds the same lines from the dry run's answer."""
    lines: dict[str, None] = {}
    groups: dict[tuple[str, str], dict[str, list[str]]] = {}
    for c in conflicts:
        start, end = c["window_start"], c["window_end"]
        if isinstance(start, str):
            start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
        when = i18n.fmt_range(start, end, zone)
        values = {"kind": _(KIND_LABELS.get(c["resource_kind"], c["resource_kind"])), "name": c["resource_name"],
                  "when": when, "used": c.get("ports_in_use"), "capacity": c.get("port_capacity"),
                  "requested": c.get("ports_requested")}
        if c.get("port_capacity") is not None:
            lines[_t("conflict_ports", **values)] = None
        elif c.get("maintenance_id"):
            lines[_t("conflict_maintenance", **values)] = None
        elif c.get("meeting_title"):
            names = groups.setdefault((c["meeting_title"], when), {"room": [], "endpoint": [], "bridge": []})
            bucket = names.setdefault(c["resource_kind"], [])
            if c["resource_name"] not in bucket:
                bucket.append(c["resource_name"])
            lines[f"\0{c['meeting_title']}\0{when}"] = None
        else:
            lines[_t("conflict_other", **values)] = None
    out = []
    for line in lines:
        if line.startswith("\0"):
            title, when = line[1:].split("\0")
            names = groups[(title, when)]
            shown = names["room"] or names["endpoint"] or names["bridge"]
            out.append(_t("conflict_meeting", title=title, when=when, names=", ".join(shown)))
        else:
            out.append(line)
    return out


def warning_messages(warnings: list[dict[str, Any]]) -> list[str]:
    out = []
    for w in warnings:
        if w.get("code") == "public_holiday":
            day = w["date"] if not isinstance(w["date"], str) else datetime.fromisoformat(w["date"]).date()
            name = w.get("name_en") if i18n.current_language() == "en" else w.get("name")
            out.append(_t("holiday", date=i18n.fmt_date(day), name=name or w.get("name") or ""))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- form → MeetingCreate

def _parse_date(value: str, label: str) -> datetime:
    try:
        return datetime.strptime(value.strip(), DATE_FORMAT)
    except ValueError:
        raise Invalid(_("%(field)s: write the date as dd/mm/yyyy.") % {"field": label}, code="invalid_form") from None


def _parse_time(value: str, label: str) -> timedelta:
    try:
        parsed = datetime.strptime(value.strip(), TIME_FORMAT)
    except ValueError:
        raise Invalid(_("%(field)s: write the time as HH:MM (24-hour).") % {"field": label},
                      code="invalid_form") from None
    return timedelta(hours=parsed.hour, minutes=parsed.minute)


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.strip().isdigit()]


def rrule_for(repeat: str, count: str, until: str) -> str | None:
    """``FREQ=WEEKLY|MONTHLY`` with ``COUNT`` or a local ``UNTIL`` (end of that day); ``None`` for once."""
    if repeat not in ("weekly", "monthly"):
        return None
    freq = "WEEKLY" if repeat == "weekly" else "MONTHLY"
    if count.strip():
        if not count.strip().isdigit() or not 1 <= int(count) <= 500:
            raise Invalid(_("Number of occurrences: a whole number from 1 to 500."), code="invalid_form")
        return f"FREQ={freq};COUNT={int(count)}"
    if until.strip():
        last = _parse_date(until, _("Repeat until"))
        return f"FREQ={freq};UNTIL={last:%Y%m%d}T235959"
    raise Invalid(_("A repeating meeting needs a number of occurrences or an end date."), code="invalid_form")


def form_to_meeting(form: dict[str, Any], settings: Settings) -> MeetingCreate:
    """The posted form as the API's :class:`MeetingCreate` (naive local times: SPEC rule 9).

    Raises Invalid (422) with a message in the request's language.
    """
    day = _parse_date(form.get("date", ""), _("Date"))
    start = day + _parse_time(form.get("start_time", ""), _("Start"))
    end = day + _parse_time(form.get("end_time", ""), _("End"))
    chair = _ids([form.get("chair_room_id", "")])
    if not chair:
        raise Invalid(_("Choose the chair room."), code="invalid_form")
    lead = form.get("check_lead_minutes", "").strip()
    values: dict[str, Any] = {
        "title": form.get("title", "").strip(), "description": form.get("description", ""),
        "chair_room_id": chair[0], "participant_room_ids": [r for r in _ids(form.get("participant_room_ids", []))
                                                            if r != chair[0]],
        "start": start, "end": end, "bridge_id": (_ids([form.get("bridge_id", "")]) or [None])[0],
        "rrule": rrule_for(form.get("repeat", "none"), form.get("repeat_count", ""), form.get("repeat_until", "")),
    }
    if lead:
        if not lead.isdigit():
            raise Invalid(_("Technical check: minutes before the start, a whole number."), code="invalid_form")
        values["check_lead_minutes"] = int(lead)
    try:
        return MeetingCreate(**values)
    except ValidationError as exc:
        fields = {"title": _("Title"), "check_lead_minutes": _("Technical check")}
        first = exc.errors()[0]
        field = fields.get(str(first["loc"][0]) if first["loc"] else "", str(first["loc"]))
        raise Invalid(f"{field}: {first['msg']}", code="invalid_form") from None


# ---------------------------------------------------------------- pages

def _form_context(session: Session, who: Viewer, settings: Settings, form: dict[str, Any]) -> dict[str, Any]:
    # A requester chairs from their own units but may invite any room (``scheduling.requests``):
    # the participant lists show every unit, as to a viewer.
    listing = dataclasses.replace(who.principal, unit_ids=None) if who.requests_only else who.principal
    units, _total = inventory.list_units(session, listing, limit=10000)
    rooms, _total = inventory.list_rooms(session, listing, limit=100000)
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for room in rooms:
        by_unit.setdefault(room.unit_id, []).append({"id": room.id, "name": room.name})
    unit_rows = [{"id": u.id, "name": u.name, "level": u.level.value, "search": fold(u.name),
                  "rooms": by_unit[u.id]} for u in units if u.id in by_unit]
    unit_rows.sort(key=lambda u: (u["level"] != UnitLevel.province.value, u["name"]))
    bridges, _total = inventory.list_bridges(session, who.principal, limit=1000)
    chosen = set(_ids(form.get("participant_room_ids", [])))
    default_chair = next((u["rooms"][0]["id"] for u in unit_rows if u["level"] == UnitLevel.province.value), None)
    messages = {k: _(v) for k, v in MESSAGES.items()}
    messages.update({f"kind_{k}": _(v) for k, v in KIND_LABELS.items()})
    messages["weekdays"] = [i18n.VI_WEEKDAYS[i] if i18n.current_language() == "vi"
                            else ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[i]
                            for i in range(7)]
    chair_units = ([u for u in unit_rows if who.principal.can_see_unit(u["id"])] if who.requests_only
                   else unit_rows)
    if who.requests_only:
        default_chair = chair_units[0]["rooms"][0]["id"] if chair_units else None
    return {
        "form": form, "units": unit_rows, "chosen": chosen, "chair_units": chair_units,
        "as_request": who.requests_only,
        "chair_room_id": int(form["chair_room_id"]) if str(form.get("chair_room_id", "")).isdigit() else default_chair,
        "bridges": [{"id": b.id, "name": b.name, "ports": b.port_capacity} for b in bridges if b.active],
        "messages": messages, "default_lead": settings.default_check_lead_minutes,
        "site_groups": site_group_web.picker_options(session, who),
    }


def _defaults(settings: Settings) -> dict[str, Any]:
    day = local_today(settings.zone) + timedelta(days=1)
    while day.weekday() not in settings.working_weekday_set:
        day += timedelta(days=1)
    return {"title": "", "description": "", "date": day.strftime(DATE_FORMAT), "start_time": "08:00",
            "end_time": "10:00", "check_lead_minutes": str(settings.default_check_lead_minutes),
            "repeat": "none", "repeat_count": "", "repeat_until": "", "bridge_id": "", "participant_room_ids": []}


def _prefill(form: dict[str, Any], params: Any) -> dict[str, Any]:
    """The planner's choice (``/planner`` links): ``date`` (ISO), ``start_time``/``end_time`` (HH:MM),
    ``chair_room_id`` and ``participant_room_ids`` from the query string; anything malformed is ignored."""
    form = dict(form)
    try:
        form["date"] = datetime.strptime(params.get("date", ""), "%Y-%m-%d").strftime(DATE_FORMAT)
    except ValueError:
        pass
    for key in ("start_time", "end_time"):
        try:
            form[key] = datetime.strptime(params.get(key, ""), TIME_FORMAT).strftime(TIME_FORMAT)
        except ValueError:
            pass
    if params.get("chair_room_id", "").isdigit():
        form["chair_room_id"] = params["chair_room_id"]
    rooms = [r for r in params.getlist("participant_room_ids")[:5000] if r.isdigit()]
    if rooms:
        form["participant_room_ids"] = rooms
    return form


@router.get("/meetings/new", response_class=HTMLResponse)
def booking_form(request: Request, session: SessionDep):
    """The booking form, prefilled from the planner's query string when it comes from there."""
    who = booker(request, session, or_requester=True)
    if not isinstance(who, Viewer):
        return who
    settings = settings_of(request)
    form = _prefill(_defaults(settings), request.query_params)
    return render(request, "booking.html", {**_form_context(session, who, settings, form),
                                            "errors": [], "warnings": []}, who=who)


FormText = Annotated[str, Form(max_length=10000)]


@router.post("/meetings/new", response_class=HTMLResponse)
def book(request: Request, session: SessionDep, csrf: FormText = "", title: FormText = "",
         description: FormText = "", date: FormText = "", start_time: FormText = "", end_time: FormText = "",
         check_lead_minutes: FormText = "", chair_room_id: FormText = "",
         participant_room_ids: Annotated[list[str], Form(max_length=5000)] = [],  # noqa: B006 (FastAPI form list)
         bridge_id: FormText = "", repeat: FormText = "none", repeat_count: FormText = "",
         repeat_until: FormText = ""):
    """Book through ``scheduling.service.book_meeting`` (a requester: submit a request through
    ``scheduling.requests.submit``, then their list of requests); on a refusal the form comes back with every
    conflict in words and the values kept."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    settings = settings_of(request)
    form = {"title": title, "description": description, "date": date, "start_time": start_time,
            "end_time": end_time, "check_lead_minutes": check_lead_minutes, "chair_room_id": chair_room_id,
            "participant_room_ids": participant_room_ids, "bridge_id": bridge_id, "repeat": repeat,
            "repeat_count": repeat_count, "repeat_until": repeat_until}
    try:
        data = form_to_meeting(form, settings)
        if who.requests_only:
            view = requests.submit(session, settings, who.principal, data)
            return RedirectResponse(f"/requests/mine?submitted={view.request.meeting_id}", status_code=303)
        result = scheduling.book_meeting(session, settings, who.principal, data)
        return RedirectResponse(f"/meetings/{result.meeting.id}", status_code=303)
    except BookingConflict as exc:
        errors = conflict_messages(exc.conflicts, settings.zone)
    except ConfsvcError as exc:
        errors = [refusal_message(exc)]
    session.rollback()
    return render(request, "booking.html", {**_form_context(session, who, settings, form), "errors": errors,
                                            "warnings": []}, who=who, status_code=422)
