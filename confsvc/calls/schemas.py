"""API shapes of call intake: call events, manual attendance marks, call records. Datetimes without an
offset are local time (``Settings.timezone``, SPEC rule 9); answers are UTC."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from confsvc.db import IdField


class CallEventKind(str, enum.Enum):
    connected = "connected"
    disconnected = "disconnected"


class CallEventCreate(BaseModel):
    """A call-record event from a bridge webhook or a device agent.

    ``at`` is when it happened (UTC; without an offset: local time). ``leg_id``: the bridge's id of the
    call leg (a re-sent event with the same leg id changes nothing; an endpoint may have several legs
    at once, and usage counts their union). Without ``occurrence_id`` a ``connected`` belongs to the
    endpoint's occurrence whose ``[start − check_lead, end)`` contains ``at``; a ``disconnected`` ends
    its leg (without ``leg_id``: the oldest open leg of the same source), also after the occurrence's end.
    """

    model_config = ConfigDict(extra="forbid")
    endpoint_id: IdField
    event: CallEventKind
    at: datetime
    occurrence_id: IdField | None = None
    leg_id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")] | None = None
    source: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_.-]+$")] = "bridge"


class AttendanceMark(BaseModel):
    """An operator's manual attendance mark: the site was connected over ``[connected_from, connected_to)``.

    Exactly one of ``room_id`` (every participating endpoint of the room) and ``endpoint_id``.
    """

    model_config = ConfigDict(extra="forbid")
    room_id: IdField | None = None
    endpoint_id: IdField | None = None
    connected_from: datetime
    connected_to: datetime

    @model_validator(mode="after")
    def _one_site(self) -> AttendanceMark:
        if (self.room_id is None) == (self.endpoint_id is None):
            raise ValueError("give exactly one of room_id and endpoint_id")
        return self


class CallRecordPublic(BaseModel):
    """A connection period ``[connected_at, disconnected_at)`` (UTC); ``disconnected_at`` null while open."""

    id: int
    endpoint_id: int
    occurrence_id: int
    connected_at: datetime
    disconnected_at: datetime | None
    source: str


class CallEventResult(BaseModel):
    """``accepted`` false with a ``reason`` (``duplicate``, ``no_open_call``, ``unknown_leg``) when the report
    changed nothing; ``record``: the endpoint's record (the union of its legs) the leg belongs to."""

    accepted: bool
    reason: str | None = None
    occurrence_id: int
    record: CallRecordPublic | None = None


class AttendanceResult(BaseModel):
    records: list[CallRecordPublic]
