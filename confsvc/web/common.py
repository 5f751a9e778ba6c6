"""What every page shares: the template environment (autoescaped, gettext), CSRF, the signed-in
user, the navigation by role, and HTML error pages.

Templates receive plain data (dicts, strings, numbers), never a database session or ORM object.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session
from starlette.staticfiles import StaticFiles

import confsvc
from confsvc.config import Settings
from confsvc.errors import ConfsvcError, Forbidden
from confsvc.mail import outbox as mail
from confsvc.users import service as users
from confsvc.users.deps import resolve_user
from confsvc.users.models import Role
from confsvc.users.principal import MANAGE_USERS, Principal
from confsvc.web import i18n
from confsvc.web.i18n import N_, _

_PACKAGE_DIR = Path(confsvc.__file__).parent
LANGUAGE_KEY = "lang"
CSRF_KEY = "csrf"
#: Header a browser script sends with cookie-authenticated API writes (see ``web.csrf``).
CSRF_HEADER = "x-csrf-token"


def _asset_dir(name: str) -> Path:
    """``confsvc/<name>`` in an installed wheel, ``<repo>/<name>`` in a checkout."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"confsvc's {name}/ directory is missing from the installation")


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_asset_dir("templates"))), autoescape=True,
                          extensions=["jinja2.ext.i18n"])
_env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
templates = Jinja2Templates(env=_env)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(_asset_dir("static")))


ROLE_LABELS = {Role.admin: N_("System administrator"), Role.secretariat: N_("Provincial People's Committee Office"),
               Role.operator: N_("Technician"), Role.viewer: N_("Viewer"),
               Role.requester: N_("Requesting unit")}
ERROR_TITLES = {403: N_("You may not see this page"), 404: N_("Not found"),
                0: N_("The request could not be completed")}


# ---------------------------------------------------------------- CSRF

def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


def csrf_matches(request: Request, submitted: str | None) -> bool:
    expected = request.session.get(CSRF_KEY, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), (submitted or "").encode())


def check_csrf(request: Request, submitted: str) -> None:
    """Raises Forbidden unless ``submitted`` equals the session's CSRF token (constant time)."""
    if not csrf_matches(request, submitted):
        raise Forbidden("CSRF token missing or wrong; reload the page", code="csrf_failed")


# ---------------------------------------------------------------- who is asking

@dataclass(frozen=True)
class Viewer:
    """The signed-in person: a plain dict for templates and the principal for services."""

    user: dict[str, Any]
    principal: Principal

    @property
    def can_book(self) -> bool:
        return self.principal.can_book

    @property
    def requests_only(self) -> bool:
        """Submits requests instead of booking (a requester): the booking form asks, not books."""
        return self.principal.can_request_meetings and not self.can_book


def viewer(request: Request, session: Session) -> Viewer | None:
    """The web session's user, or ``None`` (the caller redirects to the login page).

    Also makes the request's language current, so that every text and date a handler formats
    before rendering is in that language (handlers call this first)."""
    i18n.activate(language(request))
    user = resolve_user(request, session)
    if user is None:
        return None
    return Viewer(user={"username": user.username, "full_name": user.full_name, "role": user.role.value},
                  principal=users.principal_for(session, user))


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def language(request: Request) -> str:
    return i18n.normalise_language(request.session.get(LANGUAGE_KEY), settings_of(request).default_language)


def _nav(who: Viewer | None) -> list[dict[str, str]]:
    if who is None:
        return []
    items = [("/", N_("Overview")), ("/calendar", N_("Meeting schedule")), ("/planner", N_("Planner"))]
    if who.can_book:
        items.append(("/meetings/new", N_("Book a meeting")))
    elif who.requests_only:
        items += [("/meetings/new", N_("Request a meeting")), ("/requests/mine", N_("My requests"))]
    if who.principal.can_decide_requests:
        items.append(("/requests", N_("Booking requests")))
    items.append(("/inventory", N_("Rooms and endpoints")))
    items.append(("/feeds", N_("Calendar feeds")))  # every role: leaders get their own calendar link
    items.append(("/statistics", N_("Statistics")))
    if who.principal.can_read_audit:
        items.append(("/audit", N_("Log")))
    if who.principal.can(MANAGE_USERS):
        items.append(("/users", N_("Users")))
    return [{"href": href, "label": _(label)} for href, label in items]


def render(request: Request, template: str, context: dict[str, Any], *, who: Viewer | None = None,
           status_code: int = 200) -> HTMLResponse:
    """Render ``template`` in the request's language with the layout's data (user, nav, CSRF, and
    ``mail_off``: the viewer books meetings and invitations are not e-mailed, no ``CONFSVC_SMTP_HOST``)."""
    i18n.activate(language(request))
    path = request.url.path
    nav = _nav(who)
    for item in nav:
        item["current"] = "page" if (path == item["href"] or (item["href"] != "/" and path.startswith(item["href"]))
                                     ) else ""
    base = {
        "user": None if who is None else {**who.user, "role_label": _(ROLE_LABELS[who.principal.role])},
        "nav": nav, "csrf": csrf_token(request), "lang": i18n.current_language(),
        "here": path + (f"?{request.url.query}" if request.url.query else ""),
        # Pages where invitations matter include ``_mail_off.html``: those who book are told mail is off.
        "mail_off": who is not None and who.can_book and not mail.mail_enabled(settings_of(request)),
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def booker(request: Request, session: Session, *, or_requester: bool = False) -> Viewer | Response:
    """The signed-in viewer when they may book, edit or cancel meetings; otherwise the response to return
    instead: the login redirect, or a 403 page for a role that may not (viewer, operator).
    ``or_requester``: a requester may too (the booking form, which then submits a request)."""
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    if not who.can_book and not (or_requester and who.requests_only):
        return render(request, "error.html", {"title": _("You may not book meetings"),
                                              "detail": _("Only the secretariat and administrators book meetings.")},
                      who=who, status_code=403)
    return who


def error_page(request: Request, exc: ConfsvcError, who: Viewer | None) -> HTMLResponse:
    """A domain error as an HTML page with the same status as the API's answer."""
    from confsvc.web.errors import page_for

    i18n.activate(language(request))
    title, sentence = page_for(exc)
    return render(request, "error.html", {"title": title, "detail": sentence}, who=who,
                  status_code=exc.status_code)
