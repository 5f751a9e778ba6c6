"""Readiness board under ``/api/v1/meetings/{id}/occurrences/{oid}/readiness`` (SPEC "Readiness").

Routes parse, call one service function and shape the answer; rules live in ``readiness.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from confsvc.db import PathId, SessionDep
from confsvc.scheduling import readiness, reading, schemas
from confsvc.users.deps import CurrentPrincipal, require_capability
from confsvc.users.principal import MARK_READINESS, Principal

router = APIRouter(prefix="/api/v1", tags=["meetings"])


def _json(data: dict) -> Response:
    # Serialised in the handler's hop, before the session commits (see routes._answer).
    return Response(schemas.ReadinessBoard.model_validate(data).model_dump_json(), media_type="application/json")


@router.get("/meetings/{meeting_id}/occurrences/{occurrence_id}/readiness", response_model=schemas.ReadinessBoard)
def readiness_board(meeting_id: PathId, occurrence_id: PathId, request: Request, session: SessionDep,
                    principal: CurrentPrincipal):
    """Every site of the occurrence with its readiness (default ``not_checked``), the deadline and
    whether it is overdue. 404 ``meeting_not_found`` / ``occurrence_not_found``; 403 outside an
    operator's units."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    return _json(readiness.board(session, request.app.state.settings, meeting, occurrence))


#: Who may mark readiness, checked before the write session is touched (issue 16 defect 2).
ReadinessMarker = Annotated[Principal, require_capability(MARK_READINESS)]


@router.put("/meetings/{meeting_id}/occurrences/{occurrence_id}/readiness/{room_id}",
            response_model=schemas.ReadinessBoard)
def set_readiness(meeting_id: PathId, occurrence_id: PathId, room_id: PathId, data: schemas.ReadinessUpdate,
                  request: Request, session: SessionDep, principal: ReadinessMarker):
    """Mark a site ready, problem (with a note), connected or back to not_checked; answers the board.

    A change is pushed as ``readiness.changed``. 403 ``forbidden_role`` (viewer) / ``forbidden_scope``
    (operator, room outside their units); 404 ``site_not_in_occurrence``; 422 ``note_required``,
    ``occurrence_cancelled``, ``occurrence_ended``.
    """
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    return _json(readiness.set_readiness(session, request.app.state.settings, principal, meeting, occurrence,
                                         room_id, data.state, data.note))
