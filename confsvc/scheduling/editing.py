"""Editing a booked meeting: the whole series (SPEC rules 5, 6) or one occurrence, which then
becomes an exception. Re-checked against everything except the meeting itself; nothing changes on
a conflict. SEQUENCE bumps only on a material change (RFC 5545 §3.8.7.4). Write access: admin and
secretariat (``capabilities.BOOK``). Times are aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, func, select

from confsvc.clock import as_utc, utc_now
from confsvc.config import Settings
from confsvc.errors import Invalid
from confsvc.scheduling import booking, cascade, live_events, planning
from confsvc.scheduling import participants as participation
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Plan
from confsvc.scheduling.models import (
    Meeting,
    MeetingParticipant,
    MeetingStatus,
    Occurrence,
    OccurrenceParticipant,
    OccurrenceStatus,
)
from confsvc.scheduling.planning import (
    BookResult,
    apply_bridge,
    check_timing,
    lock_for_change,
    meeting_participants,
    normalised_rrule,
    occurrence_participants,
    refusal,
    require_no_self_overlap,
    require_open,
    series_starts,
    write_occurrences,
)
from confsvc.scheduling.repository import participant_ids, room_endpoint_ids
from confsvc.scheduling.schemas import MeetingUpdate, OccurrenceUpdate
from confsvc.scheduling.views import occurrence_public
from confsvc.users import principal as capabilities
from confsvc.users.principal import Principal


def material_state(session: Session, meeting: Meeting) -> tuple[Any, ...]:
    """What a participant must notice (RFC 5545 §3.8.7.4, RFC 5546 §2.1.4): times (DTSTART, DTEND,
    RRULE, EXDATE), technical-check lead, place (chair room, bridge and conference number: the dial
    string), participants and STATUS. SEQUENCE bumps when this changes and only then; a title or
    description edit keeps it (DTSTAMP still moves)."""
    tree = cascade.tree_of(session, meeting)
    return (meeting.dtstart, meeting.duration_minutes, meeting.rrule, sorted(meeting.exdates),
            meeting.check_lead_minutes, meeting.chair_room_id, meeting.bridge_id, meeting.conference_number,
            tuple(participant_ids(session, meeting.id)), meeting.status, meeting.upstream_dial,
            tuple((b, number) for b, (_bridge, number) in sorted(tree.others.items())))


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
    participation.require_whole_meeting(session, principal, meeting)
    return edit_unchecked(session, settings, principal, meeting, data, now=now)


def edit_unchecked(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                   data: MeetingUpdate, *, now: datetime | None = None, sites_checked: bool = False,
                   action: str = "meeting.updated", audit_extra: dict[str, Any] | None = None) -> BookResult:
    """:func:`edit_meeting` without its permission checks, for a use case that checked them its own
    way (``province_sites``: a province changes its own sites of a national meeting). With
    ``sites_checked`` the new sites are not checked against the principal's province either (the
    caller checked the sites it changes; the others are the national office's). The audit record is
    ``action`` with ``audit_extra``."""
    lock_for_change(session, meeting)
    require_open(meeting)
    now = now or utc_now()
    material_before = material_state(session, meeting)
    zone = ZoneInfo(meeting.timezone)
    changes = data.model_dump(exclude_unset=True)
    start = changes.get("start") or meeting.dtstart
    end = changes.get("end") or (as_utc(start, zone) + timedelta(minutes=meeting.duration_minutes)
                                 if "start" in changes else meeting.dtstart + timedelta(minutes=meeting.duration_minutes))
    lead = meeting.check_lead_minutes if data.check_lead_minutes is None else data.check_lead_minutes
    teardown = meeting.teardown_minutes if data.teardown_minutes is None else data.teardown_minutes
    timing = check_timing(settings, principal, start=start, end=end, zone=zone, now=now, check_lead_minutes=lead,
                     teardown_minutes=teardown, past_ok="start" not in changes)
    rrule = meeting.rrule if data.rrule is None else data.rrule.strip() or None
    if data.exdates is not None:
        exdates = [as_utc(d, zone) for d in data.exdates]
    else:
        # An excluded instance stays excluded when the series moves to another time of day: its
        # EXDATE follows to the new time on the same local date (RFC 5545 §3.8.5.1 matches exactly).
        exdates = [_same_day_at(datetime.fromisoformat(d), timing.start, zone) for d in meeting.exdates]
    until = meeting.materialized_until if rrule and meeting.materialized_until else None
    starts, materialized_until = series_starts(settings, timing, rrule, exdates, now=now, until=until)
    rooms_before = set().union(*live_events.occurrence_rooms(
        session, meeting, live_events.meeting_occurrences(session, meeting)).values())

    if any(k in changes for k in ("chair_room_id", "participant_room_ids", "participant_endpoint_ids")):
        chair = data.chair_room_id or meeting.chair_room_id
        current = participant_ids(session, meeting.id)
        if data.participant_room_ids is None and data.participant_endpoint_ids is None:
            room_ids, endpoint_ids = [], [e for e in current if e not in room_endpoint_ids(session, chair)]
        else:
            room_ids, endpoint_ids = data.participant_room_ids or [], data.participant_endpoint_ids or []
        participants = booking.resolve_participants(session, chair_room_id=chair, room_ids=room_ids,
                                                    endpoint_ids=endpoint_ids)
        if not sites_checked:
            participation.require_in_scope(session, principal, participants.room_ids)
        session.execute(sa.delete(MeetingParticipant).where(MeetingParticipant.meeting_id == meeting.id))
        session.add_all(MeetingParticipant(meeting_id=meeting.id, endpoint_id=e) for e in participants.endpoint_ids)
        meeting.chair_room_id = chair
    else:
        participants = meeting_participants(session, meeting)

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
                                           occurrence_participants(session, meeting, occ),
                                           check_lead_minutes=lead, teardown_minutes=teardown, occurrence=occ))
    session.flush()
    require_no_self_overlap([p for p in plans if p.occurrence is None
                              or p.occurrence.status is OccurrenceStatus.scheduled])

    for key in ("title", "description", "document_number", "signer_name", "signer_title"):
        if changes.get(key) is not None:
            setattr(meeting, key, changes[key])
    if data.status is not None:
        meeting.status = MeetingStatus(data.status)
    if data.confidential is not None:
        meeting.confidential = data.confidential
    if data.priority is not None:
        meeting.priority = data.priority
    if "upstream_dial" in changes:
        meeting.upstream_dial = data.upstream_dial
    if "sites_deadline" in changes:
        meeting.sites_deadline = planning.sites_deadline_of(principal, data.sites_deadline, zone=zone,
                                                            first_start=timing.start)
    meeting.dtstart, meeting.duration_minutes = timing.start, int(timing.duration.total_seconds() // 60)
    meeting.check_lead_minutes, meeting.teardown_minutes = lead, teardown
    meeting.rrule, meeting.exdates = normalised_rrule(rrule, zone), [d.isoformat() for d in exdates]
    meeting.materialized_until = materialized_until
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    _rebook(session, settings, meeting, plans, cascade.wishes_of(
        session, meeting, bridge_id=data.bridge_id, province_bridges=data.province_bridges))
    session.flush()
    if material_state(session, meeting) != material_before:
        meeting.sequence += 1
    audit(session, principal, action, meeting_id=meeting.id, fields=sorted(changes), **(audit_extra or {}))
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


def _rebook(session: Session, settings: Settings, meeting: Meeting, plans: list[Plan],
            wishes: cascade.Wishes) -> None:
    """Check ``plans`` (this meeting's bookings already deleted) and write their bookings and the
    meeting's bridges (``cascade``), or raise."""
    names = Names(session)
    # A displaced (tentative) occurrence holds nothing until it is moved (scheduling.displacement).
    scheduled = [p for p in plans if p.occurrence is None or (p.occurrence.status is OccurrenceStatus.scheduled
                                                              and not p.occurrence.tentative)]
    booking.resource_conflicts(session, settings, scheduled, names)
    choice = cascade.choose_bridges(session, settings, scheduled, names, wishes)
    apply_bridge(choice, scheduled)
    conflicts = [c for p in scheduled for c in p.conflicts]
    if conflicts:
        raise refusal(meeting.title, conflicts, session)
    meeting.bridge_id, meeting.conference_number = choice.bridge.id, choice.conference_number
    session.add(meeting)
    cascade.save_tree(session, meeting, choice)
    booking.insert_guarded(session, settings, lambda: write_occurrences(session, meeting, plans, []), scheduled,
                           meeting.title)


def edit_occurrence(session: Session, settings: Settings, principal: Principal, meeting: Meeting, occ: Occurrence,
                    data: OccurrenceUpdate, *, now: datetime | None = None) -> dict[str, Any]:
    """Move one occurrence or change its chair room / participants; it becomes an exception.

    Re-checked against everything except itself, on the meeting's bridge with its conference number
    (SPEC rule 6). Raises Forbidden, Invalid, BookingConflict.
    """
    principal.require(capabilities.BOOK)
    participation.require_whole_meeting(session, principal, meeting)
    lock_for_change(session, meeting, occ)
    require_open(meeting)
    if occ.status is OccurrenceStatus.cancelled:
        raise Invalid("the occurrence is cancelled", code="occurrence_cancelled")
    now = now or utc_now()
    zone = ZoneInfo(meeting.timezone)
    changes = data.model_dump(exclude_unset=True)
    start = changes.get("start") or occ.start
    end = changes.get("end") or (as_utc(start, zone) + (occ.end - occ.start))
    timing = check_timing(settings, principal, start=start, end=end, zone=zone, now=now,
                     check_lead_minutes=meeting.check_lead_minutes, teardown_minutes=meeting.teardown_minutes,
                     past_ok="start" not in changes)
    was = occurrence_participants(session, meeting, occ)
    material_before = (occ.start, occ.end, was.chair_room_id, tuple(was.endpoint_ids), occ.number(meeting))
    if any(k in changes for k in ("chair_room_id", "participant_room_ids", "participant_endpoint_ids")):
        chair = data.chair_room_id or occ.chair_room_id or meeting.chair_room_id
        if data.participant_room_ids is None and data.participant_endpoint_ids is None:
            current = was
            room_ids, endpoint_ids = [], [e for e in current.endpoint_ids
                                          if e not in room_endpoint_ids(session, current.chair_room_id)]
        else:
            room_ids, endpoint_ids = data.participant_room_ids or [], data.participant_endpoint_ids or []
        participants = booking.resolve_participants(session, chair_room_id=chair, room_ids=room_ids,
                                                    endpoint_ids=endpoint_ids)
        participation.require_in_scope(session, principal, participants.room_ids)
        session.execute(sa.delete(OccurrenceParticipant).where(OccurrenceParticipant.occurrence_id == occ.id))
        session.add_all(OccurrenceParticipant(occurrence_id=occ.id, endpoint_id=e) for e in participants.endpoint_ids)
        occ.chair_room_id, occ.participants_overridden = chair, True
    else:
        participants = occurrence_participants(session, meeting, occ)
    booking.delete_bookings(session, occurrence_id=occ.id)
    occ.start, occ.end = timing.start, timing.start + timing.duration
    occ.is_exception, occ.updated_at = True, now
    # Moved, a displaced occurrence is booked again: no longer tentative (scheduling.displacement).
    occ.tentative, occ.displaced_by_meeting_id, occ.alternative_start, occ.alternative_end = False, None, None, None
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
    choice = cascade.choose_bridges(session, settings, [plan], names,
                                    cascade.wishes_of(session, meeting, keep_number=occ.number(meeting)))
    apply_bridge(choice, [plan])
    if plan.conflicts:
        raise refusal(meeting.title, plan.conflicts, session)
    cascade.save_tree(session, meeting, choice, replace_all=False)
    number = plan.conference_number
    occ.conference_number = None if number is None or number == meeting.conference_number else number
    if (occ.start, occ.end, participants.chair_room_id, tuple(participants.endpoint_ids),
            occ.number(meeting)) != material_before:
        meeting.sequence += 1  # RFC 5545 §3.8.7.4: only a change the participants must notice
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add_all([occ, meeting])
    booking.insert_guarded(session, settings, lambda: write_occurrences(session, meeting, [plan], []), [plan],
                           meeting.title)
    audit(session, principal, "occurrence.updated", meeting_id=meeting.id, occurrence_id=occ.id,
          fields=sorted(changes))
    session.flush()
    live_events.record_change(session, "meeting.updated", meeting, [occ], scope="occurrence",
                              rooms_before=was.room_ids, now=now)
    return occurrence_public(occ, meeting, participants.endpoint_ids)

