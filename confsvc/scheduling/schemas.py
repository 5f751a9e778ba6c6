"""API shapes of scheduling. Datetimes without an offset are local time of the meeting's zone
(default ``Settings.timezone``); answers are UTC (``…Z``/``+00:00``), with ``*_local`` copies where useful.
Durations are minutes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from confsvc.db import IdField
from confsvc.endpoints.schemas import Page  # noqa: F401  (re-exported for routes)
from confsvc.scheduling.models import MeetingStatus, OccurrenceStatus, ReadinessState
from confsvc.text import nfc, one_line

Title = Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=300)]
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
IdList = Annotated[list[IdField], Field(max_length=5000)]
DocumentNumber = Annotated[str, AfterValidator(one_line), Field(max_length=50)]
SignerText = Annotated[str, AfterValidator(one_line), Field(max_length=200)]


def _title_lines(value: str) -> str:
    """NFC; at most 3 lines, each stripped and collapsed ("KT. CHÁNH VĂN PHÒNG\nPHÓ CHÁNH VĂN PHÒNG")."""
    lines = [one_line(line) for line in nfc(value).splitlines() if line.strip()]
    if len(lines) > 3:
        raise ValueError("a signer's title has at most 3 lines")
    return "\n".join(lines)


SignerTitle = Annotated[str, AfterValidator(_title_lines), Field(max_length=200)]


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class MeetingCreate(BaseModel):
    """A meeting to book. ``rrule`` is one RFC 5545 RRULE value (e.g. ``FREQ=WEEKLY;BYDAY=MO;COUNT=10``);
    ``exdates`` are original starts to leave out. ``skip_conflicts`` books the free occurrences and
    lists the others instead of refusing (SPEC rule 5)."""

    model_config = ConfigDict(extra="forbid")
    title: Title
    description: Annotated[str, AfterValidator(nfc), Field(max_length=10000)] = ""
    chair_room_id: IdField
    participant_room_ids: IdList = []
    participant_endpoint_ids: IdList = []
    start: datetime
    end: datetime
    check_lead_minutes: Minutes | None = None
    teardown_minutes: Minutes | None = None
    bridge_id: IdField | None = None
    status: Literal["tentative", "confirmed"] = "confirmed"
    rrule: Annotated[str, Field(max_length=500)] | None = None
    exdates: Annotated[list[datetime], Field(max_length=1000)] = []
    timezone: Annotated[str | None, AfterValidator(_zone)] = None
    skip_conflicts: bool = False
    site_group_ids: Annotated[list[IdField], Field(max_length=100)] = Field(
        [], description="saved site groups; their rooms join participant_room_ids at booking time")
    document_number: DocumentNumber = ""
    signer_name: SignerText = ""
    signer_title: SignerTitle = ""
    confidential: bool = Field(False, description="mật: outside its participants' units and the secretariat, "
                               "only \"Cuộc họp\", its time and rooms are shown")


class MeetingUpdate(BaseModel):
    """A whole-series edit: given fields replace the meeting's. Exceptions and occurrence ids are kept
    (SPEC rule 5). ``rrule: null`` is ignored; send ``""`` to make a series a single meeting."""

    model_config = ConfigDict(extra="forbid")
    title: Title | None = None
    description: Annotated[str, AfterValidator(nfc), Field(max_length=10000)] | None = None
    chair_room_id: IdField | None = None
    participant_room_ids: IdList | None = None
    participant_endpoint_ids: IdList | None = None
    start: datetime | None = None
    end: datetime | None = None
    check_lead_minutes: Minutes | None = None
    teardown_minutes: Minutes | None = None
    bridge_id: IdField | None = None
    status: Literal["tentative", "confirmed"] | None = None
    rrule: Annotated[str, Field(max_length=500)] | None = None
    exdates: Annotated[list[datetime], Field(max_length=1000)] | None = None
    document_number: DocumentNumber | None = None
    signer_name: SignerText | None = None
    signer_title: SignerTitle | None = None
    confidential: bool | None = None


class OccurrenceUpdate(BaseModel):
    """Edit one occurrence: move it, change its chair room or participants. It becomes an exception."""

    model_config = ConfigDict(extra="forbid")
    start: datetime | None = None
    end: datetime | None = None
    chair_room_id: IdField | None = None
    participant_room_ids: IdList | None = None
    participant_endpoint_ids: IdList | None = None


class OccurrenceCreate(BaseModel):
    """An extra occurrence of a series (RDATE): ``[start, end)``, naive times local to the meeting's zone.
    It takes the meeting's rooms and participants."""

    model_config = ConfigDict(extra="forbid")
    start: datetime
    end: datetime


class ConflictPublic(BaseModel):
    """One collision (SPEC rule 8). ``window_*`` is the overlap; ``requested_start`` the start (UTC)
    of the requested occurrence that collides."""

    model_config = ConfigDict(extra="allow")
    resource_kind: str
    resource_id: int
    resource_name: str
    meeting_id: int | None
    meeting_title: str | None
    occurrence_id: int | None
    maintenance_id: int | None
    window_start: datetime
    window_end: datetime
    window_start_local: datetime
    window_end_local: datetime
    requested_start: datetime
    requested_occurrence_id: int | None = None


class SkippedOccurrence(BaseModel):
    occurrence_id: int | None
    start: datetime
    end: datetime
    conflicts: list[ConflictPublic]


class MeetingPublic(BaseModel):
    """A meeting. ``start``/``end`` are its first occurrence's (UTC); ``participant_endpoint_ids``
    include the chair room's endpoints."""

    id: int
    uid: str
    title: str
    description: str
    organizer_user_id: int | None
    chair_room_id: int
    participant_endpoint_ids: list[int]
    bridge_id: int | None
    conference_number: int | None
    pin: str
    status: MeetingStatus
    check_lead_minutes: int
    teardown_minutes: int
    start: datetime
    end: datetime
    duration_minutes: int
    timezone: str
    rrule: str | None
    exdates: list[datetime]
    materialized_until: datetime | None
    sequence: int
    created_by: int | None
    created_at: datetime
    updated_by: int | None
    updated_at: datetime
    cancelled_by: int | None
    cancelled_at: datetime | None
    document_number: str = Field(description="số/ký hiệu of the invitation (giấy mời)")
    signer_name: str
    signer_title: str
    confidential: bool = False


class MeetingBooked(MeetingPublic):
    """Answer to a booking or a series edit: the meeting, skipped occurrences, warnings (holidays)."""

    occurrence_count: int
    skipped: list[SkippedOccurrence]
    warnings: list[dict[str, Any]]


class OccurrencePublic(BaseModel):
    """One occurrence with its effective chair room and participants."""

    id: int
    meeting_id: int
    recurrence_id: datetime
    start: datetime
    end: datetime
    status: OccurrenceStatus
    chair_room_id: int
    participant_endpoint_ids: list[int]
    is_exception: bool
    is_extra: bool = Field(False, description="added to the series on its own (RDATE)")


class CheckResult(BaseModel):
    """Dry run (``POST /meetings/check``): ``ok`` is true when nothing collides."""

    ok: bool
    conflicts: list[ConflictPublic]
    warnings: list[dict[str, Any]]


class MaintenanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: datetime
    end: datetime
    note: Annotated[str, AfterValidator(nfc), Field(max_length=500)] = ""


class MaintenancePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    endpoint_id: int
    start: datetime
    end: datetime
    note: str
    created_by: int | None


class FreeSlot(BaseModel):
    """A proposed meeting time ``[start, end)`` (UTC and local) whose whole window is free."""

    start: datetime
    end: datetime
    start_local: datetime
    end_local: datetime
    bridge_id: int | None


class AvailabilityQuery(BaseModel):
    endpoint_ids: list[int] = []
    room_ids: list[int] = []
    duration_minutes: int
    from_date: date
    to_date: date

    @field_validator("duration_minutes")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("duration_minutes must be positive")
        return value


# ---------------------------------------------------------------- readiness (issue 4)

class ReadinessUpdate(BaseModel):
    """A site's readiness: ``problem`` needs a ``note`` (what is wrong)."""

    model_config = ConfigDict(extra="forbid")
    state: ReadinessState
    note: Annotated[str, AfterValidator(nfc), Field(max_length=500)] = ""


class ReadinessSite(BaseModel):
    room_id: int
    room_name: str
    unit_id: int
    is_chair: bool
    state: ReadinessState
    state_label: str = Field(description="Vietnamese: Chưa kiểm tra, Đã sẵn sàng, Gặp sự cố, Đã kết nối")
    note: str
    updated_by: int | None
    updated_at: datetime | None


class ReadinessBoard(BaseModel):
    """Readiness of every site of one occurrence. ``deadline`` = start − readiness_deadline_minutes (UTC);
    ``overdue``: the deadline has passed and some site is neither ready nor connected."""

    meeting_id: int
    occurrence_id: int
    start: datetime
    deadline: datetime
    overdue: bool
    sites: list[ReadinessSite]


class BlockCreate(BaseModel):
    """A room or endpoint blocked for whole local days ``first_day … last_day`` (inclusive)."""

    model_config = ConfigDict(extra="forbid")
    first_day: date
    last_day: date
    reason: Annotated[str, AfterValidator(nfc), Field(max_length=500)] = ""


class BlockPublic(BaseModel):
    """A day block. ``first_day``/``last_day`` are local dates, the last included."""

    id: int
    resource_kind: str
    resource_id: int
    first_day: date
    last_day: date
    reason: str
    created_by: int | None
    created_at: datetime
