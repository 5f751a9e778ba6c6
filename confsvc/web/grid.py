"""The planner page ``/planner``: rooms × time (the scheduling grid) with bridge port load and free
slots beside it; a click on a free time opens the booking form with that time and the chosen rooms.

The page carries only the filters and the words; ``static/grid.js`` reads
``GET /api/v1/availability/grid`` and ``GET /api/v1/availability`` with the session cookie.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from confsvc.db import SessionDep
from confsvc.endpoints import service as inventory
from confsvc.scheduling import site_groups
from confsvc.web import i18n
from confsvc.web.common import login_redirect, render, settings_of, viewer
from confsvc.web.i18n import gettext as _
from confsvc.web.meetings import filter_id, shown_days

router = APIRouter()
#: Site groups offered in the planner's filter (by name).
GROUPS_LISTED = 200


def _words() -> dict[str, str]:
    """Every word the script shows, in the request's language."""
    return {
        "loading": _("Loading…"), "failed": _("The schedule could not be loaded."),
        "ports": _("MCU ports"), "peak": _("peak"), "of": _("of"),
        "check": _("technical check"), "maintenance": _("maintenance"), "blocked": _("blocked all day"), "tentative": _("tentative"),
        "rooms": _("rooms"), "free_slots": _("Free slots"), "no_slots": _("No free slot in these days."),
        "choose_rooms": _("Tick rooms to see their common free slots."), "book": _("Book a meeting"),
        "select_all": _("Select all"), "clear": _("Clear"), "meeting": _("Meeting"),
        "book_here": _("Click a free time to book it with the ticked rooms."),
        "weekdays": json.dumps([i18n.weekday(date(2024, 1, 1) + timedelta(days=i)) for i in range(7)]),
    }


@router.get("/planner", response_class=HTMLResponse)
def planner(request: Request, session: SessionDep,
            day: Annotated[str | None, Query(max_length=10, alias="date")] = None,
            view: Annotated[str, Query(pattern="^(day|week)$")] = "day",
            unit: Annotated[str, Query(alias="unit_id", max_length=20)] = "",
            group: Annotated[str, Query(alias="site_group_id", max_length=20)] = "",
            duration: Annotated[int, Query(ge=15, le=720)] = 120):
    """Rooms × time for one local day or week (Monday first) of one unit and its sub-units (default:
    the first unit the person may see with rooms: the province's for the secretariat), or of one site
    group the person may see (``site_group_id``: its rooms within their units; the unit then aside)."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    anchor, first = shown_days(day, view, settings_of(request).zone)
    units, _total = inventory.list_units(session, who.principal, limit=10000)
    unit_id = filter_id(unit)
    if unit_id is None and units:
        unit_id = units[0].id
    groups, _count = site_groups.list_groups(session, who.principal, limit=GROUPS_LISTED)
    group_id = filter_id(group)
    if group_id not in {g.id for g in groups}:
        group_id = None
    return render(request, "planner.html", {
        "date": anchor.isoformat(), "first": first.isoformat(), "days": 7 if view == "week" else 1,
        "view": view, "duration": duration, "unit_id": unit_id, "group_id": group_id,
        "units": [{"id": u.id, "name": u.name} for u in units],
        "groups": [{"id": g.id, "name": g.name} for g in groups],
        "title": (f"{i18n.fmt_date(first)} – {i18n.fmt_date(first + timedelta(days=6))}" if view == "week"
                  else i18n.fmt_day(first)),
        "words": _words(), "can_book": who.can_book,
    }, who=who)
