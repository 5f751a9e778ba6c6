"""The steps every booking use case shares (book, edit, series, requests): validated timing
(SPEC rule 9), series starts, the bridge's answer applied to plans, the 409 refusal, writing
occurrences and their bookings, participants as the booking engine wants them, and the guards of a
change to an existing meeting (its row lock, "not cancelled").

Times are aware UTC; naive input is read in the meeting's zone (default ``Settings.timezone``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from confsvc import db
from confsvc.clock import as_utc
from confsvc.config import Settings
from confsvc.errors import Forbidden, Invalid
from confsvc.scheduling import booking, cascade, recurrence, repository
from confsvc.scheduling import participants as participation
from confsvc.scheduling.booking import Participants, Plan
from confsvc.scheduling.conflicts import Conflict, first_pairwise_overlap
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Booking, Meeting, MeetingStatus, Occurrence, OccurrenceStatus
from confsvc.users.principal import Principal


@dataclass
class BookResult:
    """A booked (or edited) meeting: its scheduled occurrences, the ones skipped for conflicts
    (``{"occurrence_id", "start", "end", "conflicts"}``) and holiday warnings."""

    meeting: Meeting
    occurrence_count: int
    skipped: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    #: The meeting's participant endpoint ids (sorted) when the use case knows them (a new booking).
    participant_endpoint_ids: list[int] | None = None


@dataclass
class Timing:
    """Validated times of a meeting: first start (UTC), duration, lead, teardown, zone."""

    start: datetime
    duration: timedelta
    check_lead_minutes: int
    teardown_minutes: int
    zone: ZoneInfo


def check_timing(settings: Settings, principal: Principal, *, start: datetime, end: datetime, zone: ZoneInfo,
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


def sites_deadline_of(principal: Principal, value: datetime | None, *, zone: ZoneInfo,
                      first_start: datetime) -> datetime | None:
    """A booking's or an edit's ``sites_deadline`` (issue 14) in UTC (naive: local in ``zone``), or None.

    Raises:
        Forbidden: ``forbidden_role`` via ``sites_deadline_national``: only a national booker opens a
            meeting to the provinces (``Principal.can_open_sites_to_provinces``).
        Invalid: ``sites_deadline_after_start``: the deadline is later than ``first_start`` (UTC).
    """
    if value is None:
        return None
    if not principal.can_open_sites_to_provinces:
        raise Forbidden("only the national office lets the provinces change their sites (sites_deadline)",
                        code="sites_deadline_national")
    deadline = as_utc(value, zone)
    if deadline > first_start:
        raise Invalid("sites_deadline must not be later than the meeting's start", code="sites_deadline_after_start")
    return deadline


def series_starts(settings: Settings, timing: Timing, rrule: str | None, exdates: list[datetime], *,
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


def normalised_rrule(text: str | None, zone: ZoneInfo) -> str | None:
    """The stored form of a rule already checked by ``series_starts``: no ``RRULE:`` prefix, ``UNTIL``
    in UTC (RFC 5545 §3.3.10), so every writer (feeds, invites, pages) publishes the legal form."""
    if not text:
        return None
    return recurrence.normalise(text, zone)[0]


def apply_bridge(choice: booking.BridgeChoice, plans: list[Plan]) -> None:
    """Add the bridge's conflicts to ``plans`` and give each its conference number (and, for a cascaded
    meeting, its bridges with their ports and numbers: ``cascade.CascadeChoice``)."""
    per_plan = getattr(choice, "per_plan", None)
    for i, plan in enumerate(plans):
        plan.conflicts += choice.conflicts.get(i, [])
        plan.conference_number = choice.numbers.get(i)
        plan.cascade = per_plan.get(i) if per_plan is not None else None


def require_no_self_overlap(plans: list[Plan]) -> None:
    """Raises Invalid ``occurrences_overlap`` when two of ``plans`` overlap (check leads included)."""
    pair = first_pairwise_overlap([p.window for p in plans])
    if pair:
        raise Invalid(f"occurrences overlap each other ({pair[0].start.isoformat()} and {pair[1].start.isoformat()}), "
                      "check leads included", code="occurrences_overlap")


def refusal(title: str, conflicts: list[Conflict], session: Session | None = None) -> BookingConflict:
    """The 409 (BookingConflict) refusing ``title``, naming the other meetings in Vietnamese. With
    ``session`` (a booking or an edit) it also knows each resource's province, and the body lists the
    conflicts by province (``by_province``, issue 14)."""
    others = sorted({f"«{c.meeting_title}»" for c in conflicts if c.meeting_title})
    with_text = f" với {', '.join(others)}" if others else ""
    return BookingConflict(f"«{title}» trùng lịch{with_text}: {len(conflicts)} conflict(s)", conflicts,
                           provinces=cascade.conflict_provinces(session, conflicts) if session is not None else None)


def write_occurrences(session: Session, meeting: Meeting, plans: list[Plan], skipped: list[dict[str, Any]]) -> None:
    """Insert new occurrences (plans without one) and the bookings of every conflict-free plan, its
    bridges' included. A tentative (displaced) occurrence gets none: it holds nothing until moved
    (``displacement``)."""
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
        elif plan.occurrence.status is OccurrenceStatus.scheduled and not plan.occurrence.tentative:
            rows += booking.booking_rows(meeting, plan, plan.occurrence.id)
    db.insert_rows(session, Booking, rows)  # one statement (a national meeting: 6,710 rows, issue 14)
    session.flush()


def occurrence_participants(session: Session, meeting: Meeting, occ: Occurrence) -> Participants:
    """Who takes part in ``occ`` (``participants.of_occurrence``), as the booking engine's value."""
    return _as_participants(participation.of_occurrence(session, meeting, occ))


def meeting_participants(session: Session, meeting: Meeting) -> Participants:
    """Who takes part in ``meeting`` (``participants.of_meeting``), as the booking engine's value."""
    return _as_participants(participation.of_meeting(session, meeting))


def _as_participants(found: participation.Participation) -> Participants:
    return Participants(found.chair_room_id, list(found.endpoint_ids), list(found.room_ids))


def lock_for_change(session: Session, meeting: Meeting, occ: Occurrence | None = None) -> None:
    """Serialise edits of one meeting (issue 12 defect 2): lock its row, then re-read it (and ``occ``)
    as the previous edit committed them. Without it two concurrent PostgreSQL edits each delete the
    bookings they saw and insert new ones that collide with the other's (READ COMMITTED)."""
    repository.lock_meeting(session, meeting.id)
    if occ is not None:
        session.refresh(occ)


def require_open(meeting: Meeting) -> None:
    """Raises Invalid ``meeting_cancelled``: a cancelled meeting is not changed any more."""
    if meeting.status is MeetingStatus.cancelled:
        raise Invalid("the meeting is cancelled", code="meeting_cancelled")

