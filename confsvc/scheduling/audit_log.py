"""Writing and reading the audit trail (nhật ký hệ thống): who created, changed or cancelled what, and when.

The trail is written by :func:`audit` (below) into ``audit_log`` (``AuditEntry``). Readers: admin and
secretariat; a reader scoped to units (``Principal.unit_ids``) sees only entries of meetings
touching those units. Filters combine (AND): ``unit_id`` (meetings whose chair room or a
participant is in the unit or its sub-units, as they are now), ``user_id``, ``meeting_id``,
``action`` (exact, e.g. ``meeting.cancelled``) and the period ``[from_, to)`` on ``at`` (UTC).
Newest first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from confsvc import logs
from confsvc.endpoints.models import Endpoint, Room
from confsvc.errors import Forbidden, Invalid
from confsvc.scheduling.models import AuditEntry, Meeting, MeetingParticipant
from confsvc.users.models import User
from confsvc.users.principal import Principal
from confsvc.users.service import expand_units

#: Vietnamese names of the actions (GLOSSARY words); an action not listed shows its code.
ACTION_LABELS = {
    "meeting.created": "Đặt lịch họp",
    "meeting.updated": "Sửa cuộc họp",
    "meeting.cancelled": "Hủy cuộc họp",
    "occurrence.updated": "Sửa buổi họp",
    "occurrence.cancelled": "Hủy buổi họp",
    "series.extended": "Gia hạn chuỗi lặp lại",
    "maintenance.created": "Đặt lịch bảo trì",
    "request.submitted": "Gửi yêu cầu đặt lịch",
    "request.approved": "Duyệt yêu cầu đặt lịch",
    "request.rejected": "Từ chối yêu cầu đặt lịch",
    "request.expired": "Yêu cầu đặt lịch hết hạn",
    "unit.merged": "Sáp nhập đơn vị",
    "unit.renamed": "Đổi tên đơn vị",
    "units.list_applied": "Cập nhật danh mục đơn vị hành chính",
    "meeting.split": "Tách chuỗi lặp lại",
    "occurrence.added": "Thêm buổi họp",
    "occurrence.restored": "Khôi phục buổi họp",
    "block.created": "Chặn ngày",
    "block.deleted": "Bỏ chặn ngày",
    "user.updated": "Sửa người dùng",
    "occurrence.displaced": "Dời buổi họp cho cuộc họp ưu tiên cao hơn",
}
MAX_EXPORT_ROWS = 50_000


def _touching(unit_ids: frozenset[int]) -> Any:
    by_chair = (select(col(Meeting.id)).join(Room, col(Room.id) == col(Meeting.chair_room_id))
                .where(col(Room.unit_id).in_(unit_ids)))
    by_participant = (select(col(MeetingParticipant.meeting_id))
                      .join(Endpoint, col(Endpoint.id) == col(MeetingParticipant.endpoint_id))
                      .join(Room, col(Room.id) == col(Endpoint.room_id)).where(col(Room.unit_id).in_(unit_ids)))
    return sa.union(by_chair, by_participant)


def _query(session: Session, principal: Principal, *, unit_id: int | None, user_id: int | None,
           meeting_id: int | None, action: str | None, from_: datetime | None, to: datetime | None) -> Any:
    if not principal.can_read_audit:
        raise Forbidden(f"role {principal.role.value!r} may not read the audit trail", code="forbidden_role")
    if from_ is not None and to is not None and to <= from_:
        raise Invalid("the period's end must be after its start", code="end_not_after_start")
    query = select(AuditEntry, col(User.username), col(User.full_name), col(Meeting.title)).select_from(AuditEntry) \
        .outerjoin(User, col(User.id) == col(AuditEntry.user_id)) \
        .outerjoin(Meeting, col(Meeting.id) == col(AuditEntry.meeting_id))
    if principal.unit_ids is not None:
        query = query.where(col(AuditEntry.meeting_id).in_(_touching(principal.unit_ids)))
    if unit_id is not None:
        query = query.where(col(AuditEntry.meeting_id).in_(_touching(expand_units(session, {unit_id}))))
    if user_id is not None:
        query = query.where(col(AuditEntry.user_id) == user_id)
    if meeting_id is not None:
        query = query.where(col(AuditEntry.meeting_id) == meeting_id)
    if action:
        query = query.where(col(AuditEntry.action) == action)
    if from_ is not None:
        query = query.where(col(AuditEntry.at) >= from_)
    if to is not None:
        query = query.where(col(AuditEntry.at) < to)
    return query


def _row(entry: AuditEntry, username: str | None, full_name: str | None, title: str | None) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at, "user_id": entry.user_id, "username": username,
            "user_name": full_name or username, "action": entry.action,
            "action_label": ACTION_LABELS.get(entry.action, entry.action), "meeting_id": entry.meeting_id,
            "meeting_title": title, "occurrence_id": entry.occurrence_id, "details": entry.details}


def list_entries(session: Session, principal: Principal, *, unit_id: int | None = None, user_id: int | None = None,
                 meeting_id: int | None = None, action: str | None = None, from_: datetime | None = None,
                 to: datetime | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of entries, newest first, and the total matching the filters.

    Row shape: ``{"id", "at" (UTC), "user_id", "username", "user_name", "action", "action_label",
    "meeting_id", "meeting_title", "occurrence_id", "details"}`` (``user_*`` None for the scheduler).

    Raises: Forbidden (not admin/secretariat), Invalid ``end_not_after_start``.
    """
    query = _query(session, principal, unit_id=unit_id, user_id=user_id, meeting_id=meeting_id, action=action,
                   from_=from_, to=to)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    newest_first = query.order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
    rows = session.exec(newest_first.limit(limit).offset(offset)).all()
    return [_row(*r) for r in rows], total


def export_entries(session: Session, principal: Principal, **filters: Any) -> list[dict[str, Any]]:
    """Every entry matching ``filters`` (as :func:`list_entries`), newest first, at most
    ``MAX_EXPORT_ROWS``. Raises as :func:`list_entries`, and Invalid ``export_too_large``."""
    rows, total = list_entries(session, principal, **filters, limit=MAX_EXPORT_ROWS, offset=0)
    if total > MAX_EXPORT_ROWS:
        raise Invalid(f"{total} entries match; narrow the filters to at most {MAX_EXPORT_ROWS}",
                      code="export_too_large")
    return rows


def actions(session: Session) -> list[tuple[str, str]]:
    """``(action, label)`` of every action in the trail and every known one, by label (the page's select)."""
    present = set(session.exec(select(col(AuditEntry.action)).distinct()).all())
    return sorted(((a, ACTION_LABELS.get(a, a)) for a in present | set(ACTION_LABELS)), key=lambda p: p[1])


def people(session: Session) -> list[tuple[int | None, str]]:
    """``(user_id, name)`` of every user who appears in the trail, by name (the page's select)."""
    rows = session.exec(select(col(User.id), col(User.full_name), col(User.username))
                        .where(col(User.id).in_(select(col(AuditEntry.user_id)).distinct()))).all()
    return sorted(((uid, full or username) for uid, full, username in rows), key=lambda p: p[1])


def audit(session: Session, principal: Principal | None, action: str, *, meeting_id: int | None,
          occurrence_id: int | None = None, **details: Any) -> None:
    """Append to the audit trail (who, what, which meeting/occurrence, when); ``details.request_id`` is
    the HTTP request's ``X-Request-ID`` (``confsvc.logs``), to find its log lines."""
    if logs.request_id.get() != "-":
        details = {**details, "request_id": logs.request_id.get()}
    session.add(AuditEntry(user_id=principal.user_id if principal else None, action=action, meeting_id=meeting_id,
                           occurrence_id=occurrence_id, details=_jsonable(details)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value

