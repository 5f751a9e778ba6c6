"""Endpoint live status under ``/api/v1``: status reports, their history, and agent tokens.

``POST /endpoints/{id}/status`` accepts an agent token (``cfa_…``, see ``agent_tokens``) or the bearer
token of an admin (anywhere) or an operator (their units). Routes parse, call one service function
and shape the answer; rules live in ``status.py`` and ``agent_tokens.py``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from confsvc.deps import PagingDep
from confsvc.db import PathId, SessionDep, make_session
from confsvc.endpoints import agent_tokens, schemas
from confsvc.endpoints import service as inventory
from confsvc.endpoints import status as endpoint_status
from confsvc.errors import Unauthorized
from confsvc.users import service as users
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1")


def get_reporter(request: Request) -> endpoint_status.Reporter:
    """The sender of a status report, resolved in a read session of its own (never the write session,
    see ``users.deps.get_principal``). Raises Unauthorized (401) or Forbidden (403, wrong role)."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("authentication required: send `Authorization: Bearer <agent token>`",
                           code="not_authenticated")
    with make_session(request.app.state.engine, write=False) as session:
        if agent_tokens.is_agent_secret(secret):
            return endpoint_status.Reporter.for_agent(agent_tokens.agent_for_secret(session, secret))
        user = users.user_for_token(session, secret)
        return endpoint_status.Reporter.for_principal(users.principal_for(session, user))


ReporterDep = Annotated[endpoint_status.Reporter, Depends(get_reporter)]


def _json(model: type, data: object, status_code: int = 200) -> Response:
    # Serialised in the handler's hop, before the session commits (see scheduling.routes._answer).
    return Response(model.model_validate(data).model_dump_json(), status_code=status_code,
                    media_type="application/json")


@router.post("/endpoints/{endpoint_id}/status", response_model=schemas.StatusReportResult, tags=["endpoints"])
def report_status(endpoint_id: PathId, data: schemas.StatusReport, session: SessionDep, reporter: ReporterDep):
    """Report an endpoint's live status (device agents, bridge webhooks, admins, operators).

    A change updates the endpoint, is kept in the history and pushed as ``endpoint.status``; a repeat
    only refreshes ``last_seen_at``; a report older than the latest change is ignored (``stale``).
    401 without a valid token; 403 ``forbidden_endpoint`` / ``forbidden_scope`` / ``forbidden_role``;
    404 ``endpoint_not_found``; 422 ``at_in_future``.
    """
    at = data.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # agents speak UTC
    result = endpoint_status.report_status(session, reporter, endpoint_id, data.status, at=at, detail=data.detail)
    return _json(schemas.StatusReportResult, result.__dict__)


@router.get("/endpoints/{endpoint_id}/status-history", response_model=schemas.Page[schemas.StatusChangePublic],
            tags=["endpoints"])
def status_history(endpoint_id: PathId, session: SessionDep, principal: CurrentPrincipal, paging: PagingDep):
    """Status changes of one endpoint, newest first. 404 if unknown, 403 outside an operator's units."""
    endpoint, _ = inventory.get_endpoint(session, principal, endpoint_id)
    rows, total = endpoint_status.status_history(session, endpoint, limit=paging.limit, offset=paging.offset)
    return {"items": rows, "total": total, "limit": paging.limit, "offset": paging.offset}


@router.get("/agent-tokens", response_model=list[schemas.AgentTokenPublic], tags=["tokens"])
def list_agent_tokens(session: SessionDep, principal: CurrentPrincipal):
    """Admin only. Agent tokens in creation order (secrets are never shown again)."""
    return agent_tokens.list_agent_tokens(session, principal)


@router.post("/agent-tokens", response_model=schemas.AgentTokenIssued, status_code=status.HTTP_201_CREATED,
             tags=["tokens"])
def create_agent_token(data: schemas.AgentTokenCreate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. The secret (``token``) is shown once. 422 ``unknown_bridge`` / ``unknown_endpoint``."""
    token, secret = agent_tokens.create_agent_token(session, principal, data)
    return _json(schemas.AgentTokenIssued, {**token.model_dump(), "token": secret}, status.HTTP_201_CREATED)


@router.delete("/agent-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tokens"])
def revoke_agent_token(token_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. Revoked at once; 404 ``agent_token_not_found``."""
    agent_tokens.revoke_agent_token(session, principal, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
