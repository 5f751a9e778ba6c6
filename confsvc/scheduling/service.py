"""Scheduling use cases: book, check, edit and cancel meetings and occurrences; maintenance windows.

Services flush and raise domain errors; the request's unit of work commits (``db.get_session``).
Write access: admin and secretariat anywhere (SPEC "Who uses it"). Read access: admin,
secretariat, viewer everywhere; operators only meetings touching their units (403 otherwise).
Times are aware UTC; naive input is read in the meeting's zone (default ``Settings.timezone``, rule 9).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, func, select

from confsvc import logs
from confsvc.clock import as_utc, utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Endpoint, Room
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.scheduling import booking, live_events, recurrence, repository, site_groups, visibility
from confsvc.scheduling import participants as participation
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.conflicts import Conflict, Window, first_pairwise_overlap, group_conflicts
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import (AuditEntry, Booking, MaintenanceWindow, Meeting, MeetingParticipant,
                                       MeetingStatus, Occurrence, OccurrenceParticipant, OccurrenceStatus,
                                       ResourceKind)
from confsvc.scheduling.schemas import MeetingCreate, MeetingUpdate, OccurrenceUpdate
from confsvc.users import principal as capabilities
from confsvc.users.principal import Principal
from confsvc.users.service import expand_units


@dataclass
class BookResult:
    meeting: Meeting
    occurrence_count: int
    skipped: list[dict[str, Any]]
    warnings: list[dict[str, Any]]


def audit(session: Session, principal: Principal | None, action: str, *, meeting_id: int | None,
          occurrence_id: int | None = None, **details: Any) -> None:
    """Append to the audit trail (who, what, which meeting/occurrence, when); ``details.request_id`` is
    the HTTP request's ``X-Request-ID`` (``confsvc.logs``), to find its log lines."""
    if logs.request_id.get() != "-":
        details = {**details, "request_id": logs.request_id.get()}
    session.add(AuditEntry(user_id=principal.user_id if principal else None, action=action, meeting_id=meeting_id,
                           occurrence_id=occurrence_id, details=_jsonable(details)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- validation

@dataclass
class Timing:
    """Validated times of a meeting: first start (UTC), duration, lead, teardown, zone."""

    start: datetime
    duration: timedelta
    check_lead_minutes: int
    teardown_minutes: int
    zone: ZoneInfo


def _timing(settings: Settings, principal: Principal, *, start: datetime, end: datetime, zone: ZoneInfo,
            check_lead_minutes: int, teardown_minutes: int, now: datetime, past_ok: bool = False) -> Timing:
    """Raises Invalid: end_not_after_start, duration_too_long, start_in_past (non-admins),
    beyond_booking_horizon, check_lead_too_long, teardown_too_long (SPEC rule 9)."""
    start_utc, end_utc = as_utc(start, zone), as_utc(end, zone)
    if end_utc <= start_utc:
        raise Invalid("end must be after start", code="end_not_after_start")
    if end_utc - start_utc > timedelta(minutes=settings.max_meeting_duration_minutes):
        raise Invalid(f"a meeting lasts at most {settings.max_meeting_duration_minutes} minutes",
                      code="duration_too_long")
    if check_lead_minutes > settings.max_check_lead_minutes:
        raise Invalid(f"check_lead_minutes must be at most {settings.max_check_lead_minutes}",
                      code="check_lead_too_long")
    if teardown_minutes > settings.max_teardown_minutes:
        raise Invalid(f"teardown_minutes must be at most {settings.max_teardown_minutes}", code="teardown_too_long")
    if start_utc < now and not past_ok and not principal.can_start_in_past:
        raise Invalid("the meeting starts in the past", code="start_in_past")
    if start_utc > now + timedelta(days=settings.booking_horizon_days):
        raise Invalid(f"meetings can be booked at most {settings.booking_horizon_days} days ahead",
                      code="beyond_booking_horizon")
    return Timing(start_utc, end_utc - start_utc, check_lead_minutes, teardown_minutes, zone)


def _series_starts(settings: Settings, timing: Timing, rrule: str | None, exdates: list[datetime], *,
                   now: datetime, until: datetime | None = None) -> tuple[list[datetime], datetime | None]:
    """Original starts (UTC) to materialise, and ``materialized_until`` (None for a single meeting).

    Raises Invalid: invalid_rrule, rrule_unsupported, rrule_too_long, rrule_beyond_horizon (COUNT or UNTIL
    ending past ``booking_horizon_days``), rrule_without_end (no series horizon configured), no_occurrences
    (see ``recurrence.normalise``).
    """
    if not rrule:
        return [timing.start], None
    horizon = until or max(now, timing.start) + timedelta(days=settings.series_horizon_days)
    ex = frozenset(as_utc(d, timing.zone) for d in exdates)
    try:
        parsed = recurrence.parse(rrule, timing.start, timing.zone)
        if parsed.open_ended and settings.series_horizon_days == 0:
            raise Invalid("the RRULE never ends (no COUNT or UNTIL) and no series horizon is configured",
                          code="rrule_without_end")
        recurrence.check_limits(parsed, timing.zone, latest_start_utc=now + timedelta(days=settings.booking_horizon_days),
                                horizon_days=settings.booking_horizon_days)
        starts = recurrence.expand(rrule, timing.start, timing.zone, until_utc=horizon, exdates_utc=ex,
                                   limit=settings.max_series_occurrences)
    except recurrence.RecurrenceError as exc:
        raise Invalid(str(exc), code=exc.code) from None
    if not starts:
        raise Invalid("the recurrence has no occurrence", code="no_occurrences")
    return starts, horizon


def _apply(choice: booking.BridgeChoice, plans: list[Plan]) -> None:
    """Add the bridge's conflicts to ``plans`` and give each its conference number."""
    for i, plan in enumerate(plans):
        plan.conflicts += choice.conflicts.get(i, [])
        plan.conference_number = choice.numbers.get(i)


def _require_no_self_overlap(plans: list[Plan]) -> None:
    pair = first_pairwise_overlap([p.window for p in plans])
    if pair:
        raise Invalid(f"occurrences overlap each other ({pair[0].start.isoformat()} and {pair[1].start.isoformat()}), "
                      "check leads included", code="occurrences_overlap")


def _refusal(title: str, conflicts: list[Conflict]) -> BookingConflict:
    others = sorted({f"«{c.meeting_title}»" for c in conflicts if c.meeting_title})
    with_text = f" với {', '.join(others)}" if others else ""
    return BookingConflict(f"«{title}» trùng lịch{with_text}: {len(conflicts)} conflict(s)", conflicts)


# ---------------------------------------------------------------- reading

def get_meeting(session: Session, principal: Principal, meeting_id: int) -> Meeting:
    """Raises NotFound, or Forbidden when an operator's units are not involved."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(f"meeting {meeting_id} not found", code="meeting_not_found")
    if principal.unit_ids is not None and session.exec(select(Meeting.id).where(
            Meeting.id == meeting.id, Meeting.id.in_(_operator_scope(principal.unit_ids)))).first() is None:
        raise Forbidden("this meeting involves none of your units", code="forbidden_scope")
    return meeting


def _touching_units(unit_ids: frozenset[int] | set[int]) -> Any:
    """Subquery of meeting ids whose chair room or a participant endpoint is in ``unit_ids``."""
    return participation.meetings_involving(room_ids=participation.rooms_of_units(unit_ids))


def _operator_scope(unit_ids: frozenset[int]) -> Any:
    """Subquery of meeting ids in which a room of ``unit_ids`` takes part, occurrence overrides included."""
    return participation.meetings_taking_part(participation.rooms_of_units(unit_ids))


def meeting_units(session: Session, meeting_id: int) -> set[int]:
    rooms = participation.of_meeting(session, session.get(Meeting, meeting_id)).room_ids
    return set(session.exec(select(Room.unit_id).where(Room.id.in_(rooms))).all())


def participant_ids(session: Session, meeting_id: int) -> list[int]:
    return participation.meeting_endpoint_ids(session, meeting_id)


def list_meetings(session: Session, principal: Principal, *, from_: datetime | None = None,
                  to: datetime | None = None, unit_id: int | None = None, room_id: int | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[Meeting], int]:
    """Meetings ordered by first start. ``from_``/``to`` keep meetings with an occurrence overlapping
    ``[from_, to)``; ``unit_id`` (with sub-units) and ``room_id`` keep meetings involving them."""
    query = select(Meeting).order_by(Meeting.dtstart, Meeting.id)
    if principal.unit_ids is not None:
        query = query.where(Meeting.id.in_(_operator_scope(principal.unit_ids)))
    if unit_id is not None:
        query = query.where(Meeting.id.in_(_touching_units(expand_units(session, {unit_id}))))
    if room_id is not None:
        query = query.where(Meeting.id.in_(participation.meetings_involving(room_ids=room_id)))
    if from_ is not None or to is not None:
        occ = select(Occurrence.meeting_id)
        if from_ is not None:
            occ = occ.where(Occurrence.end > from_)
        if to is not None:
            occ = occ.where(Occurrence.start < to)
        query = query.where(Meeting.id.in_(occ))
    total = session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
    return list(session.exec(query.limit(limit).offset(offset)).all()), total


def list_occurrences(session: Session, meeting: Meeting) -> list[dict[str, Any]]:
    """Occurrences in start order, with effective chair room and participants."""
    occurrences = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)
                               .order_by(Occurrence.start, Occurrence.id)).all()
    taking_part = participation.of_occurrences(session, meeting, occurrences)
    return [occurrence_public(o, meeting, list(taking_part[o.id].endpoint_ids)) for o in occurrences]


def occurrence_public(occ: Occurrence, meeting: Meeting, endpoint_ids: list[int]) -> dict[str, Any]:
    return {"id": occ.id, "meeting_id": occ.meeting_id, "recurrence_id": occ.recurrence_id, "start": occ.start,
            "end": occ.end, "status": occ.status, "chair_room_id": occ.chair_room_id or meeting.chair_room_id,
            "participant_endpoint_ids": endpoint_ids, "is_exception": occ.is_exception, "is_extra": occ.is_extra,
            "conference_number": occ.number(meeting)}


def meeting_public(session: Session, meeting: Meeting) -> dict[str, Any]:
    data = meeting.model_dump()
    data["start"] = meeting.dtstart
    data["end"] = meeting.dtstart + timedelta(minutes=meeting.duration_minutes)
    data["exdates"] = [datetime.fromisoformat(d) for d in meeting.exdates]
    data["participant_endpoint_ids"] = participant_ids(session, meeting.id)
    return data


def meeting_for(session: Session, principal: Principal, meeting: Meeting) -> dict[str, Any]:
    """``meeting_public`` as ``principal`` may see it: a confidential meeting outside their view is
    "Cuộc họp" with its times and rooms only (``visibility.sees_details``)."""
    data = meeting_public(session, meeting)
    return data if sees_meeting_details(session, principal, meeting) else visibility.redact_meeting(data)


def sees_meeting_details(session: Session, principal: Principal, meeting: Meeting) -> bool:
    """Whether ``principal`` may see ``meeting``'s title, description, dial strings and PIN
    (``visibility.sees_details`` over the units of its chair room and participants)."""
    return not meeting.confidential or visibility.sees_details(
        visibility.Audience.of_principal(principal), confidential=True,
        participant_unit_ids=meeting_units(session, meeting.id))


def get_occurrence(session: Session, meeting: Meeting, occurrence_id: int) -> Occurrence:
    occ = session.get(Occurrence, occurrence_id)
    if occ is None or occ.meeting_id != meeting.id:
        raise NotFound(f"occurrence {occurrence_id} of meeting {meeting.id} not found", code="occurrence_not_found")
    return occ


# ---------------------------------------------------------------- booking

def _prepare(session: Session, settings: Settings, principal: Principal, data: MeetingCreate,
             now: datetime) -> tuple[Timing, Participants, list[Plan], datetime | None]:
    zone = ZoneInfo(data.timezone or settings.timezone)
    timing = _timing(settings, principal, start=data.start, end=data.end, zone=zone, now=now,
                     check_lead_minutes=settings.default_check_lead_minutes if data.check_lead_minutes is None
                     else data.check_lead_minutes,
                     teardown_minutes=settings.default_teardown_minutes if data.teardown_minutes is None
                     else data.teardown_minutes)
    room_ids = data.participant_room_ids
    if data.site_group_ids:  # expanded now: a later change of a group leaves this meeting as booked
        room_ids = [*room_ids, *site_groups.expand(session, principal, data.site_group_ids,
                                                   exclude={data.chair_room_id, *room_ids})]
    participants = booking.resolve_participants(session, chair_room_id=data.chair_room_id, room_ids=room_ids,
                                                endpoint_ids=data.participant_endpoint_ids)
    starts, materialized_until = _series_starts(settings, timing, data.rrule, data.exdates, now=now)
    plans = [booking.make_plan(s, s + timing.duration, s, participants, check_lead_minutes=timing.check_lead_minutes,
                               teardown_minutes=timing.teardown_minutes) for s in starts]
    _require_no_self_overlap(plans)
    return timing, participants, plans, materialized_until


def check_meeting(session: Session, settings: Settings, principal: Principal, data: MeetingCreate,
                  *, now: datetime | None = None) -> dict[str, Any]:
    """Dry run of :func:`book_meeting`: ``{"ok", "conflicts", "groups", "warnings"}`` (conflicts as
    :class:`Conflict`, groups as :class:`ConflictGroup`), nothing written (SPEC rule 8).

    Same validation errors (422) as booking; takes no bridge lock. Admin, secretariat, and
    requesters (who check what they are about to request).
    """
    if not principal.can_request_meetings:
        principal.require(capabilities.BOOK)
    now = now or utc_now()
    timing, _, plans, _ = _prepare(session, settings, principal, data, now)
    names = Names(session)
    booking.resource_conflicts(session, settings, plans, names, lock=False)
    choice = booking.choose_bridge(session, settings, plans, names, bridge_id=data.bridge_id, lock=False)
    _apply(choice, plans)
    conflicts = [c for p in plans for c in p.conflicts]
    return {"ok": not conflicts, "conflicts": conflicts, "groups": group_conflicts(conflicts),
            "warnings": booking.holiday_warnings(plans, timing.zone)}


def book_meeting(session: Session, settings: Settings, principal: Principal, data: MeetingCreate,
                 *, now: datetime | None = None) -> BookResult:
    """Book a meeting and every occurrence up to the series horizon (SPEC rules 1–5, 7–9).

    Every occurrence is checked. Without ``skip_conflicts`` any conflict refuses the whole
    meeting (BookingConflict, 409, every conflict listed, nothing written); with it, the
    conflicting occurrences are recorded as cancelled exceptions and returned in ``skipped``.

    Raises:
        Forbidden: not admin or secretariat.
        Invalid: see ``_timing``, ``_series_starts``, ``booking.resolve_participants``, ``choose_bridge``.
        BookingConflict: conflicts, or a concurrent booking won the race.
    """
    principal.require(capabilities.BOOK)
    return book_unchecked(session, settings, principal, data, now=now or utc_now())


def book_unchecked(session: Session, settings: Settings, principal: Principal, data: MeetingCreate, *,
                   now: datetime, event_extra: dict[str, Any] | None = None) -> BookResult:
    """:func:`book_meeting` without its role check, for use cases that checked permission their own way
    (``requests.submit``). ``event_extra`` is merged into the ``meeting.scheduled`` event's data."""
    timing, participants, plans, materialized_until = _prepare(session, settings, principal, data, now)
    names = Names(session)
    booking.resource_conflicts(session, settings, plans, names, partial=data.skip_conflicts)
    if not data.skip_conflicts and any(p.conflicts for p in plans):
        choice = booking.choose_bridge(session, settings, plans, names, bridge_id=data.bridge_id, lock=False)
        _apply(choice, plans)
        raise _refusal(data.title, [c for p in plans for c in p.conflicts])
    free = [p for p in plans if not p.conflicts]
    # Without skip_conflicts the bridge is chosen, locked and booked last and briefly, once every
    # other row is written (_book_ports; issue 16 "Throughput under contention"). Skipping needs
    # the bridge's answer before writing, so it locks now.
    late = not data.skip_conflicts
    choice = None if late else booking.choose_bridge(session, settings, free or plans, names,
                                                     bridge_id=data.bridge_id)
    if choice is not None:
        _apply(choice, free or plans)
    if not any(not p.conflicts for p in plans):
        raise _refusal(data.title, [c for p in plans for c in p.conflicts])

    meeting = Meeting(
        uid=f"{uuid.uuid4()}@confsvc", title=data.title, description=data.description,
        organizer_user_id=principal.user_id, chair_room_id=data.chair_room_id,
        bridge_id=choice.bridge.id if choice else None, conference_number=choice.conference_number if choice else None,
        pin=booking.new_pin(settings), status=MeetingStatus(data.status),
        check_lead_minutes=timing.check_lead_minutes, teardown_minutes=timing.teardown_minutes,
        timezone=str(timing.zone.key), dtstart=timing.start, duration_minutes=int(timing.duration.total_seconds() // 60),
        rrule=_normalised_rrule(data.rrule, timing.zone), exdates=[as_utc(d, timing.zone).isoformat() for d in data.exdates],
        materialized_until=materialized_until, confidential=data.confidential, created_by=principal.user_id,
        created_at=now, updated_by=principal.user_id, updated_at=now, document_number=data.document_number,
        signer_name=data.signer_name, signer_title=data.signer_title)
    skipped: list[dict[str, Any]] = []

    def write() -> None:
        session.add(meeting)
        session.flush()
        session.add_all(MeetingParticipant(meeting_id=meeting.id, endpoint_id=e) for e in participants.endpoint_ids)
        _write_occurrences(session, meeting, plans, skipped, ports=not late)

    booking.insert_guarded(session, settings, write, [p for p in plans if not p.conflicts], data.title)
    if late:
        _book_ports(session, settings, meeting, plans, names, bridge_id=data.bridge_id)
    audit(session, principal, "meeting.created", meeting_id=meeting.id, occurrences=len(plans) - len(skipped),
          skipped=[s["start"] for s in skipped])
    session.flush()
    live_events.record_change(session, "meeting.scheduled", meeting,
                              [p.occurrence for p in plans if not p.conflicts], now=now, extra=event_extra)
    return BookResult(meeting, len(plans) - len(skipped), skipped, booking.holiday_warnings(
        [p for p in plans if not p.conflicts], timing.zone))


def _normalised_rrule(text: str | None, zone: ZoneInfo) -> str | None:
    """The stored form of a rule already checked by ``_series_starts``: no ``RRULE:`` prefix, ``UNTIL``
    in UTC (RFC 5545 §3.3.10), so every writer (feeds, invites, pages) publishes the legal form."""
    if not text:
        return None
    return recurrence.normalise(text, zone)[0]


def _book_ports(session: Session, settings: Settings, meeting: Meeting, plans: list[Plan], names: Names, *,
                bridge_id: int | None) -> None:
    """The bridge step of a booking, last: lock the bridge (ascending ids when chosen automatically),
    count its ports and numbers as committed now, and write the bridge bookings. The lock lasts
    from here to the commit only. A concurrent booking that took the ports meanwhile makes this a
    refusal (SPEC rule 7); a number taken meanwhile is replaced by a free one."""
    choice = booking.choose_bridge(session, settings, plans, names, bridge_id=bridge_id,
                                   keep_number=meeting.conference_number)
    _apply(choice, plans)
    conflicts = [c for p in plans for c in p.conflicts]
    if conflicts:
        raise _refusal(meeting.title, conflicts)
    meeting.bridge_id, meeting.conference_number = choice.bridge.id, choice.conference_number
    session.add(meeting)
    for plan in plans:
        plan.occurrence.conference_number = (None if plan.conference_number == meeting.conference_number
                                             else plan.conference_number)
        session.add(plan.occurrence)
    rows = [r for p in plans for r in booking.booking_rows(meeting, p, p.occurrence.id)
            if r["resource_kind"] is ResourceKind.bridge]

    def write() -> None:
        session.flush()
        if rows:
            session.execute(sa.insert(Booking), rows)
        session.flush()

    booking.insert_guarded(session, settings, write, plans, meeting.title)


def _write_occurrences(session: Session, meeting: Meeting, plans: list[Plan], skipped: list[dict[str, Any]], *,
                       ports: bool = True) -> None:
    """Insert new occurrences (plans without one) and the bookings of every conflict-free plan
    (without the bridge's when ``ports`` is false: :func:`_book_ports` writes them)."""
    for plan in plans:
        if plan.occurrence is None:
            plan.occurrence = Occurrence(meeting_id=meeting.id, recurrence_id=plan.recurrence_id, start=plan.start,
                                         end=plan.end, status=OccurrenceStatus.scheduled)
        if plan.conflicts:
            plan.occurrence.status = OccurrenceStatus.cancelled
            plan.occurrence.is_exception = True
        elif plan.conference_number is not None:
            plan.occurrence.conference_number = (None if plan.conference_number == meeting.conference_number
                                                 else plan.conference_number)
        session.add(plan.occurrence)
    session.flush()
    rows: list[dict[str, Any]] = []
    for plan in plans:
        if plan.conflicts:
            skipped.append({"occurrence_id": plan.occurrence.id, "start": plan.start, "end": plan.end,
                            "conflicts": plan.conflicts})
        elif plan.occurrence.status is OccurrenceStatus.scheduled:
            rows += [r for r in booking.booking_rows(meeting, plan, plan.occurrence.id)
                     if ports or r["resource_kind"] is not ResourceKind.bridge]
    if rows:
        session.execute(sa.insert(Booking), rows)
    session.flush()


# ---------------------------------------------------------------- editing

def _occurrence_participants(session: Session, meeting: Meeting, occ: Occurrence) -> Participants:
    return _as_participants(participation.of_occurrence(session, meeting, occ))


def _meeting_participants(session: Session, meeting: Meeting) -> Participants:
    return _as_participants(participation.of_meeting(session, meeting))


def _as_participants(found: participation.Participation) -> Participants:
    return Participants(found.chair_room_id, list(found.endpoint_ids), list(found.room_ids))


def _rebook(session: Session, settings: Settings, meeting: Meeting, plans: list[Plan], *,
            bridge_id: int | None) -> None:
    """Check ``plans`` (this meeting's bookings already deleted) and write their bookings, or raise."""
    names = Names(session)
    scheduled = [p for p in plans if p.occurrence is None or p.occurrence.status is OccurrenceStatus.scheduled]
    booking.resource_conflicts(session, settings, scheduled, names)
    choice = booking.choose_bridge(session, settings, scheduled, names, bridge_id=bridge_id,
                                   keep_number=meeting.conference_number)
    _apply(choice, scheduled)
    conflicts = [c for p in scheduled for c in p.conflicts]
    if conflicts:
        raise _refusal(meeting.title, conflicts)
    meeting.bridge_id, meeting.conference_number = choice.bridge.id, choice.conference_number
    session.add(meeting)
    booking.insert_guarded(session, settings, lambda: _write_occurrences(session, meeting, plans, []), scheduled,
                           meeting.title)


def material_state(session: Session, meeting: Meeting) -> tuple[Any, ...]:
    """What a participant must notice (RFC 5545 §3.8.7.4, RFC 5546 §2.1.4): times (DTSTART, DTEND,
    RRULE, EXDATE), technical-check lead, place (chair room, bridge and conference number: the dial
    string), participants and STATUS. SEQUENCE bumps when this changes and only then; a title or
    description edit keeps it (DTSTAMP still moves)."""
    return (meeting.dtstart, meeting.duration_minutes, meeting.rrule, sorted(meeting.exdates),
            meeting.check_lead_minutes, meeting.chair_room_id, meeting.bridge_id, meeting.conference_number,
            tuple(participant_ids(session, meeting.id)), meeting.status)


def _lock(session: Session, meeting: Meeting, occ: Occurrence | None = None) -> None:
    """Serialise edits of one meeting (issue 12 defect 2): lock its row, then re-read it (and ``occ``)
    as the previous edit committed them. Without it two concurrent PostgreSQL edits each delete the
    bookings they saw and insert new ones that collide with the other's (READ COMMITTED)."""
    repository.lock_meeting(session, meeting.id)
    if occ is not None:
        session.refresh(occ)


def _require_open(meeting: Meeting) -> None:
    if meeting.status is MeetingStatus.cancelled:
        raise Invalid("the meeting is cancelled", code="meeting_cancelled")


def edit_meeting(session: Session, settings: Settings, principal: Principal, meeting: Meeting, data: MeetingUpdate,
                 *, now: datetime | None = None) -> BookResult:
    """Whole-series edit (SPEC rules 5, 6): re-checks against everything except the meeting itself.

    Occurrences are matched to the new recurrence by their original local date, so ids stay stable;
    exceptions keep their own time, room, participants and status; plain occurrences that the new
    rule no longer produces are deleted. The SEQUENCE bumps only on a material change
    (:func:`material_state`). Nothing changes on a conflict.

    Raises: Forbidden, Invalid, BookingConflict (like :func:`book_meeting`).
    """
    principal.require(capabilities.BOOK)
    _lock(session, meeting)
    _require_open(meeting)
    now = now or utc_now()
    material_before = material_state(session, meeting)
    zone = ZoneInfo(meeting.timezone)
    changes = data.model_dump(exclude_unset=True)
    start = changes.get("start") or meeting.dtstart
    end = changes.get("end") or (as_utc(start, zone) + timedelta(minutes=meeting.duration_minutes)
                                 if "start" in changes else meeting.dtstart + timedelta(minutes=meeting.duration_minutes))
    lead = meeting.check_lead_minutes if data.check_lead_minutes is None else data.check_lead_minutes
    teardown = meeting.teardown_minutes if data.teardown_minutes is None else data.teardown_minutes
    timing = _timing(settings, principal, start=start, end=end, zone=zone, now=now, check_lead_minutes=lead,
                     teardown_minutes=teardown, past_ok="start" not in changes)
    rrule = meeting.rrule if data.rrule is None else data.rrule.strip() or None
    if data.exdates is not None:
        exdates = [as_utc(d, zone) for d in data.exdates]
    else:
        # An excluded instance stays excluded when the series moves to another time of day: its
        # EXDATE follows to the new time on the same local date (RFC 5545 §3.8.5.1 matches exactly).
        exdates = [_same_day_at(datetime.fromisoformat(d), timing.start, zone) for d in meeting.exdates]
    until = meeting.materialized_until if rrule and meeting.materialized_until else None
    starts, materialized_until = _series_starts(settings, timing, rrule, exdates, now=now, until=until)
    rooms_before = set().union(*live_events.occurrence_rooms(
        session, meeting, live_events.meeting_occurrences(session, meeting)).values())

    if any(k in changes for k in ("chair_room_id", "participant_room_ids", "participant_endpoint_ids")):
        chair = data.chair_room_id or meeting.chair_room_id
        current = participant_ids(session, meeting.id)
        if data.participant_room_ids is None and data.participant_endpoint_ids is None:
            room_ids, endpoint_ids = [], [e for e in current if e not in _room_endpoints(session, chair)]
        else:
            room_ids, endpoint_ids = data.participant_room_ids or [], data.participant_endpoint_ids or []
        participants = booking.resolve_participants(session, chair_room_id=chair, room_ids=room_ids,
                                                    endpoint_ids=endpoint_ids)
        session.execute(sa.delete(MeetingParticipant).where(MeetingParticipant.meeting_id == meeting.id))
        session.add_all(MeetingParticipant(meeting_id=meeting.id, endpoint_id=e) for e in participants.endpoint_ids)
        meeting.chair_room_id = chair
    else:
        participants = _meeting_participants(session, meeting)

    booking.delete_bookings(session, meeting_id=meeting.id)
    existing = list(session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)).all())
    # An added occurrence (RDATE) is not the rule's: it never stands for the rule's instance of its day.
    by_date = {o.recurrence_id.astimezone(zone).date(): o for o in existing if not o.is_extra}
    plans: list[Plan] = []
    kept: set[int] = set()
    for s in starts:
        occ = by_date.get(s.astimezone(zone).date())
        if occ is not None and occ.is_exception:
            # The exception keeps its own time, room and status, but its RECURRENCE-ID must name the
            # instance the new rule generates, or calendars show that instance again (RFC 5545 §3.8.4.4).
            kept.add(occ.id)
            occ.recurrence_id = s
            continue
        if occ is not None:
            kept.add(occ.id)
            occ.recurrence_id, occ.start, occ.end = s, s, s + timing.duration
        plans.append(booking.make_plan(s, s + timing.duration, s, participants, check_lead_minutes=lead,
                                       teardown_minutes=teardown, occurrence=occ))
    for occ in existing:
        if occ.id not in kept and not occ.is_exception:
            session.delete(occ)
        elif occ.is_exception:
            plans.append(booking.make_plan(occ.start, occ.end, occ.recurrence_id,
                                           _occurrence_participants(session, meeting, occ),
                                           check_lead_minutes=lead, teardown_minutes=teardown, occurrence=occ))
    session.flush()
    _require_no_self_overlap([p for p in plans if p.occurrence is None
                              or p.occurrence.status is OccurrenceStatus.scheduled])

    for key in ("title", "description", "document_number", "signer_name", "signer_title"):
        if changes.get(key) is not None:
            setattr(meeting, key, changes[key])
    if data.status is not None:
        meeting.status = MeetingStatus(data.status)
    if data.confidential is not None:
        meeting.confidential = data.confidential
    meeting.dtstart, meeting.duration_minutes = timing.start, int(timing.duration.total_seconds() // 60)
    meeting.check_lead_minutes, meeting.teardown_minutes = lead, teardown
    meeting.rrule, meeting.exdates = _normalised_rrule(rrule, zone), [d.isoformat() for d in exdates]
    meeting.materialized_until = materialized_until
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    _rebook(session, settings, meeting, plans, bridge_id=data.bridge_id if data.bridge_id is not None
            else meeting.bridge_id)
    session.flush()
    if material_state(session, meeting) != material_before:
        meeting.sequence += 1
    audit(session, principal, "meeting.updated", meeting_id=meeting.id, fields=sorted(changes))
    session.flush()
    live_events.record_change(session, "meeting.updated", meeting, live_events.meeting_occurrences(session, meeting),
                              rooms_before=rooms_before, now=now)
    count = session.exec(select(func.count()).select_from(Occurrence).where(
        Occurrence.meeting_id == meeting.id, Occurrence.status == OccurrenceStatus.scheduled)).one()
    return BookResult(meeting, count, [], booking.holiday_warnings(plans, zone))


def _same_day_at(instant: datetime, model: datetime, zone: ZoneInfo) -> datetime:
    """``instant``'s local date at ``model``'s local time of day, in UTC."""
    local = datetime.combine(instant.astimezone(zone).date(), model.astimezone(zone).time(), tzinfo=zone)
    return local.astimezone(UTC)


def _room_endpoints(session: Session, room_id: int) -> set[int]:
    return set(session.exec(select(Endpoint.id).where(Endpoint.room_id == room_id)).all())


def cancel_meeting(session: Session, principal: Principal, meeting: Meeting, *, now: datetime | None = None) -> Meeting:
    """Cancel the whole meeting; every booking is freed at once (SPEC rule 6). SEQUENCE bumps."""
    principal.require(capabilities.BOOK)
    _lock(session, meeting)
    _require_open(meeting)
    now = now or utc_now()
    booking.delete_bookings(session, meeting_id=meeting.id)
    meeting.status = MeetingStatus.cancelled
    meeting.cancelled_by, meeting.cancelled_at = principal.user_id, now
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    meeting.sequence += 1
    session.add(meeting)
    audit(session, principal, "meeting.cancelled", meeting_id=meeting.id)
    session.flush()
    live_events.record_change(session, "meeting.cancelled", meeting, live_events.meeting_occurrences(session, meeting),
                              now=now)
    return meeting


def cancel_occurrence(session: Session, principal: Principal, meeting: Meeting, occ: Occurrence,
                      *, now: datetime | None = None) -> Occurrence:
    """Cancel one occurrence (an exception kept by later series edits); frees its bookings at once."""
    principal.require(capabilities.BOOK)
    _lock(session, meeting, occ)
    _require_open(meeting)
    now = now or utc_now()
    booking.delete_bookings(session, occurrence_id=occ.id)
    occ.status, occ.is_exception, occ.updated_at = OccurrenceStatus.cancelled, True, now
    meeting.sequence += 1
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add_all([occ, meeting])
    audit(session, principal, "occurrence.cancelled", meeting_id=meeting.id, occurrence_id=occ.id,
          start=occ.start)
    session.flush()
    live_events.record_change(session, "meeting.cancelled", meeting, [occ], scope="occurrence", now=now)
    return occ


def edit_occurrence(session: Session, settings: Settings, principal: Principal, meeting: Meeting, occ: Occurrence,
                    data: OccurrenceUpdate, *, now: datetime | None = None) -> dict[str, Any]:
    """Move one occurrence or change its chair room / participants; it becomes an exception.

    Re-checked against everything except itself, on the meeting's bridge with its conference number
    (SPEC rule 6). Raises Forbidden, Invalid, BookingConflict.
    """
    principal.require(capabilities.BOOK)
    _lock(session, meeting, occ)
    _require_open(meeting)
    if occ.status is OccurrenceStatus.cancelled:
        raise Invalid("the occurrence is cancelled", code="occurrence_cancelled")
    now = now or utc_now()
    zone = ZoneInfo(meeting.timezone)
    changes = data.model_dump(exclude_unset=True)
    start = changes.get("start") or occ.start
    end = changes.get("end") or (as_utc(start, zone) + (occ.end - occ.start))
    timing = _timing(settings, principal, start=start, end=end, zone=zone, now=now,
                     check_lead_minutes=meeting.check_lead_minutes, teardown_minutes=meeting.teardown_minutes,
                     past_ok="start" not in changes)
    was = _occurrence_participants(session, meeting, occ)
    material_before = (occ.start, occ.end, was.chair_room_id, tuple(was.endpoint_ids), occ.number(meeting))
    if any(k in changes for k in ("chair_room_id", "participant_room_ids", "participant_endpoint_ids")):
        chair = data.chair_room_id or occ.chair_room_id or meeting.chair_room_id
        if data.participant_room_ids is None and data.participant_endpoint_ids is None:
            current = was
            room_ids, endpoint_ids = [], [e for e in current.endpoint_ids
                                          if e not in _room_endpoints(session, current.chair_room_id)]
        else:
            room_ids, endpoint_ids = data.participant_room_ids or [], data.participant_endpoint_ids or []
        participants = booking.resolve_participants(session, chair_room_id=chair, room_ids=room_ids,
                                                    endpoint_ids=endpoint_ids)
        session.execute(sa.delete(OccurrenceParticipant).where(OccurrenceParticipant.occurrence_id == occ.id))
        session.add_all(OccurrenceParticipant(occurrence_id=occ.id, endpoint_id=e) for e in participants.endpoint_ids)
        occ.chair_room_id, occ.participants_overridden = chair, True
    else:
        participants = _occurrence_participants(session, meeting, occ)
    booking.delete_bookings(session, occurrence_id=occ.id)
    occ.start, occ.end = timing.start, timing.start + timing.duration
    occ.is_exception, occ.updated_at = True, now
    plan = booking.make_plan(occ.start, occ.end, occ.recurrence_id, participants,
                             check_lead_minutes=meeting.check_lead_minutes,
                             teardown_minutes=meeting.teardown_minutes, occurrence=occ)
    siblings = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id, Occurrence.id != occ.id,
                                                     Occurrence.status == OccurrenceStatus.scheduled)).all()
    for sibling in siblings:
        other = booking.make_plan(sibling.start, sibling.end, sibling.recurrence_id, participants,
                                  check_lead_minutes=meeting.check_lead_minutes,
                                  teardown_minutes=meeting.teardown_minutes)
        if other.window.overlaps(plan.window):
            raise Invalid("the moved occurrence would overlap another occurrence of the series",
                          code="occurrences_overlap")
    names = Names(session)
    booking.resource_conflicts(session, settings, [plan], names)
    choice = booking.choose_bridge(session, settings, [plan], names, bridge_id=meeting.bridge_id,
                                   keep_number=occ.number(meeting))
    _apply(choice, [plan])
    if plan.conflicts:
        raise _refusal(meeting.title, plan.conflicts)
    number = plan.conference_number
    occ.conference_number = None if number is None or number == meeting.conference_number else number
    if (occ.start, occ.end, participants.chair_room_id, tuple(participants.endpoint_ids),
            occ.number(meeting)) != material_before:
        meeting.sequence += 1  # RFC 5545 §3.8.7.4: only a change the participants must notice
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add_all([occ, meeting])
    booking.insert_guarded(session, settings, lambda: _write_occurrences(session, meeting, [plan], []), [plan],
                           meeting.title)
    audit(session, principal, "occurrence.updated", meeting_id=meeting.id, occurrence_id=occ.id,
          fields=sorted(changes))
    session.flush()
    live_events.record_change(session, "meeting.updated", meeting, [occ], scope="occurrence",
                              rooms_before=was.room_ids, now=now)
    return occurrence_public(occ, meeting, participants.endpoint_ids)


# ---------------------------------------------------------------- PIN and conference number

def set_pin(session: Session, settings: Settings, principal: Principal, meeting: Meeting, pin: str | None,
            *, now: datetime | None = None) -> Meeting:
    """Set the meeting's PIN, or generate a new one (``pin`` None; never the old one).

    Join instructions, displays and invitations follow: SEQUENCE bumps and ``meeting.updated``
    is recorded for every occurrence still to come (the edit's events). Raises Forbidden, Invalid.
    """
    principal.require(capabilities.BOOK)
    _lock(session, meeting)
    _require_open(meeting)
    now = now or utc_now()
    old = meeting.pin
    if pin is None:
        pin = booking.new_pin(settings)
        while pin == old:
            pin = booking.new_pin(settings)
    meeting.pin = pin
    _changed(session, principal, meeting, "meeting.pin_changed", now, changed=pin != old)
    return meeting


def set_conference_number(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                          number: int | None, *, now: datetime | None = None) -> Meeting:
    """Give every occurrence of the meeting one conference number on its bridge: ``number``, or (None)
    the lowest number other than the current one that is free in every occurrence's window.
    Occurrences' own numbers are dropped. Under the bridge row lock (SPEC rule 7).

    Raises: Forbidden; Invalid ``no_bridge`` (the meeting has none), ``number_out_of_range``;
    BookingConflict (409) naming every occurrence of another meeting holding that number then, or
    holding every number of the range (``reason`` "conference number in use").
    """
    principal.require(capabilities.BOOK)
    _lock(session, meeting)
    _require_open(meeting)
    now = now or utc_now()
    if meeting.bridge_id is None:
        raise Invalid("the meeting has no bridge", code="no_bridge")
    bridge = repository.lock_bridge(session, meeting.bridge_id)
    assert bridge is not None
    if number is not None and not bridge.conference_number_min <= number <= bridge.conference_number_max:
        raise Invalid(f"conference numbers of {bridge.name} are {bridge.conference_number_min}–"
                      f"{bridge.conference_number_max}", code="number_out_of_range")
    held = booking.numbers_held_by_others(session, settings, bridge, meeting.id)
    occurrences = {o.id: o for o in session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)).all()}
    if number is None:
        taken = set().union(*(h.keys() for _b, h in held)) if held else set()
        number = next((n for n in range(bridge.conference_number_min, bridge.conference_number_max + 1)
                       if n not in taken and n != meeting.conference_number), None)
        if number is None:
            conflicts = [c for n in sorted(taken) for c in booking.number_conflicts(bridge, settings.zone, held, n,
                                                                                   occurrences)]
            raise _refusal(meeting.title, conflicts)
    conflicts = booking.number_conflicts(bridge, settings.zone, held, number, occurrences)
    if conflicts:
        raise _refusal(meeting.title, conflicts)
    old = (meeting.conference_number, sorted((o.id, o.conference_number) for o in occurrences.values()))
    meeting.conference_number = number
    for occ in occurrences.values():
        occ.conference_number = None
        session.add(occ)
    session.execute(sa.update(Booking).where(Booking.meeting_id == meeting.id,
                                             Booking.resource_kind == ResourceKind.bridge)
                    .values(conference_number=number))
    _changed(session, principal, meeting, "meeting.number_changed", now,
             changed=old != (number, sorted((o.id, None) for o in occurrences.values())))
    return meeting


def _changed(session: Session, principal: Principal, meeting: Meeting, action: str, now: datetime, *,
             changed: bool) -> None:
    """Record a change of the dial details: SEQUENCE (the invitation's text changes), audit, and
    ``meeting.updated`` for the occurrences still to come (join instructions follow)."""
    if changed:
        meeting.sequence += 1
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add(meeting)
    audit(session, principal, action, meeting_id=meeting.id)
    session.flush()
    coming = [o for o in live_events.meeting_occurrences(session, meeting) if o.end > now]
    if changed and coming:
        live_events.record_change(session, "meeting.updated", meeting, coming, now=now)


# ---------------------------------------------------------------- series horizon

def extend_series(session: Session, settings: Settings, *, now: datetime | None = None) -> dict[int, dict[str, int]]:
    """Materialise open series up to ``now + series_horizon_days`` (the scheduler tick and
    ``confsvc meetings extend`` call it; a series within a day of the horizon is left for later).

    New occurrences that collide are recorded as cancelled exceptions and audited (a job cannot ask
    anyone). Returns ``{meeting_id: {"booked": n, "skipped": m}}`` for the meetings extended.
    """
    now = now or utc_now()
    horizon = now + timedelta(days=settings.series_horizon_days)
    # A day of slack: a job ticking every few seconds extends each series once a day, not every tick.
    due_before = horizon - timedelta(days=1)
    report: dict[int, dict[str, int]] = {}
    meetings = session.exec(select(Meeting).where(Meeting.rrule.is_not(None), Meeting.status != MeetingStatus.cancelled,
                                                  Meeting.materialized_until < due_before).order_by(Meeting.id)).all()
    for meeting in meetings:
        zone = ZoneInfo(meeting.timezone)
        ex = frozenset(datetime.fromisoformat(d) for d in meeting.exdates)
        starts = recurrence.expand(meeting.rrule, meeting.dtstart, zone, until_utc=horizon, exdates_utc=ex,
                                   limit=settings.max_series_occurrences)
        new = [s for s in starts if s >= meeting.materialized_until]
        participants = _meeting_participants(session, meeting)
        duration = timedelta(minutes=meeting.duration_minutes)
        plans = [booking.make_plan(s, s + duration, s, participants, check_lead_minutes=meeting.check_lead_minutes,
                                   teardown_minutes=meeting.teardown_minutes) for s in new]
        names = Names(session)
        booking.resource_conflicts(session, settings, plans, names, partial=True)
        if meeting.bridge_id is not None and plans:
            choice = booking.choose_bridge(session, settings, plans, names, bridge_id=meeting.bridge_id,
                                           keep_number=meeting.conference_number)
            _apply(choice, plans)
        skipped: list[dict[str, Any]] = []
        booking.insert_guarded(session, settings, lambda m=meeting, p=plans, s=skipped: _write_occurrences(
            session, m, p, s), [p for p in plans if not p.conflicts], meeting.title)
        meeting.materialized_until = horizon
        session.add(meeting)
        audit(session, None, "series.extended", meeting_id=meeting.id, until=horizon,
              skipped=[s["start"] for s in skipped])
        report[meeting.id] = {"booked": len(plans) - len(skipped), "skipped": len(skipped)}
    session.flush()
    return report


# ---------------------------------------------------------------- maintenance

def require_bounded_window(settings: Settings, start_utc: datetime, end_utc: datetime, *, now: datetime,
                           max_days: int, what: str) -> None:
    """Refuse a resource window ``[start_utc, end_utc)`` (UTC) that would make one request write
    unbounded rows: it must start at most ``settings.maintenance_past_days`` before ``now``, last at
    most ``max_days`` days and end within ``settings.booking_horizon_days`` of ``now``.

    Raises Invalid: end_not_after_start, window_starts_too_early, window_too_long, beyond_booking_horizon.
    """
    if end_utc <= start_utc:
        raise Invalid("end must be after start", code="end_not_after_start")
    if start_utc < now - timedelta(days=settings.maintenance_past_days):
        raise Invalid(f"{what} may start at most {settings.maintenance_past_days} day(s) in the past",
                      code="window_starts_too_early")
    if end_utc - start_utc > timedelta(days=max_days):
        raise Invalid(f"{what} lasts at most {max_days} days", code="window_too_long")
    if end_utc > now + timedelta(days=settings.booking_horizon_days):
        raise Invalid(f"{what} must end within {settings.booking_horizon_days} days from now",
                      code="beyond_booking_horizon")


def create_maintenance(session: Session, settings: Settings, principal: Principal, endpoint: Endpoint, room: Room,
                       *, start: datetime, end: datetime, note: str, now: datetime | None = None) -> MaintenanceWindow:
    """Take an endpoint out of service for ``[start, end)``; the window is a booking (SPEC rule 4).

    Admin and secretariat anywhere, operators in their units. Windows longer than the largest
    booking window are stored as consecutive bookings so overlap queries stay bounded.

    The work of one request is bounded by settings (issue 16 defect 1): the window starts at most
    ``maintenance_past_days`` before now, lasts at most ``max_maintenance_days`` and ends within
    ``booking_horizon_days``.

    Raises: Forbidden, Invalid (end_not_after_start, window_starts_too_early, window_too_long,
    beyond_booking_horizon), BookingConflict (meetings booked then).
    """
    principal.require(capabilities.MANAGE_MAINTENANCE)
    principal.require_unit(room.unit_id)
    zone = settings.zone
    start_utc, end_utc = as_utc(start, zone), as_utc(end, zone)
    require_bounded_window(settings, start_utc, end_utc, now=now or utc_now(),
                           max_days=settings.max_maintenance_days, what="a maintenance window")
    step = booking.max_window(settings)
    chunks: list[Window] = []
    cursor = start_utc
    while cursor < end_utc:
        chunks.append(Window(cursor, min(cursor + step, end_utc)))
        cursor = chunks[-1].end
    participants = Participants(chair_room_id=room.id, endpoint_ids=[endpoint.id], room_ids=[])
    plans = [Plan(start=c.start, end=c.end, recurrence_id=c.start, participants=participants, window=c)
             for c in chunks]
    names = Names(session)
    repository.lock_rooms(session, [room.id])  # the endpoint's bookings are serialised through its room
    booking.resource_conflicts(session, settings, plans, names)
    conflicts = [c for p in plans for c in p.conflicts]
    if conflicts:
        raise BookingConflict(f"{endpoint.name}: maintenance collides with {len(conflicts)} booking(s)", conflicts)
    window = MaintenanceWindow(endpoint_id=endpoint.id, start=start_utc, end=end_utc, note=note,
                               created_by=principal.user_id, created_at=now or utc_now())

    def write() -> None:
        session.add(window)
        session.flush()
        session.execute(sa.insert(Booking), [
            {"meeting_id": None, "occurrence_id": None, "maintenance_id": window.id,
             "resource_kind": ResourceKind.endpoint, "resource_id": endpoint.id, "window_start": c.start,
             "window_end": c.end, "ports": 0, "conference_number": None} for c in chunks])
        session.flush()

    booking.insert_guarded(session, settings, write, plans, f"maintenance of {endpoint.name}")
    audit(session, principal, "maintenance.created", meeting_id=None, endpoint_id=endpoint.id, start=start_utc,
          end=end_utc)
    session.flush()
    return window

