"""The web UI's router: login, logout and the language switch here; the pages of each area in
``web.meetings`` (dashboard, calendar, meeting), ``web.booking``, ``web.inventory`` and ``web.feeds``.

Every page calls the same services as the JSON API. Every POST form carries a CSRF token bound to
the web session and compared in constant time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from confsvc.db import SessionDep
from confsvc.errors import TooManyRequests, Unauthorized
from confsvc.users import service as users
from confsvc.users.deps import SESSION_ID_KEY, SESSION_USER_KEY
from confsvc.web import (
    audit,
    booking,
    display,
    display_links,
    edit,
    feeds,
    grid,
    i18n,
    inventory,
    meetings,
    province_sites,
    requests,
    site_groups,
    stats,
)
from confsvc.web import users as users_page
from confsvc.web.common import LANGUAGE_KEY, check_csrf, language, render, settings_of, static_files
from confsvc.web.i18n import LANGUAGES, _

__all__ = ["router", "static_files"]

router = APIRouter(include_in_schema=False)


def safe_next(target: str) -> str:
    """Only same-site paths: never redirect to another host after login."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/"):
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=80)],
          password: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/"):
    check_csrf(request, csrf)
    i18n.activate(language(request))
    address = request.client.host if request.client else None
    try:
        user = users.login(session, request.app.state.login_throttle, username, password, address)
    except TooManyRequests as exc:
        page = render(request, "login.html", {"next": safe_next(next), "error": _(
            "Too many failed sign-ins. Try again in %(seconds)s seconds.") % {"seconds": exc.extra["retry_after"]}},
            status_code=429)
        page.headers["Retry-After"] = str(exc.extra["retry_after"])
        return page
    except Unauthorized:
        return render(request, "login.html", {"next": safe_next(next), "error": _("Wrong username or password.")},
                      status_code=401)
    chosen = request.session.get(LANGUAGE_KEY)
    request.session.clear()  # nothing of the anonymous session survives (no fixation of its CSRF token)
    ttl = timedelta(seconds=settings_of(request).session_max_age_seconds)
    request.session[SESSION_ID_KEY] = users.start_web_session(session, user, ttl=ttl)
    request.session[SESSION_USER_KEY] = user.id
    if chosen:
        request.session[LANGUAGE_KEY] = chosen
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form()] = ""):
    """Ends the session on the server too: a copy of the cookie no longer signs anyone in."""
    check_csrf(request, csrf)
    users.end_web_session(session, request.session.get(SESSION_ID_KEY))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.post("/language")
def switch_language(request: Request, language: Annotated[str, Form(max_length=5)],
                    csrf: Annotated[str, Form()] = "", next: Annotated[str, Form(max_length=2000)] = "/"):
    """Tiếng Việt / English for this browser session; back to the page it was chosen on."""
    check_csrf(request, csrf)
    if language in LANGUAGES:
        request.session[LANGUAGE_KEY] = language
    return RedirectResponse(safe_next(next), status_code=303)


router.include_router(booking.router)  # before meetings: /meetings/new is not a /meetings/{meeting_id}
router.include_router(meetings.router)
router.include_router(province_sites.router)
router.include_router(requests.router)
router.include_router(inventory.router)
router.include_router(feeds.router)
router.include_router(site_groups.router)
router.include_router(users_page.router)
router.include_router(audit.router)
router.include_router(stats.router)
router.include_router(edit.router)
router.include_router(grid.router)
router.include_router(display_links.router)
router.include_router(display.router)  # /display/rooms/{id}: token in the link, no login
