"""Errors as HTML pages in the page's language, for people (issue 13: "Vietnamese everywhere").

The API answers errors as JSON ``{"detail", "code"}`` with English details (its audience is programs).
A browser asking for a page (``Accept: text/html``, a path outside ``/api/``, ``/ws/`` and the feeds)
gets instead an HTML page whose title and sentence come from the catalog, chosen by the error's
``code`` (else by its status), never the English detail. :func:`install` wraps every exception handler
``main.py`` registered, so the JSON answer stays the one source of status and code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from confsvc.db import make_session
from confsvc.errors import ConfsvcError
from confsvc.web.i18n import N_, _

log = logging.getLogger("confsvc.web")

#: Paths whose answers are for programs even when a browser opens them.
API_PREFIXES = ("/api/", "/ws/", "/metrics", "/healthz", "/calendar/feeds", "/docs", "/redoc", "/openapi.json",
                "/static/", "/static-offline-docs/")

TITLES = {400: N_("The request could not be completed"), 401: N_("Please log in"),
          403: N_("You may not see this page"), 404: N_("Not found"),
          409: N_("The request conflicts with a change made meanwhile"),
          413: N_("The file or form is too large"), 422: N_("The request could not be completed"),
          500: N_("Something went wrong on the server"), 503: N_("The service is unavailable for a moment")}

#: Sentences by the error's ``code`` (confsvc/errors.py raisers); others get their status's sentence.
MESSAGES = {
    "meeting_not_found": N_("This meeting does not exist or has been deleted."),
    "occurrence_not_found": N_("This occurrence does not exist in the meeting."),
    "room_not_found": N_("This room does not exist."),
    "endpoint_not_found": N_("This endpoint does not exist."),
    "unit_not_found": N_("This administrative unit does not exist."),
    "bridge_not_found": N_("This MCU does not exist."),
    "feed_token_not_found": N_("This calendar feed does not exist or has been revoked."),
    "display_token_not_found": N_("This display link does not exist or has been revoked."),
    "csrf_failed": N_("The form has expired. Reload the page and try again."),
    "forbidden_scope": N_("This is outside your units."),
    "forbidden_role": N_("Your role may not do this."),
    "forbidden": N_("Your role may not see this page."),
    "not_authenticated": N_("Please log in to see this page."),
    "integrity_conflict": N_("Someone changed the same data at the same time. Reload the page and try again."),
    "out_of_range": N_("A number or date in the request is out of the supported range."),
    "payload_too_large": N_("The file or form is larger than allowed."),
    "database_unavailable": N_("The database cannot be reached. Try again in a moment."),
}
BY_STATUS = {400: N_("The request is not valid."), 401: N_("Please log in to see this page."),
             403: N_("Your role may not see this page."),
             404: N_("The page you asked for does not exist. Check the address or go back to the overview."),
             409: N_("Someone changed the same data at the same time. Reload the page and try again."),
             413: N_("The file or form is larger than allowed."),
             422: N_("The address or the form holds a value that is not valid."),
             500: N_("The server could not complete the request. The error has been logged; try again later."),
             503: N_("The service is unavailable for a moment. Try again later.")}


def error_text(status: int, code: str) -> tuple[str, str]:
    """``(title, sentence)`` in the current language for an error of ``status`` and ``code``."""
    title = TITLES.get(status, TITLES[400] if status < 500 else TITLES[500])
    sentence = MESSAGES.get(code) or BY_STATUS.get(status) or (BY_STATUS[400] if status < 500 else BY_STATUS[500])
    return _(title), _(sentence)


def wants_page(request: Request) -> bool:
    """A person's browser asking for a page: ``Accept`` names ``text/html`` and the path is not an API's."""
    path = request.url.path
    return "text/html" in request.headers.get("accept", "") and not path.startswith(API_PREFIXES)


def _page(request: Request, status: int, code: str) -> Response:
    from confsvc.web import common  # the web layer's renderer (templates, session, navigation)

    request.scope.setdefault("session", {})  # a 500 is answered outside SessionMiddleware
    common.i18n.activate(common.language(request))
    who = None
    if status < 500 and "session" in request.scope:
        try:
            with make_session(request.app.state.engine, write=False) as session:
                who = common.viewer(request, session)
        except Exception:  # noqa: BLE001 - an error page renders without the header's user rather than fail
            who = None
    title, sentence = error_text(status, code)
    return common.render(request, "error.html", {"title": title, "detail": sentence}, who=who, status_code=status)


Handler = Callable[[Request, Any], Any]  # Starlette's handlers: sync or async, any exception type


def install(app: FastAPI) -> None:
    """Wrap ``app``'s exception handlers (and add one for unexpected errors, 500): for a browser page
    request the JSON answer becomes the HTML error page with the same status."""

    def wrap(handler: Handler) -> Handler:
        async def handle(request: Request, exc: Exception) -> Any:
            response = handler(request, exc)
            if isinstance(response, Awaitable):
                response = await response
            if not wants_page(request) or not isinstance(response, JSONResponse) or response.status_code < 400:
                return response
            body: dict[str, Any] = json.loads(bytes(response.body))
            status, code = response.status_code, str(body.get("code", ""))
            if code == "validation_error" and any(e.get("loc", [None])[0] == "path" for e in body.get("errors", [])):
                status = 404  # /meetings/abc: no such page
            return _page(request, status, code)
        return handle

    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = wrap(handler)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        if wants_page(request):
            return _page(request, 500, "internal_error")
        return JSONResponse({"detail": "internal server error", "code": "internal_error"}, status_code=500)

    app.exception_handlers.setdefault(Exception, unexpected)


def page_for(exc: ConfsvcError) -> tuple[str, str]:
    """``(title, sentence)`` for a domain error shown by a web handler (``common.error_page``): the
    sentence of its code here or in ``refusals``, else its status's sentence."""
    from confsvc.web.refusals import REFUSALS

    title, sentence = error_text(exc.status_code, exc.code)
    if exc.code not in MESSAGES and exc.code in REFUSALS:
        sentence = _(REFUSALS[exc.code])
    return title, sentence
