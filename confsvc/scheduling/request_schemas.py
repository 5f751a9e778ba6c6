"""API shapes of meeting requests (issue 15). Times UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from confsvc.scheduling.request_models import RequestState
from confsvc.scheduling.schemas import ConflictPublic, MeetingPublic
from confsvc.text import one_line


class RequestPublic(BaseModel):
    """A request: ``id`` is its meeting's id; ``meeting`` the tentative (then confirmed or cancelled)
    meeting; ``conflicts`` what a pending request collides with now (the secretariat's queue only)."""

    id: int
    state: RequestState
    requested_by: int | None
    requested_at: datetime
    expires_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    reason: str
    meeting: MeetingPublic
    conflicts: list[ConflictPublic] = []


class RequestPage(BaseModel):
    items: list[RequestPublic]
    total: int
    limit: int
    offset: int


class RequestReject(BaseModel):
    """A rejection's reason (lý do), shown to the requester."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=1000)]
