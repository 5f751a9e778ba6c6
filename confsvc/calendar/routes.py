"""Calendar routes: invites under ``/api/v1``, feed tokens under ``/api/v1/feeds``, and the
token-authenticated feeds ``/ical/{scope}/{id}.ics?token=...`` (SPEC "Calendar").

Every calendar answer is ``text/calendar; charset=utf-8`` with a strong ETag and Last-Modified;
feeds answer ``If-None-Match`` / ``If-Modified-Since`` with 304 (RFC 9110 §13.1.2, §13.1.3), decided
from the feed's fingerprint before anything is rendered.
"""


from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from confsvc.deps import SettingsDep
from confsvc.config import Settings
from confsvc.db import PathId, SessionDep
from confsvc.errors import NotFound, Unauthorized
from confsvc.calendar import feeds
from confsvc.calendar import schemas
from confsvc.calendar import tokens
from confsvc.calendar.feeds import Document, FeedState
from confsvc.calendar.models import FeedScope
from confsvc.scheduling import reading
from confsvc.scheduling import visibility
from confsvc.users.deps import CurrentPrincipal, bearer_token

router = APIRouter()
MEDIA_TYPE = "text/calendar; charset=utf-8"




def _base_url(request: Request, settings: Settings) -> str:
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


def _not_modified(request: Request, doc: Document | FeedState) -> bool:
    """RFC 9110 §13.1.2 If-None-Match (weak comparison, ``*``) wins over §13.1.3 If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or doc.etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False
        if since.tzinfo is None:
            return False
        return doc.last_modified <= since
    return False


def _validators(doc: Document | FeedState) -> dict[str, str]:
    return {"ETag": doc.etag, "Last-Modified": format_datetime(doc.last_modified, usegmt=True),
            "Cache-Control": "private, no-cache"}


def _calendar_response(request: Request, doc: Document, *, filename: str | None = None) -> Response:
    headers = _validators(doc)
    if _not_modified(request, doc):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(content=doc.body, media_type=MEDIA_TYPE, headers=headers)


@router.get("/api/v1/meetings/{meeting_id}/invite.ics", tags=["calendar"],
            response_class=Response, responses={200: {"content": {"text/calendar": {}}}})
def meeting_invite(meeting_id: PathId, request: Request, session: SessionDep, principal: CurrentPrincipal,
                   settings: SettingsDep, occurrence_id: Annotated[int | None, Query(ge=1)] = None):
    """The meeting's invitation: METHOD:REQUEST, or METHOD:CANCEL once cancelled (RFC 5546).

    ``occurrence_id``: that occurrence alone (CANCEL with its RECURRENCE-ID if cancelled).
    404 unknown meeting or occurrence, 403 outside an operator's units.
    """
    meeting = reading.get_meeting(session, principal, meeting_id)
    doc = feeds.invite(session, settings, meeting, base_url=_base_url(request, settings),
                       occurrence_id=occurrence_id, audience=visibility.Audience.of_principal(principal))
    return _calendar_response(request, doc, filename=f"hop-{meeting.id}.ics")


@router.get("/ical/{scope}/{scope_id}.ics", tags=["calendar"], response_class=Response,
            responses={200: {"content": {"text/calendar": {}}}, 304: {"description": "unchanged"}})
def calendar_feed(scope: str, scope_id: str, request: Request, session: SessionDep, settings: SettingsDep,
                  token: Annotated[str | None, Query(max_length=200)] = None):
    """A subscription feed (lịch đăng ký) for a unit, room, endpoint or the province.

    ``scope`` is ``unit``, ``room``, ``endpoint`` or ``province``. Any unknown scope, id, wrong
    or revoked token is the same 404, revealing nothing. Right after the token check, a matching
    ``If-None-Match`` (or ``If-Modified-Since``) gets a 304 from the feed's fingerprint, unrendered.

    The token may come as ``Authorization: Bearer <token>`` instead of ``?token=`` (clients that can
    set a header keep the secret out of URLs and logs; logs redact ``?token=`` either way).
    """
    try:
        kind, object_id = FeedScope(scope), int(scope_id)
        token = token or bearer_token(request.headers.get("authorization"))
    except (ValueError, Unauthorized):
        raise NotFound("not found", code="not_found") from None
    feed_token = tokens.authenticate_feed(session, kind, object_id, token)
    base_url = _base_url(request, settings)
    state = feeds.feed_state(session, settings, feed_token, base_url=base_url)
    if _not_modified(request, state):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=_validators(state))
    doc = feeds.feed(session, settings, feed_token, base_url=base_url, state=state)
    return _calendar_response(request, doc)


@router.get("/api/v1/feeds", response_model=list[schemas.FeedTokenPublic], tags=["calendar"])
def list_feed_tokens(session: SessionDep, principal: CurrentPrincipal):
    """Feed tokens the caller may manage (secrets are never shown again)."""
    return tokens.list_feed_tokens(session, principal)


@router.post("/api/v1/feeds", response_model=schemas.FeedTokenIssued, status_code=status.HTTP_201_CREATED,
             tags=["calendar"])
def create_feed_token(data: schemas.FeedTokenCreate, request: Request, session: SessionDep,
                      principal: CurrentPrincipal, settings: SettingsDep):
    """A feed URL for a scope. Admin and secretariat anywhere; operators within their units.

    201 with ``token`` and ``url`` (shown once); 403 outside the caller's reach; 404 unknown object.
    """
    token, secret = tokens.create_feed_token(session, principal, scope=data.scope, scope_id=data.scope_id,
                                             include_sub_units=data.include_sub_units, name=data.name)
    url = f"{_base_url(request, settings)}/ical/{token.scope.value}/{token.scope_id}.ics?token={secret}"
    return {**token.model_dump(), "token": secret, "url": url}


@router.delete("/api/v1/feeds/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["calendar"])
def revoke_feed_token(token_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """Revoke at once: the feed URL answers 404 from now on."""
    tokens.revoke_feed_token(session, principal, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
