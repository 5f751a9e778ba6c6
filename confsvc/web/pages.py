"""HTML pages over the same services the API uses: login, logout and the inventory list.

Templates receive plain data, never a session. Every POST form carries a CSRF token bound to the
web session and compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

import confsvc
from confsvc.db import QueryId, SessionDep
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import EndpointStatus
from confsvc.errors import Forbidden, Unauthorized
from confsvc.users import service as users
from confsvc.users.deps import SESSION_USER_KEY, resolve_user

router = APIRouter(include_in_schema=False)
_PACKAGE_DIR = Path(confsvc.__file__).parent


def _asset_dir(name: str) -> Path:
    """``confsvc/<name>`` in an installed wheel, ``<repo>/<name>`` in a checkout."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"confsvc's {name}/ directory is missing from the installation")


templates = Jinja2Templates(directory=str(_asset_dir("templates")))

STATUS_LABELS = {
    EndpointStatus.online: "Trực tuyến",
    EndpointStatus.offline: "Mất kết nối",
    EndpointStatus.in_call: "Đang họp",
    EndpointStatus.fault: "Sự cố",
    EndpointStatus.unknown: "Chưa rõ",
}
LIFECYCLE_LABELS = {"active": "Hoạt động", "maintenance": "Bảo trì", "retired": "Ngừng sử dụng"}
PAGE_SIZE = 100


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(_asset_dir("static")))


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: str) -> None:
    """Raises Forbidden unless ``submitted`` equals the session's CSRF token (constant time)."""
    expected = request.session.get("csrf", "")
    if not expected or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise Forbidden("CSRF token missing or wrong; reload the page", code="csrf_failed")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/"):
    return templates.TemplateResponse(request, "login.html",
                                      {"csrf": csrf_token(request), "next": _safe_next(next), "error": None})


def _safe_next(target: str) -> str:
    # Only same-site paths: never redirect to another host after login.
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=80)],
          password: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/"):
    check_csrf(request, csrf)
    try:
        user = users.authenticate(session, username, password)
    except Unauthorized:
        return templates.TemplateResponse(
            request, "login.html",
            {"csrf": csrf_token(request), "next": _safe_next(next), "error": "Sai tên đăng nhập hoặc mật khẩu."},
            status_code=401)
    request.session.clear()
    request.session[SESSION_USER_KEY] = user.id
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = ""):
    check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def inventory_page(request: Request, session: SessionDep,
                   unit_id: QueryId = None, q: Annotated[str | None, Query(max_length=100)] = None,
                   page: Annotated[int, Query(ge=1)] = 1):
    """Inventory (Danh mục điểm cầu): units with their rooms and endpoints, searchable."""
    user = resolve_user(request, session)
    if user is None:
        return RedirectResponse("/login?" + urlencode({"next": str(request.url.path)}), status_code=303)
    principal = users.principal_for(session, user)
    units, unit_total = inventory.list_units(session, principal, limit=5000)
    endpoints, total = inventory.list_endpoints(session, principal, unit_id=unit_id, q=q or None,
                                                limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    unit_names = {u.id: u.name for u in units}
    rooms, room_total = inventory.list_rooms(session, principal, unit_id=unit_id, limit=1)
    rows = [
        {"unit": unit_names.get(room.unit_id, ""), "room": room.name, "name": e.name, "vendor": e.vendor,
         "model": e.model, "protocol": "SIP" if e.protocol.value == "sip" else "H.323", "dial_address": e.dial_address,
         "serial": e.serial, "status": STATUS_LABELS[e.status], "status_key": e.status.value,
         "lifecycle": LIFECYCLE_LABELS[e.lifecycle_state.value]}
        for e, room in endpoints
    ]
    return templates.TemplateResponse(request, "inventory.html", {
        "user": {"username": user.username, "full_name": user.full_name, "role": user.role.value},
        "csrf": csrf_token(request),
        "units": [{"id": u.id, "name": u.name, "level": u.level.value} for u in units],
        "unit_total": unit_total, "room_total": room_total, "endpoint_total": total,
        "rows": rows, "unit_id": unit_id, "q": q or "", "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
    })
