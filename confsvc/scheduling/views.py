"""Meetings and occurrences as API dicts: the shapes the routes, pages and requests answer with,
and the confidential view of them (``visibility``). Times are aware UTC."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from confsvc.scheduling import cascade, visibility
from confsvc.scheduling.models import Meeting, MeetingPriority, Occurrence
from confsvc.scheduling.repository import meeting_units, participant_ids
from confsvc.users.principal import Principal


def occurrence_public(occ: Occurrence, meeting: Meeting, endpoint_ids: list[int]) -> dict[str, Any]:
    """An occurrence as ``schemas.OccurrencePublic``: effective chair room and conference number."""
    return {"id": occ.id, "meeting_id": occ.meeting_id, "recurrence_id": occ.recurrence_id, "start": occ.start,
            "end": occ.end, "status": occ.status, "chair_room_id": occ.chair_room_id or meeting.chair_room_id,
            "participant_endpoint_ids": endpoint_ids, "is_exception": occ.is_exception, "is_extra": occ.is_extra,
            "conference_number": occ.number(meeting), "tentative": occ.tentative,
            "displaced_by_meeting_id": occ.displaced_by_meeting_id, "alternative_start": occ.alternative_start,
            "alternative_end": occ.alternative_end}


def meeting_public(session: Session, meeting: Meeting, *, endpoint_ids: list[int] | None = None) -> dict[str, Any]:
    """A meeting as ``schemas.MeetingPublic`` (its first start and end, EXDATEs as UTC datetimes).
    ``endpoint_ids``: its participant endpoint ids (sorted), when the caller has them (else read)."""
    data = meeting.model_dump()
    data["start"] = meeting.dtstart
    data["end"] = meeting.dtstart + timedelta(minutes=meeting.duration_minutes)
    data["exdates"] = [datetime.fromisoformat(d) for d in meeting.exdates]
    data["participant_endpoint_ids"] = participant_ids(session, meeting.id) if endpoint_ids is None else endpoint_ids
    data["priority_label"] = MeetingPriority(meeting.priority).label
    tree = cascade.tree_of(session, meeting) if meeting.bridge_id is not None else None
    data["cascade_bridges"] = [
        {"bridge_id": bridge_id, "bridge_name": b.name, "province_id": b.unit_id,
         "parent_bridge_id": tree.parent[bridge_id], "conference_number": number}
        for bridge_id, (b, number) in tree.others.items()] if tree is not None else []
    return data


def meeting_for(session: Session, principal: Principal, meeting: Meeting) -> dict[str, Any]:
    """``meeting_public`` as ``principal`` may see it: a confidential meeting outside their view is
    "Cuộc họp" with its times and rooms only (``visibility.sees_details``)."""
    data = meeting_public(session, meeting)
    return data if sees_meeting_details(session, principal, meeting) else visibility.redact_meeting(data)


def sees_meeting_details(session: Session, principal: Principal, meeting: Meeting) -> bool:
    """Whether ``principal`` may see ``meeting``'s title, description, dial strings and PIN
    (``visibility.sees_details`` over the units of its chair room and participants)."""
    return not meeting.confidential or visibility.sees_details(
        visibility.Audience.of_principal(principal), confidential=True,
        participant_unit_ids=meeting_units(session, meeting.id))

