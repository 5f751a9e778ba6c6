"""Series operations of a secretariat (issue 12): restore a cancelled occurrence, add an extra
occurrence to a series (RFC 5545 §3.8.5.2 RDATE).

Both are bookings: checked like one (SPEC rules 1–3, 5, 6, 8: 409 listing every conflict, nothing
written), bump the meeting's SEQUENCE (a material change, RFC 5545 §3.8.7.4), are audited, and record
a ``meeting.updated`` event (scope ``meeting``, the occurrence named in ``occurrence_id``) so feeds,
e-mailed invites (the whole series again, with its RDATE) and room displays follow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.errors import Invalid
from confsvc.scheduling import booking, live_events, recurrence
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.models import Meeting, MeetingStatus, Occurrence, OccurrenceStatus
from confsvc.scheduling.planning import (
    apply_bridge,
    check_timing,
    meeting_participants,
    occurrence_participants,
    refusal,
    require_open,
    write_occurrences,
)
from confsvc.scheduling.schemas import OccurrenceCreate
from confsvc.scheduling.views import occurrence_public
from confsvc.users.principal import BOOK, Principal


def _check_and_book(session: Session, settings: Settings, meeting: Meeting, plan: Plan, others: list[Plan]) -> None:
    """Refuse ``plan`` when it overlaps another occurrence of the series (422) or any booking (409);
    else write its bookings (the occurrence row included)."""
    for other in others:
        if other.window.overlaps(plan.window):
            raise Invalid(f"the occurrence would overlap another occurrence of the series ({other.start.isoformat()}), "
                          "check leads included", code="occurrences_overlap")
    names = Names(session)
    booking.resource_conflicts(session, settings, [plan], names)
    # The meeting's number when free then; else the occurrence gets its own (issue 12 defect 1).
    choice = booking.choose_bridge(session, settings, [plan], names, bridge_id=meeting.bridge_id,
                                   keep_number=plan.occurrence.number(meeting) if plan.occurrence is not None
                                   else meeting.conference_number)
    apply_bridge(choice, [plan])
    if plan.conflicts:
        raise refusal(meeting.title, plan.conflicts)
    booking.insert_guarded(session, settings, lambda: write_occurrences(session, meeting, [plan], []), [plan],
                           meeting.title)


def _sibling_plans(session: Session, meeting: Meeting, participants: Participants, *,
                   exclude_id: int | None) -> list[Plan]:
    rows = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id,
                                                 Occurrence.status == OccurrenceStatus.scheduled)).all()
    return [booking.make_plan(o.start, o.end, o.recurrence_id, participants, check_lead_minutes=meeting.check_lead_minutes,
                              teardown_minutes=meeting.teardown_minutes) for o in rows if o.id != exclude_id]


def restore_occurrence(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                       occ: Occurrence, *, now: datetime | None = None) -> dict[str, Any]:
    """Book a cancelled occurrence again at its own time, rooms and participants.

    It is checked against everything except itself (SPEC rule 6) on the meeting's bridge with its
    conference number. It stays an exception only if it differs from what the rule generates
    (moved, other rooms, added); a plain one goes back to the rule, so feeds drop its
    STATUS:CANCELLED override and invites its EXDATE. SEQUENCE bumps.

    Raises:
        Forbidden: not admin or secretariat.
        Invalid: ``meeting_cancelled``, ``occurrence_not_cancelled``, ``start_in_past`` (non-admins),
            ``occurrences_overlap``.
        BookingConflict: 409, every conflict listed.
    """
    principal.require(BOOK)
    require_open(meeting)
    if occ.status is not OccurrenceStatus.cancelled:
        raise Invalid("the occurrence is not cancelled", code="occurrence_not_cancelled")
    now = now or utc_now()
    zone = ZoneInfo(meeting.timezone)
    check_timing(settings, principal, start=occ.start, end=occ.end, zone=zone, now=now,
            check_lead_minutes=meeting.check_lead_minutes, teardown_minutes=meeting.teardown_minutes)
    participants = occurrence_participants(session, meeting, occ)
    plan = booking.make_plan(occ.start, occ.end, occ.recurrence_id, participants,
                             check_lead_minutes=meeting.check_lead_minutes,
                             teardown_minutes=meeting.teardown_minutes, occurrence=occ)
    occ.status, occ.updated_at = OccurrenceStatus.scheduled, now
    occ.is_exception = (occ.is_extra or occ.start != occ.recurrence_id or occ.chair_room_id is not None
                        or occ.participants_overridden
                        or occ.end - occ.start != timedelta(minutes=meeting.duration_minutes))
    _check_and_book(session, settings, meeting, plan, _sibling_plans(session, meeting, participants,
                                                                     exclude_id=occ.id))
    meeting.sequence += 1
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add_all([occ, meeting])
    audit(session, principal, "occurrence.restored", meeting_id=meeting.id, occurrence_id=occ.id, start=occ.start)
    session.flush()
    live_events.record_change(session, "meeting.updated", meeting, [occ], now=now)
    return occurrence_public(occ, meeting, participants.endpoint_ids)


def add_occurrence(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                   data: OccurrenceCreate, *, now: datetime | None = None) -> dict[str, Any]:
    """Add an occurrence ``[start, end)`` to a series with the meeting's rooms and participants
    (RFC 5545 §3.8.5.2 RDATE; naive times are local to the meeting's zone).

    It gets a stable id; its RECURRENCE-ID is its start. Feeds and invites list it as an RDATE of
    the master VEVENT plus an override with that RECURRENCE-ID (clients show it once); series
    edits keep it like any exception. Checked like a booking; SEQUENCE bumps.

    Raises:
        Forbidden: not admin or secretariat.
        Invalid: ``meeting_cancelled``, ``not_a_series``, the ``check_timing`` errors (past, horizon,
            duration), ``occurrence_exists`` (the series already has an occurrence starting then,
            or that start is excluded by EXDATE), ``occurrences_overlap``.
        BookingConflict: 409, every conflict listed.
    """
    principal.require(BOOK)
    require_open(meeting)
    if not meeting.rrule:
        raise Invalid("only a recurring meeting takes extra occurrences; book another meeting instead",
                      code="not_a_series")
    now = now or utc_now()
    zone = ZoneInfo(meeting.timezone)
    timing = check_timing(settings, principal, start=data.start, end=data.end, zone=zone, now=now,
                     check_lead_minutes=meeting.check_lead_minutes, teardown_minutes=meeting.teardown_minutes)
    start, end = timing.start, timing.start + timing.duration
    exdates = {datetime.fromisoformat(d) for d in meeting.exdates}
    reach = end + booking.max_window(settings)
    try:  # the rule's own starts up to just past this one (bounded by COUNT/UNTIL and MAX_OCCURRENCES)
        generated = recurrence.expand(meeting.rrule, meeting.dtstart, zone, until_utc=reach)
    except recurrence.RecurrenceError:
        generated = []
    existing = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)).all()
    if start in exdates or start in generated or any(start in (o.recurrence_id, o.start) for o in existing):
        raise Invalid(f"the series already has an occurrence starting {start.isoformat()} (or excludes it); "
                      "edit or restore that one", code="occurrence_exists")
    participants = meeting_participants(session, meeting)
    others = _sibling_plans(session, meeting, participants, exclude_id=None)
    if meeting.materialized_until is not None:  # starts the rule will generate when the series is extended
        others += [booking.make_plan(s, s + timedelta(minutes=meeting.duration_minutes), s, participants,
                                     check_lead_minutes=meeting.check_lead_minutes,
                                     teardown_minutes=meeting.teardown_minutes)
                   for s in generated if s >= meeting.materialized_until and s not in exdates]
    occ = Occurrence(meeting_id=meeting.id, recurrence_id=start, start=start, end=end,
                     status=OccurrenceStatus.scheduled, is_exception=True, is_extra=True, updated_at=now)
    plan = booking.make_plan(start, end, start, participants, check_lead_minutes=meeting.check_lead_minutes,
                             teardown_minutes=meeting.teardown_minutes, occurrence=occ)
    _check_and_book(session, settings, meeting, plan, others)
    meeting.sequence += 1
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add(meeting)
    audit(session, principal, "occurrence.added", meeting_id=meeting.id, occurrence_id=occ.id, start=start, end=end)
    session.flush()
    live_events.record_change(session, "meeting.updated", meeting, [occ], now=now)
    return occurrence_public(occ, meeting, participants.endpoint_ids)


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
        participants = meeting_participants(session, meeting)
        duration = timedelta(minutes=meeting.duration_minutes)
        plans = [booking.make_plan(s, s + duration, s, participants, check_lead_minutes=meeting.check_lead_minutes,
                                   teardown_minutes=meeting.teardown_minutes) for s in new]
        names = Names(session)
        booking.resource_conflicts(session, settings, plans, names, partial=True)
        if meeting.bridge_id is not None and plans:
            choice = booking.choose_bridge(session, settings, plans, names, bridge_id=meeting.bridge_id,
                                           keep_number=meeting.conference_number)
            apply_bridge(choice, plans)
        skipped: list[dict[str, Any]] = []
        booking.insert_guarded(session, settings, lambda m=meeting, p=plans, s=skipped: write_occurrences(
            session, m, p, s), [p for p in plans if not p.conflicts], meeting.title)
        meeting.materialized_until = horizon
        session.add(meeting)
        audit(session, None, "series.extended", meeting_id=meeting.id, until=horizon,
              skipped=[s["start"] for s in skipped])
        report[meeting.id] = {"booked": len(plans) - len(skipped), "skipped": len(skipped)}
    session.flush()
    return report

