"""Changing how participants dial in: the meeting's PIN and its conference number on the bridge
(SPEC rule 7). Join instructions, displays and invitations follow through ``meeting.updated``.
Write access: admin and secretariat (``capabilities.BOOK``).
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.errors import Invalid
from confsvc.scheduling import booking, live_events, repository
from confsvc.scheduling import participants as participation
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind
from confsvc.scheduling.planning import lock_for_change, refusal, require_open
from confsvc.users import principal as capabilities
from confsvc.users.principal import Principal


def set_pin(session: Session, settings: Settings, principal: Principal, meeting: Meeting, pin: str | None,
            *, now: datetime | None = None) -> Meeting:
    """Set the meeting's PIN, or generate a new one (``pin`` None; never the old one).

    Join instructions, displays and invitations follow: SEQUENCE bumps and ``meeting.updated``
    is recorded for every occurrence still to come (the edit's events). Raises Forbidden, Invalid.
    """
    principal.require(capabilities.BOOK)
    participation.require_whole_meeting(session, principal, meeting)
    lock_for_change(session, meeting)
    require_open(meeting)
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
    Occurrences' own numbers are dropped. Under the bridge's lock, the number claimed
    (``repository.claim_number``; SPEC rule 7).

    Raises: Forbidden; Invalid ``no_bridge`` (the meeting has none), ``number_out_of_range``;
    BookingConflict (409) naming every occurrence of another meeting holding that number then, or
    holding every number of the range (``reason`` "conference number in use").
    """
    principal.require(capabilities.BOOK)
    participation.require_whole_meeting(session, principal, meeting)
    lock_for_change(session, meeting)
    require_open(meeting)
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
    windows = [Window(b.window_start, b.window_end) for b, _h in held]
    chosen = number is None
    if number is None:
        taken = set().union(*(h.keys() for _b, h in held)) if held else set()
        free = (n for n in range(bridge.conference_number_min, bridge.conference_number_max + 1)
                if n not in taken and n != meeting.conference_number)
        # Claimed (repository.claim_number): a number a concurrent booking is claiming is skipped.
        number = repository.claim_number(session, bridge.id, list(islice(free, booking.CLAIM_CANDIDATES)), windows,
                                         meeting_id=meeting.id)
        if number is None:
            conflicts = [c for n in sorted(taken) for c in booking.number_conflicts(bridge, settings.zone, held, n,
                                                                                   occurrences)]
            raise refusal(meeting.title, conflicts)
    conflicts = booking.number_conflicts(bridge, settings.zone, held, number, occurrences)
    if conflicts:
        raise refusal(meeting.title, conflicts)
    if not chosen and repository.claim_number(session, bridge.id, [number], windows, meeting_id=meeting.id) is None:
        raise BookingConflict(f"conference number {number} is being given to a concurrent booking; try again", [])
    old = (meeting.conference_number, sorted((o.id, o.conference_number) for o in occurrences.values()))
    meeting.conference_number = number
    for occ in occurrences.values():
        occ.conference_number = None
        session.add(occ)
    session.execute(sa.update(Booking).where(Booking.meeting_id == meeting.id,  # the root's: a cascaded
                                             Booking.resource_kind == ResourceKind.bridge,  # meeting's other
                                             Booking.resource_id == bridge.id)  # bridges keep theirs
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

