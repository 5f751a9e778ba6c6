"""Booking a new meeting (SPEC rules 1–5, 7–9) and its dry run (rule 8).

Services flush and raise domain errors; the request's unit of work commits (``db.get_session``).
Write access: admin and secretariat anywhere (SPEC "Who uses it"); requesters dry-run what they
are about to request. Times are aware UTC; naive input is read in the meeting's zone.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from confsvc import db
from confsvc.clock import as_utc, utc_now
from confsvc.config import Settings
from confsvc.scheduling import booking, cascade, displacement, live_events, site_groups
from confsvc.scheduling import participants as participation
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.conflicts import group_conflicts
from confsvc.scheduling.models import Meeting, MeetingParticipant, MeetingStatus, Occurrence
from confsvc.scheduling.planning import (
    BookResult,
    Timing,
    apply_bridge,
    check_timing,
    normalised_rrule,
    refusal,
    require_no_self_overlap,
    series_starts,
    sites_deadline_of,
    write_occurrences,
)
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import principal as capabilities
from confsvc.users.principal import Principal


def _prepare(session: Session, settings: Settings, principal: Principal, data: MeetingCreate,
             now: datetime) -> tuple[Timing, Participants, list[Plan], datetime | None]:
    zone = ZoneInfo(data.timezone or settings.timezone)
    timing = check_timing(settings, principal, start=data.start, end=data.end, zone=zone, now=now,
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
    participation.require_in_scope(session, principal, participants.room_ids)
    starts, materialized_until = series_starts(settings, timing, data.rrule, data.exdates, now=now)
    plans = [booking.make_plan(s, s + timing.duration, s, participants, check_lead_minutes=timing.check_lead_minutes,
                               teardown_minutes=timing.teardown_minutes) for s in starts]
    require_no_self_overlap(plans)
    return timing, participants, plans, materialized_until


def check_meeting(session: Session, settings: Settings, principal: Principal, data: MeetingCreate,
                  *, now: datetime | None = None) -> dict[str, Any]:
    """Dry run of :func:`book_meeting`: ``{"ok", "conflicts", "groups", "provinces", "warnings",
    "displaceable", "displacement_token"}`` (conflicts as :class:`Conflict`, groups as
    :class:`ConflictGroup`, ``provinces`` the province of each conflict's resource as
    ``cascade.conflict_provinces`` gives it; what the booking would displace, ``displacement.dry_run``),
    nothing written (SPEC rules 8, 10).

    Same validation errors (422) as booking; takes no bridge lock. Admin, secretariat, and
    requesters (who check what they are about to request).
    """
    if not principal.can_request_meetings:
        principal.require(capabilities.BOOK)
    now = now or utc_now()
    timing, _, plans, _ = _prepare(session, settings, principal, data, now)
    names = Names(session)
    booking.resource_conflicts(session, settings, plans, names, lock=False)
    choice = cascade.choose_bridges(session, settings, plans, names, _wishes(data), lock=False,
                                    allowed=participation.bridges_in_scope(principal))
    apply_bridge(choice, plans)
    conflicts = [c for p in plans for c in p.conflicts]
    return {"ok": not conflicts, "conflicts": conflicts, "groups": group_conflicts(conflicts),
            "provinces": cascade.conflict_provinces(session, conflicts),
            "warnings": booking.holiday_warnings(plans, timing.zone),
            **displacement.dry_run(session, settings, principal, data.priority, conflicts)}


def book_meeting(session: Session, settings: Settings, principal: Principal, data: MeetingCreate,
                 *, now: datetime | None = None) -> BookResult:
    """Book a meeting and every occurrence up to the series horizon (SPEC rules 1–5, 7–9).

    Every occurrence is checked. Without ``skip_conflicts`` any conflict refuses the whole
    meeting (BookingConflict, 409, every conflict listed, nothing written); with it, the
    conflicting occurrences are recorded as cancelled exceptions and returned in ``skipped``.

    Raises:
        Forbidden: not admin or secretariat.
        Invalid: see ``check_timing``, ``series_starts``, ``booking.resolve_participants``, ``choose_bridge``.
        BookingConflict: conflicts, or a concurrent booking won the race.
        DisplacementRequired: only lower-priority occurrences in the way; with ``displace`` and the
            token they are displaced instead (``scheduling.displacement``, SPEC rule 10).
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
    displaced: list[Occurrence] = []
    if not data.skip_conflicts and any(p.conflicts for p in plans):
        choice = cascade.choose_bridges(session, settings, plans, names, _wishes(data), lock=False,
                                        allowed=participation.bridges_in_scope(principal))
        apply_bridge(choice, plans)
        # The 409 (or, confirmed, lower-priority occurrences freed: SPEC rule 10), then checked again.
        displaced = displacement.displace_or_refuse(
            session, settings, principal, title=data.title, priority=data.priority, displace=data.displace,
            given_token=data.displacement_token, plans=plans)
        booking.resource_conflicts(session, settings, plans, names)
        if any(p.conflicts for p in plans):
            raise refusal(data.title, [c for p in plans for c in p.conflicts], session)
    free = [p for p in plans if not p.conflicts]
    # The bridge is chosen before anything is written, so its bookings go in with the others in one
    # savepoint and the meeting is inserted with its bridge and number (issue 16 "Throughput under
    # contention"). No bridge lock is held from here: the numbers are claimed (repository.claim_number)
    # and the ports are counted again at COMMIT under the bridge's lock (port_guard, SPEC rule 7).
    choice = cascade.choose_bridges(session, settings, free or plans, names, _wishes(data),
                                    allowed=participation.bridges_in_scope(principal))
    apply_bridge(choice, free or plans)
    if not data.skip_conflicts and any(p.conflicts for p in plans):  # the bridge's own (SPEC rules 2, 3)
        raise refusal(data.title, [c for p in plans for c in p.conflicts], session)
    if not any(not p.conflicts for p in plans):
        raise refusal(data.title, [c for p in plans for c in p.conflicts], session)

    meeting = Meeting(
        uid=f"{uuid.uuid4()}@confsvc", title=data.title, description=data.description,
        organizer_user_id=principal.user_id, chair_room_id=data.chair_room_id,
        bridge_id=choice.bridge.id if choice.bridge else None, conference_number=choice.conference_number,
        pin=booking.new_pin(settings), status=MeetingStatus(data.status),
        check_lead_minutes=timing.check_lead_minutes, teardown_minutes=timing.teardown_minutes,
        timezone=str(timing.zone.key), dtstart=timing.start, duration_minutes=int(timing.duration.total_seconds() // 60),
        rrule=normalised_rrule(data.rrule, timing.zone), exdates=[as_utc(d, timing.zone).isoformat() for d in data.exdates],
        materialized_until=materialized_until, confidential=data.confidential, created_by=principal.user_id,
        created_at=now, updated_by=principal.user_id, updated_at=now, document_number=data.document_number,
        signer_name=data.signer_name, signer_title=data.signer_title, priority=data.priority,
        upstream_dial=data.upstream_dial,
        sites_deadline=sites_deadline_of(principal, data.sites_deadline, zone=timing.zone, first_start=timing.start))
    skipped: list[dict[str, Any]] = []

    def write() -> None:
        session.add(meeting)
        session.flush()
        # One statement (a national meeting has 3,355 participants: ORM objects cost a second).
        db.insert_rows(session, MeetingParticipant, [{"meeting_id": meeting.id, "endpoint_id": e}
                                                     for e in participants.endpoint_ids])
        write_occurrences(session, meeting, plans, skipped)

    booking.insert_guarded(session, settings, write, [p for p in plans if not p.conflicts], data.title)
    cascade.save_tree(session, meeting, choice, fresh=True)
    audit(session, principal, "meeting.created", meeting_id=meeting.id, occurrences=len(plans) - len(skipped),
          skipped=[s["start"] for s in skipped])
    session.flush()
    booked = [p.occurrence for p in plans if not p.conflicts]
    # What live_events.occurrence_rooms would read back: every occurrence has the meeting's participants.
    rooms = {p.occurrence.id: set(participants.room_ids) for p in plans if not p.conflicts}
    live_events.record_change(session, "meeting.scheduled", meeting, booked, now=now, extra=event_extra,
                              rooms=rooms)
    if displaced:
        displacement.announce(session, settings, principal, meeting, displaced, now=now)
    return BookResult(meeting, len(plans) - len(skipped), skipped, booking.holiday_warnings(
        [p for p in plans if not p.conflicts], timing.zone), participants.endpoint_ids)


def _wishes(data: MeetingCreate) -> cascade.Wishes:
    """What a new booking asks of bridges: the root, a bridge per province, the relay's leg."""
    return cascade.Wishes(bridge_id=data.bridge_id, province_bridges=dict(data.province_bridges),
                          upstream=data.upstream_dial is not None)
