"""Series operations of a secretariat (issue 12): restore a cancelled occurrence, add an extra
occurrence to a series (RFC 5545 §3.8.5.2 RDATE); split a series at an occurrence ("this and
following", issue 13: :func:`split_series`).

Both are bookings: checked like one (SPEC rules 1–3, 5, 6, 8: 409 listing every conflict, nothing
written), bump the meeting's SEQUENCE (a material change, RFC 5545 §3.8.7.4), are audited, and record
a ``meeting.updated`` event (scope ``meeting``, the occurrence named in ``occurrence_id``) so feeds,
e-mailed invites (the whole series again, with its RDATE) and room displays follow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from confsvc.clock import as_utc, utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Endpoint
from confsvc.errors import Invalid
from confsvc.scheduling import booking, cascade, live_events, recurrence
from confsvc.scheduling import participants as participation
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.creation import book_meeting
from confsvc.scheduling.editing import _same_day_at, edit_meeting
from confsvc.scheduling.models import Meeting, MeetingStatus, Occurrence, OccurrenceStatus
from confsvc.scheduling.planning import (
    BookResult,
    apply_bridge,
    check_timing,
    meeting_participants,
    occurrence_participants,
    refusal,
    require_open,
    write_occurrences,
)
from confsvc.scheduling.repository import participant_ids
from confsvc.scheduling.schemas import MeetingCreate, MeetingUpdate, OccurrenceCreate
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
    choice = cascade.choose_bridges(session, settings, [plan], names, cascade.wishes_of(
        session, meeting, keep_number=plan.occurrence.number(meeting) if plan.occurrence is not None else None))
    apply_bridge(choice, [plan])
    if plan.conflicts:
        raise refusal(meeting.title, plan.conflicts, session)
    cascade.save_tree(session, meeting, choice, replace_all=False)
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
    participation.require_whole_meeting(session, principal, meeting)
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
    participation.require_whole_meeting(session, principal, meeting)
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
            choice = cascade.choose_bridges(session, settings, plans, names, cascade.wishes_of(session, meeting))
            apply_bridge(choice, plans)
            cascade.save_tree(session, meeting, choice, replace_all=False)
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


# ---------------------------------------------------------------- this and following (issue 13)

def _rule_parts(text: str, zone: ZoneInfo) -> dict[str, str]:
    try:
        return dict(recurrence.normalise(text, zone)[1])
    except recurrence.RecurrenceError as exc:
        raise Invalid(str(exc), code=exc.code) from None


def _join(parts: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in parts.items())


def following_rule(meeting: Meeting, at: datetime) -> str:
    """The series' rule for its occurrences from ``at`` (an original start, UTC) on: the same rule,
    its ``COUNT`` less the instances generated before ``at`` (RFC 5545 §3.3.10 counts EXDATE'd ones
    too); ``UNTIL`` and an open end are kept.

    Raises Invalid: ``not_a_series``, the rule's own errors.
    """
    if not meeting.rrule:
        raise Invalid("only a recurring meeting has following occurrences", code="not_a_series")
    zone = ZoneInfo(meeting.timezone)
    parts = _rule_parts(meeting.rrule, zone)
    if "COUNT" in parts:
        before = [s for s in recurrence.expand(meeting.rrule, meeting.dtstart, zone, until_utc=at) if s < at]
        parts["COUNT"] = str(max(1, int(parts["COUNT"]) - len(before)))
    return _join(parts)


def _ended_before(meeting: Meeting, at: datetime) -> str:
    """The series' rule ending just before ``at``: ``UNTIL`` one second earlier, in UTC (RFC 5545
    §3.3.10: UTC when DTSTART has a TZID), ``COUNT`` dropped (the two are exclusive)."""
    parts = {k: v for k, v in _rule_parts(meeting.rrule or "", ZoneInfo(meeting.timezone)).items()
             if k not in ("COUNT", "UNTIL")}
    parts["UNTIL"] = (at - timedelta(seconds=1)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return _join(parts)


def split_series(session: Session, settings: Settings, principal: Principal, meeting: Meeting, occ: Occurrence,
                 data: MeetingUpdate, *, now: datetime | None = None) -> BookResult:
    """"Buổi này và các buổi sau" (this and following): end the series just before ``occ`` and book a
    new series from it with ``data``'s changes (RFC 5545 §3.8.4.4 has no THISANDFUTURE for RRULE
    edits in practice; calendar clients split the same way).

    The old meeting keeps its UID; its RRULE gets ``UNTIL`` one second before ``occ``'s original
    start (its occurrences from ``occ`` on are removed: plain, moved, cancelled and added ones), so
    its SEQUENCE bumps (:func:`service.edit_meeting`). The new meeting is a booking
    (:func:`service.book_meeting`: its own UID, SEQUENCE 0, checked against everything, the old
    series' removed occurrences no longer in the way). Unset fields of ``data`` take the old
    meeting's values; its start defaults to ``occ``'s original start, its rule to
    :func:`following_rule`; EXDATEs and cancelled occurrences from ``occ`` on stay excluded (moved
    to the new time of day). On the series' first occurrence this is :func:`service.edit_meeting`.

    Returns the new meeting's BookResult (the old meeting's when ``occ`` is the first occurrence).

    Raises:
        Forbidden: not admin or secretariat.
        Invalid: ``meeting_cancelled``, ``not_a_series``, and those of ``edit_meeting``/``book_meeting``.
        BookingConflict: 409, every conflict of the new series listed; nothing is written (the
            caller rolls back the session).
    """
    principal.require(BOOK)
    require_open(meeting)
    if not meeting.rrule:
        raise Invalid("only a recurring meeting can be split", code="not_a_series")
    now = now or utc_now()
    zone = ZoneInfo(meeting.timezone)
    at = occ.recurrence_id
    if at <= meeting.dtstart:
        return edit_meeting(session, settings, principal, meeting, data, now=now)
    changes = data.model_dump(exclude_unset=True)
    rule = changes["rrule"].strip() if changes.get("rrule") is not None else following_rule(meeting, at)
    duration = timedelta(minutes=meeting.duration_minutes)
    start = as_utc(changes["start"], zone) if changes.get("start") else at
    end = as_utc(changes["end"], zone) if changes.get("end") else start + duration
    chair = changes.get("chair_room_id") or meeting.chair_room_id
    if data.participant_room_ids is None and data.participant_endpoint_ids is None:
        room_ids: list[int] = []
        chair_endpoints = set(session.exec(select(Endpoint.id).where(Endpoint.room_id == chair)).all())
        endpoint_ids = [e for e in participant_ids(session, meeting.id) if e not in chair_endpoints]
    else:
        room_ids, endpoint_ids = data.participant_room_ids or [], data.participant_endpoint_ids or []
    later = list(session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id,
                                                      Occurrence.recurrence_id >= at)).all())
    excluded = [datetime.fromisoformat(d) for d in meeting.exdates]
    skipped = [d for d in excluded if d >= at] + [o.recurrence_id for o in later
                                                  if o.status is OccurrenceStatus.cancelled and not o.is_extra]
    new_exdates = sorted({_same_day_at(d, start, zone) for d in skipped})

    # End the old series: its later occurrences stop being exceptions so the shorter rule drops them.
    for o in later:
        o.is_exception = False
        session.add(o)
    session.flush()
    edit_meeting(session, settings, principal, meeting,
                 MeetingUpdate(rrule=_ended_before(meeting, at), exdates=[d for d in excluded if d < at]), now=now)
    create = MeetingCreate(
        title=changes.get("title") or meeting.title,
        description=meeting.description if changes.get("description") is None else changes["description"],
        chair_room_id=chair, participant_room_ids=room_ids, participant_endpoint_ids=endpoint_ids,
        start=start, end=end,
        check_lead_minutes=meeting.check_lead_minutes if data.check_lead_minutes is None else data.check_lead_minutes,
        teardown_minutes=meeting.teardown_minutes if data.teardown_minutes is None else data.teardown_minutes,
        bridge_id=data.bridge_id if data.bridge_id is not None else meeting.bridge_id,
        status=data.status or ("tentative" if meeting.status is MeetingStatus.tentative else "confirmed"),
        rrule=rule or None, exdates=new_exdates, timezone=meeting.timezone,
        document_number=meeting.document_number if data.document_number is None else data.document_number,
        signer_name=meeting.signer_name if data.signer_name is None else data.signer_name,
        signer_title=meeting.signer_title if data.signer_title is None else data.signer_title,
        confidential=meeting.confidential if data.confidential is None else data.confidential,
        upstream_dial=meeting.upstream_dial,
        province_bridges=cascade.wishes_of(session, meeting).province_bridges)
    result = book_meeting(session, settings, principal, create, now=now)
    audit(session, principal, "meeting.split", meeting_id=meeting.id, occurrence_id=occ.id, at=at,
          new_meeting_id=result.meeting.id)
    session.flush()
    return result
