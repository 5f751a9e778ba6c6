"""The scheduler: time-driven notices of the live channel (SPEC "Live channel", issue 4).

Notices per scheduled occurrence of a meeting that is not cancelled, each due in a window
``[due_at, until)`` (UTC, half-open):

============================  ==========================  ===========================================
notice (event type / kind)    due_at                      until
============================  ==========================  ===========================================
``meeting.reminder``          start − check_lead          start (kiểm tra kỹ thuật)
  kind ``technical_check``
``meeting.reminder``          start − starting_soon       start
  kind ``starting_soon``        (setting, default 5 min)
``meeting.reminder``          start − readiness deadline  end; only when some site is neither ready nor
  kind ``readiness_overdue``    (setting, default 15 min) connected, listing those sites ("not_ready")
``meeting.started``           start                       end
``meeting.ended``             end                         end + ended_notice_grace_minutes
============================  ==========================  ===========================================

Choice for the readiness deadline: one ``meeting.reminder`` of kind ``readiness_overdue`` per
occurrence (not one ``readiness.changed`` per site), because it is a notice to the secretariat
about the occurrence, and ``readiness.changed`` stays "a site's state changed". It is routed to
the sites not ready (and so to their units and the secretariat).

Derived from the database, so a restart loses nothing whose window is still open: each tick
(:func:`run_due`) looks at occurrences near ``now`` and sends every notice that is due and not yet in
``scheduler_marks``. Exactly once, also with several processes ticking at the same moment: a
notice is sent only by the transaction whose ``INSERT … ON CONFLICT DO NOTHING`` of its mark
(primary key ``(occurrence_id, kind, due_at)``) inserted a row; the event is recorded in that same
transaction. The unique key is the lock: a concurrent inserter of the same key waits for the first
transaction and then inserts nothing. Moving an occurrence moves ``due_at``, so its notices come
again for the new time. Cancelled occurrences and meetings get none (checked again inside the
transaction that sends).

Event data (times ISO-8601 UTC ``…Z``):
``meeting.reminder``: ``{"meeting_id", "occurrence_id", "kind", "title", "start", "end",
"minutes_before"}`` plus, for ``readiness_overdue``, ``"deadline"`` and ``"not_ready": [{"room_id",
"state"}]`` (by room id). ``meeting.started`` / ``meeting.ended``: ``{"meeting_id", "occurrence_id",
"title", "start", "end"}``. Routed to every room of the occurrence (``readiness_overdue``: the
rooms not ready). The event's ``at`` is the tick's ``now``.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from confsvc import events, periodic
from confsvc.clock import iso_utc, utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Room
from confsvc.scheduling import readiness, visibility
from confsvc.scheduling.live_events import occurrence_rooms
from confsvc.scheduling.models import Meeting, MeetingStatus, Occurrence, OccurrenceStatus, SchedulerMark

log = logging.getLogger(__name__)

#: Kinds in the order they are sent when several fall due in one tick.
KINDS = ("technical_check", "readiness_overdue", "starting_soon", "started", "ended")
_EVENT_TYPE = {"technical_check": "meeting.reminder", "starting_soon": "meeting.reminder",
               "readiness_overdue": "meeting.reminder", "started": "meeting.started", "ended": "meeting.ended"}


@dataclass(frozen=True)
class Notice:
    """One notice due for one occurrence: ``kind`` (see :data:`KINDS`), its window ``[due_at, until)``."""

    occurrence_id: int
    kind: str
    due_at: datetime
    until: datetime


def notices_due(settings: Settings, *, occurrence_id: int, start: datetime, end: datetime,
                check_lead_minutes: int, now: datetime) -> list[Notice]:
    """The notices whose window contains ``now`` (pure: no database). See the module's table."""
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    windows = {
        "technical_check": (start - minutes(check_lead_minutes), start),
        "readiness_overdue": (start - minutes(settings.readiness_deadline_minutes), end),
        "starting_soon": (start - minutes(settings.starting_soon_minutes), start),
        "started": (start, end),
        "ended": (end, end + minutes(settings.ended_notice_grace_minutes)),
    }
    return [Notice(occurrence_id, kind, due, until) for kind, (due, until) in windows.items() if due <= now < until]


def _candidates(session: Session, settings: Settings, now: datetime) -> list[Notice]:
    """Due notices without a mark, in (due_at, kind order, occurrence id) order."""
    ahead = timedelta(minutes=max(settings.max_check_lead_minutes, settings.readiness_deadline_minutes,
                                  settings.starting_soon_minutes))
    rows = session.exec(
        select(Occurrence.id, Occurrence.start, Occurrence.end, Meeting.check_lead_minutes)
        .join(Meeting, Meeting.id == Occurrence.meeting_id)
        .where(Occurrence.status == OccurrenceStatus.scheduled, Meeting.status != MeetingStatus.cancelled,
               # A displaced occurrence (scheduling.displacement) holds no site: no check, no reminder.
               Occurrence.tentative == sa.false(), Occurrence.start <= now + ahead,
               Occurrence.end > now - timedelta(minutes=settings.ended_notice_grace_minutes))).all()
    due = [n for occ_id, start, end, lead in rows
           for n in notices_due(settings, occurrence_id=occ_id, start=start, end=end, check_lead_minutes=lead,
                                now=now)]
    if not due:
        return []
    sent = set(session.exec(select(SchedulerMark.occurrence_id, SchedulerMark.kind, SchedulerMark.due_at)
                            .where(SchedulerMark.occurrence_id.in_({n.occurrence_id for n in due}))).all())
    fresh = [n for n in due if (n.occurrence_id, n.kind, n.due_at) not in sent]
    return sorted(fresh, key=lambda n: (n.due_at, KINDS.index(n.kind), n.occurrence_id))


def _claim(session: Session, notice: Notice, now: datetime) -> bool:
    """Insert the notice's mark unless it exists; True when this transaction inserted it."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(SchedulerMark).values(occurrence_id=notice.occurrence_id, kind=notice.kind,
                                             due_at=notice.due_at, at=now).on_conflict_do_nothing()
    # RETURNING, not rowcount: the drivers disagree on rowcount for an ORM-enabled insert.
    return session.execute(statement.returning(SchedulerMark.kind)).first() is not None


def _send(session: Session, settings: Settings, notice: Notice, now: datetime) -> events.Event | None:
    """Inside the claiming transaction: record the notice's event; the event (its id is final once the
    transaction commits), or None when nothing is due (occurrence gone or cancelled meanwhile, or every
    site ready at the deadline)."""
    occ = session.get(Occurrence, notice.occurrence_id)
    meeting = session.get(Meeting, occ.meeting_id) if occ else None
    if occ is None or meeting is None or occ.status is not OccurrenceStatus.scheduled \
            or meeting.status is MeetingStatus.cancelled:
        return None
    data: dict[str, Any] = {"meeting_id": meeting.id, "occurrence_id": occ.id}
    if _EVENT_TYPE[notice.kind] == "meeting.reminder":
        data["kind"] = notice.kind
    data |= {"title": meeting.title, "start": iso_utc(occ.start), "end": iso_utc(occ.end)}
    rooms = occurrence_rooms(session, meeting, [occ])[occ.id]
    if notice.kind in ("technical_check", "starting_soon", "readiness_overdue"):
        data["minutes_before"] = int((occ.start - notice.due_at).total_seconds() // 60)
    if notice.kind == "readiness_overdue":
        states = readiness.site_states(session, meeting, occ)
        not_ready = [{"room_id": room_id, "state": (row.state if row else readiness.ReadinessState.not_checked).value}
                     for room_id, row in sorted(states.items())
                     if row is None or row.state not in readiness.READY_STATES]
        if not not_ready:
            return None
        data |= {"deadline": iso_utc(notice.due_at), "not_ready": not_ready}
        rooms = {item["room_id"] for item in not_ready}
    if meeting.confidential:  # the live channel shows "Cuộc họp" to subscribers outside it
        units = session.exec(select(Room.unit_id).where(col(Room.id).in_(occurrence_rooms(session, meeting, [occ])[occ.id])))
        data = visibility.mark(data, confidential=True, participant_unit_ids=units.all())
    return events.record(session, _EVENT_TYPE[notice.kind], data, room_ids=rooms, at=now)


@dataclass(frozen=True)
class Sent:
    """A notice this tick claimed: ``event_id`` is None when it was claimed with nothing to send."""

    occurrence_id: int
    kind: str
    event_id: int | None


def run_due(engine: Engine, settings: Settings, now: datetime | None = None) -> list[Sent]:
    """One scheduler tick at ``now`` (UTC, default the current time): send every due notice not sent yet.

    Each notice is claimed and sent in a transaction of its own (mark + event commit together).
    Returns the notices this call claimed, in sending order; a notice another process claimed first
    is not in it. Safe to run in any number of processes at once.
    """
    now = now or utc_now()
    with make_session(engine, write=False) as session:
        candidates = _candidates(session, settings, now)
    sent: list[Sent] = []
    for notice in candidates:
        with make_session(engine) as session:
            if not _claim(session, notice, now):
                session.rollback()
                continue
            event = _send(session, settings, notice, now)
            session.commit()
        sent.append(Sent(notice.occurrence_id, notice.kind, event.id if event is not None else None))
    if sent:
        log.info("scheduler: sent %s", [(s.occurrence_id, s.kind) for s in sent])
    return sent


def extend_series_due(engine: Engine, settings: Settings, now: datetime | None = None) -> dict[int, dict[str, int]]:
    """Materialise open-ended series whose occurrences end within a day of the horizon (issue 3's job).

    One write transaction; safe beside other processes (bookings are guarded as for any booking).
    Returns ``series.extend_series``'s report (empty when nothing was due).
    """
    from confsvc.scheduling import series

    with make_session(engine) as session:
        report = series.extend_series(session, settings, now=now)
        session.commit()
    if report:
        log.info("scheduler: series extended %s", report)
    return report


def expire_requests_due(engine: Engine, settings: Settings, now: datetime | None = None) -> list[int]:
    """Expire pending meeting requests past their ``expires_at`` (issue 15): each in a write transaction
    of its own, under the request's row lock; one decided meanwhile (approved, rejected, or expired by
    another process) is passed over. Returns the ids this call expired."""
    from confsvc.scheduling import requests

    now = now or utc_now()
    with make_session(engine, write=False) as session:
        due = requests.due(session, now)
    expired: list[int] = []
    for request_id in due:
        with make_session(engine) as session:
            try:
                requests.expire(session, request_id, now=now)
            except requests.RequestNotPending:
                session.rollback()
                continue
            session.commit()
        expired.append(request_id)
    if expired:
        log.info("scheduler: requests expired %s", expired)
    return expired


def _tick(engine: Engine, settings: Settings) -> None:
    extend_series_due(engine, settings)
    expire_requests_due(engine, settings)
    run_due(engine, settings)


def running(engine: Engine, settings: Settings) -> AbstractAsyncContextManager[None]:
    """For ``main``'s lifespan: a tick every ``scheduler_interval_seconds`` (0 = off) in a worker thread:
    extend open-ended series when due, expire pending requests past their time, then send due notices."""
    return periodic.running("scheduler", lambda: _tick(engine, settings), settings.scheduler_interval_seconds)
