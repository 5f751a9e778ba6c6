"""Edit screens: a meeting as a whole series (``scheduling.editing.edit_meeting``), one occurrence in a
scope ("Chỉ buổi này": ``edit_occurrence``; "Buổi này và các buổi sau": ``scheduling.series.split_series``;
"Cả chuỗi": ``edit_meeting``), and an endpoint (admin, ``endpoints.service.update_endpoint``). Same
services as the API: no rule is repeated here. The meeting screens use the booking component of the
new-meeting page (``_picker.html``, ``_repeat.html``, ``static/booking.js``, issue 13); their live check
(``…/edit/check``) runs the save itself and rolls it back, so it names exactly the conflicts the
save would, never the meeting's own occurrences.

Only what the form changed is sent, so an edit of the title of a series that began in the past does
not re-check its past start. A refusal shows the form again with the values typed and the conflicts
in words (``web.booking.conflict_messages``), status 409 for conflicts, 422 for bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session, select

from confsvc import events
from confsvc.db import PathId, SessionDep, row_id
from confsvc.endpoints import service as inventory
from confsvc.endpoints import unit_history
from confsvc.endpoints import schemas as endpoint_schemas
from confsvc.endpoints.models import Endpoint, LifecycleState, Protocol
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import participants as participation
from confsvc.scheduling import editing, reading, series
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.schemas import MeetingUpdate, OccurrenceUpdate
from confsvc.text import natural
from confsvc.web import i18n
from confsvc.web import repeat as repeat_form
from confsvc.web.booking import (DATE_FORMAT, TIME_FORMAT, _ids, _parse_date, _parse_time, component_context,
                                 conflict_messages, validation_text, warning_messages)
from confsvc.web.common import (CSRF_HEADER, Viewer, booker, check_csrf, csrf_matches, error_page, login_redirect,
                                render, settings_of, viewer)
from confsvc.web.i18n import N_, _
from confsvc.web.meetings import PRIORITY_LABELS
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form(max_length=10000)]
LIFECYCLE_LABELS = {LifecycleState.active: N_("In use"), LifecycleState.maintenance: N_("Maintenance"),
                    LifecycleState.retired: N_("Retired")}


def _rooms_by_unit(session: Session, who: Viewer) -> list[dict[str, Any]]:
    units, _total = inventory.list_units(session, who.principal, limit=100000)
    rooms, _total = inventory.list_rooms(session, who.principal, limit=100000)
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for room in rooms:
        by_unit.setdefault(room.unit_id, []).append({"id": room.id, "name": room.name})
    return [{"id": u.id, "name": u.name, "rooms": by_unit[u.id]} for u in units if u.id in by_unit]


def _local_parts(value: Any, zone: Any) -> tuple[str, str]:
    local = i18n.local(value, zone)
    return local.strftime(DATE_FORMAT), local.strftime(TIME_FORMAT)


def _times(form: dict[str, Any]) -> tuple[Any, Any]:
    day = _parse_date(form["date"], _("Date"))
    return day + _parse_time(form["start_time"], _("Start")), day + _parse_time(form["end_time"], _("End"))


def _refusal(exc: ConfsvcError, zone: Any) -> tuple[list[Any], int]:
    if isinstance(exc, BookingConflict):
        return conflict_messages(exc.conflicts, zone, exc.provinces), 409
    return [refusal_message(exc)], exc.status_code if exc.status_code in (403, 404) else 422


# ---------------------------------------------------------------- the posted form (save and live check)

OptText = Annotated[str | None, Form(max_length=10000)]
OptList = Annotated[list[str] | None, Form(max_length=5000)]


def _posted(csrf: FormText = "", scope: OptText = None, title: OptText = None, description: OptText = None,
            date: FormText = "", start_time: FormText = "", end_time: FormText = "",
            check_lead_minutes: OptText = None, chair_room_id: FormText = "", participant_room_ids: OptList = None,
            repeat: OptText = None, repeat_count: FormText = "", repeat_until: FormText = "",
            repeat_byday: OptList = None, repeat_rule: FormText = "", participants_shown: OptText = None,
            priority: OptText = None, upstream_dial: OptText = None) -> dict[str, Any]:
    """The edit screens' fields as posted; ``None`` for a field the form did not send (left as it was).
    ``participants_shown`` (hidden, ``_picker.html``) tells "every box unticked" from "no list posted"."""
    if participant_room_ids is None and participants_shown:
        participant_room_ids = []
    return {"csrf": csrf, "scope": scope, "title": title, "description": description, "date": date,
            "start_time": start_time, "end_time": end_time, "check_lead_minutes": check_lead_minutes,
            "chair_room_id": chair_room_id, "participant_room_ids": participant_room_ids,
            "repeat": repeat, "repeat_count": repeat_count, "repeat_until": repeat_until,
            "repeat_byday": repeat_byday or [], "repeat_rule": repeat_rule, "priority": priority,
            "upstream_dial": upstream_dial}


Posted = Annotated[dict[str, Any], Depends(_posted)]
SCOPES = ("this", "following", "series")


def _rule(fields: dict[str, Any]) -> str | None:
    return repeat_form.rrule_for(fields["repeat"], fields["repeat_count"], fields["repeat_until"],
                                 fields["repeat_byday"], fields["repeat_rule"])


def _same_rule(a: str | None, b: str | None, first: date) -> bool:
    """Equal rules, a weekly BYDAY naming only the first day's weekday being the same as none (RFC 5545
    §3.3.10: a WEEKLY rule without BYDAY recurs on DTSTART's weekday)."""
    own = f"BYDAY={repeat_form.WEEKDAY_CODES[first.weekday()]};"

    def canonical(rule: str | None) -> str:
        return (rule or "").replace(own, "") if (rule or "").startswith("FREQ=WEEKLY;") else (rule or "")
    return canonical(a) == canonical(b)


def _series_changes(form: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """``MeetingUpdate`` values for what ``form`` changed against ``before`` (the same fields, as shown):
    only those, so an edit of the title of a series that began in the past does not re-check its
    past start. Raises Invalid (422) with a sentence in the request's language."""
    changes: dict[str, Any] = {k: form[k].strip() if k == "title" else form[k] for k in ("title", "description")
                               if form[k] is not None and form[k] != before[k]}
    if (form["date"], form["start_time"], form["end_time"]) != (before["date"], before["start_time"],
                                                                before["end_time"]):
        changes["start"], changes["end"] = _times(form)
    lead = form["check_lead_minutes"]
    if lead is not None and lead != before["check_lead_minutes"]:
        minutes = natural(lead.strip())
        if minutes is None:
            raise Invalid(_("Technical check: minutes before the start, a whole number."), code="invalid_form")
        changes["check_lead_minutes"] = minutes
    chair = _ids([form["chair_room_id"]])
    posted = before["participant_room_ids"] if form["participant_room_ids"] is None else form["participant_room_ids"]
    rooms = [r for r in _ids(posted) if not chair or r != chair[0]]
    if chair and (str(chair[0]) != before["chair_room_id"] or sorted(rooms) != sorted(_ids(before["participant_room_ids"]))):
        changes["chair_room_id"], changes["participant_room_ids"] = chair[0], rooms
    priority = form.get("priority")
    if priority is not None and priority != before.get("priority"):
        if priority not in {str(p) for p in PRIORITY_LABELS}:
            raise Invalid(_("Choose a priority from the list."), code="invalid_form")
        changes["priority"] = int(priority)
    relay = form.get("upstream_dial")
    if relay is not None and relay.strip() != before.get("upstream_dial", ""):
        changes["upstream_dial"] = relay.strip()  # "" ends the relay (MeetingUpdate)
    if form["repeat"] is not None:
        rule, was = _rule(form), _rule(before)
        first = _parse_date(form["date"], _("Date")).date()
        if not _same_rule(rule, was, first):
            changes["rrule"] = rule or ""
    return changes


def _update(changes: dict[str, Any]) -> MeetingUpdate:
    try:
        return MeetingUpdate(**changes)
    except ValidationError as exc:
        raise Invalid(validation_text(exc), code="invalid_form") from None


def _check_answer(request: Request, session: Session, run: Callable[[], Any], summary: str) -> JSONResponse:
    """The live check of an edit screen: ``run()`` (the save itself) in this request's transaction,
    then everything rolled back. ``{"ok", "lines" (``conflict_messages``), "warnings", "summary"}``;
    bad input or a refusal other than a conflict: ``{"ok": false, "lines": [], "error"}`` with its status."""
    if not csrf_matches(request, request.headers.get(CSRF_HEADER)):
        return JSONResponse({"detail": "CSRF token missing or wrong; reload the page", "code": "csrf_failed"},
                            status_code=403)
    zone = settings_of(request).zone
    try:
        with events.dry_run(session):
            result = run()
    except BookingConflict as exc:
        session.rollback()
        return JSONResponse({"ok": False, "lines": conflict_messages(exc.conflicts, zone, exc.provinces), "warnings": [],
                             "summary": summary})
    except ConfsvcError as exc:
        session.rollback()
        return JSONResponse({"ok": False, "lines": [], "warnings": [], "summary": summary,
                             "error": refusal_message(exc)}, status_code=exc.status_code)
    session.rollback()
    warnings = warning_messages(getattr(result, "warnings", None) or [])
    return JSONResponse({"ok": True, "lines": [], "warnings": warnings, "summary": summary})


def _summary(form: dict[str, Any], before: dict[str, Any], zone: Any) -> str:
    fields = before if form.get("repeat") is None else form
    try:
        rule = _rule(fields)
        first = _parse_date(form.get("date") or before["date"], _("Date")).date()
    except Invalid as exc:
        return exc.detail
    return repeat_form.summary(rule, zone, first)


# ---------------------------------------------------------------- a meeting (whole series)

def _meeting_form(session: Session, meeting: Any, zone: Any) -> dict[str, Any]:
    day, start = _local_parts(meeting.dtstart, zone)
    _day, end = _local_parts(meeting.dtstart + timedelta(minutes=meeting.duration_minutes), zone)
    chair_endpoints = set(session.exec(select(Endpoint.id).where(Endpoint.room_id == meeting.chair_room_id)).all())
    endpoint_ids = [e for e in participation.meeting_endpoint_ids(session, meeting.id) if e not in chair_endpoints]
    rooms = sorted({session.get(Endpoint, e).room_id for e in endpoint_ids})
    return {"title": meeting.title, "description": meeting.description, "date": day, "start_time": start,
            "end_time": end, "check_lead_minutes": str(meeting.check_lead_minutes),
            "chair_room_id": str(meeting.chair_room_id), "participant_room_ids": [str(r) for r in rooms],
            "priority": str(meeting.priority), "upstream_dial": meeting.upstream_dial or "",
            **_repeat_fields(meeting.rrule, zone, i18n.local(meeting.dtstart, zone).date())}


def _repeat_fields(rule: str | None, zone: Any, first: date) -> dict[str, Any]:
    fields = repeat_form.form_of(rule, zone)
    if fields["repeat"] == "weekly" and not fields["repeat_byday"]:  # the rule's own weekday, shown ticked
        fields["repeat_byday"] = [repeat_form.WEEKDAY_CODES[first.weekday()]]
    return fields


def _component(session: Session, who: Viewer, form: dict[str, Any], zone: Any, before: dict[str, Any],
               choices: list[str]) -> dict[str, Any]:
    shown = {**before, **{k: v for k, v in form.items() if v is not None}}
    if form.get("repeat") is None:
        shown.update({k: before[k] for k in before if k.startswith("repeat")})
    return {**component_context(session, who, shown), "form": shown,
            "chair_room_id": row_id(str(shown["chair_room_id"])),
            "summary": _summary(form, before, zone),
            "repeat_choices": choices + (["custom"] if before["repeat"] == "custom" else [])}


def _render_meeting(request: Request, session: Session, who: Viewer, meeting: Any, form: dict[str, Any],
                    errors: list[Any], status_code: int = 200) -> HTMLResponse:
    zone = settings_of(request).zone
    before = _meeting_form(session, meeting, zone)
    return render(request, "edit_meeting.html", {
        **_component(session, who, form, zone, before, ["none", "daily", "weekly", "monthly"]),
        "meeting": {"id": meeting.id, "title": meeting.title, "recurring": bool(meeting.rrule)},
        "priorities": [{"value": str(v), "label": _(label)} for v, label in PRIORITY_LABELS.items()],
        "check_url": f"/meetings/{meeting.id}/edit/check", "errors": errors}, who=who, status_code=status_code)


def _save_meeting(request: Request, session: Session, who: Viewer, meeting: Any, form: dict[str, Any]) -> Any:
    """The series edit: ``scheduling.editing.edit_meeting`` with what the form changed."""
    changes = _series_changes(form, _meeting_form(session, meeting, settings_of(request).zone))
    return editing.edit_meeting(session, settings_of(request), who.principal, meeting, _update(changes))


@router.get("/meetings/{meeting_id}/edit", response_class=HTMLResponse)
def edit_meeting_form(request: Request, session: SessionDep, meeting_id: PathId):
    """The whole series ("Cả chuỗi"): title, description, time, technical check, chair room,
    participants (the booking component) and the repeat rule, with the live check."""
    who = booker(request, session)
    if not isinstance(who, Viewer):
        return who
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    return _render_meeting(request, session, who, meeting, {}, [])


@router.post("/meetings/{meeting_id}/edit/check")
def edit_meeting_check(request: Request, session: SessionDep, meeting_id: PathId, form: Posted):
    """Live check of the series edit (``static/booking.js``): the save run and rolled back, so the
    conflicts are exactly the save's, the meeting's own occurrences excluded (SPEC rule 6)."""
    who = viewer(request, session)
    if who is None:
        return JSONResponse({"detail": "sign in first", "code": "unauthorized"}, status_code=401)
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return JSONResponse({"ok": False, "lines": [], "error": refusal_message(exc)}, status_code=exc.status_code)
    zone = settings_of(request).zone
    summary = _summary(form, _meeting_form(session, meeting, zone), zone)
    return _check_answer(request, session, lambda: _save_meeting(request, session, who, meeting, form), summary)


@router.post("/meetings/{meeting_id}/edit", response_class=HTMLResponse)
def edit_meeting(request: Request, session: SessionDep, meeting_id: PathId, form: Posted):
    """Save through ``scheduling.editing.edit_meeting`` (exceptions and occurrence ids kept, SPEC rule 5);
    the repeat rule is validated there, as for ``PATCH /api/v1/meetings/{id}``."""
    check_csrf(request, form["csrf"])
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    zone = settings_of(request).zone
    try:
        meeting = reading.get_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    try:
        _save_meeting(request, session, who, meeting, form)
    except ConfsvcError as exc:
        session.rollback()
        errors, status = _refusal(exc, zone)
        return _render_meeting(request, session, who, reading.get_meeting(session, who.principal, meeting_id),
                               form, errors, status)
    return RedirectResponse(f"/meetings/{meeting.id}", status_code=303)


# ---------------------------------------------------------------- one occurrence, this and following, or all

def _occurrence_form(session: Session, meeting: Any, occ: Any, zone: Any) -> dict[str, Any]:
    """The occurrence as its screen shows it; the repeat fields are the following occurrences' rule
    (``series.following_rule``: the COUNT left)."""
    day, start = _local_parts(occ.start, zone)
    _day, end = _local_parts(occ.end, zone)
    found = participation.of_occurrence(session, meeting, occ)
    rule = series.following_rule(meeting, occ.recurrence_id) if meeting.rrule else None
    return {"date": day, "start_time": start, "end_time": end, "title": meeting.title,
            "description": meeting.description, "check_lead_minutes": str(meeting.check_lead_minutes),
            "chair_room_id": str(found.chair_room_id),
            "participant_room_ids": [str(r) for r in found.room_ids if r != found.chair_room_id],
            **_repeat_fields(rule, zone, i18n.local(occ.recurrence_id, zone).date())}


def _render_occurrence(request: Request, session: Session, who: Viewer, meeting: Any, occ: Any, form: dict[str, Any],
                       errors: list[Any], status_code: int = 200) -> HTMLResponse:
    zone = settings_of(request).zone
    before = _occurrence_form(session, meeting, occ, zone)
    scope = form.get("scope") if form.get("scope") in SCOPES else "this"
    return render(request, "edit_occurrence.html", {
        **_component(session, who, form, zone, before, ["none", "daily", "weekly", "monthly"]),
        "meeting": {"id": meeting.id, "title": meeting.title, "recurring": bool(meeting.rrule)},
        "occurrence": {"id": occ.id, "when": i18n.fmt_range(occ.start, occ.end, zone)},
        "scope": scope, "check_url": f"/meetings/{meeting.id}/occurrences/{occ.id}/edit/check",
        "errors": errors}, who=who, status_code=status_code)


def _save_occurrence(request: Request, session: Session, who: Viewer, meeting: Any, occ: Any,
                     form: dict[str, Any]) -> tuple[str, Any]:
    """One of the three scopes (``form["scope"]``, "this" when absent), through the service the API uses:
    ``edit_occurrence`` ("Chỉ buổi này"), ``series.split_series`` ("Buổi này và các buổi sau"),
    ``edit_meeting`` ("Cả chuỗi"; a date moved by N days moves the series' dates by N days).
    Returns ``(scope, result)``."""
    settings = settings_of(request)
    zone = settings.zone
    scope = form["scope"] if form["scope"] in SCOPES else "this"
    before = _occurrence_form(session, meeting, occ, zone)
    if scope != "this" and not meeting.rrule:
        scope = "series"
    if scope == "this":
        changes: dict[str, Any] = {}
        if (form["date"], form["start_time"], form["end_time"]) != (before["date"], before["start_time"],
                                                                    before["end_time"]):
            changes["start"], changes["end"] = _times(form)
        chair = _ids([form["chair_room_id"]])
        rooms = [r for r in _ids(form["participant_room_ids"] or []) if not chair or r != chair[0]]
        if chair and str(chair[0]) != before["chair_room_id"]:
            changes["chair_room_id"] = chair[0]
        if form["participant_room_ids"] is not None and sorted(rooms) != sorted(_ids(before["participant_room_ids"])):
            changes["chair_room_id"], changes["participant_room_ids"] = chair[0] if chair else None, rooms
        return scope, editing.edit_occurrence(session, settings, who.principal, meeting, occ,
                                                 OccurrenceUpdate(**{k: v for k, v in changes.items() if v is not None}))
    if scope == "following":
        changes = _series_changes(form, before)
        # The new series starts at the date and time shown (a moved occurrence's own, not the rule's slot).
        changes["start"], changes["end"] = _times(form)
        return scope, series.split_series(session, settings, who.principal, meeting, occ, _update(changes))
    whole = _meeting_form(session, meeting, zone)
    shift = _parse_date(form["date"], _("Date")) - _parse_date(before["date"], _("Date"))
    moved = {**form, "date": (_parse_date(whole["date"], _("Date")) + shift).strftime(DATE_FORMAT), "repeat": None}
    if (form["start_time"], form["end_time"]) == (before["start_time"], before["end_time"]) and not shift:
        moved.update(start_time=whole["start_time"], end_time=whole["end_time"])
    if form["participant_room_ids"] in (None, before["participant_room_ids"]) and \
            form["chair_room_id"] == before["chair_room_id"]:
        moved.update(chair_room_id=whole["chair_room_id"], participant_room_ids=whole["participant_room_ids"])
    return scope, editing.edit_meeting(session, settings, who.principal, meeting,
                                          _update(_series_changes(moved, whole)))


def _load_occurrence(session: Session, who: Viewer, meeting_id: int, occurrence_id: int) -> tuple[Any, Any]:
    meeting = reading.get_meeting(session, who.principal, meeting_id)
    return meeting, reading.get_occurrence(session, meeting, occurrence_id)


@router.get("/meetings/{meeting_id}/occurrences/{occurrence_id}/edit", response_class=HTMLResponse)
def edit_occurrence_form(request: Request, session: SessionDep, meeting_id: PathId, occurrence_id: PathId):
    """One occurrence (buổi họp) with the booking component and the live check, and for a series the
    scope: "Chỉ buổi này", "Buổi này và các buổi sau" (with the rule of the following ones), "Cả chuỗi"."""
    who = booker(request, session)
    if not isinstance(who, Viewer):
        return who
    try:
        meeting, occ = _load_occurrence(session, who, meeting_id, occurrence_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    return _render_occurrence(request, session, who, meeting, occ, {}, [])


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/edit/check")
def edit_occurrence_check(request: Request, session: SessionDep, meeting_id: PathId, occurrence_id: PathId,
                          form: Posted):
    """Live check of the occurrence screen in its scope: the save run and rolled back (the meeting's
    own occurrences excluded as the save excludes them)."""
    who = viewer(request, session)
    if who is None:
        return JSONResponse({"detail": "sign in first", "code": "unauthorized"}, status_code=401)
    try:
        meeting, occ = _load_occurrence(session, who, meeting_id, occurrence_id)
    except ConfsvcError as exc:
        return JSONResponse({"ok": False, "lines": [], "error": refusal_message(exc)}, status_code=exc.status_code)
    zone = settings_of(request).zone
    summary = _summary(form, _occurrence_form(session, meeting, occ, zone), zone)
    return _check_answer(request, session, lambda: _save_occurrence(request, session, who, meeting, occ, form)[1],
                         summary)


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/edit", response_class=HTMLResponse)
def edit_occurrence(request: Request, session: SessionDep, meeting_id: PathId, occurrence_id: PathId, form: Posted):
    """Save in the chosen scope (:func:`_save_occurrence`); a refusal shows the form again with what was
    typed. "This and following" goes on to the new series' page."""
    check_csrf(request, form["csrf"])
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    zone = settings_of(request).zone
    try:
        meeting, occ = _load_occurrence(session, who, meeting_id, occurrence_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    try:
        scope, result = _save_occurrence(request, session, who, meeting, occ, form)
    except ConfsvcError as exc:
        session.rollback()
        errors, status = _refusal(exc, zone)
        meeting, occ = _load_occurrence(session, who, meeting_id, occurrence_id)
        return _render_occurrence(request, session, who, meeting, occ, form, errors, status)
    if scope == "following":
        return RedirectResponse(f"/meetings/{result.meeting.id}", status_code=303)
    if scope == "series":
        return RedirectResponse(f"/meetings/{meeting.id}", status_code=303)
    return RedirectResponse(f"/meetings/{meeting.id}?occurrence={occurrence_id}", status_code=303)


# ---------------------------------------------------------------- an endpoint (admin)

ENDPOINT_FIELDS = ("room_id", "name", "vendor", "model", "protocol", "dial_address", "management_ip", "firmware",
                   "lifecycle_state")
FIELD_LABELS = {"room_id": N_("Room"), "name": N_("Name"), "vendor": N_("Vendor"), "model": N_("Model"),
                "protocol": N_("Protocol"), "dial_address": N_("Dial address"),
                "management_ip": N_("Management IP"), "firmware": N_("Firmware"), "lifecycle_state": N_("State")}


def _text(value: Any) -> str:
    """A column's value as the form shows it: enums by value, ``None`` as empty."""
    return "" if value is None else str(getattr(value, "value", value))


def _render_endpoint(request: Request, session: Session, who: Viewer, endpoint: Endpoint, form: dict[str, Any],
                     errors: list[str], status_code: int = 200) -> HTMLResponse:
    return render(request, "edit_endpoint.html", {
        "endpoint": {"id": endpoint.id, "serial": endpoint.serial, "title": f"{endpoint.vendor} {endpoint.model}"},
        "form": form, "units": _rooms_by_unit(session, who), "protocols": [p.value for p in Protocol],
        "lifecycles": [{"value": s.value, "label": _(LIFECYCLE_LABELS[s])} for s in LifecycleState],
        "labels": {k: _(v) for k, v in FIELD_LABELS.items()}, "errors": errors}, who=who, status_code=status_code)


@router.get("/inventory/endpoints/{endpoint_id}/edit", response_class=HTMLResponse)
def edit_endpoint_form(request: Request, session: SessionDep, endpoint_id: PathId):
    """Admin: an endpoint's room, names, protocol and dial address, management IP, firmware and state."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    if not who.principal.can_manage_inventory:
        return render(request, "error.html", {"title": _("You may not see this page"),
                                              "detail": _("Only administrators edit endpoints.")},
                      who=who, status_code=403)
    try:
        endpoint, _room = inventory.get_endpoint(session, who.principal, endpoint_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    form = {k: _text(getattr(endpoint, k)) for k in ENDPOINT_FIELDS}
    return _render_endpoint(request, session, who, endpoint, form, [])


@router.post("/inventory/endpoints/{endpoint_id}/edit", response_class=HTMLResponse)
def edit_endpoint(request: Request, session: SessionDep, endpoint_id: PathId, csrf: FormText = "",
                  room_id: FormText = "", name: FormText = "", vendor: FormText = "", model: FormText = "",
                  protocol: FormText = "", dial_address: FormText = "", management_ip: FormText = "",
                  firmware: FormText = "", lifecycle_state: FormText = ""):
    """Save through ``endpoints.service.update_endpoint`` (admin; the dial address is checked against
    the protocol there). Back to the inventory filtered on the endpoint's serial number."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    form = {"room_id": room_id, "name": name, "vendor": vendor, "model": model, "protocol": protocol,
            "dial_address": dial_address, "management_ip": management_ip, "firmware": firmware,
            "lifecycle_state": lifecycle_state}
    try:
        endpoint, _room = inventory.get_endpoint(session, who.principal, endpoint_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    try:
        values: dict[str, Any] = {k: v.strip() for k, v in form.items()}
        room = row_id(values["room_id"])
        if values["room_id"] and room is None:  # not a room the list offered
            raise Invalid("a room id is a number from the list", code="invalid_room_id")
        values["room_id"] = room
        values["management_ip"] = values["management_ip"] or None
        try:
            data = endpoint_schemas.EndpointUpdate(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            raise Invalid(f"{_(FIELD_LABELS.get(field, field)) if field in FIELD_LABELS else field}: {first['msg']}",
                          code="invalid_form") from None
        endpoint, _room = inventory.update_endpoint(session, who.principal, endpoint, data)
    except ConfsvcError as exc:
        session.rollback()
        return _render_endpoint(request, session, who, session.get(Endpoint, endpoint_id), form, [refusal_message(exc)],
                                exc.status_code if exc.status_code in (403, 404) else 422)
    return RedirectResponse(f"/inventory?q={endpoint.serial}", status_code=303)


# ---------------------------------------------------------------- a room or a unit (admin)

ROOM_FIELDS = {"name": N_("Name"), "seats": N_("Seats"), "location": N_("Location"),
               "contact_name": N_("Contact person"), "contact_phone": N_("Phone"), "contact_email": N_("E-mail")}
UNIT_FIELDS = {"name": N_("Name"), "division_type": N_("Type (xã, phường, tỉnh …)")}


def _render_simple(request: Request, who: Viewer, *, kind: str, title: str, subtitle: str, action: str,
                   labels: dict[str, str], form: dict[str, str], errors: list[str],
                   status_code: int = 200, history: list[str] | None = None) -> HTMLResponse:
    return render(request, "edit_simple.html", {
        "kind": kind, "title": title, "subtitle": subtitle, "action": action, "errors": errors,
        "history": history or [],
        "fields": [{"name": k, "label": _(v), "value": form.get(k, ""),
                    "type": "number" if k == "seats" else "email" if k == "contact_email" else "text"}
                   for k, v in labels.items()]}, who=who, status_code=status_code)


def _admin_only(request: Request, session: Session) -> Viewer | HTMLResponse:
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    if not who.principal.can_manage_inventory:
        return render(request, "error.html", {"title": _("You may not see this page"),
                                              "detail": _("Only administrators edit rooms and units.")},
                      who=who, status_code=403)
    return who


def _validated(model: Any, values: dict[str, Any], labels: dict[str, str]) -> Any:
    """``model(**values)``, or Invalid naming the first bad field by its label."""
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise Invalid(f"{_(labels[field]) if field in labels else field}: {first['msg']}", code="invalid_form") from None


@dataclass(frozen=True)
class _SimpleEdit:
    """One admin edit screen over an inventory service: how to load, read the form, save, go back."""

    path: str                                   # "rooms" or "units": /inventory/<path>/{id}/edit
    title: str                                  # N_() message
    labels: dict[str, str]                      # field -> N_() label, in form order
    load: Callable[[Session, Any, int], Any]    # (session, principal, id) -> row; raises NotFound/Forbidden
    subtitle: Callable[[Any], str]
    values: Callable[[dict[str, str]], dict[str, Any]]  # form text -> schema values; raises Invalid
    schema: type
    save: Callable[[Session, Any, Any, Any], Any]       # (session, principal, row, data) -> row
    back: Callable[[Any], str]                  # row -> where to go after saving


def _room_values(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {k: (v.strip() or None) for k, v in form.items()}
    if values["seats"] is not None and natural(values["seats"]) is None:
        raise Invalid(_("Seats: a whole number."), code="invalid_form")
    return values


ROOM_EDIT = _SimpleEdit("rooms", N_("Edit the room"), ROOM_FIELDS, inventory.get_room, lambda r: r.name,
                        _room_values, endpoint_schemas.RoomUpdate, inventory.update_room,
                        lambda r: f"/inventory?unit_id={r.unit_id}")
UNIT_EDIT = _SimpleEdit("units", N_("Edit the unit"), UNIT_FIELDS, inventory.get_unit,
                        lambda u: f"{u.name} · {u.code}", lambda form: {k: v.strip() for k, v in form.items()},
                        endpoint_schemas.UnitUpdate, inventory.update_unit, lambda u: f"/inventory?unit_id={u.id}")


def _simple_screen(request: Request, who: Viewer, spec: _SimpleEdit, row: Any, form: dict[str, str],
                   errors: list[str], status_code: int = 200, session: Session | None = None) -> HTMLResponse:
    history = unit_history_lines(session, row.id) if session is not None and spec is UNIT_EDIT else None
    return _render_simple(request, who, kind=spec.path, title=_(spec.title), subtitle=spec.subtitle(row),
                          action=f"/inventory/{spec.path}/{row.id}/edit", labels=spec.labels, form=form,
                          errors=errors, status_code=status_code, history=history)


def unit_history_lines(session: Session, unit_id: int) -> list[str]:
    """A unit's validity, successor and former names in the page's language (issue 15), oldest first."""
    lifetime = unit_history.lifetimes(session, [unit_id]).get(unit_id)
    if lifetime is None:
        return []
    lines = [_("Called %(name)s until %(date)s") % {"name": name, "date": until.strftime("%d/%m/%Y")}
             for name, until in lifetime.former_names]
    if lifetime.valid_from is not None:
        lines.append(_("In force from %(date)s") % {"date": lifetime.valid_from.strftime("%d/%m/%Y")})
    if lifetime.valid_to is not None and lifetime.successor_name:
        lines.append(_("Merged into %(name)s on %(date)s") % {"name": lifetime.successor_name,
                                                             "date": lifetime.valid_to.strftime("%d/%m/%Y")})
    elif lifetime.valid_to is not None:
        lines.append(_("No longer in force from %(date)s") % {"date": lifetime.valid_to.strftime("%d/%m/%Y")})
    return lines


def _show_simple(request: Request, session: Session, spec: _SimpleEdit, row_id: int) -> HTMLResponse:
    who = _admin_only(request, session)
    if not isinstance(who, Viewer):
        return who
    try:
        row = spec.load(session, who.principal, row_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    return _simple_screen(request, who, spec, row, {k: _text(getattr(row, k)) for k in spec.labels}, [],
                          session=session)


def _save_simple(request: Request, session: Session, spec: _SimpleEdit, row_id: int, csrf: str,
                 form: dict[str, str]) -> HTMLResponse:
    """Save through the spec's service; a refusal shows the form again with what was typed
    (409 for a duplicate name, 422 for bad input, 403/404 as the service says)."""
    check_csrf(request, csrf)
    who = _admin_only(request, session)
    if not isinstance(who, Viewer):
        return who
    try:
        row = spec.load(session, who.principal, row_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    try:
        row = spec.save(session, who.principal, row, _validated(spec.schema, spec.values(form), spec.labels))
    except ConfsvcError as exc:
        session.rollback()
        return _simple_screen(request, who, spec, spec.load(session, who.principal, row_id), form,
                              [refusal_message(exc)], exc.status_code if exc.status_code in (403, 404, 409) else 422)
    return RedirectResponse(spec.back(row), status_code=303)


@router.get("/inventory/rooms/{room_id}/edit", response_class=HTMLResponse)
def edit_room_form(request: Request, session: SessionDep, room_id: PathId):
    """Admin: a room's name, seats, location and contact (``endpoints.service.update_room``)."""
    return _show_simple(request, session, ROOM_EDIT, room_id)


@router.post("/inventory/rooms/{room_id}/edit", response_class=HTMLResponse)
def edit_room(request: Request, session: SessionDep, room_id: PathId, csrf: FormText = "", name: FormText = "",
              seats: FormText = "", location: FormText = "", contact_name: FormText = "",
              contact_phone: FormText = "", contact_email: FormText = ""):
    """Save through ``update_room``; a duplicate name in the unit or a bad e-mail shows the form again."""
    return _save_simple(request, session, ROOM_EDIT, room_id, csrf, {
        "name": name, "seats": seats, "location": location, "contact_name": contact_name,
        "contact_phone": contact_phone, "contact_email": contact_email})


@router.get("/inventory/units/{unit_id}/edit", response_class=HTMLResponse)
def edit_unit_form(request: Request, session: SessionDep, unit_id: PathId):
    """Admin: a unit's name and type (``endpoints.service.update_unit``); its official code stays."""
    return _show_simple(request, session, UNIT_EDIT, unit_id)


@router.post("/inventory/units/{unit_id}/edit", response_class=HTMLResponse)
def edit_unit(request: Request, session: SessionDep, unit_id: PathId, csrf: FormText = "", name: FormText = "",
              division_type: FormText = ""):
    """Save through ``update_unit``."""
    return _save_simple(request, session, UNIT_EDIT, unit_id, csrf, {"name": name, "division_type": division_type})
