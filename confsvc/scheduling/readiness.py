"""Readiness (sẵn sàng) of each site (room) per occurrence: SPEC "Readiness".

States: ``not_checked`` (default, no row), ``ready``, ``problem`` (a note is required),
``connected``. The sites of an occurrence are its chair room and the rooms of its participant
endpoints (``live_events.occurrence_rooms``). Due by the deadline
``start − Settings.readiness_deadline_minutes`` (default 15); the scheduler flags the sites not
``ready``/``connected`` by then (``scheduler.py``, reminder kind ``readiness_overdue``).

Who: admin and secretariat mark any site; an operator marks sites in their units (403
``forbidden_scope`` elsewhere); viewers read only. Each change (not a repeat) records
``readiness.changed`` with data ``{"meeting_id", "occurrence_id", "room_id", "state", "note",
"by" (user id), "at" (ISO-8601 UTC)}``, routed to the room. Services flush, never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from confsvc import events
from confsvc.clock import iso_utc, utc_now
from confsvc.config import Settings
from confsvc.endpoints.models import Room
from confsvc.errors import Invalid, NotFound
from confsvc.scheduling.live_events import occurrence_rooms
from confsvc.scheduling.models import (Meeting, MeetingStatus, Occurrence, OccurrenceStatus, ReadinessState,
                                       SiteReadiness)
from confsvc.users.principal import MARK_READINESS, Principal

#: Vietnamese labels shown to people (GLOSSARY).
STATE_LABELS = {
    ReadinessState.not_checked: "Chưa kiểm tra",
    ReadinessState.ready: "Đã sẵn sàng",
    ReadinessState.problem: "Gặp sự cố",
    ReadinessState.connected: "Đã kết nối",
}
#: States that count as ready at the deadline.
READY_STATES = frozenset({ReadinessState.ready, ReadinessState.connected})


def deadline(settings: Settings, occurrence: Occurrence) -> datetime:
    """``start − readiness_deadline_minutes`` (UTC)."""
    return occurrence.start - timedelta(minutes=settings.readiness_deadline_minutes)


def site_states(session: Session, meeting: Meeting, occurrence: Occurrence) -> dict[int, SiteReadiness | None]:
    """``{room_id: row or None (not checked)}`` for every site of ``occurrence``."""
    rooms = occurrence_rooms(session, meeting, [occurrence])[occurrence.id]
    rows = {r.room_id: r for r in session.exec(select(SiteReadiness)
                                               .where(SiteReadiness.occurrence_id == occurrence.id)).all()}
    return {room_id: rows.get(room_id) for room_id in rooms}


def board(session: Session, settings: Settings, meeting: Meeting, occurrence: Occurrence, *,
          now: datetime | None = None) -> dict[str, Any]:
    """The readiness board of one occurrence: every site, chair room first, then by room name.

    Shape: ``{"meeting_id", "occurrence_id", "start", "deadline", "overdue", "sites": [{"room_id",
    "room_name", "unit_id", "is_chair", "state", "state_label", "note", "updated_by", "updated_at"}]}``;
    ``overdue`` is true from the deadline on while some site is not ready. The caller checked access.
    """
    now = now or utc_now()
    states = site_states(session, meeting, occurrence)
    chair = occurrence.chair_room_id or meeting.chair_room_id
    rooms = {r.id: r for r in session.exec(select(Room).where(Room.id.in_(list(states)))).all()}
    sites = []
    for room_id in sorted(states, key=lambda r: (r != chair, rooms[r].name, r)):
        row = states[room_id]
        state = row.state if row else ReadinessState.not_checked
        sites.append({"room_id": room_id, "room_name": rooms[room_id].name, "unit_id": rooms[room_id].unit_id,
                      "is_chair": room_id == chair, "state": state, "state_label": STATE_LABELS[state],
                      "note": row.note if row else "", "updated_by": row.updated_by if row else None,
                      "updated_at": row.updated_at if row else None})
    due = deadline(settings, occurrence)
    return {"meeting_id": meeting.id, "occurrence_id": occurrence.id, "start": occurrence.start, "deadline": due,
            "overdue": now >= due and any(s["state"] not in READY_STATES for s in sites), "sites": sites}


def set_readiness(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                  occurrence: Occurrence, room_id: int, state: ReadinessState, note: str = "", *,
                  now: datetime | None = None) -> dict[str, Any]:
    """Mark one site's readiness for one occurrence; returns the updated board (see :func:`board`).

    Raises:
        Forbidden: a viewer (``forbidden_role``); an operator for a room outside their units
            (``forbidden_scope``).
        NotFound: the room is not a site of the occurrence (``site_not_in_occurrence``).
        Invalid: ``note_required`` (problem without a note), ``occurrence_cancelled``, ``occurrence_ended``.
    """
    principal.require(MARK_READINESS)
    now = now or utc_now()
    # Serialise concurrent marks of one occurrence (PostgreSQL row lock; SQLite: BEGIN IMMEDIATE).
    session.exec(select(Occurrence.id).where(Occurrence.id == occurrence.id).with_for_update()).one()
    room = session.get(Room, room_id)
    if room is None:
        raise NotFound(f"room {room_id} not found", code="room_not_found")
    principal.require_unit(room.unit_id)
    if occurrence.status is OccurrenceStatus.cancelled or meeting.status is MeetingStatus.cancelled:
        raise Invalid("the occurrence is cancelled", code="occurrence_cancelled")
    if occurrence.end <= now:
        raise Invalid("the occurrence has ended", code="occurrence_ended")
    states = site_states(session, meeting, occurrence)
    if room_id not in states:
        raise NotFound(f"room {room_id} is not a site of occurrence {occurrence.id}", code="site_not_in_occurrence")
    note = note.strip()
    if state is ReadinessState.problem and not note:
        raise Invalid("describe the problem in `note`", code="note_required")
    row = states[room_id]
    current = (row.state, row.note) if row else (ReadinessState.not_checked, "")
    if current != (state, note):
        row = row or SiteReadiness(occurrence_id=occurrence.id, room_id=room_id)
        row.state, row.note, row.updated_by, row.updated_at = state, note, principal.user_id, now
        session.add(row)
        session.flush()
        events.record(session, "readiness.changed",
                      {"meeting_id": meeting.id, "occurrence_id": occurrence.id, "room_id": room_id,
                       "state": state.value, "note": note, "by": principal.user_id, "at": iso_utc(now)},
                      room_ids=[room_id], at=now)
    return board(session, settings, meeting, occurrence, now=now)
