"""API shapes of scheduling. Datetimes without an offset are local time of the meeting's zone
(default ``Settings.timezone``); answers are UTC (``…Z``/``+00:00``), with ``*_local`` copies where useful.
Durations are minutes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from confsvc.db import IdField
from confsvc.endpoints.schemas import Page  # noqa: F401  (re-exported for routes)
from confsvc.scheduling.cascade import Province
from confsvc.scheduling.conflicts import Conflict, ConflictGroup, group_conflicts
from confsvc.scheduling.models import MeetingStatus, OccurrenceStatus, ReadinessState
from confsvc.text import nfc, one_line

Title = Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=300)]
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
Priority = Annotated[int, Field(ge=0, le=2)]
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


def _upstream_dial(value: str | None) -> str | None:
    """An external chair's dial address (issue 14 relay): a SIP URI, an H.323 alias or E.164 number, or
    an IP address (``endpoints.validation.normalise_dial_address``); ``""`` clears it (None)."""
    from confsvc.endpoints.models import Protocol
    from confsvc.endpoints.validation import normalise_dial_address

    if value is None or not value.strip():
        return None
    text = value.strip()
    for protocol in (Protocol.sip, Protocol.h323) if text.lower().startswith(("sip:", "sips:")) else (
            Protocol.h323, Protocol.sip):
        try:
            return normalise_dial_address(protocol, text)
        except ValueError:
            continue
    raise ValueError(f"not a SIP URI, H.323 alias, E.164 number or IP address: {value!r}")


#: ``upstream_dial``: the address a relay's root bridge dials to reach the chair outside confsvc.
UpstreamDial = Annotated[str | None, Field(max_length=255, description="relay (issue 14): the external "
                                           "chair's dial address (SIP URI, H.323 alias, E.164, IP) the root "
                                           "bridge dials; one cascade leg port on it"),
                         AfterValidator(_upstream_dial)]
#: ``province_bridges``: a bridge named per province (province unit id → bridge id).
ProvinceBridges = Annotated[dict[IdField, IdField], Field(max_length=100, description="cascaded meeting "
                                                          "(issue 14): the bridge each province's sites join "
                                                          "(province unit id → bridge id); unnamed provinces "
                                                          "get the first of their bridges with free ports")]


#: ``sites_deadline``: until when each province's secretariat may add or remove its own sites.
SitesDeadline = Annotated[datetime | None, Field(description="national meeting (issue 14): until this instant "
                                                 "(no offset: local time) each province's secretariat may add "
                                                 "or remove its own province's sites "
                                                 "(`POST`/`DELETE /meetings/{id}/sites`); at most the first "
                                                 "start; only a national booker sets it")]


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
    priority: Priority = Field(0, description="0 routine (thường xuyên), 1 provincial (cấp tỉnh), 2 Government/"
                               "Party session (phiên họp Chính phủ/Đảng); a higher one may displace lower ones")
    displace: bool = Field(False, description="book over the lower-priority occurrences listed by the 409 "
                           "`displacement_required`; needs its `displacement_token`")
    displacement_token: Annotated[str, Field(max_length=200)] | None = None
    upstream_dial: UpstreamDial = None
    province_bridges: ProvinceBridges = {}
    sites_deadline: SitesDeadline = None


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
    priority: Priority | None = None
    upstream_dial: UpstreamDial = Field(None, description="relay: the external chair's dial address; \"\" "
                                        "makes the meeting chaired here again")
    province_bridges: ProvinceBridges | None = None
    sites_deadline: SitesDeadline = Field(None, description="as in the booking; null closes the provinces' "
                                          "changes (national office only)")


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


class PinUpdate(BaseModel):
    """``pin``: 4–12 digits; omitted or null generates a new one (``Settings.pin_digits`` digits)."""

    model_config = ConfigDict(extra="forbid")
    pin: Annotated[str, Field(pattern=r"^[0-9]{4,12}$")] | None = None


class NumberUpdate(BaseModel):
    """``conference_number`` in the bridge's range; omitted or null picks the lowest free one
    other than the current number."""

    model_config = ConfigDict(extra="forbid")
    conference_number: Annotated[int, Field(ge=0, le=10**9)] | None = None


class ConflictPublic(BaseModel):
    """One collision with one resource (SPEC rule 8), from :class:`conflicts.Conflict`.

    ``window_*`` is the overlap (for ports: the interval where the peak would exceed the capacity);
    ``other_*`` the other occurrence's own start, end and technical-check start;
    ``requested_start`` the start (UTC) of the requested occurrence that collides. Bridge items add
    ``port_capacity``, ``ports_in_use`` (peak in use by others in the window), ``ports_requested``
    and ``reason`` ("no free conference number", "more sites than the MCU has ports")."""

    model_config = ConfigDict(from_attributes=True)
    resource_kind: str
    resource_id: int
    resource_name: str
    meeting_id: int | None
    meeting_title: str | None
    occurrence_id: int | None
    maintenance_id: int | None
    block_id: int | None = None
    window_start: datetime
    window_end: datetime
    window_start_local: datetime
    window_end_local: datetime
    requested_start: datetime
    requested_occurrence_id: int | None = None
    other_start: datetime | None = None
    other_end: datetime | None = None
    other_check_start: datetime | None = None
    other_start_local: datetime | None = None
    other_end_local: datetime | None = None
    other_check_start_local: datetime | None = None
    port_capacity: int | None = None
    ports_in_use: int | None = None
    ports_requested: int | None = None
    reason: str | None = None
    ports_free: int | None = Field(None, description="bridge items: capacity − ports in use there")
    province_name: str | None = Field(None, description="bridge items of a cascaded meeting: the province the "
                                      "bridge serves")


class NamedRef(BaseModel):
    id: int
    name: str


class Holder(BaseModel):
    meeting_id: int | None
    meeting_title: str | None
    occurrence_id: int | None


class ConflictGroupPublic(BaseModel):
    """Conflicts grouped as people read them (SPEC rule 8; :func:`conflicts.group_conflicts`).

    ``kind`` ``meeting``: ``room_count`` rooms (``rooms``) and ``endpoints`` taken by the other
    meeting's occurrence, whose own times are ``start``–``end`` with its technical check from
    ``check_start`` (UTC, ``*_local`` local). ``maintenance``: an endpoint's maintenance window.
    ``ports``: the bridge would exceed ``port_capacity`` in ``window_*`` (``ports_in_use`` by
    ``holders`` there, plus ``ports_requested``). ``number``: no free conference number then
    (``holders`` hold them). ``bridge``: the bridge alone cannot host the meeting."""

    kind: str
    meeting_id: int | None = None
    meeting_title: str | None = None
    occurrence_id: int | None = None
    maintenance_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    check_start: datetime | None = None
    start_local: datetime | None = None
    end_local: datetime | None = None
    check_start_local: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    window_start_local: datetime | None = None
    window_end_local: datetime | None = None
    room_count: int
    rooms: list[NamedRef]
    endpoints: list[NamedRef]
    bridge_id: int | None = None
    bridge_name: str | None = None
    port_capacity: int | None = None
    ports_in_use: int | None = None
    ports_requested: int | None = None
    ports_free: int | None = None
    province_name: str | None = None
    holders: list[Holder]
    requested_starts: list[datetime]


def group_public(group: ConflictGroup) -> ConflictGroupPublic:
    w, wl = group.window, group.window_local
    return ConflictGroupPublic(
        kind=group.kind, meeting_id=group.meeting_id, meeting_title=group.meeting_title,
        occurrence_id=group.occurrence_id, maintenance_id=group.maintenance_id, start=group.start, end=group.end,
        check_start=group.check_start, start_local=group.start_local, end_local=group.end_local,
        check_start_local=group.check_start_local, window_start=w.start if w else None,
        window_end=w.end if w else None, window_start_local=wl.start if wl else None,
        window_end_local=wl.end if wl else None, room_count=len(group.rooms),
        rooms=[NamedRef(id=i, name=n) for i, n in group.rooms],
        endpoints=[NamedRef(id=i, name=n) for i, n in group.endpoints], bridge_id=group.bridge_id,
        bridge_name=group.bridge_name, port_capacity=group.port_capacity, ports_in_use=group.ports_in_use,
        ports_requested=group.ports_requested, ports_free=group.ports_free, province_name=group.province_name,
        holders=[Holder(meeting_id=m, meeting_title=t, occurrence_id=o) for m, t, o in group.holders],
        requested_starts=group.requested_starts)


class ProvinceConflictsPublic(BaseModel):
    """The conflicts of one province (issue 14: a national booking's refusal read province by province):
    the province's official ``province_code``, ``province_name`` and unit id (all null for resources
    under no province, e.g. a shared MCU), ``count`` (its conflicts), the ``conflicts`` themselves and
    the same ``groups`` as the whole answer's, restricted to them."""

    province_id: int | None
    province_code: str | None
    province_name: str | None
    count: int
    conflicts: list[ConflictPublic]
    groups: list[ConflictGroupPublic]


def conflicts_by_province(conflicts: list[Conflict], provinces: Mapping[tuple[str, int], Province],
                          ) -> list[tuple[Province | None, list[Conflict]]]:
    """``conflicts`` split by the province of their resource (``provinces``: ``(resource_kind,
    resource_id)`` → :class:`cascade.Province`, ``cascade.conflict_provinces``), provinces by official
    code, then the conflicts under no province; inside each, the conflicts' own order. The one grouping
    by province, for the 409 body and the dry run (``by_province``) and the web's conflict lines."""
    by: dict[Province | None, list[Conflict]] = {}
    for c in conflicts:
        by.setdefault(provinces.get((c.resource_kind, c.resource_id)), []).append(c)
    return sorted(by.items(), key=lambda item: (item[0] is None, item[0] or Province("", "", 0)))


def province_conflicts_public(conflicts: list[Conflict], provinces: Mapping[tuple[str, int], Province],
                              ) -> list[ProvinceConflictsPublic]:
    """:func:`conflicts_by_province` as :class:`ProvinceConflictsPublic` items."""
    return [ProvinceConflictsPublic(
        province_id=p.id if p else None, province_code=p.code if p else None, province_name=p.name if p else None,
        count=len(items), conflicts=[ConflictPublic.model_validate(c) for c in items],
        groups=[group_public(g) for g in group_conflicts(items)]) for p, items in conflicts_by_province(
            conflicts, provinces)]


def conflicts_body(conflicts: list[Conflict], provinces: Mapping[tuple[str, int], Province] | None = None,
                   ) -> dict[str, Any]:
    """``{"conflicts": [...], "groups": [...]}`` as JSON values (the 409 body and the dry run), and
    ``by_province`` (:class:`ProvinceConflictsPublic` items) when the resources' ``provinces`` are given
    (a booking's or an edit's refusal, issue 14)."""
    dumped = [ConflictPublic.model_validate(c).model_dump(mode="json") for c in conflicts]
    body = {"conflicts": dumped, "groups": [group_public(g).model_dump(mode="json") for g in group_conflicts(conflicts)]}
    if provinces is not None:
        # ProvinceConflictsPublic's shape, each conflict dumped once (a national refusal lists thousands).
        index = {id(c): i for i, c in enumerate(conflicts)}
        body["by_province"] = [
            {"province_id": p.id if p else None, "province_code": p.code if p else None,
             "province_name": p.name if p else None, "count": len(items),
             "conflicts": [dumped[index[id(c)]] for c in items],
             "groups": [group_public(g).model_dump(mode="json") for g in group_conflicts(items)]}
            for p, items in conflicts_by_province(conflicts, provinces)]
    return body


class SitesChange(BaseModel):
    """Sites a province adds to a national meeting (issue 14): rooms, each with its active endpoints."""

    model_config = ConfigDict(extra="forbid")
    room_ids: Annotated[list[IdField], Field(min_length=1, max_length=5000)]


class ProvinceCounts(BaseModel):
    """One province's rooms for a meeting, counted: ``sites`` taking part, ``busy`` (not taking part,
    taken then), ``free`` (not taking part, free then); rooms without an active endpoint are not counted."""

    province_id: int
    province_code: str
    province_name: str
    sites: int
    busy: int
    free: int


class ProvinceRef(BaseModel):
    province_id: int
    province_code: str
    province_name: str


class SiteRoom(BaseModel):
    room_id: int
    room_name: str
    unit_name: str


class ProvinceSite(SiteRoom):
    """A site of the meeting and the bridge (MCU) it joins (its province's in a cascade, else the root)."""

    bridge_id: int | None
    bridge_name: str | None


class BusyRoom(SiteRoom):
    """A room of the province taken when the meeting is: ``conflicts`` say by what (SPEC rule 8)."""

    conflicts: list[ConflictPublic]


class ProvinceRooms(BaseModel):
    """The caller's own province's rooms for the meeting, by name: sites, busy rooms, free rooms."""

    province: ProvinceRef
    sites: list[ProvinceSite]
    busy: list[BusyRoom]
    free: list[SiteRoom]


class ProvinceSitesPublic(BaseModel):
    """``GET /meetings/{id}/province-sites`` (issue 14): every province's counts to the national office;
    to a province's secretariat its own counts and ``own``, its rooms by name (busy ones with what takes
    them). ``can_change``: the caller may add or remove its sites now (before ``sites_deadline``, UTC)."""

    meeting_id: int
    sites_deadline: datetime | None
    can_change: bool
    provinces: list[ProvinceCounts]
    own: ProvinceRooms | None


class SkippedOccurrence(BaseModel):
    occurrence_id: int | None
    start: datetime
    end: datetime
    conflicts: list[ConflictPublic]


class CascadeBridgePublic(BaseModel):
    """A bridge of a cascaded meeting besides its root: the province whose sites join it, the bridge it
    links to (one leg, one port on each), the number its sites dial."""

    bridge_id: int
    bridge_name: str
    province_id: int | None
    parent_bridge_id: int
    conference_number: int | None


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
    priority: int = Field(0, description="0 routine, 1 provincial, 2 Government/Party session")
    priority_label: str = Field("Thường xuyên", description="the priority's Vietnamese name")
    upstream_dial: str | None = None
    sites_deadline: datetime | None = Field(None, description="until when (UTC) each province's secretariat "
                                            "may change its own sites (issue 14)")
    cascade_bridges: list[CascadeBridgePublic] = Field(
        [], description="a cascaded meeting's bridges besides its root (bridge_id), each linked to its parent "
        "by one cascade leg (issue 14)")


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
    conference_number: int | None = Field(None, description="the number to dial for this occurrence: its own "
                                          "when the meeting's was taken at its time, else the meeting's")
    tentative: bool = Field(False, description="displaced by a higher-priority meeting: holds no room, endpoint "
                            "or port until moved")
    displaced_by_meeting_id: int | None = None
    alternative_start: datetime | None = Field(None, description="nearest free slot proposed (UTC)")
    alternative_end: datetime | None = None


class CheckResult(BaseModel):
    """Dry run (``POST /meetings/check``): ``ok`` is true when nothing collides; ``groups`` are the
    conflicts grouped by the other meeting (as in a 409)."""

    ok: bool
    conflicts: list[ConflictPublic]
    groups: list[ConflictGroupPublic] = []
    by_province: list[ProvinceConflictsPublic] = Field([], description="the conflicts per province of their "
                                                      "resource (issue 14), provinces by official code")
    warnings: list[dict[str, Any]]
    displaceable: list[dict[str, Any]] = Field([], description="lower-priority occurrences the booking would "
                                               "displace (each: meeting_id, occurrence_id, title, priority, "
                                               "start, end (UTC), organizer, rooms/endpoints in conflict)")
    displacement_token: str | None = Field(None, description="send it with `displace: true` to book over them")


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
