"""Reading meetings as a principal may: one meeting (404, or 403 outside an operator's units), the
list with its filters, the occurrences of a meeting and one occurrence of it.

Read access: admin, secretariat, viewer everywhere; operators only meetings touching their units
(SPEC "Who uses it"). Times are aware UTC; periods are half-open ``[from_, to)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, func, select

from confsvc.errors import Forbidden, NotFound
from confsvc.scheduling import participants as participation
from confsvc.scheduling.models import Meeting, Occurrence
from confsvc.scheduling.repository import operator_scope, touching_units
from confsvc.scheduling.views import occurrence_public
from confsvc.users.principal import Principal
from confsvc.users.service import expand_units


def get_meeting(session: Session, principal: Principal, meeting_id: int) -> Meeting:
    """Raises NotFound (also for a meeting of another province only), or Forbidden when an operator's
    units are not involved."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(f"meeting {meeting_id} not found", code="meeting_not_found")
    if principal.scope is not None and not _taking_part(session, meeting, principal.scope):
        raise NotFound(f"meeting {meeting_id} not found", code="meeting_not_found")  # another province's
    if principal.unit_ids is not None and not _taking_part(session, meeting, principal.unit_ids):
        raise Forbidden("this meeting involves none of your units", code="forbidden_scope")
    return meeting


def _taking_part(session: Session, meeting: Meeting, unit_ids: frozenset[int]) -> bool:
    return session.exec(select(Meeting.id).where(
        Meeting.id == meeting.id, Meeting.id.in_(operator_scope(unit_ids)))).first() is not None


def list_meetings(session: Session, principal: Principal, *, from_: datetime | None = None,
                  to: datetime | None = None, unit_id: int | None = None, room_id: int | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[Meeting], int]:
    """Meetings ordered by first start. ``from_``/``to`` keep meetings with an occurrence overlapping
    ``[from_, to)``; ``unit_id`` (with sub-units) and ``room_id`` keep meetings involving them."""
    query = select(Meeting).order_by(Meeting.dtstart, Meeting.id)
    if principal.unit_ids is not None:
        query = query.where(Meeting.id.in_(operator_scope(principal.unit_ids)))
    if unit_id is not None:
        query = query.where(Meeting.id.in_(touching_units(expand_units(session, {unit_id}))))
    if room_id is not None:
        query = query.where(Meeting.id.in_(participation.meetings_involving(room_ids=room_id)))
    if from_ is not None or to is not None:
        occ = select(Occurrence.meeting_id)
        if from_ is not None:
            occ = occ.where(Occurrence.end > from_)
        if to is not None:
            occ = occ.where(Occurrence.start < to)
        query = query.where(Meeting.id.in_(occ))
    total = session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
    return list(session.exec(query.limit(limit).offset(offset)).all()), total


def list_occurrences(session: Session, meeting: Meeting) -> list[dict[str, Any]]:
    """Occurrences in start order, with effective chair room and participants."""
    occurrences = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)
                               .order_by(Occurrence.start, Occurrence.id)).all()
    taking_part = participation.of_occurrences(session, meeting, occurrences)
    return [occurrence_public(o, meeting, list(taking_part[o.id].endpoint_ids)) for o in occurrences]


def get_occurrence(session: Session, meeting: Meeting, occurrence_id: int) -> Occurrence:
    """Occurrence ``occurrence_id`` of ``meeting``; raises NotFound ``occurrence_not_found`` otherwise."""
    occ = session.get(Occurrence, occurrence_id)
    if occ is None or occ.meeting_id != meeting.id:
        raise NotFound(f"occurrence {occurrence_id} of meeting {meeting.id} not found", code="occurrence_not_found")
    return occ

