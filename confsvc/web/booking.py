"""The booking form (đặt lịch họp).

The form posts here and is booked by ``scheduling.creation.book_meeting``, the same call as
``POST /api/v1/meetings``. While the form changes, ``static/booking.js`` calls the free-slot search
``GET /api/v1/availability`` with the web session cookie, and ``POST /meetings/new/check`` (the
page's CSRF token in ``X-CSRF-Token``): the dry run of ``POST /api/v1/meetings/check``, answered
with the conflict lines of :func:`conflict_messages` rendered here. The script shows them as given
and writes no sentence of its own.

Form fields: ``title``, ``description``, ``date`` (dd/mm/yyyy), ``start_time`` / ``end_time``
(HH:MM, 24-hour, local), ``check_lead_minutes``, ``chair_room_id``, ``participant_room_ids`` (many),
``bridge_id`` (empty = automatic), ``repeat`` (``none``/``daily``/``weekly``/``monthly``, weekly with
``repeat_byday`` boxes) with ``repeat_count`` or ``repeat_until`` (dd/mm/yyyy): ``web.repeat``;
``priority`` (0 routine, 1 provincial, 2 Government/Party session). When only lower-priority
occurrences are in the way, the form comes back with the confirmation (:func:`displacement_lines`:
who is displaced) and a confirm button posting ``displace=1`` and the ``displacement_token``
(``scheduling.displacement``, SPEC rule 10). The
participants and repeat fields and the script are the booking component the edit screens share
(``web.edit``, issue 13).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session

from confsvc.config import Settings
from confsvc.db import SessionDep, row_id
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import UnitLevel
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import creation, idempotency, requests
from confsvc.scheduling.cascade import Province
from confsvc.scheduling.conflicts import Conflict, ConflictGroup, group_conflicts
from confsvc.scheduling.displacement import Displaceable, DisplacementRequired
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.schemas import MeetingCreate, conflicts_by_province
from confsvc.text import fold, natural
from confsvc.web import i18n
from confsvc.web import repeat as repeat_form
from confsvc.web import site_groups as site_group_web
from confsvc.web.common import (
    CSRF_HEADER,
    Viewer,
    booker,
    check_csrf,
    csrf_matches,
    login_redirect,
    render,
    settings_of,
    viewer,
)
from confsvc.web.i18n import N_, _
from confsvc.web.meetings import PRIORITY_LABELS, local_today
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)

DATE_FORMAT, TIME_FORMAT = "%d/%m/%Y", "%H:%M"
KIND_LABELS = {"endpoint": N_("endpoint"), "room": N_("room"), "bridge": N_("MCU")}
#: Messages with %(name)s placeholders. The script gets the conflict and holiday lines rendered
#: here (``POST /meetings/new/check``) and fills only its own placeholders (``selected``, ``error``).
MESSAGES = {
    "conflict_meeting": N_("%(count)s sites collide with “%(title)s” (%(when)s, technical check from %(check)s)."),
    "conflict_meeting_no_check": N_("%(count)s sites collide with “%(title)s” (%(when)s)."),
    "conflict_endpoints": N_("%(count)s endpoints collide with “%(title)s” (%(when)s, technical check from "
                             "%(check)s)."),
    "conflict_endpoints_no_check": N_("%(count)s endpoints collide with “%(title)s” (%(when)s)."),
    "conflict_maintenance": N_("The %(kind)s %(name)s is under maintenance %(when)s."),
    "conflict_block": N_("%(name)s is blocked for whole days %(when)s."),
    "conflict_ports": N_("The MCU %(name)s would run out of ports %(when)s: %(used)s of %(capacity)s in use by "
                         "%(count)s meetings, %(requested)s more needed."),
    "conflict_ports_alone": N_("The MCU %(name)s has %(capacity)s ports; the meeting needs %(requested)s."),
    "conflict_number": N_("The MCU %(name)s has no free conference number %(when)s (%(count)s meetings hold them)."),
    "province_heading": N_("%(province)s (code %(code)s): %(count)s conflicts"),
    "no_province_heading": N_("Not in a province: %(count)s conflicts"),
    "show_sites": N_("Show the %(count)s sites"),
    "show_meetings": N_("Show the %(count)s meetings"),
    "holiday": N_("Note: %(date)s is a public holiday (%(name)s)."),
    "ok": N_("No conflicts: every room, endpoint and the MCU are free."),
    "checking": N_("Checking the schedule…"),
    "incomplete": N_("Enter the date, times and chair room to check the schedule."),
    "suggest_title": N_("Free slots for these rooms:"),
    "suggest_none": N_("No free slot in the next two weeks."),
    "suggest": N_("Find free slots"),
    "selected": N_("%(n)s rooms selected"),
    "shown": N_("%(n)s units shown"),
    "error": N_("The schedule could not be checked: %(detail)s"),
    "bad_date": N_("The date or a time is not valid: write the date as dd/mm/yyyy (a day of the calendar) and times as HH:MM."),
}


def displacement_lines(items: list[Displaceable], zone: Any) -> list[dict[str, Any]]:
    """The confirmation's lines, one per occurrence the booking would displace, in the page's
    language: ``{"text", "href"}`` (its meeting page)."""
    out = []
    for d in items:
        sites = ", ".join(name for _id, name in [*d.rooms, *d.endpoints])
        out.append({"text": _("“%(title)s” (priority: %(priority)s), %(when)s, organizer %(organizer)s; in conflict: "
                              "%(sites)s") % {"title": d.title, "priority": _(PRIORITY_LABELS[d.priority]),
                                               "when": i18n.fmt_range(d.start, d.end, zone),
                                               "organizer": d.organizer_name or "–", "sites": sites or "–"},
                    "href": f"/meetings/{d.meeting_id}?occurrence={d.occurrence_id}"})
    return out


def _t(key: str, **values: Any) -> str:
    return _(MESSAGES[key]) % values


def _meeting_line(group: ConflictGroup, zone: Any) -> dict[str, Any]:
    assert group.start is not None and group.end is not None
    when = i18n.fmt_range(group.start, group.end, zone)
    check = group.check_start if group.check_start is not None and group.check_start < group.start else None
    sites = group.rooms or group.endpoints
    key = ("conflict_meeting" if group.rooms else "conflict_endpoints") + ("" if check else "_no_check")
    values = {"count": len(sites), "title": group.meeting_title, "when": when,
              "check": i18n.fmt_time(check, zone) if check else ""}
    return {"text": _t(key, **values), "href": f"/meetings/{group.meeting_id}" if group.meeting_id else None,
            "summary": _t("show_sites", count=len(sites)), "items": [{"text": name, "href": None}
                                                                      for _id, name in sites]}


def conflict_messages(conflicts: list[Conflict], zone: Any,
                      provinces: Mapping[tuple[str, int], Province] | None = None) -> list[dict[str, Any]]:
    """The conflicts of a 409 or a dry run as lines people read (:func:`_conflict_lines`). With the
    conflicts' ``provinces`` (``BookingConflict.provinces``, the dry run's ``provinces``) and conflicts
    in more than one province (issue 14: a national booking), the lines come province by province, as
    the API's ``by_province`` (``scheduling.schemas.conflicts_by_province``): before each province's
    lines a heading line ``{"text": "Thành phố Hà Nội (mã 01): 4 trùng lịch", "heading": True, ...}``."""
    parts = conflicts_by_province(conflicts, provinces) if provinces is not None else []
    if len(parts) < 2:
        return _conflict_lines(conflicts, zone)
    out: list[dict[str, Any]] = []
    for province, items in parts:
        text = (_t("province_heading", province=province.name, code=province.code, count=len(items))
                if province is not None else _t("no_province_heading", count=len(items)))
        out.append({"text": text, "href": None, "summary": None, "items": [], "heading": True})
        out += _conflict_lines(items, zone)
    return out


def _conflict_lines(conflicts: list[Conflict], zone: Any) -> list[dict[str, Any]]:
    """The conflicts of a 409 or a dry run as lines people read (SPEC rule 8): one per other
    meeting's occurrence ("148 điểm cầu trùng với «Giao ban…» (08:00–10:30 Thứ Hai, 14/12/2026,
    kiểm tra kỹ thuật từ 07:00)."), its own times and the start of its technical check, linking to
    the meeting, with the rooms it takes as an expandable list; one per maintenance window, per
    interval where the MCU runs out of ports (with the meetings holding them) and per missing
    conference number. Built from :func:`scheduling.conflicts.group_conflicts`, the grouping of the
    API's 409 body.

    Each line: ``{"text", "href" (or None), "summary" (label of the list, or None), "items":
    [{"text", "href"}]}``; templates (``_conflicts.html``) and ``static/booking.js`` (through
    ``POST /meetings/new/check``) show them as given.
    """
    out: list[dict[str, Any]] = []
    for group in group_conflicts(conflicts):
        window = group.window
        when = i18n.fmt_range(window.start, window.end, zone) if window else ""
        holders = [{"text": title or _("Meeting"), "href": f"/meetings/{meeting_id}" if meeting_id else None}
                   for meeting_id, title, _occ in group.holders]
        if group.kind == "meeting":
            out.append(_meeting_line(group, zone))
        elif group.kind == "maintenance":
            names = [name for _id, name in group.endpoints]
            out.append({"text": _t("conflict_maintenance", kind=_(KIND_LABELS["endpoint"]), name=", ".join(names),
                                   when=when), "href": None, "summary": None, "items": []})
        elif group.kind == "block":
            names = [name for _id, name in group.rooms + group.endpoints]
            out.append({"text": _t("conflict_block", name=", ".join(names), when=when), "href": None,
                        "summary": None, "items": []})
        elif group.kind == "ports":
            name = f"{group.bridge_name} ({group.province_name})" if group.province_name else group.bridge_name
            out.append({"text": _t("conflict_ports", name=name, when=when, used=group.ports_in_use,
                                   capacity=group.port_capacity, requested=group.ports_requested,
                                   count=len(holders)),
                        "href": None, "summary": _t("show_meetings", count=len(holders)), "items": holders})
        elif group.kind == "number":
            out.append({"text": _t("conflict_number", name=group.bridge_name, when=when, count=len(holders)),
                        "href": None, "summary": _t("show_meetings", count=len(holders)), "items": holders})
        else:
            out.append({"text": _t("conflict_ports_alone", name=group.bridge_name, capacity=group.port_capacity,
                                   requested=group.ports_requested), "href": None, "summary": None, "items": []})
    unique: dict[str, dict[str, Any]] = {}
    for line in out:
        unique.setdefault(line["text"], line)
    return list(unique.values())


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
        raise Invalid(_("%(field)s: %(value)s is not a valid date in the form dd/mm/yyyy.")
                      % {"field": label, "value": value.strip()[:20]}, code="invalid_form") from None


def _parse_time(value: str, label: str) -> timedelta:
    try:
        parsed = datetime.strptime(value.strip(), TIME_FORMAT)
    except ValueError:
        raise Invalid(_("%(field)s: write the time as HH:MM (24-hour).") % {"field": label},
                      code="invalid_form") from None
    return timedelta(hours=parsed.hour, minutes=parsed.minute)


def _ids(values: list[str]) -> list[int]:
    return [i for v in values if (i := row_id(v.strip())) is not None]


def rrule_for(repeat: str, count: str, until: str, byday: list[str] | None = None) -> str | None:
    """The form's repeat fields as one RRULE value (``web.repeat.rrule_for``); ``None`` for once."""
    return repeat_form.rrule_for(repeat, count, until, byday or [])


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
    priority = str(form.get("priority", "") or "0").strip()
    if priority not in {str(p) for p in PRIORITY_LABELS}:
        raise Invalid(_("Choose a priority from the list."), code="invalid_form")
    values: dict[str, Any] = {
        "priority": int(priority), "displace": form.get("displace") == "1",
        "displacement_token": form.get("displacement_token") or None,
        "title": form.get("title", "").strip(), "description": form.get("description", ""),
        "chair_room_id": chair[0], "participant_room_ids": [r for r in _ids(form.get("participant_room_ids", []))
                                                            if r != chair[0]],
        "start": start, "end": end, "bridge_id": (_ids([form.get("bridge_id", "")]) or [None])[0],
        "rrule": rrule_for(form.get("repeat", "none"), form.get("repeat_count", ""), form.get("repeat_until", ""),
                           list(form.get("repeat_byday", []))),
        "upstream_dial": form.get("upstream_dial", "").strip() or None,
    }
    if lead:
        minutes = natural(lead)
        if minutes is None:
            raise Invalid(_("Technical check: minutes before the start, a whole number."), code="invalid_form")
        values["check_lead_minutes"] = minutes
    try:
        return MeetingCreate(**values)
    except ValidationError as exc:
        raise Invalid(validation_text(exc), code="invalid_form") from None


#: Form labels of MeetingCreate's fields, for validation messages in the page's language.
FIELD_LABELS = {"title": N_("Title"), "description": N_("Description"), "check_lead_minutes": N_("Technical check"),
                "start": N_("Start"), "end": N_("End"), "chair_room_id": N_("Chair room"),
                "participant_room_ids": N_("Participating sites"), "bridge_id": N_("MCU"), "rrule": N_("Repeat"),
                "upstream_dial": N_("Relay of a meeting chaired outside (its dial address)")}


def validation_text(exc: ValidationError) -> str:
    """Every fault of a pydantic validation as "<field label>: <catalog sentence>", joined with "; "
    (never pydantic's English ``msg``)."""
    faults = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        label = _(FIELD_LABELS[name]) if name in FIELD_LABELS else _("The form")
        kind = error.get("type", "")
        if kind in ("string_too_long", "too_long"):
            sentence = _("too long.")
        elif kind in ("string_too_short", "too_short", "missing"):
            sentence = _("required.")
        elif kind.startswith(("greater_than", "less_than")):
            sentence = _("out of the allowed range.")
        else:
            sentence = _("the value is not valid.")
        faults.append(f"{label}: {sentence}")
    return "; ".join(dict.fromkeys(faults))


# ---------------------------------------------------------------- pages

def picker_units(session: Session, who: Viewer) -> list[dict[str, Any]]:
    """The booking component's units with rooms, in the one Vietnamese order of units and rooms
    (``endpoints.service.unit_order``, ``confsvc.collation``): ``[{"id", "name", "level", "search"
    (folded name and room names, ``confsvc.text.fold``), "rooms": [{"id", "name"}]}]``.

    A requester chairs from their own units but may invite any room (``scheduling.requests``): the
    list shows every unit, as to a viewer."""
    listing = dataclasses.replace(who.principal, unit_ids=who.principal.scope) if who.requests_only else who.principal
    units, _total = inventory.list_units(session, listing, limit=10000)
    rooms, _total = inventory.list_rooms(session, listing, limit=100000)
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for room in rooms:
        by_unit.setdefault(room.unit_id, []).append({"id": room.id, "name": room.name})
    return [{"id": u.id, "name": u.name, "level": u.level.value,
             "search": fold(" ".join([u.name, *(r["name"] for r in by_unit[u.id])])), "rooms": by_unit[u.id]}
            for u in units if u.id in by_unit]


def component_context(session: Session, who: Viewer, form: dict[str, Any]) -> dict[str, Any]:
    """What the booking component (``_picker.html``, ``_repeat.html``, ``static/booking.js``) needs on
    the new, series-edit and occurrence-edit pages: units, chosen rooms, site groups, weekday boxes
    and the script's messages."""
    messages = {k: _(v) for k, v in MESSAGES.items()}
    messages.update({f"kind_{k}": _(v) for k, v in KIND_LABELS.items()})
    messages["weekdays"] = repeat_form.weekday_names()
    return {"units": picker_units(session, who), "chosen": set(_ids(form.get("participant_room_ids", []))),
            "site_groups": site_group_web.picker_options(session, who), "messages": messages,
            "weekdays": repeat_form.weekday_options(form.get("repeat_byday", [])),
            "repeat_labels": {k: _(v) for k, v in repeat_form.LABELS.items()}}


def _form_context(session: Session, who: Viewer, settings: Settings, form: dict[str, Any]) -> dict[str, Any]:
    component = component_context(session, who, form)
    unit_rows = component["units"]
    bridges, _total = inventory.list_bridges(session, who.principal, limit=1000)
    default_chair = next((u["rooms"][0]["id"] for u in unit_rows if u["level"] == UnitLevel.province.value), None)
    chair_units = ([u for u in unit_rows if who.principal.can_see_unit(u["id"])]
                   if who.requests_only else unit_rows)
    if who.requests_only:
        default_chair = chair_units[0]["rooms"][0]["id"] if chair_units else None
    return {
        **component, "form": form, "chair_units": chair_units, "as_request": who.requests_only,
        "chair_room_id": row_id(str(form.get("chair_room_id", ""))) or default_chair,
        "bridges": [{"id": b.id, "name": b.name, "ports": b.port_capacity} for b in bridges if b.active],
        "default_lead": settings.default_check_lead_minutes, "check_url": None,
        "repeat_choices": ["none", "daily", "weekly", "monthly"],
        "priorities": [{"value": str(v), "label": _(label)} for v, label in PRIORITY_LABELS.items()],
        "summary": repeat_form.summary(_form_rule(form), settings.zone),
    }


def _form_rule(form: dict[str, Any]) -> str | None:
    """The form's rule, or None when it is not valid yet (the summary then says "Does not repeat")."""
    try:
        return rrule_for(form.get("repeat", "none"), form.get("repeat_count", ""), form.get("repeat_until", ""),
                         list(form.get("repeat_byday", [])))
    except Invalid:
        return None


def _defaults(settings: Settings) -> dict[str, Any]:
    day = local_today(settings.zone) + timedelta(days=1)
    while day.weekday() not in settings.working_weekday_set:
        day += timedelta(days=1)
    return {"title": "", "description": "", "date": day.strftime(DATE_FORMAT), "start_time": "08:00",
            "end_time": "10:00", "check_lead_minutes": str(settings.default_check_lead_minutes),
            "repeat": "none", "repeat_count": "", "repeat_until": "", "repeat_byday": [], "bridge_id": "",
            "participant_room_ids": [], "priority": "0", "upstream_dial": "",
            "idempotency_key": uuid.uuid4().hex}


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
    if row_id(params.get("chair_room_id", "")) is not None:
        form["chair_room_id"] = params["chair_room_id"]
    rooms = [r for r in params.getlist("participant_room_ids")[:5000] if row_id(r) is not None]
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
                                            "errors": [], "warnings": [], "displacement": None}, who=who)


FormText = Annotated[str, Form(max_length=10000)]


@router.post("/meetings/new/check")
def check(request: Request, session: SessionDep, data: MeetingCreate):
    """The form's live check (``static/booking.js``): the dry run ``scheduling.creation.check_meeting``
    (the same call as ``POST /api/v1/meetings/check``) answered with its lines already rendered in
    the page's language: ``{"ok", "lines" (:func:`conflict_messages`), "warnings" (sentences)}``;
    a refusal (bad input, role) is ``{"ok": false, "lines": [], "error": <sentence>}`` with its status.
    Cookie session and the ``X-CSRF-Token`` header (the page's token), as for the API."""
    if not csrf_matches(request, request.headers.get(CSRF_HEADER)):
        return JSONResponse({"detail": "CSRF token missing or wrong; reload the page", "code": "csrf_failed"},
                            status_code=403)
    who = viewer(request, session)
    if who is None:
        return JSONResponse({"detail": "sign in first", "code": "unauthorized"}, status_code=401)
    settings = settings_of(request)
    try:
        result = creation.check_meeting(session, settings, who.principal, data)
    except ConfsvcError as exc:
        return JSONResponse({"ok": False, "lines": [], "warnings": [], "error": refusal_message(exc)},
                            status_code=exc.status_code)
    first = i18n.local(data.start, settings.zone).date() if data.start.tzinfo else data.start.date()
    return JSONResponse({"ok": result["ok"], "lines": conflict_messages(result["conflicts"], settings.zone,
                                                                        result["provinces"]),
                         "warnings": warning_messages(result["warnings"]),
                         "summary": repeat_form.summary(data.rrule, settings.zone, first)})


@router.post("/meetings/new", response_class=HTMLResponse)
def book(request: Request, session: SessionDep, csrf: FormText = "", title: FormText = "",
         description: FormText = "", date: FormText = "", start_time: FormText = "", end_time: FormText = "",
         check_lead_minutes: FormText = "", chair_room_id: FormText = "",
         participant_room_ids: Annotated[list[str], Form(max_length=5000)] = [],  # noqa: B006 (FastAPI form list)
         bridge_id: FormText = "", repeat: FormText = "none", repeat_count: FormText = "",
         repeat_until: FormText = "", idempotency_key: FormText = "",
         repeat_byday: Annotated[list[str], Form(max_length=7)] = [],  # noqa: B006 (FastAPI form list)
         priority: FormText = "0", displace: FormText = "", displacement_token: FormText = "",
         upstream_dial: FormText = ""):
    """Book through ``scheduling.creation.book_meeting`` (a requester: submit a request through
    ``scheduling.requests.submit``, then their list of requests); on a refusal the form comes back with
    every conflict in words and the values kept (the hidden ``idempotency_key`` too).

    The form's ``idempotency_key`` (issue 12) makes a double submit book once: a second POST with the
    same key and values gets the first one's redirect to the same meeting (``scheduling.idempotency``).
    """
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    settings = settings_of(request)
    form = {"title": title, "description": description, "date": date, "start_time": start_time,
            "end_time": end_time, "check_lead_minutes": check_lead_minutes, "chair_room_id": chair_room_id,
            "participant_room_ids": participant_room_ids, "bridge_id": bridge_id, "repeat": repeat,
            "repeat_count": repeat_count, "repeat_until": repeat_until, "repeat_byday": repeat_byday,
            "idempotency_key": idempotency_key, "priority": priority, "displace": displace,
            "displacement_token": displacement_token, "upstream_dial": upstream_dial}
    displacement = None
    try:
        data = form_to_meeting(form, settings)
        if who.requests_only:
            view = requests.submit(session, settings, who.principal, data)
            return RedirectResponse(f"/requests/mine?submitted={view.request.meeting_id}", status_code=303)

        def run() -> idempotency.Answer:
            result = creation.book_meeting(session, settings, who.principal, data)
            return idempotency.Answer(303, "text/html", "", f"/meetings/{result.meeting.id}")

        answer = idempotency.once(session, settings, who.principal, idempotency.parse_key(idempotency_key),
                                  idempotency.fingerprint("POST /meetings/new", data.model_dump(mode="json")), run)
        return RedirectResponse(answer.location or "/meetings", status_code=answer.status_code)
    except DisplacementRequired as exc:
        errors = []
        displacement = {"lines": displacement_lines(exc.offer.items, settings.zone), "token": exc.offer.token,
                        "stale": exc.code == "displacement_token_mismatch"}
    except BookingConflict as exc:
        errors = conflict_messages(exc.conflicts, settings.zone, exc.provinces)
    except ConfsvcError as exc:
        errors = [refusal_message(exc)]
    session.rollback()
    return render(request, "booking.html", {**_form_context(session, who, settings, form), "errors": errors,
                                            "warnings": [], "displacement": displacement}, who=who,
                  status_code=409 if displacement else 422)
