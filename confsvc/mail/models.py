"""The mail outbox (issue 5): invitations rendered from ``meeting.*`` events, one delivery per recipient.

``mail_cursor`` is one row (id 1): the last ``events.id`` the dispatcher has turned into messages.
A ``MailMessage`` is what one event says (METHOD:REQUEST or CANCEL) rendered once; each of its
``MailDelivery`` rows is one recipient's copy with its own retry state. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime


class MailCursor(SQLModel, table=True):
    """How far the outbox has read the ``events`` table (single row, ``id`` = 1)."""

    __tablename__ = "mail_cursor"

    id: int = Field(primary_key=True)
    last_event_id: int = 0
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class MailMessage(SQLModel, table=True):
    """One invitation rendered from one event: ``method`` is the iTIP METHOD of ``ics`` (RFC 5546 §1.4).

    An event gives at most one REQUEST or CANCEL for the rooms taking part, and one CANCEL for rooms
    the change removed (RFC 5546 §3.2.5): unique per (event, method).
    """

    __tablename__ = "mail_messages"
    __table_args__ = (sa.UniqueConstraint("event_id", "method"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: int
    meeting_id: int = Field(foreign_key="meetings.id", index=True, ondelete="CASCADE")
    occurrence_id: int | None = None
    method: str = Field(max_length=10)
    subject: str = Field(max_length=400)
    body_text: str = Field(sa_type=sa.Text)
    ics: str = Field(sa_type=sa.Text)
    #: The giấy mời as PDF, rendered when the message was queued (``mail_attach_invitation_pdf``), so
    #: every attempt sends the same bytes; ``None``: no PDF attached.
    invitation_pdf: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class MailDelivery(SQLModel, table=True):
    """One recipient's copy of a message. ``status``: ``pending`` (retried at ``next_attempt_at``),
    ``sending`` (claimed and committed before the SMTP session; ``next_attempt_at`` is the end of the
    lease, after which a dispatcher that died mid-way is assumed gone and the copy is sent again),
    ``sent`` (``sent_at`` set) or ``failed`` (refused permanently or ``mail_max_attempts`` reached).

    ``rfc_message_id`` is the ``Message-ID`` header (RFC 5322 §3.6.4), generated when the copy is
    queued and reused on every attempt, so a copy re-sent after a crash between SMTP and the ``sent``
    mark is recognisable as the same message (issue 16 defect 12). ``None`` only for copies queued
    before it existed: they use the former ``<confsvc.{message}.{delivery}@…>`` form."""

    __tablename__ = "mail_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("message_id", "recipient"),
        sa.Index("ix_mail_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="mail_messages.id", index=True, ondelete="CASCADE")
    recipient: str = Field(max_length=254)
    status: str = Field(default="pending", max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str = Field(default="", max_length=1000)
    rfc_message_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
