"""A national meeting's sites, province by province, on the meeting page (issue 14 "National meetings").

The panel (``templates/_province_sites.html``, included by ``meeting.html``) shows what
``scheduling.province_sites.province_sites`` answers ``GET /api/v1/meetings/{id}/province-sites``: to a
province's admin or secretariat its own province's sites (with the MCU each joins), its busy rooms with
what takes them and its free rooms, and — until the meeting's ``sites_deadline`` — a form to add free
rooms and a button to remove each own site (``POST /meetings/{id}/province-sites/add`` and
``…/remove``, the same service calls as ``POST``/``DELETE /api/v1/meetings/{id}/sites``); to the national
office each province's counts only. A refusal renders the meeting page with it in the panel, conflicts
as the booking form shows them (``web.booking.conflict_messages``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from confsvc.config import Settings
from confsvc.db import PathId, SessionDep, row_id
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import province_sites
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Meeting
from confsvc.users.principal import CHANGE_PROVINCE_SITES
from confsvc.web import i18n
from confsvc.web.common import Viewer, check_csrf, error_page, login_redirect, render, settings_of, viewer
from confsvc.web.i18n import N_, _
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)

REFUSALS = {
    "sites_deadline_passed": N_("The deadline for the provinces' sites passed at %(deadline)s: ask the national "
                                "office to change the sites."),
    "forbidden_province_site": N_("A province changes only its own sites: this room is in another province."),
    "sites_not_open": N_("This meeting is not open to the provinces' sites: the national office changes them."),
    "no_active_endpoint": N_("A chosen room has no active endpoint."),
    "site_not_found": N_("The room is not a site of this meeting."),
    "chair_room_site": N_("The chair room cannot be removed."),
}


def _taken_by(conflicts: list[Any], zone: Any) -> list[dict[str, Any]]:
    """What takes a busy room, one entry per other meeting (linked), maintenance window or day block."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in conflicts:
        if c.meeting_id is not None:
            when = i18n.fmt_range(c.other_start, c.other_end, zone) if c.other_start and c.other_end else ""
            out.setdefault(("meeting", c.occurrence_id), {
                "text": f"«{c.meeting_title or _('Meeting')}» ({when})" if when else f"«{c.meeting_title}»",
                "href": f"/meetings/{c.meeting_id}"})
        elif c.maintenance_id is not None:
            out.setdefault(("maintenance", c.maintenance_id), {"text": _("Maintenance"), "href": None})
        else:
            out.setdefault(("block", c.block_id), {"text": _("Blocked for whole days"), "href": None})
    return list(out.values())


def panel(session: Session, settings: Settings, who: Viewer, meeting: Meeting) -> dict[str, Any] | None:
    """The panel's data, or None when it has nothing to show: the caller is not an admin or secretariat;
    the meeting is not open to the provinces (no ``sites_deadline``) and, for a province, not across
    provinces either. (The national office's counts read every room of the country: only for a meeting
    open to the provinces, not on every cascaded meeting's page.)"""
    if not who.principal.can(CHANGE_PROVINCE_SITES):
        return None
    if meeting.sites_deadline is None and (who.principal.national
                                           or not province_sites.across_provinces(session, meeting)):
        return None
    data = province_sites.province_sites(session, settings, who.principal, meeting)
    zone = settings.zone
    own = data["own"]
    if own is not None:
        own = {**own, "busy": [{**b, "taken_by": _taken_by(b["conflicts"], zone)} for b in own["busy"]]}
    return {"deadline": i18n.fmt_datetime(data["sites_deadline"], zone) if data["sites_deadline"] else "",
            "can_change": data["can_change"] and own is not None, "provinces": data["provinces"], "own": own,
            "errors": []}


def _refusal(exc: ConfsvcError, meeting: Meeting, zone: Any) -> list[Any]:
    from confsvc.web.booking import conflict_messages  # booking → meetings → this module

    if isinstance(exc, BookingConflict):
        return conflict_messages(exc.conflicts, zone, exc.provinces)
    if exc.code in REFUSALS:
        deadline = i18n.fmt_datetime(meeting.sites_deadline, zone) if meeting.sites_deadline else ""
        return [_(REFUSALS[exc.code]) % {"deadline": deadline} if exc.code == "sites_deadline_passed"
                else _(REFUSALS[exc.code])]
    return [refusal_message(exc)]


def _change(request: Request, session: Session, meeting_id: int, csrf: str, run: Any) -> Any:
    """Run the change, then back to the meeting page (303); a refusal renders the page with it in the
    panel (409 conflicts, 403, 404, else 422), everything rolled back."""
    from confsvc.web import meetings  # the page this panel is part of (it imports this module)

    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    settings = settings_of(request)
    try:
        meeting = province_sites.find_meeting(session, who.principal, meeting_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    try:
        run(settings, who, meeting)
    except ConfsvcError as exc:
        session.rollback()
        lines = _refusal(exc, meeting, settings.zone)
        context = meetings.meeting_context(session, who, meeting, settings, None)
        sites = context.get("province_sites") or {"deadline": "", "can_change": False, "provinces": [], "own": None}
        return render(request, "meeting.html", {**context, "province_sites": {**sites, "errors": lines}}, who=who,
                      status_code=exc.status_code if exc.status_code in (403, 404, 409) else 422)
    return RedirectResponse(f"/meetings/{meeting_id}#province-sites", status_code=303)


def _room(raw: str) -> int:
    """A posted room id (``db.row_id``). Raises Invalid ``invalid_room_id`` (the page's message, a 422)
    for anything else: a room the list did not offer."""
    room = row_id(raw)
    if room is None:
        raise Invalid("a room id is a number from the list", code="invalid_room_id")
    return room


@router.post("/meetings/{meeting_id}/province-sites/add")
def add(request: Request, session: SessionDep, meeting_id: PathId, csrf: Annotated[str, Form()] = "",
        room_ids: Annotated[list[str], Form(max_length=5000)] = []):  # noqa: B006 (FastAPI form list)
    """Add the checked free rooms as sites (``scheduling.province_sites.add_sites``); back to the page.
    A value that is not a room id renders the page with the message (``invalid_room_id``, 422)."""
    return _change(request, session, meeting_id, csrf, lambda settings, who, meeting: province_sites.add_sites(
        session, settings, who.principal, meeting, [_room(r) for r in room_ids]))


@router.post("/meetings/{meeting_id}/province-sites/remove")
def remove(request: Request, session: SessionDep, meeting_id: PathId, csrf: Annotated[str, Form()] = "",
           room_id: Annotated[str, Form(max_length=20)] = ""):
    """Remove one own site (``scheduling.province_sites.remove_site``); back to the page. A value that
    is not a room id renders the page with the message (``invalid_room_id``, 422)."""
    return _change(request, session, meeting_id, csrf, lambda settings, who, meeting: province_sites.remove_site(
        session, settings, who.principal, meeting, _room(room_id)))
