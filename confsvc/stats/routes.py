"""Usage statistics under ``/api/v1``: ``GET /stats/usage`` (JSON), ``/stats/usage.csv`` and ``/stats/usage.xlsx``.

Routes parse, call one service function and shape the answer. Times in answers are UTC; naive times
in requests are local (SPEC rule 9); report periods are local dates.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from confsvc.deps import SettingsDep
from confsvc.db import QueryId, SessionDep
from confsvc.endpoints.models import UnitLevel
from confsvc.stats import export, schemas, usage
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1")

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




def _answer(model: type[Any], data: Any) -> Response:
    """Serialise inside the handler's thread hop (see ``scheduling.routes._answer``)."""
    return Response(model.model_validate(data).model_dump_json(), media_type="application/json")


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
                                 "sub-units); `province` without unit_id = one row per province")] = None,
                 rollup: Annotated[Literal["successor"] | None, Query(
                     description="group_by=unit only: `successor` adds the rows of merged (former) units into "
                                 "their successor's; without it former units keep rows of their own")] = None) -> None:
        self.group_by, self.period, self.from_, self.to = group_by, period, from_, to
        self.unit_id, self.bridge_id, self.unit_level = unit_id, bridge_id, unit_level
        self.rollup = rollup == "successor"


UsageParamsDep = Annotated[UsageParams, Depends()]


def _report(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
            params: UsageParams) -> dict[str, Any]:
    return usage.usage_report(session, settings, principal, group_by=params.group_by, period=params.period,
                              from_date=params.from_, to_date=params.to, unit_id=params.unit_id,
                              bridge_id=params.bridge_id, unit_level=params.unit_level, rollup=params.rollup)


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
