"""System log page (nhật ký hệ thống): the audit trail with filters (unit, person, meeting, period,
action), paged, and links to the CSV/XLSX exports of the same filters (``/api/v1/audit.csv|.xlsx``).
Admin and secretariat (``scheduling.audit_log`` decides; others get its 403 as a page)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from confsvc.db import SessionDep, row_id
from confsvc.endpoints import service as inventory
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import audit_log
from confsvc.web import i18n
from confsvc.web.common import error_page, login_redirect, render, settings_of, viewer
from confsvc.web.i18n import N_, _

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
ACTION_LABELS = {"meeting.created": N_("Meeting booked"), "meeting.updated": N_("Meeting changed"),
                 "meeting.cancelled": N_("Meeting cancelled"), "occurrence.updated": N_("Occurrence changed"),
                 "occurrence.cancelled": N_("Occurrence cancelled"), "series.extended": N_("Series extended"),
                 "maintenance.created": N_("Maintenance booked"), "request.submitted": N_("Meeting requested"),
                 "request.approved": N_("Request approved"), "request.rejected": N_("Request rejected"),
                 "request.expired": N_("Request expired"), "meeting.split": N_("Series split"),
                 "occurrence.added": N_("Occurrence added"), "occurrence.restored": N_("Occurrence restored"),
                 "block.created": N_("Day blocked"), "block.deleted": N_("Day block removed"),
                 "unit.merged": N_("Units merged"), "unit.renamed": N_("Unit renamed"),
                 "units.list_applied": N_("Official unit list applied"), "user.updated": N_("User changed"),
                 "occurrence.displaced": N_("Occurrence displaced by a higher priority")}
#: The audit details' keys in words (an unlisted key shows as written).
DETAIL_LABELS = {"occurrences": N_("occurrences"), "skipped": N_("skipped"), "start": N_("start"), "end": N_("end"),
                 "fields": N_("fields changed"), "until": N_("until"), "reason": N_("reason"),
                 "occurrence_id": N_("occurrence"), "new_meeting_id": N_("new meeting"),
                 "expires_at": N_("expires at"), "effective": N_("effective from"),
                 "first_day": N_("first day"), "last_day": N_("last day"), "endpoint_id": N_("endpoint"),
                 "resource_kind": N_("resource"), "resource_id": N_("resource id"),
                 "by_meeting_id": N_("displaced by meeting"), "by_priority": N_("its priority"),
                 "priority": N_("priority"), "alternative_start": N_("proposed start"),
                 "alternative_end": N_("proposed end"), "rooms": N_("sites"),
                 # the names in ``fields`` (what an edit changed)
                 "title": N_("title"), "description": N_("description"), "chair_room_id": N_("chair room"),
                 "participant_room_ids": N_("participating sites"), "participant_endpoint_ids": N_("participating sites"),
                 "check_lead_minutes": N_("technical check"), "rrule": N_("repeat rule"), "exdates": N_("excluded dates"),
                 "status": N_("status"), "confidential": N_("confidential"), "bridge_id": N_("MCU"),
                 # a user's change (user.updated)
                 "user": N_("user"), "role": N_("role"), "active": N_("active"), "password": N_("password"),
                 "province_id": N_("province"), "province": N_("province")}
DATE_FORMAT = "%d/%m/%Y"
Text = Annotated[str, Query(max_length=20)]


def _label(action: str) -> str:
    return _(ACTION_LABELS[action]) if action in ACTION_LABELS else action


def _details_text(details: dict[str, Any]) -> str:
    """``key: value, …`` with the keys in the reader's language (``DETAIL_LABELS``); lists joined by commas."""
    def word(key: Any) -> str:
        return _(DETAIL_LABELS[key]) if key in DETAIL_LABELS else str(key)

    def shown(key: str, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(word(v) if key == "fields" else str(v) for v in value)
        return str(value)
    return "; ".join(f"{word(k)}: {shown(k, v) or '–'}" for k, v in sorted(details.items()))


def _int(value: str) -> int | None:
    return row_id(value.strip())


def _day(value: str, settings_zone: Any) -> datetime | None:
    if not value.strip():
        return None
    try:
        day = datetime.strptime(value.strip(), DATE_FORMAT).date()
    except ValueError:
        raise Invalid(_("Dates are written dd/mm/yyyy."), code="invalid_date") from None
    return datetime.combine(day, time(), tzinfo=settings_zone)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, unit_id: Text = "", user_id: Text = "",
               meeting_id: Text = "", action: Annotated[str, Query(max_length=60)] = "",
               from_: Annotated[str, Query(alias="from", max_length=20)] = "", to: Text = "", page: Text = "1"):
    """``from``/``to`` are local dates dd/mm/yyyy, both included."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    zone = settings_of(request).zone
    number = _int(page) or 1
    form = {"unit_id": _int(unit_id), "user_id": _int(user_id), "meeting_id": meeting_id.strip(), "action": action,
            "from": from_, "to": to}
    error = None
    rows: list[dict[str, Any]] = []
    total = 0
    start = last = None
    try:
        start, last = _day(from_, zone), _day(to, zone)
        filters: dict[str, Any] = {
            "unit_id": form["unit_id"], "user_id": form["user_id"], "meeting_id": _int(meeting_id),
            "action": action or None, "from_": start, "to": last + timedelta(days=1) if last else None}
        rows, total = audit_log.list_entries(session, who.principal, **filters, limit=PAGE_SIZE,
                                             offset=(number - 1) * PAGE_SIZE)
    except Invalid as exc:
        error = exc.detail if exc.code == "invalid_date" else _("The end of the period must be after its start.")
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    api_query = {k: v for k, v in {
        "unit_id": form["unit_id"], "user_id": form["user_id"], "meeting_id": _int(meeting_id),
        "action": action or None, "from": start.isoformat() if start else None,
        "to": (last + timedelta(days=1)).isoformat() if last else None}.items() if v}
    page_query = {k: v for k, v in {"unit_id": unit_id, "user_id": user_id, "meeting_id": meeting_id,
                                    "action": action, "from": from_, "to": to}.items() if v}
    units, _total = inventory.list_units(session, who.principal, limit=10000)
    entries = [{**r, "when": i18n.fmt_datetime(r["at"], zone), "action_text": _label(r["action"]),
                "who": r["user_name"] or _("System (automatic)"),
                "details_text": _details_text(r["details"])} for r in rows]
    pages = max(1, -(-total // PAGE_SIZE))
    return render(request, "audit.html", {
        "form": form, "entries": entries, "total": total, "error": error, "page": number, "pages": pages,
        "prev_href": f"/audit?{urlencode({**page_query, 'page': number - 1})}" if number > 1 else None,
        "next_href": f"/audit?{urlencode({**page_query, 'page': number + 1})}" if number < pages else None,
        "csv_href": f"/api/v1/audit.csv?{urlencode(api_query)}",
        "xlsx_href": f"/api/v1/audit.xlsx?{urlencode(api_query)}",
        "units": [{"id": u.id, "name": u.name} for u in units],
        "people": audit_log.people(session),
        "actions": [(a, _label(a)) for a, _l in audit_log.actions(session)],
    }, who=who)

