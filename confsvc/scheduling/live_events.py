"""The ``meeting.*`` events of the live channel, recorded by the scheduling use cases (SPEC "Live channel").

Called by ``service.py`` after the guarded booking insert succeeded, inside the change's
transaction (``confsvc.events.record``): a refused or rolled-back change records nothing.
``join.instructions`` for each participating room is added in the same transaction by
``confsvc.live.snapshot`` (registered with ``events.on_record``; scheduling never imports live).

``data`` of ``meeting.scheduled`` / ``meeting.updated`` / ``meeting.cancelled``::

    {"meeting_id", "scope": "meeting" | "occurrence", "occurrence_id", "occurrence_ids",
     "title", "start", "end" (UTC ISO-8601 "…Z", of ``occurrence_id``), "chair_room_id",
     "room_ids" (rooms taking part after the change), "sequence", "status"}

A confidential meeting's events also carry ``"confidential": true`` and ``participant_unit_ids``
(``visibility.mark``); the live channel sends "Cuộc họp" instead of the title to subscribers outside it.
``occurrence_id`` is the first occurrence of ``occurrence_ids`` still to end (else the first);
``status`` is the meeting's status (scope ``meeting``) or the occurrence's (scope ``occurrence``).
A step of a meeting request (issue 15) adds ``"request": {"state": "pending" | "approved" |
"rejected" | "expired", "expires_at", "reason"}``: submitted (``meeting.scheduled``, status
tentative), approved (``meeting.updated``, status confirmed), rejected or expired
(``meeting.cancelled``). Mail sends invitations only from approval on.
The event's routing ``room_ids`` also holds rooms the change removed, so their displays learn it.

A province's sites added to or removed from a booked meeting (issue 14, ``site_changes``) record
``meeting.updated`` with ``scope`` ``"sites"``, ``"sites": {"added": [room ids], "removed": [room ids]}``,
``room_ids`` the ADDED rooms only (not every room taking part) and routing only to the added and removed
rooms: the other sites' displays are not told, their join instructions did not change; join instructions
follow for the added rooms only; a removed room reads it is not in ``room_ids`` (its display drops the
meeting, mail sends its contact a CANCEL).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from confsvc import events
from confsvc.clock import iso_utc
from confsvc.endpoints.models import Room
from confsvc.scheduling import participants, visibility
from confsvc.scheduling.models import Meeting, Occurrence, OccurrenceStatus


def occurrence_rooms(session: Session, meeting: Meeting, occurrences: Iterable[Occurrence]) -> dict[int, set[int]]:
    """``{occurrence_id: room ids}`` (chair room included) from the participant rows as they are now."""
    return {occ_id: set(found.room_ids)
            for occ_id, found in participants.of_occurrences(session, meeting, occurrences).items()}


def meeting_occurrences(session: Session, meeting: Meeting, *, scheduled_only: bool = True) -> list[Occurrence]:
    query = select(Occurrence).where(Occurrence.meeting_id == meeting.id).order_by(Occurrence.start, Occurrence.id)
    if scheduled_only:
        query = query.where(Occurrence.status == OccurrenceStatus.scheduled)
    return list(session.exec(query).all())


def record_change(session: Session, type: str, meeting: Meeting, occurrences: list[Occurrence], *,
                  scope: str = "meeting", rooms_before: Iterable[int] = (), now: datetime,
                  extra: dict[str, Any] | None = None, rooms: dict[int, set[int]] | None = None) -> events.Event:
    """Record one ``meeting.*`` event about ``occurrences`` of ``meeting`` (see the module docstring).

    ``rooms_before``: rooms involved before the change (edits), added to the routing room ids.
    ``extra``: further data fields (a request's step adds ``request``).
    ``rooms``: :func:`occurrence_rooms` of ``occurrences`` when the caller read it already (a booking
    reads it before locking its bridge).
    Returns the recorded event.
    """
    occurrences = sorted(occurrences, key=lambda o: (o.start, o.id))
    if rooms is None:
        rooms = occurrence_rooms(session, meeting, occurrences)
    involved = sorted(set().union(*rooms.values())) if rooms else []
    first = next((o for o in occurrences if o.end > now), occurrences[0] if occurrences else None)
    status = (first.status.value if scope == "occurrence" and first is not None else meeting.status.value)
    data: dict[str, Any] = {
        "meeting_id": meeting.id, "scope": scope,
        "occurrence_id": first.id if first else None, "occurrence_ids": [o.id for o in occurrences],
        "title": meeting.title,
        "start": iso_utc(first.start) if first else None, "end": iso_utc(first.end) if first else None,
        "chair_room_id": (first.chair_room_id or meeting.chair_room_id) if first else meeting.chair_room_id,
        "room_ids": involved, "sequence": meeting.sequence, "status": status, **(extra or {}),
    }
    if meeting.confidential:
        units = set(session.exec(select(Room.unit_id).where(col(Room.id).in_(set(involved) | {meeting.chair_room_id}))).all())
        data = visibility.mark(data, confidential=True, participant_unit_ids=units)
    return events.record(session, type, data, room_ids=set(involved) | set(rooms_before))
