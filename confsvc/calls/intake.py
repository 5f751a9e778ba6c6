"""Call legs and call records: accept connected/disconnected reports and manual attendance marks as
call legs, keep each endpoint's records (the union of its legs in an occurrence) up to date, close
open records when their occurrence ends.

A bridge reports call *legs*, with ids of its own, and an endpoint may have several legs at once (a
drop and a re-dial overlap); usage counts their union (SPEC "Call record", issue 12 defect 6).
Every report is about one leg (:class:`~confsvc.calls.models.CallLeg`):

* ``connected`` with a ``leg_id``: a new leg ``[at, …)``; the same leg id again changes nothing
  (``duplicate``: a re-sent event is idempotent).
* ``disconnected`` with a ``leg_id``: that leg ends at ``at`` (its reported time, even after the
  occurrence's end: an overrun is real); the same event again changes nothing (``duplicate``);
  an unknown leg id changes nothing (``unknown_leg``).
* Without a ``leg_id`` (agents, simple webhooks), the leg is told by its source:

  - ``connected`` at exactly the start of a leg of the same source: a re-sent event (``duplicate``);
  - ``connected`` inside a leg of *another* source: the same connection seen twice (``duplicate``);
  - ``connected`` before a later leg of another source while this source has no open leg: a late
    report of that connection, which now starts at ``at``;
  - otherwise a new leg: a second ``connected`` while a leg is open is a re-dial, not a duplicate.
  - ``disconnected``: the same time already reported for a leg of the source: ``duplicate``; else
    the oldest open leg of the same source (else of any source) that started before ``at`` ends at
    ``at``; none: ``no_open_call``.
* A manual mark ``[from, to)``, clipped to the occurrence's window, is a leg of source ``manual``.

The endpoint's records in the occurrence are then the union of its legs (overlapping or touching
legs merge), clipped to the occurrence's window ``[start − check_lead, end)``: **time past the
booked end is not counted** in usage statistics (the legs keep it). A ``connected`` must fall in
that window; a ``disconnected`` may come at any later time. A leg left open when its occurrence
ends gets a *presumed* end there, which a reported disconnect replaces; one left open when the
endpoint connects to another occurrence ends there for good. One write per endpoint at a time: the endpoint row is locked first
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write transaction holds the database lock), and
a partial unique index allows one open record per endpoint.

Each change of a record records ``call.connected`` (new record, earlier start, or reopened) /
``call.disconnected`` (record closed or its end moved) (``confsvc.events``) for the endpoint's
room, in the same transaction. Services flush, never commit (except :func:`close_due`, the
periodic job that owns its transactions).

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
from confsvc.calls.models import CallLeg, CallRecord
from confsvc.calls.schemas import AttendanceMark, CallEventCreate, CallEventKind
from confsvc.clock import as_utc, iso_utc, utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import AgentToken, Endpoint, Room
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.scheduling import participants
from confsvc.scheduling.models import (
    Booking,
    Meeting,
    MeetingStatus,
    Occurrence,
    OccurrenceStatus,
    ResourceKind,
)
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


def _legs(session: Session, endpoint_id: int, occurrence_id: int) -> list[CallLeg]:
    return list(session.exec(select(CallLeg).where(CallLeg.endpoint_id == endpoint_id,
                                                   CallLeg.occurrence_id == occurrence_id)
                             .order_by(CallLeg.connected_at, CallLeg.id)).all())


def _leg_by_id(session: Session, endpoint_id: int, leg_id: str, occurrence_id: int | None) -> CallLeg | None:
    query = select(CallLeg).where(CallLeg.endpoint_id == endpoint_id, CallLeg.leg_id == leg_id)
    if occurrence_id is not None:
        query = query.where(CallLeg.occurrence_id == occurrence_id)
    return session.exec(query.order_by(CallLeg.connected_at.desc()).limit(1)).first()


def _open(leg: CallLeg) -> bool:
    """Open for a reported disconnect: no end yet, or only a presumed one."""
    return leg.disconnected_at is None or leg.end_presumed


def _event(session: Session, kind: str, record: CallRecord, room_id: int, meeting_id: int, **extra: Any) -> None:
    events.record(session, kind, {
        "call_record_id": record.id, "endpoint_id": record.endpoint_id, "room_id": room_id,
        "occurrence_id": record.occurrence_id, "meeting_id": meeting_id,
        "connected_at": _iso(record.connected_at), "disconnected_at": _iso(record.disconnected_at),
        "source": record.source, **extra}, room_ids=[room_id])


def _union(legs: list[CallLeg], occ: _Occ) -> list[tuple[datetime, datetime | None, CallLeg]]:
    """The legs' union clipped to ``[window_start, end)``: ``(start, end or None while open, first leg)``,
    in time order; overlapping or touching legs merge."""
    merged: list[tuple[datetime, datetime | None, CallLeg]] = []
    for leg in legs:
        a = max(leg.connected_at, occ.window_start)
        b = None if leg.disconnected_at is None else min(leg.disconnected_at, occ.end)
        if a >= occ.end or (b is not None and b <= a):
            continue
        if merged and (merged[-1][1] is None or a <= merged[-1][1]):
            start, end, first = merged[-1]
            merged[-1] = (start, None if end is None or b is None else max(end, b), first)
        else:
            merged.append((a, b, leg))
    return merged


def _sync(session: Session, endpoint_id: int, occ: _Occ, room_id: int, now: datetime,
          **extra: Any) -> list[CallRecord]:
    """Make the endpoint's records in ``occ`` the union of its legs (ids kept in time order); record
    ``call.connected`` / ``call.disconnected`` for each record that changed. Returns the records."""
    wanted = _union(_legs(session, endpoint_id, occ.id), occ)
    unused = _periods(session, endpoint_id, occ.id)
    matched: list[CallRecord | None] = []
    for start, end, _first in wanted:
        # Each period keeps the id (and source) of the first existing record it overlaps.
        record = next((r for r in unused if (r.disconnected_at is None or r.disconnected_at > start)
                       and (end is None or r.connected_at < end)), None)
        if record is not None:
            unused.remove(record)
        matched.append(record)
    for extra_record in unused:
        session.delete(extra_record)
    session.flush()
    result = []
    for (start, end, first), record in zip(wanted, matched, strict=True):
        if record is None:
            record = CallRecord(endpoint_id=endpoint_id, occurrence_id=occ.id, connected_at=start,
                                disconnected_at=end, source=first.source, created_by=first.created_by,
                                updated_at=now)
            session.add(record)
            session.flush()
            _event(session, "call.connected", record, room_id, occ.meeting_id, **extra)
            if end is not None:
                _event(session, "call.disconnected", record, room_id, occ.meeting_id, **extra)
        elif (record.connected_at, record.disconnected_at) != (start, end):
            starts = record.connected_at != start or (record.disconnected_at is not None and end is None)
            ends = end is not None and record.disconnected_at != end
            record.connected_at, record.disconnected_at, record.updated_at = start, end, now
            session.add(record)
            session.flush()
            if starts:
                _event(session, "call.connected", record, room_id, occ.meeting_id, **extra)
            if ends:
                _event(session, "call.disconnected", record, room_id, occ.meeting_id, **extra)
        result.append(record)
    return result


def _record_at(records: list[CallRecord], at: datetime) -> CallRecord | None:
    """The record containing ``at`` (else the first after it, else the last before it)."""
    for record in records:
        if record.disconnected_at is None or at < record.disconnected_at:
            return record
    return records[-1] if records else None


def _presume_end(session: Session, leg: CallLeg, at: datetime, now: datetime, *, presumed: bool = True) -> None:
    """Give an open leg an end at ``at`` (deleted when nothing would be left); ``presumed``: a reported
    disconnect may still replace it."""
    if at <= leg.connected_at:
        session.delete(leg)
    else:
        leg.disconnected_at, leg.end_presumed, leg.updated_at = at, presumed, now
        session.add(leg)
    session.flush()


def _close_other_occurrences(session: Session, endpoint_id: int, occ: _Occ, at: datetime, room_id: int,
                             now: datetime) -> None:
    """Connecting to ``occ`` at ``at`` ends the endpoint's open legs of other occurrences there (presumed)."""
    open_legs = session.exec(select(CallLeg).where(CallLeg.endpoint_id == endpoint_id,
                                                   CallLeg.occurrence_id != occ.id,
                                                   CallLeg.disconnected_at.is_(None))).all()
    for other_id in sorted({leg.occurrence_id for leg in open_legs}):
        other = _occ(session, other_id)[0]
        for leg in open_legs:
            if leg.occurrence_id == other_id:
                _presume_end(session, leg, min(at, other.end), now, presumed=False)
        _sync(session, endpoint_id, other, room_id, now)


# ---------------------------------------------------------------- use cases

def report_call(session: Session, settings: Settings, caller: Principal | AgentCaller, data: CallEventCreate,
                *, now: datetime | None = None) -> CallOutcome:
    """Apply a ``connected``/``disconnected`` report about one call leg (module docstring for the rules).

    ``caller``: an admin or secretariat principal, or an agent token (:class:`AgentCaller`, whose
    ``last_used_at`` becomes ``now``). The outcome's ``record`` is the endpoint's record (the union
    of its legs) that the leg belongs to, ``None`` when nothing changed.

    Raises:
        Forbidden: another role (``forbidden_role``); an endpoint-bound agent token for another endpoint
            (``forbidden_endpoint``); a bridge-bound one for an occurrence not on its bridge (``forbidden_bridge``).
        NotFound: unknown endpoint or occurrence.
        Invalid: ``at_in_future`` (beyond ``call_clock_skew_minutes``), ``no_occurrence`` (a ``connected``
            that no occurrence of the endpoint contains; a ``disconnected`` of an endpoint with no leg
            before ``at`` and no occurrence containing it), ``occurrence_cancelled``, ``not_a_participant``,
            ``outside_occurrence`` (a ``connected`` outside the given occurrence's window).
    Events: ``call.connected`` / ``call.disconnected`` for each record that changed.
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
        return _disconnected(session, settings, caller, data, endpoint.id, room.id, at, now)
    return _connected(session, settings, caller, data, endpoint.id, room.id, at, now)


def _connected(session: Session, settings: Settings, caller: Principal | AgentCaller, data: CallEventCreate,
               endpoint_id: int, room_id: int, at: datetime, now: datetime) -> CallOutcome:
    if data.leg_id is not None:
        known = _leg_by_id(session, endpoint_id, data.leg_id, data.occurrence_id)
        if known is not None:
            occ = _occ(session, known.occurrence_id)[0]
            _check_bridge(session, caller, occ)
            return CallOutcome(False, occ.id, reason="duplicate")
    if data.occurrence_id is not None:
        occ = _usable_occurrence(session, data.occurrence_id, endpoint_id)
        if not occ.window_start <= at < occ.end:
            raise Invalid("the connection is outside the occurrence's window [start − check lead, end)",
                          code="outside_occurrence")
    else:
        found = _occurrence_at(session, settings, endpoint_id, at)
        if found is None:
            raise Invalid("no occurrence of this endpoint at that time", code="no_occurrence")
        occ = found
    _check_bridge(session, caller, occ)
    legs = _legs(session, endpoint_id, occ.id)
    if data.leg_id is None:
        own = [leg for leg in legs if leg.source == data.source and leg.leg_id is None]
        others = [leg for leg in legs if leg.source != data.source]
        if any(leg.connected_at == at for leg in own) or any(
                leg.connected_at <= at and (leg.disconnected_at is None or at < leg.disconnected_at)
                for leg in others):
            return CallOutcome(False, occ.id, reason="duplicate")
        later = [leg for leg in others if leg.connected_at > at]
        if later and not any(_open(leg) for leg in own):
            leg = later[0]  # a late report of that connection's start
            leg.connected_at, leg.updated_at = at, now
            session.add(leg)
            session.flush()
            return CallOutcome(True, occ.id, _record_at(_sync(session, endpoint_id, occ, room_id, now), at))
    _close_other_occurrences(session, endpoint_id, occ, at, room_id, now)
    session.add(CallLeg(endpoint_id=endpoint_id, occurrence_id=occ.id, leg_id=data.leg_id, connected_at=at,
                        source=data.source, updated_at=now))
    session.flush()
    return CallOutcome(True, occ.id, _record_at(_sync(session, endpoint_id, occ, room_id, now), at))


def _disconnected(session: Session, settings: Settings, caller: Principal | AgentCaller, data: CallEventCreate,
                  endpoint_id: int, room_id: int, at: datetime, now: datetime) -> CallOutcome:
    if data.occurrence_id is not None:
        _usable_occurrence(session, data.occurrence_id, endpoint_id)
    if data.leg_id is not None:
        leg = _leg_by_id(session, endpoint_id, data.leg_id, data.occurrence_id)
        if leg is None:
            occ = _occurrence_for_disconnect(session, settings, endpoint_id, data.occurrence_id, at)
            _check_bridge(session, caller, occ)
            return CallOutcome(False, occ.id, reason="unknown_leg")
        occ = _occ(session, leg.occurrence_id)[0]
        _check_bridge(session, caller, occ)
        if not _open(leg) or leg.disconnected_at == at:
            return CallOutcome(False, occ.id, reason="duplicate")
        if at <= leg.connected_at:
            return CallOutcome(False, occ.id, reason="no_open_call")
    else:
        query = select(CallLeg).where(CallLeg.endpoint_id == endpoint_id, CallLeg.connected_at < at)
        if data.occurrence_id is not None:
            query = query.where(CallLeg.occurrence_id == data.occurrence_id)
        candidates = session.exec(query.where(sa.or_(CallLeg.disconnected_at.is_(None),
                                                     CallLeg.end_presumed.is_(True),
                                                     CallLeg.disconnected_at == at))
                                  .order_by(CallLeg.connected_at, CallLeg.id)).all()
        if any(c.disconnected_at == at and not c.end_presumed and c.source == data.source for c in candidates):
            occ = _occ(session, next(c for c in candidates if c.disconnected_at == at).occurrence_id)[0]
            _check_bridge(session, caller, occ)
            return CallOutcome(False, occ.id, reason="duplicate")
        open_legs = [c for c in candidates if _open(c)]
        open_legs.sort(key=lambda c: c.source != data.source)  # stable: the same source's oldest first
        if not open_legs:
            occ = _occurrence_for_disconnect(session, settings, endpoint_id, data.occurrence_id, at)
            _check_bridge(session, caller, occ)
            return CallOutcome(False, occ.id, reason="no_open_call")
        leg = open_legs[0]
        occ = _occ(session, leg.occurrence_id)[0]
        _check_bridge(session, caller, occ)
    leg.disconnected_at, leg.end_presumed, leg.updated_at = at, False, now
    session.add(leg)
    session.flush()
    return CallOutcome(True, occ.id, _record_at(_sync(session, endpoint_id, occ, room_id, now), leg.connected_at))


def _occurrence_for_disconnect(session: Session, settings: Settings, endpoint_id: int, occurrence_id: int | None,
                               at: datetime) -> _Occ:
    """The occurrence a disconnect that changes nothing is about: the given one, else that of the endpoint's
    latest leg before ``at``, else the one containing ``at``. Raises Invalid (``no_occurrence``)."""
    if occurrence_id is not None:
        return _occ(session, occurrence_id)[0]
    latest = session.exec(select(CallLeg.occurrence_id).where(CallLeg.endpoint_id == endpoint_id,
                                                              CallLeg.connected_at < at)
                          .order_by(CallLeg.connected_at.desc()).limit(1)).first()
    if latest is not None:
        return _occ(session, latest)[0]
    found = _occurrence_at(session, settings, endpoint_id, at)
    if found is None:
        raise Invalid("no occurrence of this endpoint at that time", code="no_occurrence")
    return found


def mark_attendance(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                    occurrence: Occurrence, data: AttendanceMark, *, now: datetime | None = None) -> list[CallRecord]:
    """Record by hand that a site was connected over ``[connected_from, connected_to)`` (when no device reports).

    The period, clipped to the occurrence's window, becomes a leg of source ``manual``, united with the
    endpoint's other legs. Admin and secretariat anywhere; operators for rooms of their units.
    Returns the resulting record of each endpoint (a room: each of its participating endpoints).

    Raises:
        Forbidden: role, or the room outside an operator's units.
        NotFound: unknown room or endpoint.
        Invalid: ``end_not_after_start``, ``outside_occurrence`` (nothing left after clipping),
            ``occurrence_cancelled``, ``not_a_participant`` (the endpoint, or no endpoint of the room).
    Events: ``call.connected`` / ``call.disconnected`` (with ``manual: true``) per record that changed.
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
        session.add(CallLeg(endpoint_id=endpoint_id, occurrence_id=occ.id, connected_at=a, disconnected_at=b,
                            source="manual", created_by=principal.user_id, updated_at=now))
        session.flush()
        record = _record_at(_sync(session, endpoint_id, occ, room.id, now, manual=True), a)
        assert record is not None  # the leg just added lies inside the window
        results.append(record)
    return results


def close_open_records(session: Session, now: datetime) -> int:
    """Close every open record whose occurrence has ended (``end <= now``) at that end, or whose occurrence
    (or meeting) was cancelled at ``min(now, end)``: its open legs get that presumed end. Called by
    :func:`close_due` (the periodic job wired in ``main``); returns how many records were closed.

    Events: ``call.disconnected`` per record closed.
    """
    rows = session.exec(
        select(CallRecord, Endpoint.room_id)
        .join(Occurrence, Occurrence.id == CallRecord.occurrence_id)
        .join(Meeting, Meeting.id == Occurrence.meeting_id)
        .join(Endpoint, Endpoint.id == CallRecord.endpoint_id)
        .where(_due_filter(now))
        .order_by(CallRecord.id)).all()
    for record, room_id in rows:
        occ = _occ(session, record.occurrence_id)[0]
        for leg in _legs(session, record.endpoint_id, occ.id):
            if leg.disconnected_at is None:
                _presume_end(session, leg, min(now, occ.end), now)
        _sync(session, record.endpoint_id, occ, room_id, now)
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
