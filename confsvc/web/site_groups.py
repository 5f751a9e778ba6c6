"""Site groups page (nhóm điểm cầu): the groups a user sees, a form to save a new one, and per group
a form to change or delete it. Permissions are ``scheduling.site_groups``'s (same service as the API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from confsvc.db import PathId, SessionDep, row_id
from confsvc.endpoints import service as inventory
from confsvc.errors import ConfsvcError, Invalid
from confsvc.scheduling import site_groups
from confsvc.scheduling.site_group_models import SiteGroupVisibility
from confsvc.web.common import Viewer, check_csrf, error_page, login_redirect, render, viewer
from confsvc.web.i18n import N_, _
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)
VISIBILITY_LABELS = {SiteGroupVisibility.private: N_("Only me"),
                     SiteGroupVisibility.units: N_("Users of my units"),
                     SiteGroupVisibility.province: N_("The whole province")}
MAX_LISTED = 1000
REFUSALS = {"site_group_name_taken": N_("You already have a site group with this name."),
            "not_group_owner": N_("Only the group's owner or an administrator may change it."),
            "duplicate_room": N_("A room is listed twice."),
            "invalid_room_id": N_("A chosen room does not exist.")}


def _refusal(exc: ConfsvcError) -> str:
    return _(REFUSALS[exc.code]) if exc.code in REFUSALS else refusal_message(exc)


def _invalid_form(_exc: ValidationError) -> list[str]:
    return [_("Give the group a name (at most 200 characters), a description of at most 1000 characters "
              "and a visibility.")]


def picker_options(session: Session, who: Viewer) -> list[dict[str, Any]]:
    """The booking page's group picker: ``[{"id", "name", "room_ids"}]`` of the groups ``who`` sees."""
    groups, _total = site_groups.list_groups(session, who.principal, limit=MAX_LISTED)
    return [{"id": g["id"], "name": g["name"], "room_ids": g["room_ids"]}
            for g in site_groups.public(session, who.principal, groups)]


def _rooms(session: Session, who: Viewer) -> list[dict[str, Any]]:
    units, _total = inventory.list_units(session, who.principal, limit=10000)
    rooms, _total = inventory.list_rooms(session, who.principal, limit=100000)
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for room in rooms:
        by_unit.setdefault(room.unit_id, []).append({"id": room.id, "name": room.name})
    return [{"name": u.name, "rooms": by_unit[u.id]} for u in units if u.id in by_unit]


def _page(request: Request, session: Session, who: Viewer, *, editing: dict[str, Any] | None = None,
          form: dict[str, Any] | None = None, errors: list[str] | None = None, status_code: int = 200):
    groups, total = site_groups.list_groups(session, who.principal, limit=MAX_LISTED)
    rows = site_groups.public(session, who.principal, groups)
    for row in rows:
        row["visibility_label"] = _(VISIBILITY_LABELS[row["visibility"]])
    form = form or ({"name": editing["name"], "description": editing["description"],
                     "visibility": editing["visibility"].value, "room_ids": editing["room_ids"]} if editing
                    else {"name": "", "description": "", "visibility": "private", "room_ids": []})
    return render(request, "site_groups.html", {
        "groups": rows, "total": total, "editing": editing, "form": form, "errors": errors or [],
        "units": _rooms(session, who), "visibilities": [(v.value, _(label)) for v, label in VISIBILITY_LABELS.items()],
        "can_create": who.principal.can_manage_site_groups}, who=who, status_code=status_code)


def _who(request: Request, session: Session) -> Viewer | None:
    return viewer(request, session)


@router.get("/site-groups", response_class=HTMLResponse)
def site_groups_page(request: Request, session: SessionDep):
    who = _who(request, session)
    if who is None:
        return login_redirect(request)
    return _page(request, session, who)


@router.get("/site-groups/{group_id}", response_class=HTMLResponse)
def site_group_page(request: Request, session: SessionDep, group_id: PathId):
    who = _who(request, session)
    if who is None:
        return login_redirect(request)
    try:
        group = site_groups.get_group(session, who.principal, group_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)
    return _page(request, session, who, editing=site_groups.public(session, who.principal, [group])[0])


FormText = Annotated[str, Form(max_length=2000)]
RoomIdsForm = Annotated[list[str], Form(max_length=site_groups.MAX_ROOMS)]


def _parsed(name: str, description: str, visibility: str, room_ids: list[str]) -> dict[str, Any]:
    rooms = [row_id(r) for r in room_ids]
    if None in rooms:
        raise Invalid("room ids are numbers", code="invalid_room_id")
    return {"name": name, "description": description, "visibility": visibility, "room_ids": rooms}


def _save(request: Request, session: Session, csrf: str, form: dict[str, Any],
          save: Callable[[Viewer, dict[str, Any]], int | None],
          editing: Callable[[Viewer], dict[str, Any]] | None = None) -> Response:
    """The create and update forms' common path: CSRF, viewer, ``save(viewer, parsed form)`` → the group's id,
    then 303 to its page; a refusal or invalid form rolls back and shows the page again with the form as
    sent, its errors and 422 (``editing(viewer)``: the group being edited, when one is)."""
    check_csrf(request, csrf)
    who = _who(request, session)
    if who is None:
        return login_redirect(request)
    try:
        group_id = save(who, _parsed(**form))
    except ValidationError as exc:
        errors = _invalid_form(exc)
    except ConfsvcError as exc:
        errors = [_refusal(exc)]
    else:
        return RedirectResponse(f"/site-groups/{group_id}", status_code=303)
    session.rollback()
    return _page(request, session, who, editing=editing(who) if editing else None, form=form, errors=errors,
                 status_code=422)


@router.post("/site-groups", response_class=HTMLResponse)
def create_site_group(request: Request, session: SessionDep, csrf: FormText = "", name: FormText = "",
                      description: FormText = "", visibility: FormText = "private",
                      room_ids: RoomIdsForm = []):  # noqa: B006 (FastAPI form list)
    def save(who: Viewer, parsed: dict[str, Any]) -> int | None:
        return site_groups.create_group(session, who.principal, site_groups.SiteGroupCreate(**parsed)).id

    form = {"name": name, "description": description, "visibility": visibility, "room_ids": room_ids}
    return _save(request, session, csrf, form, save)


@router.post("/site-groups/{group_id}", response_class=HTMLResponse)
def update_site_group(request: Request, session: SessionDep, group_id: PathId, csrf: FormText = "",
                      name: FormText = "", description: FormText = "", visibility: FormText = "private",
                      room_ids: RoomIdsForm = []):  # noqa: B006 (FastAPI form list)
    def save(who: Viewer, parsed: dict[str, Any]) -> int | None:
        group = site_groups.get_group(session, who.principal, group_id)
        site_groups.update_group(session, who.principal, group, site_groups.SiteGroupUpdate(**parsed))
        return group_id

    def editing(who: Viewer) -> dict[str, Any]:
        return site_groups.public(session, who.principal, [site_groups.get_group(session, who.principal, group_id)])[0]

    form = {"name": name, "description": description, "visibility": visibility, "room_ids": room_ids}
    return _save(request, session, csrf, form, save, editing)


@router.post("/site-groups/{group_id}/delete")
def delete_site_group(request: Request, session: SessionDep, group_id: PathId, csrf: FormText = ""):
    check_csrf(request, csrf)
    who = _who(request, session)
    if who is None:
        return login_redirect(request)
    try:
        site_groups.delete_group(session, who.principal, site_groups.get_group(session, who.principal, group_id))
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)
    return RedirectResponse("/site-groups", status_code=303)

