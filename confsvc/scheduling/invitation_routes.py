"""The official invitation (giấy mời) of a meeting as DOCX and PDF:
``GET /api/v1/meetings/{id}/invitation.docx`` and ``.pdf``. Same permission as reading the meeting."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from confsvc.db import MAX_ID, PathId, SessionDep
from confsvc.deps import SettingsDep
from confsvc.scheduling import invitation
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1/meetings", tags=["meetings"])
OccurrenceQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="default: the next occurrence")]


def _file(meeting_id: int, fmt: str, body: bytes) -> Response:
    name = f"giấy-mời-{meeting_id}.{fmt}"
    return Response(body, media_type=invitation.FORMATS[fmt], headers={
        "Content-Disposition": f"attachment; filename=\"giay-moi-{meeting_id}.{fmt}\"; "
                               f"filename*=UTF-8''{quote(name)}"})


@router.get("/{meeting_id}/invitation.docx", response_class=Response,
            responses={200: {"content": {invitation.FORMATS["docx"]: {}}}})
def invitation_docx(meeting_id: PathId, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
                    occurrence_id: OccurrenceQuery = None):
    """The giấy mời (NĐ 30/2020/NĐ-CP) as an editable DOCX, for one occurrence (default: the next).
    404 meeting/occurrence, 403 when the meeting may not be read."""
    return _file(meeting_id, "docx", invitation.render_for(session, settings, principal, meeting_id, fmt="docx",
                                                            occurrence_id=occurrence_id))


@router.get("/{meeting_id}/invitation.pdf", response_class=Response,
            responses={200: {"content": {invitation.FORMATS["pdf"]: {}}}})
def invitation_pdf(meeting_id: PathId, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
                   occurrence_id: OccurrenceQuery = None):
    """The giấy mời as PDF (A4, fonts embedded), for one occurrence (default: the next)."""
    return _file(meeting_id, "pdf", invitation.render_for(session, settings, principal, meeting_id, fmt="pdf",
                                                          occurrence_id=occurrence_id))
