"""Inventory pages (danh mục điểm cầu): endpoints with search (with or without diacritics) and
filters, the CSV export link, and the CSV import (admin) that lists each bad row's line and reason.

Listing, export and import are the inventory service's (``endpoints.service``, ``endpoints.csvio``),
the same calls as ``GET /api/v1/endpoints``, ``/export.csv`` and ``POST /import``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse

from confsvc.db import SessionDep
from confsvc.endpoints import csvio, unit_history
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import EndpointStatus, LifecycleState, Protocol
from confsvc.errors import ConfsvcError
from confsvc.web.common import Viewer, check_csrf, login_redirect, render, viewer
from confsvc.web.i18n import N_, _
from confsvc.web.meetings import STATUS_LABELS, filter_id

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100
LIFECYCLE_LABELS = {LifecycleState.active: N_("Active"), LifecycleState.maintenance: N_("Maintenance"),
                    LifecycleState.retired: N_("Retired")}
PROTOCOL_LABELS = {Protocol.sip: "SIP", Protocol.h323: "H.323"}
#: CSV import faults (``endpoints.csvio`` codes) in the page's language; %(…)s are the fault's values.
CSV_FAULTS = {
    "missing_columns": N_("missing columns: %(columns)s"),
    "unknown_columns": N_("unknown columns: %(columns)s"),
    "unreadable": N_("the file cannot be read as CSV from this line on"),
    "too_many_rows": N_("more than %(limit)s rows"),
    "too_many_fields": N_("more values than columns"),
    "not_utf8": N_("the file is not UTF-8: save it as “CSV UTF-8”"),
    "empty_required": N_("required columns are empty: %(columns)s"),
    "unknown_unit_code": N_("unit code %(value)s does not exist"),
    "bad_protocol": N_("protocol %(value)s is neither sip nor h323"),
    "bad_lifecycle": N_("state %(value)s is not active, maintenance or retired"),
    "too_long": N_("column %(column)s is longer than %(limit)s characters"),
    "bad_dial_address": N_("dial address %(value)s is not valid for %(protocol)s"),
    "bad_ip": N_("management IP %(value)s is not an IP address"),
    "repeated_serial": N_("serial number %(value)s repeats line %(other_line)s"),
    "unit_merged": N_("unit %(value)s has been merged into %(successor)s"),
}


def csv_reason(error: dict[str, Any]) -> str:
    """Every fault of an import error row in the page's language, "; "-joined (an unknown code keeps the
    service's reason)."""
    texts = []
    for fault in error.get("faults") or [{"code": "", "reason": error.get("reason", "")}]:
        if fault.get("code") not in CSV_FAULTS:
            texts.append(str(fault.get("reason", "")))
            continue
        values = {k: (", ".join(v) if isinstance(v, list) else ("SIP" if v == "sip" else "H.323" if v == "h323" else v))
                  for k, v in fault.items()}
        texts.append(_(CSV_FAULTS[fault["code"]]) % values)
    return "; ".join(texts)


def _unit_label(name: str, lifetime: unit_history.Lifetime | None) -> str:
    """A unit in the filter: a merged one says into which unit (issue 15)."""
    if lifetime is None or lifetime.valid_to is None:
        return name
    if lifetime.successor_name:
        return _("%(name)s (merged into %(successor)s)") % {"name": name, "successor": lifetime.successor_name}
    return _("%(name)s (no longer in force)") % {"name": name}


def _enum(cls: Any, value: str | None) -> Any:
    try:
        return cls(value) if value else None
    except ValueError:
        return None


def _page(request: Request, session: Any, who: Viewer, *, unit_id: int | None, q: str, status: str,
          lifecycle: str, protocol: str, page: int, import_result: dict[str, Any] | None = None,
          status_code: int = 200):
    units, unit_total = inventory.list_units(session, who.principal, limit=10000)
    endpoints, total = inventory.list_endpoints(
        session, who.principal, unit_id=unit_id, q=q or None, status=_enum(EndpointStatus, status),
        lifecycle_state=_enum(LifecycleState, lifecycle), protocol=_enum(Protocol, protocol),
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    _rooms, room_total = inventory.list_rooms(session, who.principal, unit_id=unit_id, limit=1)
    unit_names = {u.id: u.name for u in units}
    lifetimes = unit_history.lifetimes(session, [i for i in unit_names if i is not None])
    rows = [{"id": e.id, "unit": unit_names.get(room.unit_id, ""), "unit_id": room.unit_id, "room": room.name,
             "room_id": room.id, "vendor": e.vendor,
             "model": e.model,
             "protocol": PROTOCOL_LABELS[e.protocol], "dial_address": e.dial_address, "serial": e.serial,
             "status": _(STATUS_LABELS[e.status]), "status_key": e.status.value,
             "lifecycle": _(LIFECYCLE_LABELS[e.lifecycle_state]), "lifecycle_key": e.lifecycle_state.value,
             "contact": room.contact_name or "", "phone": room.contact_phone or ""}
            for e, room in endpoints]
    filters = {"unit_id": unit_id or "", "q": q, "status": status, "lifecycle": lifecycle, "protocol": protocol}
    query = {k: v for k, v in filters.items() if v}
    return render(request, "inventory.html", {
        "units": [{"id": u.id, "name": _unit_label(u.name, lifetimes.get(u.id or 0))} for u in units],
        "unit_total": unit_total, "room_total": room_total, "endpoint_total": total, "rows": rows,
        "filters": filters, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
        "page_link": lambda n: "/inventory?" + urlencode({**query, "page": n}),
        "statuses": [{"key": s.value, "label": _(label)} for s, label in STATUS_LABELS.items()],
        "lifecycles": [{"key": s.value, "label": _(label)} for s, label in LIFECYCLE_LABELS.items()],
        "protocols": [{"key": p.value, "label": label} for p, label in PROTOCOL_LABELS.items()],
        "export_href": "/api/v1/endpoints/export.csv" + (f"?unit_id={unit_id}" if unit_id else ""),
        "can_import": who.principal.can_manage_inventory, "import_result": import_result,
    }, who=who, status_code=status_code)


@router.get("/inventory", response_class=HTMLResponse)
def inventory_page(request: Request, session: SessionDep,
                   unit: Annotated[str, Query(alias="unit_id", max_length=20)] = "",
                   q: Annotated[str, Query(max_length=100)] = "", status: Annotated[str, Query(max_length=20)] = "",
                   lifecycle: Annotated[str, Query(max_length=20)] = "",
                   protocol: Annotated[str, Query(max_length=10)] = "", page: Annotated[int, Query(ge=1)] = 1):
    """Endpoints of the caller's scope; ``q`` finds "Việt Trì" from "viet tri" too; ``unit_id`` empty
    (the filter's "all") means every unit."""
    unit_id = filter_id(unit)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    return _page(request, session, who, unit_id=unit_id, q=q, status=status, lifecycle=lifecycle,
                 protocol=protocol, page=page)


@router.post("/inventory/import", response_class=HTMLResponse)
def import_csv(request: Request, session: SessionDep, file: UploadFile, csrf: Annotated[str, Form()] = "",
               dry_run: Annotated[bool, Form()] = False):
    """Admin: import endpoints from CSV; all or nothing, every bad row listed with its line and reason."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        result = csvio.import_endpoints(session, who.principal, file.file.read(), dry_run=dry_run)
    except ConfsvcError as exc:
        session.rollback()
        errors = [{"line": e["line"], "reason": csv_reason(e)} for e in exc.extra.get("errors", [])]
        summary = (_("%(n)s invalid rows; nothing was imported.") % {"n": len(errors)} if errors
                   else _("The file was not imported."))
        return _page(request, session, who, unit_id=None, q="", status="", lifecycle="", protocol="", page=1,
                     import_result={"ok": False, "summary": summary, "errors": errors},
                     status_code=exc.status_code)
    summary = _("Imported: %(created)s new, %(updated)s updated, %(unchanged)s unchanged, "
                "%(rooms)s new rooms.") % {"created": result.created, "updated": result.updated,
                                           "unchanged": result.unchanged, "rooms": result.rooms_created}
    if result.dry_run:
        summary = _("Checked: every row is valid; nothing was written.")
    return _page(request, session, who, unit_id=None, q="", status="", lifecycle="", protocol="", page=1,
                 import_result={"ok": True, "summary": summary, "errors": []})
