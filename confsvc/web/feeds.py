"""Calendar feeds page (lịch đăng ký iCal): a feed URL per scope the user may see (every role, the
leaders' viewer role included), shown once when issued as an https and a webcal:// link with a QR code
and short steps for Outlook, Google Calendar and iPhone; a searchable scope picker (``static/feeds.js``);
rotation (a new secret replaces the old, which stops working at once).

Permissions and secrets are ``calendar.tokens``'s (the same service as ``/api/v1/feeds``); a secret
is shown once, in the answer to the POST that made it, and never stored in the cookie.
"""

from __future__ import annotations

from typing import Annotated, Any

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup
from sqlmodel import Session

from confsvc.calendar import tokens
from confsvc.calendar.models import FeedScope
from confsvc.db import SessionDep
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import UnitLevel
from confsvc.errors import ConfsvcError, Forbidden
from confsvc.text import fold
from confsvc.web import i18n
from confsvc.web.common import Viewer, check_csrf, error_page, login_redirect, render, settings_of, viewer
from confsvc.web.i18n import N_, _

router = APIRouter(include_in_schema=False)
SCOPE_LABELS = {FeedScope.province: N_("Whole province"), FeedScope.unit: N_("Unit"), FeedScope.room: N_("Room"),
                FeedScope.endpoint: N_("Endpoint")}


def feed_url(request: Request, scope: FeedScope, scope_id: int, secret: str) -> str:
    base = (settings_of(request).public_base_url or str(request.base_url)).rstrip("/")
    return f"{base}/ical/{scope.value}/{scope_id}.ics?token={secret}"


def webcal_url(url: str) -> str:
    """The ``webcal://`` form of an http(s) feed URL: calendar apps (Outlook, iPhone) open it as a
    subscription."""
    return "webcal://" + url.split("://", 1)[1]


def qr_svg(text: str, title: str) -> Markup:
    """``text`` as an inline SVG QR code (segno, error correction M), for a phone's camera."""
    qr = segno.make(text, error="m")
    svg = qr.svg_inline(scale=4, border=2, title=title, svgclass="qr", omitsize=False)
    return Markup(svg)  # noqa: S704 - segno's own SVG; the text is encoded as modules, the title escaped


def _issued(request: Request, token: Any, secret: str) -> dict[str, Any]:
    url = feed_url(request, token.scope, token.scope_id, secret)
    return {"url": url, "webcal": webcal_url(url), "name": token.name or token.prefix,
            "qr": qr_svg(webcal_url(url), _("QR code of the calendar link"))}


def _scopes(session: Session, who: Viewer) -> list[dict[str, Any]]:
    """Scopes the user may subscribe to, as ``{"value": "unit:12", "label": ...}`` groups."""
    units, _total = inventory.list_units(session, who.principal, limit=10000)
    rooms, _total = inventory.list_rooms(session, who.principal, limit=100000)
    unit_names = {u.id: u.name for u in units}
    groups = []
    if not who.principal.unit_scoped:
        groups.append({"label": _(SCOPE_LABELS[FeedScope.province]), "options": [
            {"value": f"province:{u.id}", "label": u.name, "search": fold(u.name)}
            for u in units if u.level is UnitLevel.province]})
    groups.append({"label": _(SCOPE_LABELS[FeedScope.unit]),
                   "options": [{"value": f"unit:{u.id}", "label": u.name, "search": fold(u.name)} for u in units]})
    groups.append({"label": _(SCOPE_LABELS[FeedScope.room]), "options": [
        {"value": f"room:{r.id}", "label": f"{r.name} ({unit_names.get(r.unit_id, '')})",
         "search": fold(f"{r.name} {unit_names.get(r.unit_id, '')}")} for r in rooms]})
    return [g for g in groups if g["options"]]


def _page(request: Request, session: Session, who: Viewer, issued: dict[str, str] | None = None):
    scopes = _scopes(session, who)
    labels = {o["value"]: o["label"] for g in scopes for o in g["options"]}
    zone = settings_of(request).zone
    rows = []
    for token in tokens.list_feed_tokens(session, who.principal):
        key = f"{token.scope.value}:{token.scope_id}"
        rows.append({"id": token.id, "scope": _(SCOPE_LABELS[token.scope]), "name": token.name,
                     "target": labels.get(key, key), "prefix": token.prefix,
                     "created": i18n.fmt_date(token.created_at, zone), "revoked": token.revoked_at is not None})
    return render(request, "feeds.html", {"scopes": scopes, "tokens": rows, "issued": issued}, who=who)


def _parse_scope(value: str) -> tuple[FeedScope, int]:
    kind, _sep, ident = value.partition(":")
    try:
        return FeedScope(kind), int(ident)
    except ValueError:
        raise Forbidden("unknown feed scope", code="invalid_scope") from None


@router.get("/feeds", response_class=HTMLResponse)
def feeds_page(request: Request, session: SessionDep):
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    return _page(request, session, who)


@router.post("/feeds", response_class=HTMLResponse)
def create_feed(request: Request, session: SessionDep, scope: Annotated[str, Form(max_length=40)],
                name: Annotated[str, Form(max_length=100)] = "", csrf: Annotated[str, Form()] = ""):
    """Issue a feed URL; the answer shows it once, with a copy button."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        kind, scope_id = _parse_scope(scope)
        token, secret = tokens.create_feed_token(session, who.principal, scope=kind, scope_id=scope_id, name=name)
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)
    return _page(request, session, who, issued=_issued(request, token, secret))


@router.post("/feeds/{token_id}/rotate", response_class=HTMLResponse)
def rotate_feed(request: Request, session: SessionDep, token_id: int, csrf: Annotated[str, Form()] = ""):
    """A new secret for the same scope and name; the old URL answers 404 from now on."""
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        old = next((t for t in tokens.list_feed_tokens(session, who.principal) if t.id == token_id), None)
        if old is None:
            raise Forbidden(_("This calendar feed is not yours to change."), code="forbidden_scope")
        tokens.revoke_feed_token(session, who.principal, old.id)
        token, secret = tokens.create_feed_token(session, who.principal, scope=old.scope, scope_id=old.scope_id,
                                                 include_sub_units=old.include_sub_units, name=old.name)
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)
    return _page(request, session, who, issued=_issued(request, token, secret))


@router.post("/feeds/{token_id}/revoke")
def revoke_feed(request: Request, session: SessionDep, token_id: int, csrf: Annotated[str, Form()] = ""):
    check_csrf(request, csrf)
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    try:
        tokens.revoke_feed_token(session, who.principal, token_id)
    except ConfsvcError as exc:
        session.rollback()
        return error_page(request, exc, who)
    return RedirectResponse("/feeds", status_code=303)
