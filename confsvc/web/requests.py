"""Meeting requests in the web UI (issue 15): the secretariat's queue "Yêu cầu đặt lịch" (oldest first,
each request's current conflicts, one-click approve, reject with a reason) and a requester's list
"Yêu cầu của tôi". The same service calls as ``/api/v1/requests`` (``scheduling.requests``).
The booking form (``web.booking``) submits a request when the signed-in user is a requester."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session, col, select

from confsvc.db import PathId, SessionDep
from confsvc.endpoints.models import Room
from confsvc.errors import ConfsvcError
from confsvc.scheduling import requests
from confsvc.scheduling.request_models import RequestState
from confsvc.users.models import User
from confsvc.web import i18n
from confsvc.web.booking import conflict_messages
from confsvc.web.common import Viewer, check_csrf, login_redirect, render, settings_of, viewer
from confsvc.web.i18n import N_, _
from confsvc.web.refusals import refusal_message

router = APIRouter(include_in_schema=False)

STATE_LABELS = {RequestState.pending: N_("Awaiting approval"), RequestState.approved: N_("Approved"),
                RequestState.rejected: N_("Rejected"), RequestState.expired: N_("Expired")}
QUEUE_SIZE = 200
Reason = Annotated[str, Form(max_length=2000)]


def _rows(session: Session, request: Request, views: list[requests.RequestView]) -> list[dict[str, Any]]:
    zone = settings_of(request).zone
    rooms = dict(session.exec(select(Room.id, Room.name).where(
        col(Room.id).in_({v.meeting.chair_room_id for v in views}))).all()) if views else {}
    people = dict(session.exec(select(User.id, User.full_name).where(
        col(User.id).in_({v.request.requested_by for v in views if v.request.requested_by}))).all()) if views else {}
    rows = []
    for view in views:
        req, meeting = view.request, view.meeting
        end = meeting.dtstart + timedelta(minutes=meeting.duration_minutes)
        rows.append({
            "id": req.meeting_id, "title": meeting.title, "when": i18n.fmt_range(meeting.dtstart, end, zone),
            "repeats": bool(meeting.rrule), "chair": rooms.get(meeting.chair_room_id, ""),
            "requester": people.get(req.requested_by, "") if req.requested_by else "",
            "requested_at": i18n.fmt_datetime(req.requested_at, zone),
            "expires_at": i18n.fmt_datetime(req.expires_at, zone),
            "decided_at": i18n.fmt_datetime(req.decided_at, zone) if req.decided_at else "",
            "state": req.state.value, "state_label": _(STATE_LABELS[req.state]), "reason": req.reason,
            "conflicts": conflict_messages(view.conflicts, zone),
        })
    return rows


def _who(request: Request, session: Session) -> Viewer | HTMLResponse | RedirectResponse:
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    return who


def _queue(request: Request, session: Session, who: Viewer, *, error: str | None = None,
           status_code: int = 200) -> HTMLResponse:
    views, total = requests.list_requests(session, settings_of(request), who.principal, limit=QUEUE_SIZE)
    return render(request, "requests.html", {"rows": _rows(session, request, views), "total": total,
                                             "error": error}, who=who, status_code=status_code)


@router.get("/requests", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionDep):
    """The queue of pending requests, oldest first, with conflicts (secretariat, admin; 403 otherwise)."""
    who = _who(request, session)
    if not isinstance(who, Viewer):
        return who
    if not who.principal.can_decide_requests:
        if who.requests_only:
            return RedirectResponse("/requests/mine", status_code=303)
        return render(request, "error.html", {"title": _("You may not see this page"),
                                              "detail": _("Only the secretariat and administrators decide requests.")},
                      who=who, status_code=403)
    return _queue(request, session, who)


def _decide(request: Request, session: Session, csrf: str, step: Any) -> Any:
    check_csrf(request, csrf)
    who = _who(request, session)
    if not isinstance(who, Viewer):
        return who
    try:
        step(who)
        return RedirectResponse("/requests", status_code=303)
    except ConfsvcError as exc:
        session.rollback()
        if not who.principal.can_decide_requests:
            return render(request, "error.html", {"title": _("You may not see this page"),
                                                  "detail": refusal_message(exc)}, who=who, status_code=403)
        return _queue(request, session, who, error=refusal_message(exc), status_code=exc.status_code)


@router.post("/requests/{request_id}/approve")
def approve(request: Request, session: SessionDep, request_id: PathId, csrf: Reason = ""):
    """Duyệt: the meeting is confirmed and the invitations go out; back to the queue."""
    return _decide(request, session, csrf, lambda who: requests.approve(session, who.principal, request_id))


@router.post("/requests/{request_id}/reject")
def reject(request: Request, session: SessionDep, request_id: PathId, csrf: Reason = "", reason: Reason = ""):
    """Từ chối with a reason: the meeting is cancelled, its rooms freed; back to the queue."""
    return _decide(request, session, csrf,
                   lambda who: requests.reject(session, who.principal, request_id, reason))


@router.get("/requests/mine", response_class=HTMLResponse)
def my_requests(request: Request, session: SessionDep, submitted: int | None = None):
    """The signed-in requester's requests, every state, oldest first."""
    who = _who(request, session)
    if not isinstance(who, Viewer):
        return who
    if not who.principal.can_request_meetings:
        return render(request, "error.html", {"title": _("You may not see this page"),
                                              "detail": _("Your role may not do this.")}, who=who, status_code=403)
    views, total = requests.list_requests(session, settings_of(request), who.principal, state=None,
                                          limit=QUEUE_SIZE)
    if who.principal.can_decide_requests:  # the secretariat's own, as a requester sees theirs
        views = [v for v in views if v.request.requested_by == who.principal.user_id]
    return render(request, "my_requests.html", {"rows": _rows(session, request, views), "total": len(views),
                                                "submitted": submitted}, who=who)
