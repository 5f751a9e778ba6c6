"""Users page (quản trị người dùng), administrators only: the users they manage, a form to create one, and
per user a form to change the role, disable or enable, set a password, or move them to another province.

The province field (Tỉnh/Thành phố) and column show only when the deployment holds more than one
province (issue 14; with one, there is nothing to choose). Rules and errors are the API's:
``users.service.create_user`` and ``scheduling.user_changes.update_user`` (audited ``user.updated``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from confsvc.db import PathId, SessionDep
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import UnitLevel
from confsvc.errors import ConfsvcError, NotFound
from confsvc.scheduling import user_changes
from confsvc.users import schemas
from confsvc.users import service as users
from confsvc.users.models import Role, User
from confsvc.users.principal import MANAGE_USERS
from confsvc.web.common import ROLE_LABELS, Viewer, check_csrf, error_page, login_redirect, render, viewer
from confsvc.web.i18n import N_, _
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)
REFUSALS = {"duplicate_username": N_("This username is taken."),
            "weak_password": N_("The password is too easy to guess: use a longer phrase."),
            "operator_without_units": N_("A technician or requesting unit needs at least one unit (its code)."),
            "units_for_unscoped_role": N_("Only technicians and requesting units are tied to units."),
            "own_admin_access": N_("You may not disable yourself or take away your own administrator role."),
            "not_a_province": N_("Choose a province or centrally-run city."),
            "unknown_unit": N_("A unit code is unknown."),
            "units_outside_province": N_("The user's units must lie in their province."),
            "units_in_several_provinces": N_("The user's units must lie in one province."),
            "province_outside_scope": N_("You may not move a user to another province."),
            "user_not_found": N_("No such user.")}
FormText = Annotated[str, Form(max_length=300)]


def _refusal(exc: ConfsvcError) -> str:
    return _(REFUSALS[exc.code]) if exc.code in REFUSALS else refusal_message(exc)


def _admin(request: Request, session: Session) -> Viewer | Response:
    """The signed-in administrator, or the response instead: the login redirect or a 403 page."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    if not who.principal.can(MANAGE_USERS):
        return render(request, "error.html", {"title": _("You may not see this page"),
                                              "detail": _("Only administrators manage users.")},
                      who=who, status_code=403)
    return who


def _provinces(session: Session, who: Viewer) -> list[dict[str, Any]]:
    """``[{"id", "code", "name"}]`` of the provinces ``who`` may give a user (in the deployment's order)."""
    units, _total = inventory.list_units(session, who.principal, level=UnitLevel.province, limit=1000)
    return [{"id": u.id, "code": u.code, "name": u.name} for u in units]


def _page(request: Request, session: Session, who: Viewer, *, editing: User | None = None,
          form: dict[str, Any] | None = None, errors: list[str] | None = None, status_code: int = 200) -> Response:
    provinces = _provinces(session, who)
    several = users.province_count(session) > 1
    province_names = {p["id"]: p["name"] for p in provinces}
    rows = [{"id": u.id, "username": u.username, "full_name": u.full_name, "role": _(ROLE_LABELS[u.role]),
             "active": u.active,
             "province": province_names.get(u.province_id, "") if u.province_id else _("Whole country")}
            for u in users.list_users(session, who.principal)]
    code_of = {p["id"]: p["code"] for p in provinces}
    if form is None:
        form = ({"role": editing.role.value, "active": editing.active,
                 "province_code": code_of.get(editing.province_id, "") if editing.province_id else ""} if editing
                else {"username": "", "full_name": "", "email": "", "role": Role.viewer.value, "unit_codes": "",
                      "province_code": code_of.get(who.principal.province_id or 0, "")})
    return render(request, "users.html", {
        "rows": rows, "editing": editing, "form": form, "errors": errors or [], "several_provinces": several,
        "provinces": provinces, "national": who.principal.scope is None,
        "roles": [(r.value, _(label)) for r, label in ROLE_LABELS.items()]}, who=who, status_code=status_code)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep):
    who = _admin(request, session)
    return who if isinstance(who, Response) else _page(request, session, who)


def _editable(session: Session, who: Viewer, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not users.user_in_scope(session, who.principal, user_id):
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    return user


def _admin_and_user(request: Request, session: Session, user_id: int) -> tuple[Viewer, User] | Response:
    """The signed-in administrator and the user they may edit, or the page answering instead (sign-in,
    403, or 404 for a user outside their province)."""
    who = _admin(request, session)
    if isinstance(who, Response):
        return who
    try:
        return who, _editable(session, who, user_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, session: SessionDep, user_id: PathId):
    found = _admin_and_user(request, session, user_id)
    if isinstance(found, Response):
        return found
    who, user = found
    return _page(request, session, who, editing=user)


def _province_id(session: Session, code: str) -> int | None:
    return users.unit_ids_for_codes(session, [code])[0] if code else None


@router.post("/users", response_class=HTMLResponse)
def create_user(request: Request, session: SessionDep, csrf: FormText = "", username: FormText = "",
                full_name: FormText = "", email: FormText = "", role: FormText = "", password: FormText = "",
                unit_codes: FormText = "", province_code: FormText = ""):
    """The create form: the API's ``POST /users`` rules (``users.service.create_user``); an empty province
    lets the service choose (the units' province, or none: a national user)."""
    check_csrf(request, csrf)
    who = _admin(request, session)
    if isinstance(who, Response):
        return who
    form = {"username": username.strip(), "full_name": full_name.strip(), "email": email.strip(), "role": role,
            "unit_codes": unit_codes, "province_code": province_code}
    try:
        data = schemas.UserCreate(username=form["username"], password=password, role=role,
                                  full_name=form["full_name"], email=form["email"] or None,
                                  unit_codes=[c.strip() for c in unit_codes.split(",") if c.strip()],
                                  province_code=province_code or None)
        unit_ids = users.unit_ids_for_codes(session, data.unit_codes) if data.unit_codes else []
        user = users.create_user(session, username=data.username, password=data.password, role=data.role,
                                 full_name=data.full_name, email=data.email, unit_ids=unit_ids,
                                 province_id=_province_id(session, province_code), creator=who.principal)
    except ValidationError:
        errors = [_("Give a username (letters, digits and . _ @ -), a password of at least 8 characters, "
                    "a role and a valid e-mail address or none.")]
    except ConfsvcError as exc:
        errors = [_refusal(exc)]
    else:
        return RedirectResponse(f"/users/{user.id}", status_code=303)
    session.rollback()
    return _page(request, session, who, form=form, errors=errors, status_code=422)


@router.post("/users/{user_id}", response_class=HTMLResponse)
def update_user(request: Request, session: SessionDep, user_id: PathId, csrf: FormText = "", role: FormText = "",
                active: FormText = "", password: FormText = "", province_code: FormText = ""):
    """The edit form: ``PATCH /api/v1/users/{id}`` (role, active, a new password when given, the province
    when the field is shown), audited ``user.updated``; ends the user's sessions."""
    check_csrf(request, csrf)
    found = _admin_and_user(request, session, user_id)
    if isinstance(found, Response):
        return found
    who, user = found
    form = {"role": role, "active": bool(active), "province_code": province_code}
    several = users.province_count(session) > 1
    try:
        data = schemas.UserUpdate(role=role, active=bool(active), password=password or None,
                                  province_code=province_code or None)
        user_changes.update_user(session, who.principal, user_id, role=data.role, active=data.active,
                                 password=data.password,
                                 province_id=_province_id(session, province_code) if several else ...)
    except ValidationError:
        errors = [_("Choose a role; a new password has at least 8 characters.")]
    except ConfsvcError as exc:
        errors = [_refusal(exc)]
    else:
        return RedirectResponse(f"/users/{user_id}", status_code=303)
    session.rollback()
    return _page(request, session, who, editing=session.get(User, user.id), form=form, errors=errors,
                 status_code=422)
