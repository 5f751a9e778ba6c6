"""Scheduling tables: meetings, their occurrences, bookings (the rows conflicts are checked on),
maintenance windows, day blocks of rooms and endpoints, and the audit trail.

Every time is UTC at rest (``UTCDateTime``); every interval is half-open ``[start, end)``.
On PostgreSQL, exclusion constraints keep SPEC conflict rules 1 and 3 under concurrency: declared on
:class:`Booking` (PostgreSQL only, ``ddl_if``; SQLite has no equivalent), created by migration 0002.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime, enum_column



class MeetingStatus(str, enum.Enum):
    tentative = "tentative"
    confirmed = "confirmed"
    cancelled = "cancelled"


class MeetingPriority(enum.IntEnum):
    """A meeting's priority (SPEC "Priority", rule 10): a higher one may displace lower ones after
    confirmation (``scheduling.displacement``); equal or higher is never displaced."""

    routine = 0  # thường xuyên
    provincial = 1  # cấp tỉnh
    government = 2  # phiên họp Chính phủ/Đảng

    @property
    def label(self) -> str:
        """The Vietnamese name shown on the pages and in messages."""
        return PRIORITY_LABELS[self]


PRIORITY_LABELS = {MeetingPriority.routine: "Thường xuyên", MeetingPriority.provincial: "Cấp tỉnh",
                   MeetingPriority.government: "Phiên họp Chính phủ/Đảng"}


class OccurrenceStatus(str, enum.Enum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class ResourceKind(str, enum.Enum):
    """What a booking holds (SPEC "Booking")."""

    endpoint = "endpoint"
    room = "room"
    bridge = "bridge"


class Meeting(SQLModel, table=True):
    """An online meeting (hội nghị trực tuyến), single or recurring.

    ``dtstart`` and ``duration_minutes`` describe the first occurrence; a series (``rrule`` set)
    expands in ``timezone`` (weekday rules apply to local dates). ``exdates`` holds excluded
    original starts as UTC ISO-8601 strings. ``materialized_until`` (UTC) is how far occurrences
    of the series exist as rows; ``None`` for a series that ends (or a single meeting).
    """

    __tablename__ = "meetings"

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=255, unique=True)
    title: str = Field(max_length=300)
    description: str = Field(default="", sa_type=sa.Text)
    organizer_user_id: int | None = Field(default=None, foreign_key="users.id", index=True, ondelete="SET NULL")
    chair_room_id: int = Field(foreign_key="rooms.id", index=True, ondelete="RESTRICT")
    bridge_id: int | None = Field(default=None, foreign_key="bridges.id", index=True, ondelete="RESTRICT")
    conference_number: int | None = None
    pin: str = Field(default="", max_length=20)
    status: MeetingStatus = Field(sa_column=enum_column(MeetingStatus, MeetingStatus.confirmed))
    check_lead_minutes: int = 60
    teardown_minutes: int = 0
    timezone: str = Field(default="Asia/Ho_Chi_Minh", max_length=64)
    dtstart: datetime = Field(sa_type=UTCDateTime)
    duration_minutes: int
    rrule: str | None = Field(default=None, max_length=500)
    exdates: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    materialized_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sequence: int = 0
    #: Confidential (mật): outside the participants' units and the secretariat/admin, only "Cuộc họp",
    #: the time and the rooms are shown (``scheduling.visibility``).
    confidential: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    cancelled_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The official invitation (giấy mời, Nghị định 30/2020/NĐ-CP): số/ký hiệu and who signs it.
    document_number: str = Field(default="", max_length=50)
    signer_name: str = Field(default="", max_length=200)
    signer_title: str = Field(default="", max_length=200)
    #: ``MeetingPriority`` value (0 routine, 1 provincial, 2 Government/Party session).
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: A relay (issue 14): the meeting is chaired outside confsvc (Government, a ministry) and the root
    #: bridge dials this external address (SIP URI, H.323 alias or E.164 number, IP): one cascade leg,
    #: one port on the root bridge (``conflicts.bridge_ports``). None: chaired here.
    upstream_dial: str | None = Field(default=None, max_length=255)
    #: A national meeting (issue 14): until this instant (UTC) each province's secretariat may add or
    #: remove its own province's sites (``Principal.require_sites_change``). None: only the booker's office.
    sites_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MeetingBridge(SQLModel, table=True):
    """A bridge of a cascaded meeting other than its root (issue 14, SPEC "Cascade leg").

    The root is ``meetings.bridge_id`` (the chair's bridge, as for every meeting). Each row is one more
    bridge the meeting's sites join: the bridge of one province (``bridges.unit_id``), whose sites dial
    it with ``conference_number`` (the meeting's PIN), linked by one cascade leg to ``parent_bridge_id``
    (one port on each end). A meeting on one bridge has no row. Occurrences hold each bridge's ports
    in their own ``bookings`` rows (sites + legs, ``conflicts.bridge_ports``).
    """

    __tablename__ = "meeting_bridges"
    __table_args__ = (sa.CheckConstraint("bridge_id <> parent_bridge_id", name="leg_between_two_bridges"),)

    meeting_id: int = Field(foreign_key="meetings.id", primary_key=True, ondelete="CASCADE")
    bridge_id: int = Field(foreign_key="bridges.id", primary_key=True, index=True, ondelete="RESTRICT")
    parent_bridge_id: int = Field(foreign_key="bridges.id", ondelete="RESTRICT")
    conference_number: int | None = None


class MeetingParticipant(SQLModel, table=True):
    """A participating endpoint of a meeting (the chair room's endpoints included)."""

    __tablename__ = "meeting_participants"

    meeting_id: int = Field(foreign_key="meetings.id", primary_key=True, ondelete="CASCADE")
    endpoint_id: int = Field(foreign_key="endpoints.id", primary_key=True, index=True, ondelete="RESTRICT")


class Occurrence(SQLModel, table=True):
    """One instance of a meeting. ``recurrence_id`` is its original start (UTC, RFC 5545 §3.8.4.4).

    ``chair_room_id`` overrides the meeting's chair room; ``participants_overridden`` means the
    participants are the rows in ``occurrence_participants`` instead of the meeting's.
    ``is_exception`` marks an occurrence edited or cancelled on its own: a series edit keeps it
    (SPEC rule 5). ``is_extra`` marks one added to the series (RDATE). Its id stays stable across
    series edits. ``conference_number`` is its own number on the meeting's bridge when the meeting's
    was taken at its time (None: the meeting's).
    """

    __tablename__ = "occurrences"
    __table_args__ = (
        sa.UniqueConstraint("meeting_id", "recurrence_id"),
        sa.Index("ix_occurrences_start_end", "start", "end"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meetings.id", index=True, ondelete="CASCADE")
    recurrence_id: datetime = Field(sa_type=UTCDateTime)
    start: datetime = Field(sa_type=UTCDateTime)
    end: datetime = Field(sa_type=UTCDateTime)
    status: OccurrenceStatus = Field(sa_column=enum_column(OccurrenceStatus, OccurrenceStatus.scheduled))
    chair_room_id: int | None = Field(default=None, foreign_key="rooms.id", ondelete="RESTRICT")
    participants_overridden: bool = False
    is_exception: bool = False
    #: Added to the series on its own (RFC 5545 §3.8.5.2 RDATE): not generated by the rule, always an
    #: exception; ``recurrence_id`` is its RDATE value.
    is_extra: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    conference_number: int | None = None
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    #: Displaced by a higher-priority meeting (``scheduling.displacement``, SPEC rule 10): still
    #: scheduled, but holding no booking (no room, endpoint or port) until it is moved; shown
    #: TENTATIVE in feeds. ``displaced_by_meeting_id`` is the meeting that took its place;
    #: ``alternative_start``/``alternative_end`` (UTC) the nearest free slot proposed then (None: none
    #: found within ``displacement.SEARCH_DAYS``).
    tentative: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    displaced_by_meeting_id: int | None = None
    alternative_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    alternative_end: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def number(self, meeting: Meeting) -> int | None:
        """The conference number to dial for this occurrence: its own, else the meeting's."""
        return self.conference_number if self.conference_number is not None else meeting.conference_number


class OccurrenceParticipant(SQLModel, table=True):
    """Participants of an occurrence whose list was edited on its own."""

    __tablename__ = "occurrence_participants"

    occurrence_id: int = Field(foreign_key="occurrences.id", primary_key=True, ondelete="CASCADE")
    endpoint_id: int = Field(foreign_key="endpoints.id", primary_key=True, ondelete="RESTRICT")


class MaintenanceWindow(SQLModel, table=True):
    """An endpoint taken out of service for ``[start, end)`` (bảo trì). Itself a booking (SPEC rule 4)."""

    __tablename__ = "maintenance_windows"

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="endpoints.id", index=True, ondelete="CASCADE")
    start: datetime = Field(sa_type=UTCDateTime)
    end: datetime = Field(sa_type=UTCDateTime)
    note: str = Field(default="", max_length=500)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ResourceBlock(SQLModel, table=True):
    """A room or endpoint blocked for whole local days ``first_day … last_day`` (inclusive; repairs, an
    election, a holiday): itself a booking of the resource, like a maintenance window, over
    ``[first_day 00:00, last_day + 1 00:00)`` local time (issue 12). Shown in the resource's feed as an
    all-day event (RFC 5545 §3.6.1: DTSTART;VALUE=DATE and an exclusive DTEND;VALUE=DATE)."""

    __tablename__ = "resource_blocks"
    __table_args__ = (sa.CheckConstraint("first_day <= last_day", name="days_ordered"),
                      sa.Index("ix_resource_blocks_resource", "resource_kind", "resource_id", "last_day"))

    id: int | None = Field(default=None, primary_key=True)
    resource_kind: ResourceKind = Field(sa_column=enum_column(ResourceKind))
    resource_id: int
    first_day: date
    last_day: date
    reason: str = Field(default="", max_length=500)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


#: A booking's window as a PostgreSQL range, half-open (the exclusion constraints' overlap operand).
_WINDOW: sa.ColumnElement[Any] = sa.literal_column("tstzrange(window_start, window_end, '[)')")


class Booking(SQLModel, table=True):
    """One resource held over ``[window_start, window_end)`` for an occurrence, a maintenance window or a
    day block (exactly one owner).

    ``window_start = start − check_lead``, ``window_end = end + teardown`` (SPEC "Booking").
    A bridge booking holds ``ports`` ports and the meeting's ``conference_number``. No window is
    longer than ``Settings.max_booking_window_minutes`` (long maintenance is split), which is what
    lets overlap queries scan a bounded index range (repository.overlapping).

    PostgreSQL (migration 0002, ``btree_gist``): ``ex_bookings_resource_window``, SPEC rule 1, an
    endpoint or a room holds at most one booking at any instant (``'[)'``: back-to-back windows are
    legal); ``ex_bookings_conference_number``, SPEC rule 3, a conference number is unique on its bridge
    among overlapping bookings. ``tests/core/test_exclusion_constraints.py`` checks the database's against these.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        # resource_id first: a GiST keyed on the two-valued kind first checks inserts ~3× slower
        # (migration 20261210_resource_window_order).
        ExcludeConstraint(("resource_id", "="), ("resource_kind", "="), (_WINDOW, "&&"),
                          name="ex_bookings_resource_window", using="gist",
                          where=sa.text("resource_kind IN ('endpoint', 'room')")).ddl_if(dialect="postgresql"),
        ExcludeConstraint(("resource_id", "="), ("conference_number", "="), (_WINDOW, "&&"),
                          name="ex_bookings_conference_number", using="gist",
                          where=sa.text("resource_kind = 'bridge' AND conference_number IS NOT NULL"),
                          ).ddl_if(dialect="postgresql"),
        sa.Index("ix_bookings_resource_window", "resource_kind", "resource_id", "window_start"),
        # Bridge bookings by bridge and window end: the ports count at COMMIT (migration
        # 20261209_bridge_port_guard, ``scheduling/port_guard.py``) scans those not ended yet.
        sa.Index("ix_bookings_bridge_window", "resource_id", "window_end",
                 sqlite_where=sa.text("resource_kind = 'bridge'"), postgresql_where=sa.text("resource_kind = 'bridge'")),
        sa.CheckConstraint("window_start < window_end", name="window_positive"),
        sa.CheckConstraint("(CASE WHEN occurrence_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN maintenance_id IS NULL "
                           "THEN 0 ELSE 1 END) + (CASE WHEN block_id IS NULL THEN 0 ELSE 1 END) = 1", name="one_owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int | None = Field(default=None, foreign_key="meetings.id", index=True, ondelete="CASCADE")
    occurrence_id: int | None = Field(default=None, foreign_key="occurrences.id", index=True, ondelete="CASCADE")
    maintenance_id: int | None = Field(default=None, foreign_key="maintenance_windows.id", index=True,
                                       ondelete="CASCADE")
    block_id: int | None = Field(default=None, foreign_key="resource_blocks.id", index=True, ondelete="CASCADE")
    resource_kind: ResourceKind = Field(sa_column=enum_column(ResourceKind, ResourceKind.endpoint))
    resource_id: int
    window_start: datetime = Field(sa_type=UTCDateTime)
    window_end: datetime = Field(sa_type=UTCDateTime)
    ports: int = 0
    conference_number: int | None = None


class AuditEntry(SQLModel, table=True):
    """Who did what to which meeting or occurrence, and when. ``details`` is free JSON."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    action: str = Field(max_length=60)
    meeting_id: int | None = Field(default=None, foreign_key="meetings.id", index=True, ondelete="CASCADE")
    occurrence_id: int | None = Field(default=None)
    at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


# ---------------------------------------------------------------- live channel (issue 4)

class ReadinessState(str, enum.Enum):
    """SPEC "Readiness" (sẵn sàng): per site (room) per occurrence."""

    not_checked = "not_checked"
    ready = "ready"
    problem = "problem"
    connected = "connected"


class SiteReadiness(SQLModel, table=True):
    """A site's readiness for one occurrence. No row means ``not_checked``."""

    __tablename__ = "readiness"

    occurrence_id: int = Field(foreign_key="occurrences.id", primary_key=True, ondelete="CASCADE")
    room_id: int = Field(foreign_key="rooms.id", primary_key=True, index=True, ondelete="CASCADE")
    state: ReadinessState = Field(sa_column=enum_column(ReadinessState, ReadinessState.not_checked))
    note: str = Field(default="", max_length=500)
    updated_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class SchedulerMark(SQLModel, table=True):
    """A notice the scheduler has sent: the primary key (occurrence_id, kind, due_at) makes it exactly
    once, even with several processes running the scheduler (the insert that wins sends it).
    ``due_at`` (UTC) is when the notice fell due; moving the occurrence moves it, so a moved
    occurrence gets its notices again for its new time. ``at`` is when it was sent."""

    __tablename__ = "scheduler_marks"

    occurrence_id: int = Field(foreign_key="occurrences.id", primary_key=True, ondelete="CASCADE")
    kind: str = Field(max_length=30, primary_key=True)
    due_at: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)


# ---------------------------------------------------------------- idempotent booking (issue 12)

class IdempotencyKey(SQLModel, table=True):
    """The answer given to a request carrying an ``Idempotency-Key`` (IETF draft
    "The Idempotency-Key HTTP Header Field"): scoped to the user, kept until ``expires_at`` (UTC;
    ``Settings.idempotency_ttl_hours`` after ``created_at``). ``fingerprint`` is the SHA-256 of the
    request's kind and parsed body; the stored answer (status, media type, body, ``Location``) is what
    a retry with the same key and body gets back, byte for byte. Only successful answers are stored:
    a refusal rolls back with everything else, and a retry is evaluated again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int = 0
    media_type: str = Field(default="", max_length=100)
    body: str = Field(default="", sa_type=sa.Text)
    location: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
