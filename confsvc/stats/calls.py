"""Call records: accept connected/disconnected reports and manual attendance marks, keep one endpoint's
periods non-overlapping, close open periods when their occurrence ends.

Reports from several sources (the bridge's webhook and the endpoint's agent) describe the same
connection; they are merged, never added (issue 6):

* ``connected`` at ``t`` inside an existing period of the endpoint in that occurrence: a duplicate,
  nothing changes. Before a later period of that occurrence: that period now starts at ``t`` (a late
  report of the same connection). Otherwise a new open period ``[t, …)`` starts; an open period of
  the endpoint in another occurrence is closed at ``min(t, that occurrence's end)``.
* ``disconnected`` at ``t`` closes the endpoint's open period at ``min(t, occurrence end)`` when it
  started before ``t``; otherwise (no open period: another source closed it already) nothing changes.
* A manual mark ``[from, to)``, clipped to the occurrence's window, is united with every period of
  the endpoint in the occurrence that it overlaps or touches.

Every period lies inside its occurrence's window ``[start − check_lead, end)`` (the booking window
without teardown). One write per endpoint at a time: the endpoint row is locked first
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write transaction holds the database lock), and a
partial unique index allows one open period per endpoint.

Each change records ``call.connected`` / ``call.disconnected`` (``confsvc.events``) for the
endpoint's room, in the same transaction. Services flush, never commit (except :func:`close_due`,
the periodic job that owns its transactions).

Who reports (``POST /calls``): admin and secretariat bearer tokens, and agent tokens
(``endpoints.agent_tokens``, ``cfa_…``): an endpoint-bound token only about its own endpoint, a
bridge-bound token only about occurrences of meetings on its bridge (403 otherwise), an unbound
token about any endpoint. An agent's report without an explicit ``source`` gets ``bridge`` (bridge-bound
token) or ``agent``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events, periodic
from confsvc.clock import as_utc, iso_utc, utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import AgentToken, Endpoint, Room
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.scheduling import participants
from confsvc.scheduling.models import Booking, Meeting, MeetingStatus, Occurrence, OccurrenceStatus, ResourceKind
from confsvc.stats.models import CallRecord
from confsvc.stats.schemas import AttendanceMark, CallEventCreate, CallEventKind
from confsvc.users.principal import MARK_ATTENDANCE, REPORT_CALLS, Principal

#: Who may post device reports (``POST /calls``).
#: Who may mark attendance by hand (operators within their units).


@dataclass(frozen=True)
class AgentCaller:
    """A device agent or bridge webhook posting call events with an agent token: the token's id and
    binding (at most one of ``endpoint_id`` and ``bridge_id``)."""

    token_id: int
    endpoint_id: int | None = None
    bridge_id: int | None = None

    @classmethod
    def for_token(cls, token: AgentToken) -> AgentCaller:
        return cls(token.id, token.endpoint_id, token.bridge_id)

    @property
    def source(self) -> str:
        return "bridge" if self.bridge_id is not None else "agent"


@dataclass
class CallOutcome:
    """What a report did: ``record`` is the period it created or changed (None when nothing changed)."""

    accepted: bool
    occurrence_id: int
    record: CallRecord | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Occ:
    id: int
    meeting_id: int
    window_start: datetime
    end: datetime


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value else None


def record_public(record: CallRecord) -> dict[str, Any]:
    return {"id": record.id, "endpoint_id": record.endpoint_id, "occurrence_id": record.occurrence_id,
            "connected_at": record.connected_at, "disconnected_at": record.disconnected_at, "source": record.source}


# ---------------------------------------------------------------- lookups

def _lock_endpoint(session: Session, endpoint_id: int) -> tuple[Endpoint, Room]:
    """The endpoint (row-locked until commit) and its room. Raises NotFound."""
    row = session.exec(select(Endpoint, Room).join(Room, Room.id == Endpoint.room_id)
                       .where(Endpoint.id == endpoint_id).with_for_update(of=Endpoint)).first()
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} not found", code="endpoint_not_found")
    return row[0], row[1]


def _check_bridge(session: Session, caller: Principal | AgentCaller, occ: _Occ) -> None:
    """A bridge-bound agent token reports only about occurrences of meetings on its bridge.

    Raises Forbidden (``forbidden_bridge``).
    """
    if isinstance(caller, AgentCaller) and caller.bridge_id is not None:
        bridge_id = session.exec(select(Meeting.bridge_id).where(Meeting.id == occ.meeting_id)).one()
        if bridge_id != caller.bridge_id:
            raise Forbidden(f"this agent token reports calls on bridge {caller.bridge_id} only",
                            code="forbidden_bridge")


def _occ(session: Session, occurrence_id: int) -> tuple[_Occ, bool]:
    """The occurrence's window and whether it is cancelled (or its meeting is). Raises NotFound."""
    row = session.exec(select(Occurrence, Meeting.check_lead_minutes, Meeting.status)
                       .join(Meeting, Meeting.id == Occurrence.meeting_id)
                       .where(Occurrence.id == occurrence_id)).first()
    if row is None:
        raise NotFound(f"occurrence {occurrence_id} not found", code="occurrence_not_found")
    occ, lead, meeting_status = row
    cancelled = occ.status is OccurrenceStatus.cancelled or meeting_status is MeetingStatus.cancelled
    return _Occ(occ.id, occ.meeting_id, occ.start - timedelta(minutes=lead), occ.end), cancelled


def _participates(session: Session, occurrence_id: int, endpoint_id: int) -> bool:
    """Whether the endpoint is a participant of the occurrence (its own list if overridden, else the meeting's)."""
    rows = participants.endpoint_rows(occurrence_ids=occurrence_id, endpoint_ids=endpoint_id)
    return session.exec(select(sa.exists(rows))).one()


def _usable_occurrence(session: Session, occurrence_id: int, endpoint_id: int) -> _Occ:
    """Raises NotFound, Invalid (``occurrence_cancelled``, ``not_a_participant``)."""
    occ, cancelled = _occ(session, occurrence_id)
    if cancelled:
        raise Invalid(f"occurrence {occurrence_id} is cancelled", code="occurrence_cancelled")
    if not _participates(session, occurrence_id, endpoint_id):
        raise Invalid(f"endpoint {endpoint_id} does not take part in occurrence {occurrence_id}",
                      code="not_a_participant")
    return occ


def _occurrence_at(session: Session, settings: Settings, endpoint_id: int, at: datetime) -> _Occ | None:
    """The endpoint's booked occurrence whose ``[start − check_lead, end)`` contains ``at``.

    Uses the endpoint's bookings (one per scheduled occurrence; SPEC rule 1 makes the answer unique),
    scanning the bounded index range of ``scheduling.repository``.
    """
    window = timedelta(minutes=settings.max_booking_window_minutes)
    occ_id = session.exec(
        select(Booking.occurrence_id).join(Occurrence, Occurrence.id == Booking.occurrence_id)
        .where(Booking.resource_kind == ResourceKind.endpoint, Booking.resource_id == endpoint_id,
               Booking.window_start <= at, Booking.window_start > at - window, Occurrence.end > at)
        .order_by(Booking.window_start.desc()).limit(1)).first()
    return _occ(session, occ_id)[0] if occ_id is not None else None


def _periods(session: Session, endpoint_id: int, occurrence_id: int) -> list[CallRecord]:
    return list(session.exec(select(CallRecord).where(CallRecord.endpoint_id == endpoint_id,
                                                      CallRecord.occurrence_id == occurrence_id)
                             .order_by(CallRecord.connected_at)).all())


def _open_period(session: Session, endpoint_id: int) -> CallRecord | None:
    return session.exec(select(CallRecord).where(CallRecord.endpoint_id == endpoint_id,
                                                 CallRecord.disconnected_at.is_(None))).first()


def _event(session: Session, kind: str, record: CallRecord, room_id: int, meeting_id: int, **extra: Any) -> None:
    events.record(session, kind, {
        "call_record_id": record.id, "endpoint_id": record.endpoint_id, "room_id": room_id,
        "occurrence_id": record.occurrence_id, "meeting_id": meeting_id,
        "connected_at": _iso(record.connected_at), "disconnected_at": _iso(record.disconnected_at),
        "source": record.source, **extra}, room_ids=[room_id])


def _close(session: Session, record: CallRecord, at: datetime, occ_end: datetime, room_id: int, meeting_id: int,
           now: datetime) -> None:
    """Close ``record`` at ``min(at, occ_end)``; a period that would be empty is deleted."""
    end = min(at, occ_end)
    if end <= record.connected_at:
        session.delete(record)
        session.flush()
        return
    record.disconnected_at, record.updated_at = end, now
    session.add(record)
    session.flush()
    _event(session, "call.disconnected", record, room_id, meeting_id)


# ---------------------------------------------------------------- use cases

def report_call(session: Session, settings: Settings, caller: Principal | AgentCaller, data: CallEventCreate,
                *, now: datetime | None = None) -> CallOutcome:
    """Apply a ``connected``/``disconnected`` report (module docstring for the merge rules).

    ``caller``: an admin or secretariat principal, or an agent token (:class:`AgentCaller`, whose
    ``last_used_at`` becomes ``now``).

    Raises:
        Forbidden: another role (``forbidden_role``); an endpoint-bound agent token for another endpoint
            (``forbidden_endpoint``); a bridge-bound one for an occurrence not on its bridge (``forbidden_bridge``).
        NotFound: unknown endpoint or occurrence.
        Invalid: ``at_in_future`` (beyond ``call_clock_skew_minutes``), ``no_occurrence`` (no occurrence of
            the endpoint contains ``at``), ``occurrence_cancelled``, ``not_a_participant``,
            ``outside_occurrence`` (a ``connected`` outside the given occurrence's window).
    Events: ``call.connected`` or ``call.disconnected`` (and ``call.disconnected`` for an open period of
    another occurrence it closes).
    """
    now = now or utc_now()
    if isinstance(caller, AgentCaller):
        if caller.endpoint_id is not None and caller.endpoint_id != data.endpoint_id:
            raise Forbidden("this agent token reports another endpoint", code="forbidden_endpoint")
        if "source" not in data.model_fields_set:
            data = data.model_copy(update={"source": caller.source})
    else:
        caller.require(REPORT_CALLS)
    at = as_utc(data.at, settings.zone)
    if at > now + timedelta(minutes=settings.call_clock_skew_minutes):
        raise Invalid("the report is dated in the future", code="at_in_future")
    endpoint, room = _lock_endpoint(session, data.endpoint_id)
    if isinstance(caller, AgentCaller):
        token = session.get(AgentToken, caller.token_id)
        token.last_used_at = now
        session.add(token)

    if data.event is CallEventKind.disconnected:
        open_ = _open_period(session, endpoint.id)
        if data.occurrence_id is not None:
            occ = _usable_occurrence(session, data.occurrence_id, endpoint.id)
            if open_ is not None and open_.occurrence_id != occ.id:
                open_ = None
        elif open_ is not None:
            occ = _occ(session, open_.occurrence_id)[0]
        else:
            occ = _occurrence_at(session, settings, endpoint.id, at)
            if occ is None:
                raise Invalid("no occurrence of this endpoint at that time", code="no_occurrence")
        _check_bridge(session, caller, occ)
        if open_ is None or at <= open_.connected_at:
            return CallOutcome(False, occ.id, reason="no_open_call")
        _close(session, open_, at, occ.end, room.id, occ.meeting_id, now)
        return CallOutcome(True, occ.id, open_ if open_.disconnected_at else None)

    if data.occurrence_id is not None:
        occ = _usable_occurrence(session, data.occurrence_id, endpoint.id)
        if not occ.window_start <= at < occ.end:
            raise Invalid("the connection is outside the occurrence's window [start − check lead, end)",
                          code="outside_occurrence")
    else:
        found = _occurrence_at(session, settings, endpoint.id, at)
        if found is None:
            raise Invalid("no occurrence of this endpoint at that time", code="no_occurrence")
        occ = found
    _check_bridge(session, caller, occ)
    periods = _periods(session, endpoint.id, occ.id)
    if any(p.connected_at <= at and (p.disconnected_at is None or at < p.disconnected_at) for p in periods):
        return CallOutcome(False, occ.id, reason="duplicate")
    other = _open_period(session, endpoint.id)
    if other is not None and other.occurrence_id != occ.id:
        other_occ = _occ(session, other.occurrence_id)[0]
        _close(session, other, at, other_occ.end, room.id, other_occ.meeting_id, now)
    later = [p for p in periods if p.connected_at > at]
    if later:
        record = later[0]
        record.connected_at, record.updated_at = at, now
    else:
        record = CallRecord(endpoint_id=endpoint.id, occurrence_id=occ.id, connected_at=at, source=data.source,
                            updated_at=now)
    session.add(record)
    session.flush()
    _event(session, "call.connected", record, room.id, occ.meeting_id)
    return CallOutcome(True, occ.id, record)


def mark_attendance(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                    occurrence: Occurrence, data: AttendanceMark, *, now: datetime | None = None) -> list[CallRecord]:
    """Record by hand that a site was connected over ``[connected_from, connected_to)`` (when no device reports).

    The period is clipped to the occurrence's window and united with the endpoint's periods it
    overlaps or touches. Admin and secretariat anywhere; operators for rooms of their units.
    Returns the resulting period of each endpoint (a room: each of its participating endpoints).

    Raises:
        Forbidden: role, or the room outside an operator's units.
        NotFound: unknown room or endpoint.
        Invalid: ``end_not_after_start``, ``outside_occurrence`` (nothing left after clipping),
            ``occurrence_cancelled``, ``not_a_participant`` (the endpoint, or no endpoint of the room).
    Events: ``call.connected`` and ``call.disconnected`` per endpoint whose periods changed.
    """
    principal.require(MARK_ATTENDANCE)
    now = now or utc_now()
    start, end = as_utc(data.connected_from, settings.zone), as_utc(data.connected_to, settings.zone)
    if end <= start:
        raise Invalid("connected_to must be after connected_from", code="end_not_after_start")
    if data.endpoint_id is not None:
        endpoint_ids = [data.endpoint_id]
        room = session.exec(select(Room).join(Endpoint, Endpoint.room_id == Room.id)
                            .where(Endpoint.id == data.endpoint_id)).first()
        if room is None:
            raise NotFound(f"endpoint {data.endpoint_id} not found", code="endpoint_not_found")
    else:
        room = session.get(Room, data.room_id)
        if room is None:
            raise NotFound(f"room {data.room_id} not found", code="room_not_found")
        endpoint_ids = [e for e in session.exec(select(Endpoint.id).where(Endpoint.room_id == room.id)
                                                .order_by(Endpoint.id)).all()
                        if _participates(session, occurrence.id, e)]
        if not endpoint_ids:
            raise Invalid(f"no endpoint of room {room.id} takes part in occurrence {occurrence.id}",
                          code="not_a_participant")
    principal.require_unit(room.unit_id)
    results: list[CallRecord] = []
    for endpoint_id in endpoint_ids:
        _lock_endpoint(session, endpoint_id)
        occ = _usable_occurrence(session, occurrence.id, endpoint_id)
        a, b = max(start, occ.window_start), min(end, occ.end)
        if b <= a:
            raise Invalid("the period is outside the occurrence's window [start − check lead, end)",
                          code="outside_occurrence")
        touching = [p for p in _periods(session, endpoint_id, occ.id)
                    if p.connected_at <= b and (p.disconnected_at is None or p.disconnected_at >= a)]
        first = touching[0] if touching else None
        if first is not None and first.connected_at <= a and (first.disconnected_at is None
                                                               or first.disconnected_at >= b):
            results.append(first)  # already covered: nothing changes
            continue
        if touching:
            record = touching[0]
            ends = [p.disconnected_at for p in touching]
            record.connected_at = min(a, record.connected_at)
            record.disconnected_at = None if None in ends else max(b, *ends)
            for extra in touching[1:]:
                session.delete(extra)
            session.flush()
        else:
            record = CallRecord(endpoint_id=endpoint_id, occurrence_id=occ.id, connected_at=a, disconnected_at=b,
                                source="manual", created_by=principal.user_id)
        record.updated_at = now
        session.add(record)
        session.flush()
        _event(session, "call.connected", record, room.id, meeting.id, manual=True)
        if record.disconnected_at is not None:
            _event(session, "call.disconnected", record, room.id, meeting.id, manual=True)
        results.append(record)
    return results


def close_open_records(session: Session, now: datetime) -> int:
    """Close every open period whose occurrence has ended (``end <= now``) at that end, or whose occurrence
    (or meeting) was cancelled at ``min(now, end)``. Called by :func:`close_due` (the periodic job wired in
    ``main``); returns how many were closed.

    Events: ``call.disconnected`` per period closed.
    """
    rows = session.exec(
        select(CallRecord, Occurrence, Meeting.status, Endpoint.room_id)
        .join(Occurrence, Occurrence.id == CallRecord.occurrence_id)
        .join(Meeting, Meeting.id == Occurrence.meeting_id)
        .join(Endpoint, Endpoint.id == CallRecord.endpoint_id)
        .where(_due_filter(now))
        .order_by(CallRecord.id)).all()
    for record, occ, _status, room_id in rows:
        _close(session, record, now, occ.end, room_id, occ.meeting_id, now)
    return len(rows)


def _due_filter(now: datetime) -> Any:
    return sa.and_(CallRecord.disconnected_at.is_(None),
                   sa.or_(Occurrence.end <= now, Occurrence.status == OccurrenceStatus.cancelled,
                          Meeting.status == MeetingStatus.cancelled))


def close_due(engine: Engine, now: datetime | None = None) -> int:
    """The periodic job: :func:`close_open_records` at ``now`` (UTC, default the current time) in a
    transaction of its own, committed; returns how many periods it closed.

    A read session looks first, so a tick with nothing to close takes no write lock (SQLite).
    Events: ``call.disconnected`` per period closed, published after the commit.
    """
    now = now or utc_now()
    with make_session(engine, write=False) as session:
        due = session.exec(select(sa.exists(
            select(CallRecord.id).join(Occurrence, Occurrence.id == CallRecord.occurrence_id)
            .join(Meeting, Meeting.id == Occurrence.meeting_id).where(_due_filter(now))))).one()
    if not due:
        return 0
    with make_session(engine) as session:
        closed = close_open_records(session, now)
        session.commit()
    return closed


def running(engine: Engine, settings: Settings) -> AbstractAsyncContextManager[None]:
    """For ``main``'s lifespan: :func:`close_due` on the scheduler's cadence (``scheduler_interval_seconds``,
    0 = off), in a worker thread; so an open period is closed within one interval of its occurrence's end."""
    return periodic.running("call-records", lambda: close_due(engine), settings.scheduler_interval_seconds)
