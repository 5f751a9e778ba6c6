"""Call intake under ``/api/v1``: ``POST /calls`` (bridges, device agents, admin and secretariat) and
manual attendance marks (``POST /meetings/{id}/occurrences/{occ}/attendance``).

Routes parse, call one service function and shape the answer. Times in answers are UTC; naive times
in requests are local (SPEC rule 9).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from confsvc.calls import intake as calls
from confsvc.calls import schemas
from confsvc.db import PathId, SessionDep, make_session
from confsvc.deps import SettingsDep
from confsvc.endpoints import agent_tokens
from confsvc.scheduling import reading
from confsvc.users.deps import require_capability, resolve_principal
from confsvc.users.principal import MARK_ATTENDANCE, Principal

router = APIRouter(prefix="/api/v1")


def _answer(model: type[Any], data: Any) -> Response:
    """Serialise inside the handler's thread hop (see ``scheduling.routes._answer``)."""
    return Response(model.model_validate(data).model_dump_json(), media_type="application/json")


def get_call_caller(request: Request) -> Principal | calls.AgentCaller:
    """An agent token (``Authorization: Bearer cfa_…``), resolved in a read session of its own, or else
    the user (``users.deps.resolve_principal``). Raises Unauthorized (401)."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() == "bearer" and agent_tokens.is_agent_secret(secret):
        with make_session(request.app.state.engine, write=False) as session:
            return calls.AgentCaller.for_token(agent_tokens.agent_for_secret(session, secret))
    return resolve_principal(request)


CallCallerDep = Annotated[Principal | calls.AgentCaller, Depends(get_call_caller)]


@router.post("/calls", response_model=schemas.CallEventResult, tags=["calls"])
def report_call(data: schemas.CallEventCreate, session: SessionDep, caller: CallCallerDep,
                settings: SettingsDep):
    """A call-record event (``connected``/``disconnected``) from a bridge webhook or a device agent.

    Reports about one endpoint are merged: overlapping or repeated reports never count twice; a
    repeat answers ``accepted: false`` (``duplicate``, ``no_open_call``). Records ``call.connected`` /
    ``call.disconnected``. Admin and secretariat bearer tokens, and agent tokens (``cfa_…``): an
    endpoint-bound one only for its endpoint (403 ``forbidden_endpoint``), a bridge-bound one only for
    occurrences on its bridge (403 ``forbidden_bridge``). 401 invalid or revoked token; 403
    ``forbidden_role``; 422 ``no_occurrence``, ``outside_occurrence``, ``occurrence_cancelled``,
    ``not_a_participant``, ``at_in_future``; 404 unknown endpoint/occurrence.
    """
    outcome = calls.report_call(session, settings, caller, data)
    return _answer(schemas.CallEventResult, {
        "accepted": outcome.accepted, "reason": outcome.reason, "occurrence_id": outcome.occurrence_id,
        "record": calls.record_public(outcome.record) if outcome.record else None})


#: Who may mark attendance, checked before the write session is touched (issue 16 defect 2).
AttendanceMarker = Annotated[Principal, require_capability(MARK_ATTENDANCE)]


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/attendance",
             response_model=schemas.AttendanceResult, tags=["calls"])
def mark_attendance(meeting_id: PathId, occurrence_id: PathId, data: schemas.AttendanceMark, session: SessionDep,
                    principal: AttendanceMarker, settings: SettingsDep):
    """Manual attendance mark (when no device reports): the room or endpoint was connected over
    ``[connected_from, connected_to)``, clipped to ``[start − check lead, end)`` and merged with its
    other periods. Admin, secretariat; operators for their units' rooms."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    records = calls.mark_attendance(session, settings, principal, meeting, occurrence, data)
    return _answer(schemas.AttendanceResult, {"records": [calls.record_public(r) for r in records]})
