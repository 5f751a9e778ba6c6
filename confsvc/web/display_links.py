"""A room's display links (màn hình điểm cầu), managed from the room's page (issue 13: only the API
could issue them): list, create (the link is shown once, with a QR code to open it on the TV), revoke.

Permissions and secrets are ``live.display``'s (the same calls as ``/api/v1/rooms/{id}/display-tokens``):
administrators and the secretariat; others get the 403 page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from confsvc.db import PathId, SessionDep
from confsvc.endpoints import service as inventory
from confsvc.errors import ConfsvcError
from confsvc.live import display
from confsvc.web import i18n
from confsvc.web.common import Viewer, check_csrf, error_page, login_redirect, render, settings_of, viewer
from confsvc.web.feeds import qr_svg
from confsvc.web.i18n import _

router = APIRouter(include_in_schema=False)


def display_url(request: Request, room_id: int, secret: str) -> str:
    base = (settings_of(request).public_base_url or str(request.base_url)).rstrip("/")
    return f"{base}/display/rooms/{room_id}?token={secret}"


def _page(request: Request, session: Session, who: Viewer, room_id: int, issued: dict[str, Any] | None = None,
          status_code: int = 200) -> HTMLResponse:
    room = inventory.get_room(session, who.principal, room_id)
    zone = settings_of(request).zone
    links = [{"id": t.id, "name": t.name, "prefix": t.prefix, "created": i18n.fmt_date(t.created_at, zone),
              "revoked": t.revoked_at is not None}
             for t in display.list_display_tokens(session, who.principal, room_id)]
    return render(request, "display_links.html", {"room": {"id": room.id, "name": room.name}, "links": links,
                                                  "issued": issued}, who=who, status_code=status_code)


@router.get("/inventory/rooms/{room_id}/displays", response_class=HTMLResponse)
def display_links(request: Request, session: SessionDep, room_id: PathId):
    """The room's display links (revoked ones marked) and the form for a new one."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        return _page(request, session, who, room_id)
    except ConfsvcError as exc:
        return error_page(request, exc, who)


@router.post("/inventory/rooms/{room_id}/displays", response_class=HTMLResponse)
def create_display_link(request: Request, session: SessionDep, room_id: PathId,
                        name: Annotated[str, Form(max_length=100)] = "", csrf: Annotated[str, Form()] = ""):
    """A new link; the answer shows it once, with a QR code to open on the TV."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        token, secret = display.create_display_token(session, who.principal, room_id, name=name.strip())
        url = display_url(request, room_id, secret)
        return _page(request, session, who, room_id, issued={
            "url": url, "name": token.name or token.prefix, "qr": qr_svg(url, _("QR code of the display link"))})
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)


@router.post("/inventory/rooms/{room_id}/displays/{token_id}/revoke")
def revoke_display_link(request: Request, session: SessionDep, room_id: PathId, token_id: PathId,
                        csrf: Annotated[str, Form()] = ""):
    """Revoke at once; a TV showing it loses the schedule at its next reconnect."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        display.revoke_display_token(session, who.principal, room_id, token_id)
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)
    return RedirectResponse(f"/inventory/rooms/{room_id}/displays", status_code=303)
