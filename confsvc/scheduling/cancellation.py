"""Cancelling a meeting or one of its occurrences: bookings are freed at once (SPEC rule 6),
SEQUENCE bumps, the change is audited and recorded as ``meeting.cancelled``. Write access: admin and
secretariat (``capabilities.BOOK``).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from confsvc.clock import utc_now
from confsvc.scheduling import booking, live_events
from confsvc.scheduling import participants as participation
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.models import Meeting, MeetingStatus, Occurrence, OccurrenceStatus
from confsvc.scheduling.planning import lock_for_change, require_open
from confsvc.users import principal as capabilities
from confsvc.users.principal import Principal


def cancel_meeting(session: Session, principal: Principal, meeting: Meeting, *, now: datetime | None = None) -> Meeting:
    """Cancel the whole meeting; every booking is freed at once (SPEC rule 6). SEQUENCE bumps."""
    principal.require(capabilities.BOOK)
    participation.require_whole_meeting(session, principal, meeting)
    lock_for_change(session, meeting)
    require_open(meeting)
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
    participation.require_whole_meeting(session, principal, meeting)
    lock_for_change(session, meeting, occ)
    require_open(meeting)
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

