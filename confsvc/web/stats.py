"""The statistics page (thống kê sử dụng): ``stats.usage.usage_report`` for a period, grouped by unit,
room, endpoint or MCU and cut by day, week or month, with its totals, two server-drawn SVG charts
(``web.charts``), the figures in a table, and links to the CSV/XLSX exports of the same report
(``GET /api/v1/stats/usage.csv|.xlsx``, read with the web session cookie).

Query: ``group_by``, ``period``, ``from`` and ``to`` (local dates dd/mm/yyyy, both inclusive: the
report's ``to`` is the day after), ``unit_id`` (that unit and its sub-units), ``rollup=successor`` (unit
grouping: merged units counted in their successor, issue 15). Without dates: the
current month and the five before it. Bad dates re-show the form with the reason (422).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.numbers import format_decimal
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from confsvc.collation import sort_key
from confsvc.db import SessionDep
from confsvc.endpoints import service as inventory
from confsvc.errors import ConfsvcError, Invalid
from confsvc.stats import usage
from confsvc.stats.buckets import make_buckets
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users.principal import Principal
from confsvc.web import i18n
from confsvc.web.charts import Series, bar_chart, column_chart
from confsvc.web.common import login_redirect, render, settings_of, viewer
from confsvc.web.errors import page_for
from confsvc.web.i18n import N_, _
from confsvc.web.meetings import filter_id, local_today

router = APIRouter(include_in_schema=False)

DATE_FORMAT = "%d/%m/%Y"
#: Groups drawn in the "by group" chart (the largest booked hours first); the table lists all.
CHART_GROUPS = 12
GROUP_LABELS = {GroupBy.unit: N_("Unit"), GroupBy.room: N_("Room"), GroupBy.endpoint: N_("Endpoint"),
                GroupBy.bridge: N_("MCU")}
PERIOD_LABELS = {Period.day: N_("By day"), Period.week: N_("By week"), Period.month: N_("By month")}
TOTAL_CARDS = (("meetings", N_("meetings")), ("cancelled", N_("cancelled meetings")),
               ("booked_hours", N_("booked hours")), ("connected_hours", N_("connected hours")),
               ("attendance_rate", N_("attendance rate")), ("late_joins", N_("late joins")))


def number(value: float | int | None, digits: int = 2) -> str:
    """``5,33`` in Vietnamese, ``5.33`` in English; whole numbers without decimals; ``—`` for none."""
    if value is None:
        return "—"
    return format_decimal(value, format="#,##0." + "#" * digits, locale=i18n.current_language())


def percent(value: float | None) -> str:
    """A rate 0…1 as ``66,7%`` (one decimal); ``—`` for none (no invited sites)."""
    return "—" if value is None else number(round(value * 100, 1), 1) + "%"


def period_label(first: date, after: date, period: Period) -> str:
    """``10/2026`` for a month, ``26/10–01/11`` for a week, ``31/10`` for a day (a clipped bucket
    shows its own days)."""
    last = after - timedelta(days=1)
    if period is Period.month and first.day == 1 and after.day == 1:
        return f"{first:%m/%Y}"
    if first == last:
        return f"{first:%d/%m}"
    return f"{first:%d/%m}–{last:%d/%m}"


PRESETS = (("this_month", N_("This month")), ("last_month", N_("Last month")), ("this_quarter", N_("This quarter")),
           ("this_year", N_("This year")))


def preset_range(name: str, today: date) -> tuple[date, date]:
    """``(first, last)`` local days, both inclusive, of a preset period around ``today``: ``this_month``,
    ``last_month``, ``this_quarter``, ``this_year`` (raises KeyError for another name)."""
    month = today.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    if name == "this_month":
        return month, next_month - timedelta(days=1)
    if name == "last_month":
        first = (month - timedelta(days=1)).replace(day=1)
        return first, month - timedelta(days=1)
    if name == "this_quarter":
        first = month.replace(month=(month.month - 1) // 3 * 3 + 1)
        after = (first + timedelta(days=93)).replace(day=1)
        return first, after - timedelta(days=1)
    if name == "this_year":
        return today.replace(month=1, day=1), today.replace(month=12, day=31)
    raise KeyError(name)


def _presets(today: date, form: dict[str, Any]) -> list[dict[str, Any]]:
    """Links for the preset periods, keeping the grouping, cut, unit and rollup; ``current`` when the form shows it."""
    out = []
    for name, label in PRESETS:
        first, last = preset_range(name, today)
        query = {"group_by": form["group_by"], "period": form["period"], "from": first.strftime(DATE_FORMAT),
                 "to": last.strftime(DATE_FORMAT), **({"unit_id": form["unit_id"]} if form["unit_id"] else {}),
                 **({"rollup": "successor"} if form.get("rollup") else {})}
        out.append({"label": _(label), "href": "/statistics?" + urlencode(query),
                    "current": (form["from"], form["to"]) == (query["from"], query["to"])})
    return out


def _parse(value: str, label: str) -> date:
    try:
        return datetime.strptime(value.strip(), DATE_FORMAT).date()
    except ValueError:
        raise Invalid(_("%(field)s: %(value)s is not a valid date in the form dd/mm/yyyy.")
                      % {"field": label, "value": value.strip()[:20]}, code="invalid_form") from None


def _root_units(session: Session, principal: Principal, unit_id: int | None) -> set[int]:
    """The units whose rows add up to the whole scope: ``unit_id`` alone, else the units of the scope
    without a parent in it (a unit's figures include its sub-units', so these never overlap)."""
    if unit_id is not None:
        return {unit_id}
    units, _total = inventory.list_units(session, principal, limit=100000)
    ids = {u.id for u in units}
    return {u.id for u in units if u.parent_id not in ids}


def _timeline(session: Session, settings: Any, principal: Principal, report: dict[str, Any], params: dict[str, Any],
              unit_id: int | None) -> list[dict[str, Any]]:
    """Per bucket: meetings, booked and connected hours of the whole scope (sums of the root units'
    rows; MCU reports: sums of the bridges' rows, each occurrence being on one MCU)."""
    if params["group_by"] is GroupBy.bridge:
        rows = report["rows"]
    else:
        by_unit = report if params["group_by"] is GroupBy.unit else usage.usage_report(
            session, settings, principal, group_by=GroupBy.unit, period=params["period"],
            from_date=params["first"], to_date=params["after"], unit_id=unit_id)
        roots = _root_units(session, principal, unit_id)
        rows = [r for r in by_unit["rows"] if r["group"]["id"] in roots]
    buckets = make_buckets(params["first"], params["after"], params["period"], settings.zone,
                                 settings.stats_max_period_days)
    out = {b.first: {"label": period_label(b.first, b.after, params["period"]), "meetings": 0, "booked_hours": 0.0,
                     "connected_hours": 0.0} for b in buckets}
    for row in rows:
        slot = out[row["period_start"]]
        slot["meetings"] += row["meetings"]
        slot["booked_hours"] += row["booked_hours"]
        slot["connected_hours"] += row["connected_hours"]
    return [{**v, "booked_hours": round(v["booked_hours"], 2), "connected_hours": round(v["connected_hours"], 2)}
            for v in out.values()]


def _by_group(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per group over the whole period (its buckets summed), the largest booked hours first."""
    groups: dict[int, dict[str, Any]] = {}
    for row in report["rows"]:
        g = groups.setdefault(row["group"]["id"], {"name": row["group"]["name"], "booked_hours": 0.0,
                                                   "connected_hours": 0.0})
        g["booked_hours"] += row["booked_hours"]
        g["connected_hours"] += row["connected_hours"]
    ordered = sorted(groups.values(), key=lambda g: (-g["booked_hours"], sort_key(g["name"])))
    return [{**g, "booked_hours": round(g["booked_hours"], 2), "connected_hours": round(g["connected_hours"], 2)}
            for g in ordered]


@router.get("/statistics", response_class=HTMLResponse)
def statistics(request: Request, session: SessionDep, group_by: GroupBy = GroupBy.unit, period: Period = Period.month,
               first: Annotated[str | None, Query(alias="from", max_length=10)] = None,
               last: Annotated[str | None, Query(alias="to", max_length=10)] = None,
               unit: Annotated[str, Query(alias="unit_id", max_length=20)] = "",
               rollup: Annotated[str, Query(max_length=20)] = ""):
    """The page; every reader role (operators: their units, no MCU grouping). ``unit_id`` empty (the
    form's "all units") or not a row id means every unit of the caller's scope. ``rollup=successor`` (the
    checkbox "Gộp đơn vị cũ vào đơn vị kế thừa"; grouping by unit only, ignored for the others, as
    ``GET /api/v1/stats/usage`` allows it for units only) adds merged units' rows into their successor's and
    carries into the export links and the preset periods."""
    unit_id = filter_id(unit)
    rolled = rollup == "successor" and group_by is GroupBy.unit
    who = viewer(request, session)
    if who is None:
        return login_redirect(request)
    settings = settings_of(request)
    today = local_today(settings.zone)
    month = today.replace(day=1)
    default_first = (month - timedelta(days=150)).replace(day=1)
    default_last = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    form = {"group_by": group_by.value, "period": period.value, "from": first or default_first.strftime(DATE_FORMAT),
            "to": last or default_last.strftime(DATE_FORMAT), "unit_id": unit_id,
            "rollup": rollup == "successor"}
    units, _total = inventory.list_units(session, who.principal, limit=100000)
    group_options = [g for g in GroupBy if g is not GroupBy.bridge or not who.principal.unit_scoped]
    context: dict[str, Any] = {
        "form": form, "units": [{"id": u.id, "name": u.name} for u in units],
        "group_options": [{"value": g.value, "label": _(GROUP_LABELS[g])} for g in group_options],
        "period_options": [{"value": p.value, "label": _(PERIOD_LABELS[p])} for p in Period],
        "error": None, "report": None, "presets": _presets(today, form),
    }
    try:
        start = _parse(form["from"], _("From"))
        end = _parse(form["to"], _("To"))
        if end < start:
            raise Invalid(_("The end date is before the start date."), code="invalid_form")
        params = {"group_by": group_by, "period": period, "first": start, "after": end + timedelta(days=1)}
        report = usage.usage_report(session, settings, who.principal, group_by=group_by, period=period,
                                    from_date=start, to_date=params["after"], unit_id=unit_id, rollup=rolled)
        timeline = _timeline(session, settings, who.principal, report, params, unit_id)
    except ConfsvcError as exc:
        message = exc.detail if exc.code == "invalid_form" else page_for(exc)[1]
        return render(request, "statistics.html", {**context, "error": message}, who=who,
                      status_code=exc.status_code if exc.status_code in (403, 404) else 422)
    totals = report["totals"]
    groups = _by_group(report)
    booked, connected = _("Booked hours"), _("Connected hours")
    query = {"group_by": group_by.value, "period": period.value, "from": start.isoformat(),
             "to": params["after"].isoformat(), **({"unit_id": unit_id} if unit_id else {}),
             **({"rollup": "successor"} if rolled else {})}
    context.update({
        "report": report,
        "cards": [{"key": k, "label": _(label), "value": percent(totals[k]) if k == "attendance_rate"
                   else number(totals[k])} for k, label in TOTAL_CARDS],
        "period_text": f"{i18n.fmt_date(start)} – {i18n.fmt_date(end)}",
        "timeline_chart": column_chart(_("Booked and connected hours by period"), [t["label"] for t in timeline], [
            Series(booked, "booked", [t["booked_hours"] for t in timeline]),
            Series(connected, "connected", [t["connected_hours"] for t in timeline])], number),
        "timeline": [{**t, "booked": number(t["booked_hours"]), "connected": number(t["connected_hours"])}
                     for t in timeline],
        "group_chart": bar_chart(_("Booked and connected hours by group"),
                                 [g["name"] for g in groups[:CHART_GROUPS]], [
            Series(booked, "booked", [g["booked_hours"] for g in groups[:CHART_GROUPS]]),
            Series(connected, "connected", [g["connected_hours"] for g in groups[:CHART_GROUPS]])], number,
            width=600) if groups else None,
        "groups_shown": min(len(groups), CHART_GROUPS), "groups_total": len(groups),
        "group_header": _(GROUP_LABELS[group_by]), "bridge": group_by is GroupBy.bridge,
        "rows": [{"name": r["group"]["name"], "period": period_label(r["period_start"], r["period_end"], period),
                  "meetings": r["meetings"], "cancelled": r["cancelled"], "booked": number(r["booked_hours"]),
                  "connected": number(r["connected_hours"]),
                  "attendance": percent(r["attendance_rate"]), "late": r["late_joins"], "faults": number(r["faults"]),
                  "utilisation": percent(r["port_utilisation"] if group_by is GroupBy.bridge
                                         else r["room_utilisation"]),
                  "port_peak": number(r["port_peak"])} for r in report["rows"]],
        "totals_row": {"meetings": totals["meetings"], "cancelled": totals["cancelled"],
                       "booked": number(totals["booked_hours"]), "connected": number(totals["connected_hours"]),
                       "attendance": percent(totals["attendance_rate"]), "late": totals["late_joins"],
                       "faults": number(totals["faults"]),
                       "utilisation": percent(totals["port_utilisation"] if group_by is GroupBy.bridge
                                              else totals["room_utilisation"]),
                       "port_peak": number(totals["port_peak"])},
        "csv_href": "/api/v1/stats/usage.csv?" + urlencode(query),
        "xlsx_href": "/api/v1/stats/usage.xlsx?" + urlencode(query),
    })
    return render(request, "statistics.html", context, who=who)
