"""Call records and usage statistics under ``/api/v1``: ``POST /calls``, manual attendance marks,
``GET /stats/usage`` (JSON), ``/stats/usage.csv`` and ``/stats/usage.xlsx``.

Routes parse, call one service function and shape the answer. Times in answers are UTC; naive times
in requests are local (SPEC rule 9); report periods are local dates.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from confsvc.deps import SettingsDep
from confsvc.db import PathId, QueryId, SessionDep, make_session
from confsvc.endpoints import agent_tokens
from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling import reading
from confsvc.stats import calls, export, schemas, usage
from confsvc.users.deps import CurrentPrincipal, get_principal, require_capability
from confsvc.users.principal import MARK_ATTENDANCE, Principal

router = APIRouter(prefix="/api/v1")

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




def _answer(model: type[Any], data: Any) -> Response:
    """Serialise inside the handler's thread hop (see ``scheduling.routes._answer``)."""
    return Response(model.model_validate(data).model_dump_json(), media_type="application/json")


def get_call_caller(request: Request) -> Principal | calls.AgentCaller:
    """An agent token (``Authorization: Bearer cfa_…``), resolved in a read session of its own, or else
    the user (``users.deps.get_principal``). Raises Unauthorized (401)."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() == "bearer" and agent_tokens.is_agent_secret(secret):
        with make_session(request.app.state.engine, write=False) as session:
            return calls.AgentCaller.for_token(agent_tokens.agent_for_secret(session, secret))
    return get_principal(request)


CallCallerDep = Annotated[Principal | calls.AgentCaller, Depends(get_call_caller)]


@router.post("/calls", response_model=schemas.CallEventResult, tags=["calls"])
def report_call(data: schemas.CallEventCreate, session: SessionDep, caller: CallCallerDep,
                settings: SettingsDep):
    """A call-record event (``connected``/``disconnected``) from a bridge webhook or a device agent.

    Reports about one endpoint are merged: overlapping or repeated reports never count twice; a
    repeat answers ``accepted: false`` (``duplicate``, ``no_open_call``). Records ``call.connected`` /
    ``call.disconnected``. Admin and secretariat bearer tokens, and agent tokens (``cfa_…``): an
    endpoint-bound one only for its endpoint (403 ``forbidden_endpoint``), a bridge-bound one only for
    occurrences on its bridge (403 ``forbidden_bridge``). 401 invalid or revoked token; 403
    ``forbidden_role``; 422 ``no_occurrence``, ``outside_occurrence``, ``occurrence_cancelled``,
    ``not_a_participant``, ``at_in_future``; 404 unknown endpoint/occurrence.
    """
    outcome = calls.report_call(session, settings, caller, data)
    return _answer(schemas.CallEventResult, {
        "accepted": outcome.accepted, "reason": outcome.reason, "occurrence_id": outcome.occurrence_id,
        "record": calls.record_public(outcome.record) if outcome.record else None})


#: Who may mark attendance, checked before the write session is touched (issue 16 defect 2).
AttendanceMarker = Annotated[Principal, require_capability(MARK_ATTENDANCE)]


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/attendance",
             response_model=schemas.AttendanceResult, tags=["calls"])
def mark_attendance(meeting_id: PathId, occurrence_id: PathId, data: schemas.AttendanceMark, session: SessionDep,
                    principal: AttendanceMarker, settings: SettingsDep):
    """Manual attendance mark (when no device reports): the room or endpoint was connected over
    ``[connected_from, connected_to)``, clipped to ``[start − check lead, end)`` and merged with its
    other periods. Admin, secretariat; operators for their units' rooms."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    records = calls.mark_attendance(session, settings, principal, meeting, occurrence, data)
    return _answer(schemas.AttendanceResult, {"records": [calls.record_public(r) for r in records]})


_DEFINITIONS = "\n".join(f"- **{k}**: {v}" for k, v in usage.FIGURE_DEFINITIONS.items())
_USAGE_DOC = f"""Usage statistics (thống kê sử dụng) over local dates ``[from, to)``, one row per group and
bucket (local day, ISO week from Monday, calendar month; first and last clipped to the period) with any
activity, plus ``totals`` over the whole scope and period. ``unit_id`` keeps that unit and its sub-units;
operators see only their units and no bridges. Periods crossing midnight or a month's end are split
between buckets.

Figures:

{_DEFINITIONS}
"""


class UsageParams:
    def __init__(self, from_: Annotated[date, Query(alias="from", description="first local date")],
                 to: Annotated[date, Query(description="local date after the last (exclusive)")],
                 group_by: schemas.GroupBy = schemas.GroupBy.unit, period: schemas.Period = schemas.Period.month,
                 unit_id: QueryId = None, bridge_id: QueryId = None,
                 unit_level: Annotated[UnitLevel | None, Query(
                     description="group_by=unit only: rows for units of this level (each rolling up its "
                                 "sub-units); `province` without unit_id = one row per province")] = None) -> None:
        self.group_by, self.period, self.from_, self.to = group_by, period, from_, to
        self.unit_id, self.bridge_id, self.unit_level = unit_id, bridge_id, unit_level


UsageParamsDep = Annotated[UsageParams, Depends()]


def _report(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
            params: UsageParams) -> dict[str, Any]:
    return usage.usage_report(session, settings, principal, group_by=params.group_by, period=params.period,
                              from_date=params.from_, to_date=params.to, unit_id=params.unit_id,
                              bridge_id=params.bridge_id, unit_level=params.unit_level)


def _filename(params: UsageParams, ext: str) -> str:
    """``thong-ke-su-dung_<group>_<first day>-<last day>.<ext>``: both dates inclusive (``to`` is exclusive)."""
    last = params.to - timedelta(days=1)
    return f"thong-ke-su-dung_{params.group_by.value}_{params.from_:%Y%m%d}-{last:%Y%m%d}.{ext}"


@router.get("/stats/usage", response_model=schemas.UsageReport, tags=["stats"], description=_USAGE_DOC)
def usage_json(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, params: UsageParamsDep):
    report = schemas.UsageReport.model_validate(_report(session, principal, settings, params))
    return Response(report.model_dump_json(by_alias=True), media_type="application/json")


@router.get("/stats/usage.csv", tags=["stats"], response_class=Response,
            description="The report of `GET /stats/usage` as CSV (UTF-8 with BOM, Vietnamese headers, dd/mm/yyyy, "
                        "a totals line).")
def usage_csv(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, params: UsageParamsDep):
    body = export.to_csv(_report(session, principal, settings, params))
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{_filename(params, "csv")}"'})


@router.get("/stats/usage.xlsx", tags=["stats"], response_class=Response,
            description="The report of `GET /stats/usage` as an Excel workbook (Vietnamese headers, dates "
                        "dd/mm/yyyy, rates as percentages, a totals row).")
def usage_xlsx(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, params: UsageParamsDep):
    body = export.to_xlsx(_report(session, principal, settings, params))
    return Response(body, media_type=XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{_filename(params, "xlsx")}"'})
