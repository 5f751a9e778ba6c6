"""Meeting requests (yêu cầu đặt lịch, issue 15; SPEC "Who uses it": requester; rule 10).

A requester (a department or commune) submits a meeting for its own units: it is booked at once
with status ``tentative`` and **holds its resources like a booking** (its bookings block others,
SPEC rule 10), shows ``STATUS:TENTATIVE`` in feeds, and is mailed to nobody yet. The secretariat
then approves it (→ ``confirmed``, SEQUENCE bumps, invitations go out), or rejects it with a reason;
or it expires ``Settings.request_expiry_hours`` after submission (the scheduler tick). Rejection and
expiry cancel the meeting and free its resources at once.

Scope: a requester's **chair room must be in their units**; participant rooms and endpoints may be
anywhere (a commune asks the province's office or other communes to join; the secretariat vets
this when deciding). A requester sees only the requests they submitted; admin and secretariat
see every request. Each decision takes a row lock on the request and checks it is still
``pending``: of an approval and an expiry racing, exactly one wins and the other gets 409
``request_not_pending``. Every step records a ``meeting.*`` event with a ``request`` field
(``live_events``) and an audit entry (``request.submitted`` / ``.approved`` / ``.rejected`` /
``.expired``). The request's key is its meeting's id. Times are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Room
from confsvc.errors import Conflict, Forbidden, Invalid, NotFound
from confsvc.scheduling import audit_log, booking, creation, live_events, planning
from confsvc.scheduling.booking import Names
from confsvc.scheduling.conflicts import Conflict as BookingConflictItem
from confsvc.scheduling.models import Meeting, MeetingStatus, Occurrence, OccurrenceStatus
from confsvc.scheduling.request_models import MeetingRequest, RequestState
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users.principal import Principal

MAX_REASON = 1000


class RequestNotPending(Conflict):
    """The request was decided (approved, rejected, expired) already: 409 ``request_not_pending``."""

    status_code = 409
    code = "request_not_pending"


@dataclass
class RequestView:
    """A request with its meeting and (for the queue) its current conflicts."""

    request: MeetingRequest
    meeting: Meeting
    conflicts: list[BookingConflictItem]


def _event_data(req: MeetingRequest) -> dict[str, Any]:
    return {"request": {"state": req.state.value, "expires_at": req.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                        "reason": req.reason}}


def submit(session: Session, settings: Settings, principal: Principal, data: MeetingCreate, *,
           now: datetime | None = None) -> RequestView:
    """Submit a request: the meeting is booked ``tentative`` and holds its resources until decided.

    ``data.status`` is ignored (always tentative). Expires at ``now + request_expiry_hours``.

    Raises:
        Forbidden: ``forbidden_role`` (may not request), ``forbidden_scope`` (a requester's chair
            room outside their units).
        Invalid / BookingConflict: as ``creation.book_meeting`` (409 names the meetings in the way).
    """
    if not principal.can_request_meetings:
        raise Forbidden(f"role {principal.role.value!r} may not request meetings", code="forbidden_role")
    now = now or utc_now()
    chair = session.get(Room, data.chair_room_id)
    if chair is None:
        raise Invalid(f"room {data.chair_room_id} does not exist", code="unknown_room")
    principal.require_unit(chair.unit_id)
    expires_at = now + timedelta(hours=settings.request_expiry_hours)
    req = MeetingRequest(meeting_id=0, requested_by=principal.user_id, requested_at=now, expires_at=expires_at,
                         state=RequestState.pending)
    tentative = data.model_copy(update={"status": "tentative"})
    result = creation.book_unchecked(session, settings, principal, tentative, now=now, event_extra=_event_data(req))
    assert result.meeting.id is not None
    req.meeting_id = result.meeting.id
    session.add(req)
    audit_log.audit(session, principal, "request.submitted", meeting_id=result.meeting.id, expires_at=expires_at)
    session.flush()
    return RequestView(req, result.meeting, [])


def get(session: Session, principal: Principal, request_id: int) -> RequestView:
    """One request. Raises NotFound (``request_not_found``; also for another requester's request)."""
    req = session.get(MeetingRequest, request_id)
    if req is None or not _may_see(principal, req) or not _in_scope(session, principal, req.meeting_id):
        raise NotFound(f"request {request_id} not found", code="request_not_found")
    return RequestView(req, session.exec(select(Meeting).where(Meeting.id == req.meeting_id)).one(), [])


def _in_province(principal: Principal) -> Any:
    """Meeting ids whose chair room lies in ``principal``'s province (issue 14: a province decides its own)."""
    return (select(col(Meeting.id)).join(Room, col(Room.id) == col(Meeting.chair_room_id))
            .where(principal.scope_filter(col(Room.unit_id))))


def _in_scope(session: Session, principal: Principal, meeting_id: int) -> bool:
    return principal.scope is None or session.exec(
        _in_province(principal).where(col(Meeting.id) == meeting_id)).first() is not None


def _may_see(principal: Principal, req: MeetingRequest) -> bool:
    if principal.can_decide_requests:
        return True
    return principal.can_request_meetings and req.requested_by == principal.user_id


def list_requests(session: Session, settings: Settings, principal: Principal, *,
                  state: RequestState | None = RequestState.pending, limit: int = 50,
                  offset: int = 0) -> tuple[list[RequestView], int]:
    """Requests oldest first (by ``requested_at``), ``state`` only (``None``: all).

    Deciders (admin, secretariat) see every request, each pending one with its current conflicts
    from a dry run (its resources checked against every other booking); a requester sees only their
    own, without conflicts. Raises Forbidden for other roles.
    """
    if not (principal.can_decide_requests or principal.can_request_meetings):
        raise Forbidden(f"role {principal.role.value!r} may not see requests", code="forbidden_role")
    query = select(MeetingRequest)
    if not principal.can_decide_requests:
        query = query.where(MeetingRequest.requested_by == principal.user_id)
    if principal.scope is not None:
        query = query.where(col(MeetingRequest.meeting_id).in_(_in_province(principal)))
    if state is not None:
        query = query.where(MeetingRequest.state == state)
    if state is RequestState.pending:
        query = query.where(col(MeetingRequest.meeting_id).in_(_tentative()))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(MeetingRequest.requested_at), col(MeetingRequest.meeting_id))
                        .limit(limit).offset(offset)).all()
    meetings = {m.id: m for m in session.exec(select(Meeting).where(
        col(Meeting.id).in_([r.meeting_id for r in rows]))).all()} if rows else {}
    views = []
    for req in rows:
        meeting = meetings[req.meeting_id]
        conflicts = (current_conflicts(session, settings, meeting)
                     if principal.can_decide_requests and req.state is RequestState.pending else [])
        views.append(RequestView(req, meeting, conflicts))
    return views, total


def current_conflicts(session: Session, settings: Settings, meeting: Meeting) -> list[BookingConflictItem]:
    """Dry run: what the meeting's scheduled occurrences collide with now, its own bookings aside
    (endpoints and rooms, SPEC rules 1 and 4). Nothing is written or locked."""
    occurrences = session.exec(select(Occurrence).where(
        Occurrence.meeting_id == meeting.id, Occurrence.status == OccurrenceStatus.scheduled)
        .order_by(col(Occurrence.start), col(Occurrence.id))).all()
    plans = [booking.make_plan(o.start, o.end, o.recurrence_id,
                               planning.occurrence_participants(session, meeting, o),
                               check_lead_minutes=meeting.check_lead_minutes,
                               teardown_minutes=meeting.teardown_minutes, occurrence=o) for o in occurrences]
    booking.resource_conflicts(session, settings, plans, Names(session))
    return [c for p in plans for c in p.conflicts if c.meeting_id != meeting.id]


def _lock_pending(session: Session, request_id: int) -> tuple[MeetingRequest, Meeting]:
    """The request row, locked until the transaction ends (``SELECT … FOR UPDATE``; SQLite's write
    transaction holds the database lock already) and read afresh. Raises NotFound, RequestNotPending."""
    req = session.exec(select(MeetingRequest).where(MeetingRequest.meeting_id == request_id).with_for_update()
                       .execution_options(populate_existing=True)).first()
    if req is None:
        raise NotFound(f"request {request_id} not found", code="request_not_found")
    meeting = session.exec(select(Meeting).where(Meeting.id == req.meeting_id)
                           .execution_options(populate_existing=True)).one()
    if req.state is not RequestState.pending or meeting.status is not MeetingStatus.tentative:
        raise RequestNotPending(f"request {request_id} is {req.state.value} already", state=req.state.value)
    return req, meeting


def approve(session: Session, principal: Principal, request_id: int, *, now: datetime | None = None) -> RequestView:
    """Approve: the meeting becomes ``confirmed``, SEQUENCE bumps (RFC 5545 §3.8.7.4: STATUS changed),
    a ``meeting.updated`` event (mailed: the invitations go out now).

    Raises: Forbidden (not a decider), NotFound, RequestNotPending (409).
    """
    _require_decider(principal)
    now = now or utc_now()
    if not _in_scope(session, principal, request_id):
        raise NotFound(f"request {request_id} not found", code="request_not_found")
    req, meeting = _lock_pending(session, request_id)
    meeting.status = MeetingStatus.confirmed
    meeting.sequence += 1
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    req.state, req.decided_by, req.decided_at = RequestState.approved, principal.user_id, now
    session.add_all([meeting, req])
    audit_log.audit(session, principal, "request.approved", meeting_id=meeting.id)
    session.flush()
    live_events.record_change(session, "meeting.updated", meeting, live_events.meeting_occurrences(session, meeting),
                              now=now, extra=_event_data(req))
    return RequestView(req, meeting, [])


def reject(session: Session, principal: Principal, request_id: int, reason: str, *,
           now: datetime | None = None) -> RequestView:
    """Reject with a reason (1–1000 characters): the meeting is cancelled and its resources freed.

    Raises: Forbidden, NotFound, Invalid (``reason_required``), RequestNotPending (409).
    """
    _require_decider(principal)
    reason = " ".join(reason.split())
    if not reason or len(reason) > MAX_REASON:
        raise Invalid(f"a rejection needs a reason of 1–{MAX_REASON} characters", code="reason_required")
    if not _in_scope(session, principal, request_id):
        raise NotFound(f"request {request_id} not found", code="request_not_found")
    req, meeting = _lock_pending(session, request_id)
    return _close(session, principal, req, meeting, RequestState.rejected, now or utc_now(), reason=reason)


def expire(session: Session, request_id: int, *, now: datetime | None = None) -> RequestView:
    """Expire one pending request whose ``expires_at`` has passed (the scheduler; no user):
    the meeting is cancelled and its resources freed.

    Raises: NotFound, RequestNotPending (409: decided meanwhile), Invalid (``request_not_due``).
    """
    now = now or utc_now()
    req, meeting = _lock_pending(session, request_id)
    if req.expires_at > now:
        raise Invalid(f"request {request_id} expires at {req.expires_at.isoformat()}", code="request_not_due")
    return _close(session, None, req, meeting, RequestState.expired, now)


def _tentative() -> Any:
    """Ids of tentative meetings: a pending request whose meeting was cancelled or confirmed through
    the meetings API was settled there, and is neither queued nor expired."""
    return select(Meeting.id).where(Meeting.status == MeetingStatus.tentative)


def due(session: Session, now: datetime) -> list[int]:
    """Ids of pending requests whose ``expires_at`` is at or before ``now`` (UTC), oldest first."""
    return list(session.exec(select(MeetingRequest.meeting_id).where(
        MeetingRequest.state == RequestState.pending, MeetingRequest.expires_at <= now,
        col(MeetingRequest.meeting_id).in_(_tentative()))
        .order_by(col(MeetingRequest.expires_at), col(MeetingRequest.meeting_id))).all())


def _close(session: Session, principal: Principal | None, req: MeetingRequest, meeting: Meeting,
           state: RequestState, now: datetime, *, reason: str = "") -> RequestView:
    booking.delete_bookings(session, meeting_id=meeting.id)
    meeting.status = MeetingStatus.cancelled
    meeting.sequence += 1
    meeting.cancelled_by = meeting.updated_by = principal.user_id if principal else None
    meeting.cancelled_at = meeting.updated_at = now
    req.state, req.decided_at, req.reason = state, now, reason
    req.decided_by = principal.user_id if principal else None
    session.add_all([meeting, req])
    audit_log.audit(session, principal, f"request.{state.value}", meeting_id=meeting.id, reason=reason)
    session.flush()
    live_events.record_change(session, "meeting.cancelled", meeting,
                              live_events.meeting_occurrences(session, meeting), now=now, extra=_event_data(req))
    return RequestView(req, meeting, [])


def _require_decider(principal: Principal) -> None:
    if not principal.can_decide_requests:
        raise Forbidden(f"role {principal.role.value!r} may not decide requests", code="forbidden_role")
