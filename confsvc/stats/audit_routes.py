"""Audit trail API (nhật ký hệ thống): ``GET /api/v1/audit`` (JSON, paged) and ``/api/v1/audit.csv`` /
``.xlsx`` (every matching entry). Admin and secretariat; see ``scheduling.audit_log`` for filters and scope.

Period bounds ``from``/``to`` are instants; without an offset they are local time (``Settings.timezone``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from confsvc.clock import as_utc
from confsvc.db import QueryId, SessionDep
from confsvc.deps import PagingDep, SettingsDep
from confsvc.scheduling import audit_log
from confsvc.scheduling.schemas import Page
from confsvc.stats import audit_export
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1", tags=["audit"])
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class AuditEntryPublic(BaseModel):
    """One entry: ``at`` in UTC; ``user_*`` null when the scheduler acted; ``details`` free JSON."""

    id: int
    at: datetime
    user_id: int | None
    username: str | None
    user_name: str | None
    action: str
    action_label: str = Field(description="Vietnamese name of the action")
    meeting_id: int | None
    meeting_title: str | None
    occurrence_id: int | None
    details: dict[str, Any]


class AuditFilters:
    """The query parameters shared by the JSON and the exports."""

    def __init__(self, settings: SettingsDep, unit_id: QueryId = None,
                 user_id: QueryId = None, meeting_id: QueryId = None,
                 action: Annotated[str | None, Query(max_length=60)] = None,
                 from_: Annotated[datetime | None, Query(alias="from", description="entries at or after")] = None,
                 to: Annotated[datetime | None, Query(description="entries before")] = None) -> None:
        self.values: dict[str, Any] = {
            "unit_id": unit_id, "user_id": user_id, "meeting_id": meeting_id, "action": action or None,
            "from_": as_utc(from_, settings.zone) if from_ else None, "to": as_utc(to, settings.zone) if to else None}


FiltersDep = Annotated[AuditFilters, Depends()]


@router.get("/audit", response_model=Page[AuditEntryPublic])
def list_audit(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep, filters: FiltersDep):
    """Entries newest first. 403 for other roles; 422 ``end_not_after_start``."""
    items, total = audit_log.list_entries(session, principal, **filters.values, limit=paging.limit,
                                          offset=paging.offset)
    return {"items": items, "total": total, "limit": paging.limit, "offset": paging.offset}


def _download(body: bytes, media_type: str, ext: str) -> Response:
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="nhat-ky-he-thong.{ext}"'})


@router.get("/audit.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def audit_csv(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, filters: FiltersDep):
    """Every matching entry as CSV (UTF-8 with BOM); 422 ``export_too_large`` past 50 000 entries."""
    rows = audit_log.export_entries(session, principal, **filters.values)
    return _download(audit_export.to_csv(rows, settings.zone), "text/csv; charset=utf-8", "csv")


@router.get("/audit.xlsx", response_class=Response, responses={200: {"content": {XLSX_TYPE: {}}}})
def audit_xlsx(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, filters: FiltersDep):
    """Every matching entry as an XLSX sheet "Nhật ký hệ thống"."""
    rows = audit_log.export_entries(session, principal, **filters.values)
    return _download(audit_export.to_xlsx(rows, settings.zone), XLSX_TYPE, "xlsx")
