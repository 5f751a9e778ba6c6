"""Meeting requests API under ``/api/v1/requests`` (issue 15). Routes parse, call one service
function (``scheduling.requests``) and shape the answer. Times in answers are UTC."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from confsvc.db import PathId, SessionDep
from confsvc.deps import PagingDep, SettingsDep
from confsvc.scheduling import requests, views
from confsvc.scheduling.request_models import RequestState
from confsvc.scheduling.request_schemas import RequestPage, RequestPublic, RequestReject
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1", tags=["requests"])


def public(session: SessionDep, view: requests.RequestView) -> dict[str, Any]:
    req = view.request
    return {"id": req.meeting_id, "state": req.state, "requested_by": req.requested_by,
            "requested_at": req.requested_at, "expires_at": req.expires_at, "decided_by": req.decided_by,
            "decided_at": req.decided_at, "reason": req.reason,
            "meeting": views.meeting_public(session, view.meeting), "conflicts": view.conflicts}


def _answer(model: type[BaseModel], data: Any, status_code: int = 200) -> Response:
    """Serialised in the handler's thread hop (see ``scheduling.routes._answer``)."""
    return Response(model.model_validate(data).model_dump_json(), status_code=status_code,
                    media_type="application/json")


@router.post("/requests", response_model=RequestPublic, status_code=status.HTTP_201_CREATED)
def submit_request(data: MeetingCreate, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep):
    """Request a meeting (yêu cầu đặt lịch): booked ``tentative``, holding its resources until the
    secretariat decides or it expires (``CONFSVC_REQUEST_EXPIRY_HOURS``). Requesters (chair room in
    their units), secretariat and admin on a unit's behalf. ``status`` in the body is ignored.

    201 the request; 403 ``forbidden_role`` / ``forbidden_scope``; 409 ``booking_conflict``; 422 bad input.
    """
    view = requests.submit(session, settings, principal, data)
    return _answer(RequestPublic, public(session, view), status.HTTP_201_CREATED)


@router.get("/requests", response_model=RequestPage)
def list_requests(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, paging: PagingDep,
                  state: Annotated[RequestState | None, Query(description="default pending")] = RequestState.pending,
                  all_states: Annotated[bool, Query(description="every state (overrides state)")] = False):
    """Requests oldest first. Secretariat and admin: every request, each pending one with its current
    ``conflicts`` (dry run). Requesters: their own. 403 for other roles."""
    items, total = requests.list_requests(session, settings, principal, state=None if all_states else state,
                                          limit=paging.limit, offset=paging.offset)
    return {"items": [public(session, v) for v in items], "total": total, "limit": paging.limit,
            "offset": paging.offset}


@router.get("/requests/{request_id}", response_model=RequestPublic)
def get_request(request_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """One request; 404 ``request_not_found`` (also another requester's)."""
    return public(session, requests.get(session, principal, request_id))


@router.post("/requests/{request_id}/approve", response_model=RequestPublic)
def approve_request(request_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """Approve (duyệt): the meeting is confirmed, SEQUENCE bumps, invitations go out.
    403 not secretariat/admin; 404; 409 ``request_not_pending`` (decided or expired meanwhile)."""
    return _answer(RequestPublic, public(session, requests.approve(session, principal, request_id)))


@router.post("/requests/{request_id}/reject", response_model=RequestPublic)
def reject_request(request_id: PathId, data: RequestReject, session: SessionDep, principal: CurrentPrincipal):
    """Reject (từ chối) with a reason: the meeting is cancelled, its resources freed.
    403; 404; 409 ``request_not_pending``; 422 without a reason."""
    return _answer(RequestPublic, public(session, requests.reject(session, principal, request_id, data.reason)))
