"""Requests (yêu cầu đặt lịch, issue 15): a tentative meeting asked for by a requester.

A request *is* its meeting (``meeting_id`` is the key): the meeting is booked with status
``tentative`` and holds its resources like any booking (SPEC rule 10) until the secretariat
approves it (→ ``confirmed``), rejects it with a reason, or it expires at ``expires_at`` (UTC);
rejection and expiry cancel the meeting and free its resources.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from confsvc.db import UTCDateTime, enum_column


class RequestState(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"


class MeetingRequest(SQLModel, table=True):
    """The request's decision state beside its meeting. Times UTC."""

    __tablename__ = "meeting_requests"
    __table_args__ = (sa.Index("ix_meeting_requests_state_expires_at", "state", "expires_at"),)

    meeting_id: int = Field(foreign_key="meetings.id", primary_key=True, ondelete="CASCADE")
    requested_by: int | None = Field(default=None, foreign_key="users.id", index=True, ondelete="SET NULL")
    requested_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    state: RequestState = Field(sa_column=enum_column(RequestState, RequestState.pending))
    decided_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str = Field(default="", max_length=1000)
