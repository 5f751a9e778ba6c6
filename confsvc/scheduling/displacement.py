"""Displacement (SPEC "Priority", rule 10; issue 14): booking over lower-priority occurrences.

A booking whose only conflicts are occurrences of meetings of *lower* priority (``Meeting.priority``,
``MeetingPriority``) may take their place, when the booker may (``Principal.can_displace``: admin and
secretariat) and confirms it:

1. The booking (``creation.book_meeting``) first answers 409 ``displacement_required``
   (:class:`DisplacementRequired`), listing each displaceable occurrence (:func:`offer`) and a
   ``displacement_token`` bound to that exact list and to the booker (:func:`token`).
2. The same request again with ``displace: true`` and the token books it: the displaced occurrences
   are freed (:func:`displace_or_refuse`), the booking is checked again and written, then each
   displaced occurrence is announced (:func:`announce`).

Any other room or endpoint conflict (equal or higher priority, maintenance, a day block) makes it the
usual 409 ``booking_conflict``: equal or higher priority is never displaced. Only rooms and endpoints
displace: the bridge is chosen after the displaced occurrences are freed (their ports and numbers
too), and a bridge still short is the usual 409 with nothing displaced (the transaction rolls back);
a shortage of bridge ports alone displaces nothing (not done: choosing which occurrences to free).
A wrong token, or one for a list that has changed since (an occurrence moved, another one now in
the way), is a 409 ``displacement_token_mismatch`` with the current list and a fresh token.

**What displacement does to an occurrence** (chosen: the *whole* occurrence becomes tentative): it
stays ``scheduled`` but ``tentative``, loses *every* booking (endpoints, rooms, bridge ports, its
conference number), not only the colliding ones, so "no double booking" holds in SQL (the exclusion
constraints, ``bench/contention.py``'s invariants) and no half-booked meeting is left. It becomes an
exception of its series (a series edit keeps it as it is and does not book it again); moving it
(``PATCH …/occurrences/{id}``) books it again and ends its tentative state. The nearest free slot
(same duration, participants, check lead and bridge; from its original start, at most
:data:`SEARCH_DAYS` days on) is proposed through the free-slot search (``availability``, the one
owner of "free"), and stored on it (``alternative_start``/``alternative_end``, UTC).

Told: the live channel (``meeting.updated``, scope ``occurrence``, ``status`` ``tentative``, with
``displaced``: ``{"by_meeting_id", "by_priority", "alternative_start", "alternative_end"}``) reaches
the rooms' displays and ``/ws/secretariat``; the mail outbox mails that event (TENTATIVE invite,
"Buổi họp bị tạm hoãn" message) to the organizer and the rooms; one ``occurrence.displaced`` audit
line per occurrence. Functions flush, never commit.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from confsvc.clock import iso_utc
from confsvc.config import Settings
from confsvc.endpoints.models import Room
from confsvc.errors import ConfsvcError
from confsvc.scheduling import availability, booking, live_events, planning, repository
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Plan
from confsvc.scheduling.conflicts import Conflict
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Meeting, MeetingPriority, MeetingStatus, Occurrence, OccurrenceStatus
from confsvc.users.models import User
from confsvc.users.principal import Principal

#: How far the alternative slot is searched, in days from the displaced occurrence's original start.
SEARCH_DAYS = 14


@dataclass(frozen=True)
class Displaceable:
    """One occurrence the booking would displace: its meeting, times (UTC), organizer, and what it
    holds that the booking needs (rooms, endpoints: ``(id, name)``)."""

    meeting_id: int
    occurrence_id: int
    title: str
    priority: int
    sequence: int
    start: datetime
    end: datetime
    organizer_user_id: int | None
    organizer_name: str | None
    rooms: tuple[tuple[int, str], ...] = ()
    endpoints: tuple[tuple[int, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the 409 and the dry run (times "…Z")."""
        return {"meeting_id": self.meeting_id, "occurrence_id": self.occurrence_id, "title": self.title,
                "priority": self.priority, "priority_label": MeetingPriority(self.priority).label,
                "start": iso_utc(self.start), "end": iso_utc(self.end),
                "organizer_user_id": self.organizer_user_id, "organizer_name": self.organizer_name,
                "rooms": [{"id": i, "name": n} for i, n in self.rooms],
                "endpoints": [{"id": i, "name": n} for i, n in self.endpoints]}


@dataclass
class Offer:
    """What a confirmation covers: the occurrences (by occurrence id) and the token bound to them;
    ``conflicts``, every conflict found (the 409 lists them)."""

    items: list[Displaceable]
    token: str
    conflicts: list[Conflict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"displaceable": [d.as_dict() for d in self.items], "displacement_token": self.token}


class DisplacementRequired(BookingConflict):
    """409: every conflict is a lower-priority occurrence the booker may displace; the body adds
    ``displaceable`` (:meth:`Displaceable.as_dict` each) and ``displacement_token``. Send the request
    again with ``displace: true`` and the token to book it. ``code`` ``displacement_required``, or
    ``displacement_token_mismatch`` when a token was sent but does not match the current list."""

    code = "displacement_required"

    def __init__(self, detail: str, offered: Offer, *, code: str | None = None) -> None:
        super().__init__(detail, offered.conflicts)
        self.offer = offered
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, Any]:
        return {**super().to_body(), **self.offer.as_dict()}


def token(settings: Settings, principal: Principal, items: list[Displaceable]) -> str:
    """HMAC-SHA256 (the deployment's secret) of the booker and of each occurrence's id, meeting
    sequence and times: any change of the list (or of one of its occurrences) makes it stale."""
    parts = [f"{d.occurrence_id}:{d.meeting_id}:{d.sequence}:{iso_utc(d.start)}:{iso_utc(d.end)}"
             for d in sorted(items, key=lambda d: d.occurrence_id)]
    message = f"displace|{principal.user_id}|{';'.join(parts)}".encode()
    return hmac.new(settings.resolved_secret_key().encode(), message, hashlib.sha256).hexdigest()


def offer(session: Session, settings: Settings, principal: Principal, priority: int,
          conflicts: list[Conflict]) -> Offer | None:
    """The occurrences ``conflicts`` name, when the booking may take their place: ``principal`` may
    displace, every room and endpoint conflict is with an occurrence (not maintenance or a block),
    and each of their meetings has a priority below ``priority``. Else ``None`` (the booking is
    refused as usual). Bridge conflicts (ports, numbers) are left out: the bridge is chosen again once
    the displaced occurrences are freed, and a bridge still short refuses as usual; a shortage of
    ports alone displaces nothing. Items by start, then occurrence id."""
    if not principal.can_displace:
        return None
    # Rooms and endpoints are what is displaced; the bridge is chosen again after (its ports and numbers
    # then counted without the displaced occurrences; still short, it is the usual 409).
    every, conflicts = conflicts, [c for c in conflicts if c.resource_kind != "bridge"]
    if not conflicts or any(c.occurrence_id is None for c in conflicts):
        return None
    occ_ids = sorted({c.occurrence_id for c in conflicts if c.occurrence_id is not None})
    rows = session.exec(select(Occurrence, Meeting).join(Meeting, col(Meeting.id) == col(Occurrence.meeting_id))
                        .where(col(Occurrence.id).in_(occ_ids))).all()
    if len(rows) != len(occ_ids) or any(m.priority >= priority for _, m in rows):
        return None
    organizers = {u.id: u.full_name or u.username for u in session.exec(select(User).where(
        col(User.id).in_({m.organizer_user_id for _, m in rows if m.organizer_user_id is not None}))).all()}
    items = []
    for occ, meeting in sorted(rows, key=lambda r: (r[0].start, r[0].id)):
        mine = [c for c in conflicts if c.occurrence_id == occ.id]

        def held(kind: str, mine: list[Conflict] = mine) -> tuple[tuple[int, str], ...]:
            return tuple(sorted({(c.resource_id, c.resource_name) for c in mine if c.resource_kind == kind}))

        assert occ.id is not None and meeting.id is not None
        items.append(Displaceable(
            meeting_id=meeting.id, occurrence_id=occ.id, title=meeting.title, priority=meeting.priority,
            sequence=meeting.sequence, start=occ.start, end=occ.end, organizer_user_id=meeting.organizer_user_id,
            organizer_name=organizers.get(meeting.organizer_user_id) if meeting.organizer_user_id else None,
            rooms=held("room"), endpoints=held("endpoint")))
    return Offer(items, token(settings, principal, items), every)


def _required(title: str, found: Offer, *, code: str | None = None) -> DisplacementRequired:
    names = ", ".join(f"«{d.title}»" for d in found.items)
    return DisplacementRequired(f"«{title}» trùng lịch với cuộc họp có mức ưu tiên thấp hơn ({names}): "
                                "xác nhận để dời các buổi họp này", found, code=code)


def displace_or_refuse(session: Session, settings: Settings, principal: Principal, *, title: str, priority: int,
                       displace: bool, given_token: str | None, plans: list[Plan]) -> list[Occurrence]:
    """Free the occurrences the conflicts of ``plans`` name, when confirmed; else raise the 409.

    Raises:
        BookingConflict: some conflict is not displaceable (``planning.refusal``).
        DisplacementRequired: displaceable but not confirmed (``displace`` false), or ``given_token``
            wrong or stale (code ``displacement_token_mismatch``; the body has the current list).

    On success: the displaced meetings' rows are locked (ascending ids: the lock order of
    ``booking``), each occurrence loses every booking and becomes a tentative exception; ``plans``'
    conflicts are cleared, for the caller to check them again. Returns the occurrences.
    """
    conflicts = [c for p in plans for c in p.conflicts]
    found = offer(session, settings, principal, priority, conflicts)
    if found is None:
        raise planning.refusal(title, conflicts, session)
    if not displace:
        raise _required(title, found)
    if not given_token or not hmac.compare_digest(given_token.encode(), found.token.encode()):
        raise _required(title, found, code="displacement_token_mismatch")
    occurrences: list[Occurrence] = []
    for meeting_id in sorted({d.meeting_id for d in found.items}):
        repository.lock_meeting(session, meeting_id)
    for item in found.items:
        occ = session.get(Occurrence, item.occurrence_id)
        assert occ is not None
        session.refresh(occ)  # as committed before this lock
        meeting = session.get(Meeting, item.meeting_id)
        assert meeting is not None
        if (occ.start, occ.end, meeting.sequence) != (item.start, item.end, item.sequence) or occ.tentative \
                or occ.status is not OccurrenceStatus.scheduled or meeting.status is MeetingStatus.cancelled:
            raise _required(title, found, code="displacement_token_mismatch")
        booking.delete_bookings(session, occurrence_id=occ.id)
        occ.tentative, occ.is_exception = True, True
        session.add(occ)
        occurrences.append(occ)
    session.flush()
    for plan in plans:
        plan.conflicts = []
    return occurrences


def announce(session: Session, settings: Settings, principal: Principal, by: Meeting, displaced: list[Occurrence],
             *, now: datetime) -> None:
    """After the booking of ``by`` is written: for each displaced occurrence, the alternative slot,
    the meeting's new SEQUENCE (its STATUS changed: RFC 5545 §3.8.7.4), the audit line
    ``occurrence.displaced`` and the live event (see the module docstring)."""
    for occ in displaced:
        meeting = session.get(Meeting, occ.meeting_id)
        assert meeting is not None and by.id is not None and occ.id is not None
        slot = alternative(session, settings, principal, meeting, occ)
        occ.displaced_by_meeting_id = by.id
        occ.alternative_start, occ.alternative_end = (slot if slot else (None, None))
        occ.updated_at = now
        meeting.sequence += 1
        meeting.updated_at = now
        session.add_all([occ, meeting])
        rooms = live_events.occurrence_rooms(session, meeting, [occ])
        room_ids = sorted(rooms.get(occ.id, set()))
        names = dict(session.exec(select(Room.id, Room.name).where(col(Room.id).in_(room_ids))).all()) if room_ids \
            else {}
        details = {"by_meeting_id": by.id, "by_priority": by.priority, "priority": meeting.priority,
                   "start": occ.start, "end": occ.end,
                   "alternative_start": occ.alternative_start, "alternative_end": occ.alternative_end,
                   "rooms": [names.get(r, str(r)) for r in room_ids]}
        audit(session, principal, "occurrence.displaced", meeting_id=meeting.id, occurrence_id=occ.id, **details)
        session.flush()
        live_events.record_change(
            session, "meeting.updated", meeting, [occ], scope="occurrence", now=now, rooms=rooms,
            extra={"status": "tentative", "displaced": {
                "by_meeting_id": by.id, "by_priority": by.priority,
                "alternative_start": iso_utc(occ.alternative_start) if occ.alternative_start else None,
                "alternative_end": iso_utc(occ.alternative_end) if occ.alternative_end else None}})


def alternative(session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                occ: Occurrence) -> tuple[datetime, datetime] | None:
    """The earliest free ``[start, end)`` (UTC) for ``occ``: same duration, participants, check lead,
    teardown and bridge, starting at or after its original start, within :data:`SEARCH_DAYS` days
    (``availability.find_free_slots``, working hours and the lunch break included). ``None`` when none
    is free, or when the search refuses (a participant outside the booker's scope)."""
    who = planning.occurrence_participants(session, meeting, occ)
    zone = settings.zone
    first = occ.start.astimezone(zone).date()
    try:
        found = availability.find_free_slots(
            session, settings, principal, endpoint_ids=who.endpoint_ids, room_ids=[who.chair_room_id],
            duration_minutes=int((occ.end - occ.start) / timedelta(minutes=1)), from_date=first,
            to_date=first + timedelta(days=SEARCH_DAYS), count=1, check_lead_minutes=meeting.check_lead_minutes,
            teardown_minutes=meeting.teardown_minutes, bridge_id=meeting.bridge_id, now=occ.start)
    except ConfsvcError:
        return None
    found = [s for s in found if s["start"] < occ.start + timedelta(days=SEARCH_DAYS)]
    return (found[0]["start"], found[0]["end"]) if found else None


def dry_run(session: Session, settings: Settings, principal: Principal, priority: int,
            conflicts: list[Conflict]) -> dict[str, Any]:
    """What the dry run adds: ``{"displaceable": [...], "displacement_token": str | None}`` (empty
    list and ``None`` when the conflicts cannot be displaced, see :func:`offer`)."""
    found = offer(session, settings, principal, priority, conflicts)
    return found.as_dict() if found else {"displaceable": [], "displacement_token": None}
