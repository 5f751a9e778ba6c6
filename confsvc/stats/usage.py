"""Usage statistics (thống kê sử dụng, SPEC "Usage statistics"): the report.

A report covers the local dates ``[from, to)`` in ``Settings.timezone``, cut into buckets
(``stats.buckets``), and has one row per group (endpoint, room, unit, bridge) and bucket with any
activity. Every figure is computed by ``GROUP BY`` queries over a bucket table sent with the query
(``stats.usage_queries``). Who may ask, and about what, is decided by the reader's capabilities on
``users.principal.Principal`` (:func:`_scope`).

Definitions (also in the API description, :data:`FIGURE_DEFINITIONS`). A *site* is a participating
endpoint of an occurrence (its own participant list if overridden, else the meeting's); a
*cancelled* occurrence is one cancelled on its own or whose meeting is cancelled. A group's sites are
those of its endpoints (a room: its endpoints; a unit: the endpoints in its rooms and in every
sub-unit's rooms; a bridge: the sites of occurrences of meetings on that bridge).

Unit reports (group_by=unit over the whole network or one unit's subtree) read the usage summary
(``stats.summary``) for the local days it holds: the same figures, stored per unit and day once a day
is settled. A report stores up to ``summary_job.SUMMARY_CHUNK_DAYS`` missing days itself; a background
job (``summary_job.running``) and ``confsvc stats refresh`` fill the rest. Other days go through the
statements. Other groupings always do (a province's quarter by room takes ~0.1 s at national scale).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints import unit_history
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit, UnitLevel
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.stats import rollup as stats_rollup
from confsvc.stats import summary
from confsvc.stats.buckets import Bucket, bucket_runs, make_buckets, run_buckets, working_windows
from confsvc.stats.schemas import GroupBy, Period
from confsvc.stats.summary_job import SUMMARY_CHUNK_DAYS, fill_days, summary_days
from confsvc.stats.usage_queries import (
    TOTAL_KEY,
    Scope,
    Sql,
    collect,
    faults_condition,
    group_labels,
    port_figures,
    site_counts,
    summary_total,
    table_of,
    wanted_units,
)
from confsvc.users.principal import Principal
from confsvc.users.service import expand_units

FIGURE_DEFINITIONS = {
    "meetings": "Số buổi họp: occurrences, not cancelled, involving the group and starting in the bucket.",
    "cancelled": "Số buổi họp đã hủy: cancelled occurrences (on their own or with their meeting) that would have "
                 "involved the group, starting in the bucket. Not part of any other figure.",
    "booked_hours": "Số giờ đặt lịch: sum over the group's occurrences (not cancelled) of the part of "
                    "[start, end) inside the bucket; the technical-check lead and teardown are not included; "
                    "an occurrence counts once per group however many of its sites belong to the group.",
    "connected_hours": "Số giờ kết nối: sum of the group's sites' call records inside the bucket (endpoint-hours: "
                       "two endpoints connected for an hour are two hours). Records are merged per endpoint, so "
                       "overlapping reports count once; an open record counts up to min(now, occurrence end). "
                       "A record counts only inside its occurrence's window [start − check lead, end): the "
                       "technical check counts (in its own day), a record left outside by a later move of the "
                       "occurrence does not. A site's overlapping call legs (a drop and a re-dial) count once "
                       "(their union). Time past the occurrence's booked end (an overrun) is not counted: the "
                       "call legs keep it as reported, the figure stays within the booked window.",
    "sites_invited": "Số điểm cầu được mời: sites of the group's occurrences (not cancelled) starting in the bucket "
                     "and started by the report's now (future bookings do not count in the rates).",
    "sites_connected": "Số điểm cầu tham dự: of those, sites with at least one call record inside the occurrence's "
                       "window (a reconnect is still one site).",
    "attendance_rate": "Tỷ lệ điểm cầu tham dự: sites_connected / sites_invited (0…1; null without invited sites).",
    "late_joins": "Số điểm cầu vào muộn: connected sites whose first connection is later than start + "
                  "late_join_minutes (setting).",
    "faults": "Số sự cố: sites that during [start − check lead, end) had an endpoint status `fault` (status history) "
              "or whose room's readiness is `problem`; null when the status history is not installed.",
    "room_utilisation": "Hiệu suất sử dụng: booked [start, end) of the group's rooms (endpoints for group_by=endpoint) "
                        "inside working hours (working_hours_start–end on working_weekdays, local), divided by "
                        "rooms × working hours of the bucket (0…1; null for bridges or without working hours). "
                        "Public holidays are not removed from working hours.",
    "port_peak": "Số cổng MCU cao nhất (bridges only): largest number of ports booked at one instant in the bucket "
                 "(booking windows, i.e. with check lead and teardown).",
    "port_hours": "Số giờ-cổng MCU (bridges only): sum of ports × hours of the bridge's booking windows in the bucket.",
    "port_utilisation": "Hiệu suất sử dụng cổng MCU (bridges only): port_hours / (port capacity × bucket hours), 0…1.",
}


def _scope(session: Session, principal: Principal, group_by: GroupBy, unit_id: int | None,
           bridge_id: int | None, unit_level: UnitLevel | None = None) -> Scope:
    """Raises Forbidden (operators: bridges, or a unit outside theirs), NotFound (unit, bridge),
    Invalid (``unit_level_needs_unit_grouping``: ``unit_level`` with another ``group_by``)."""
    if unit_level is not None and group_by is not GroupBy.unit:
        raise Invalid("unit_level applies to group_by=unit only", code="unit_level_needs_unit_grouping")
    units = principal.unit_ids
    if not principal.can_see_bridge_statistics and (group_by is GroupBy.bridge or bridge_id is not None):
        raise Forbidden("bridge statistics cover the whole network", code="forbidden_scope")
    if unit_id is not None:
        if session.get(Unit, unit_id) is None:
            raise NotFound(f"unit {unit_id} not found", code="unit_not_found")
        principal.require_unit(unit_id)
        units = expand_units(session, {unit_id})
    bridge = session.get(Bridge, bridge_id) if bridge_id is not None else None
    if bridge_id is not None and (bridge is None or not principal.in_scope(bridge.unit_id)):
        raise NotFound(f"bridge {bridge_id} not found", code="bridge_not_found")
    return Scope(units, bridge_id, unit_level)


def _hours(seconds: int) -> float:
    return round(seconds / 3600, 2)


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(raw: dict[str, Any], *, bridge: bool, rooms: int, work_s: int, capacity_s: int,
             faults_known: bool) -> dict[str, Any]:
    invited, connected = raw.get("sites_invited", 0), raw.get("sites_connected", 0)
    return {
        "meetings": raw.get("meetings", 0), "cancelled": raw.get("cancelled", 0),
        "booked_hours": _hours(raw.get("booked_s", 0)), "connected_hours": _hours(raw.get("connected_s", 0)),
        "sites_invited": invited, "sites_connected": connected, "attendance_rate": _rate(connected, invited),
        "late_joins": raw.get("late_joins", 0),
        "faults": (raw.get("faults") or 0) if faults_known else None,
        "room_utilisation": None if bridge else _rate(raw.get("busy_s", 0), rooms * work_s),
        "port_peak": raw.get("port_peak", 0) if bridge else None,
        "port_hours": _hours(raw.get("port_s", 0)) if bridge else None,
        "port_utilisation": _rate(raw.get("port_s", 0), capacity_s) if bridge else None,
    }


def _collect_by_days(session: Session, settings: Settings, scope: Scope, total_unit: int, buckets: list[Bucket],
                     now: datetime, faults: Any) -> dict[tuple[int, int], dict]:
    """:func:`collect` for group_by=unit with the usage summary: stored days are read; up to
    :data:`SUMMARY_CHUNK_DAYS` settled days not stored are computed for the whole network and stored;
    other days (unsettled, or too many missing: the background job or ``confsvc stats refresh`` fills
    those) are computed by the live statements for ``scope``, over runs of days. The rows of
    ``total_unit`` are also the totals (:data:`TOTAL_KEY`)."""
    zone = settings.zone
    bucket_of: dict[date, int] = {}
    for bucket in buckets:
        for n in range(bucket.first.toordinal(), bucket.after.toordinal()):
            bucket_of[date.fromordinal(n)] = bucket.key
    snapshot, usable, missing = summary_days(session, settings, buckets[0].first, buckets[-1].after, now)
    fill = missing if len(missing) <= SUMMARY_CHUNK_DAYS else []
    computed_here = usable | set(fill)
    live = [d for d in bucket_of if d not in computed_here]

    merged: dict[tuple[int, int], dict[str, int]] = {}

    def add(key: int, b_key: int, raw: dict[str, Any]) -> None:
        into = merged.setdefault((key, b_key), {})
        for name in summary.FIGURES:
            into[name] = into.get(name, 0) + int(raw.get(name) or 0)

    wanted = set(session.execute(wanted_units(scope)).scalars())

    def add_stored(key: int, b_key: int, raw: dict[str, int]) -> None:
        if key in wanted:
            add(key, b_key, raw)
        if key == total_unit:
            add(TOTAL_KEY, b_key, raw)

    stored = bucket_runs(sorted(usable), bucket_of)
    for (key, b_key), raw in summary.read_days(session, stored, sorted(wanted | {total_unit})).items():
        add_stored(key, b_key, raw)
    if fill:
        for day, rows in fill_days(session, settings, snapshot, fill, now, faults).items():
            for key, raw in rows.items():
                add_stored(key, bucket_of[day], raw)
    if live:
        runs = run_buckets(live, bucket_of, zone)
        first, after = min(r.start for r in runs), max(r.end for r in runs)
        for (key, b_key), raw in collect(session, settings, GroupBy.unit, scope, runs, first, after, now,
                                          faults).items():
            add(key, b_key, raw)
    return merged


def _totals(merged: dict[tuple[int, int], dict], bridge: bool, port_total: dict[str, int]) -> dict[str, Any]:
    """The whole period's raw figures from the :data:`TOTAL_KEY` rows: every figure adds up over buckets
    (sites and meetings are bucketed by their start, seconds are split), the port peak is the largest."""
    out: dict[str, Any] = {}
    for (k, _), values in merged.items():
        if k != TOTAL_KEY:
            continue
        for name, value in values.items():
            if name != "port_peak" and value is not None:
                out[name] = out.get(name, 0) + value
    if bridge:
        out.update(port_total)
    return out


def _sites_of(session: Session, group_by: GroupBy, keys: set[int]) -> dict[int, tuple[int, int, str]]:
    """``{room or endpoint id: (room id, its current unit id, the room's current name)}`` of ``keys``."""
    if not keys:
        return {}
    if group_by is GroupBy.room:
        rows = session.execute(sa.select(col(Room.id), col(Room.id), col(Room.unit_id), col(Room.name))
                               .where(col(Room.id).in_(keys)))
    else:
        rows = session.execute(sa.select(col(Endpoint.id), col(Room.id), col(Room.unit_id), col(Room.name))
                               .join(Room, col(Room.id) == col(Endpoint.room_id)).where(col(Endpoint.id).in_(keys)))
    return {key: (room_id, unit_id, name) for key, room_id, unit_id, name in rows}


def _names_then(session: Session, history: unit_history.History, group: dict[str, Any], group_by: GroupBy,
                site: tuple[int, int, str], at: datetime) -> None:
    """Rewrite a room or endpoint row's ``group`` labels (room name, unit name and code, parent name) to those in
    force at ``at`` (UTC, the row's period start): a merge moved the room since, or its unit was renamed."""
    room_id, unit_id, room_name = site
    then_unit_id, then_room = history.room_at(room_id, unit_id, room_name, at)
    if (then_unit_id, then_room) == (unit_id, room_name) and not history.names.get(unit_id):
        return
    unit = session.get(Unit, then_unit_id)
    if unit is None:
        return
    code = unit.code
    for until, _name, old_code in history.names.get(then_unit_id, ()):
        if at < until:
            code = old_code
            break
    parent = session.get(Unit, unit.parent_id) if unit.parent_id is not None else None
    group["unit_name"] = history.unit_name_at(then_unit_id, unit.name, at)
    group["unit_code"] = code
    group["parent_name"] = history.unit_name_at(parent.id, parent.name, at) if parent and parent.id else None
    if group_by is GroupBy.room:
        group["name"] = then_room
    else:
        group["room_name"] = then_room


def usage_report(session: Session, settings: Settings, principal: Principal, *, group_by: GroupBy, period: Period,
                 from_date: date, to_date: date, unit_id: int | None = None, bridge_id: int | None = None,
                 unit_level: UnitLevel | None = None, now: datetime | None = None,
                 rollup: bool = False) -> dict[str, Any]:
    """Usage statistics over local dates ``[from_date, to_date)`` by ``group_by`` and ``period``.

    Returns ``{"group_by", "period", "from", "to", "timezone", "rows": [...], "totals": {...}, "notes"}``;
    each row ``{"group": {"kind", "id", "name", …}, "period_start", "period_end" (exclusive), figures…}``
    ordered by group name, id and period; ``totals`` are the figures of the whole scope over the whole
    period (each occurrence and site once, so a unit report's totals are not the sum of nested rows).
    Figures: :data:`FIGURE_DEFINITIONS`. ``unit_id`` keeps the unit and its sub-units; operators see
    only their units (and no bridge statistics). Every reader role may ask. ``unit_level`` (group_by=unit
    only) keeps the rows of units of that level, each still rolling up its sub-units: ``province`` with no
    ``unit_id`` is the per-province report of the whole country (the totals are unchanged).

    Merged units (issue 15): a site counts in the unit its room was in at the occurrence's start, so former
    units keep their rows, under the name each unit had at the row's period start (room and endpoint rows
likewise show the room's name, unit and parent as they were then; the history is read only when a merge or
rename has happened); ``rollup`` (group_by=unit)
    adds former units' rows into their successor's (``stats.rollup``; a successor's scope takes in its former
    units).

    Raises: Invalid (``empty_period``, ``period_too_long``, ``too_many_buckets``,
    ``unit_level_needs_unit_grouping``, ``rollup_needs_unit_grouping``), Forbidden, NotFound.
    """
    now = now or utc_now()
    scope = _scope(session, principal, group_by, unit_id, bridge_id, unit_level)
    final: dict[int, int] = {}
    if rollup:
        if group_by is not GroupBy.unit:
            raise Invalid("rollup applies to group_by=unit only", code="rollup_needs_unit_grouping")
        final = unit_history.successors(session)
        if scope.unit_ids is not None:
            scope = dataclasses.replace(scope, unit_ids=scope.unit_ids | stats_rollup.predecessors(final, scope.unit_ids))
    zone = settings.zone
    buckets = make_buckets(from_date, to_date, period, zone, settings.stats_max_period_days)
    first, after = buckets[0].start, buckets[-1].end
    bridge = group_by is GroupBy.bridge
    faults = faults_condition(session)
    total_unit = summary_total(session, group_by, scope, unit_id, faults)
    if final and scope.unit_ids is not None:
        total_unit = None  # the successor's stored rows are not the totals of it and its former units
    if total_unit is not None:
        merged = _collect_by_days(session, settings, scope, total_unit, buckets, now, faults)
    else:
        merged = collect(session, settings, group_by, scope, buckets, first, after, now, faults)
    rows_raw = {k: v for k, v in merged.items() if k[0] != TOTAL_KEY}
    if final:
        rows_raw = stats_rollup.fold(rows_raw, final)
    port_total: dict[str, int] = {}
    if bridge:  # all bridges together (or the one asked for): their peak is not the largest of each's
        sql = Sql(session.get_bind().dialect.name)
        b = table_of("b", [(0, first, after)])
        port_total = port_figures(session, sql, b, first, after, scope.bridge_id, total=True).get((0, 0), {})
    totals_raw = _totals(merged, bridge, port_total)

    work = {x.key: 0 for x in buckets}
    for key, start, end in working_windows(buckets, settings):
        work[key] += int((end - start).total_seconds())
    if bridge:
        capacities = dict(session.execute(sa.select(Bridge.id, Bridge.port_capacity)).all())
        counts: dict[int, int] = {}
        total_rooms = 0
        total_capacity = sum(capacities.values()) if scope.bridge_id is None else capacities[scope.bridge_id]
    else:
        capacities, total_capacity = {}, 0
        counts = site_counts(session, group_by, scope)
        total_rooms = site_counts(session, None, scope).get(0, 0)
    labels = group_labels(session, group_by, {k for k, _ in rows_raw})
    by_key = {x.key: x for x in buckets}
    history = unit_history.load_history(session) if group_by is not GroupBy.bridge else None
    sites_of = _sites_of(session, group_by, {k for k, _ in rows_raw}) if history and group_by is not GroupBy.unit \
        else {}
    rows = []
    for (key, bkey), raw in rows_raw.items():
        bucket = by_key[bkey]
        seconds = int((bucket.end - bucket.start).total_seconds())
        figures = _figures(raw, bridge=bridge, rooms=counts.get(key, 0), work_s=work[bkey],
                           capacity_s=capacities.get(key, 0) * seconds, faults_known=faults is not None)
        group = {"kind": group_by.value, "id": key, **labels.get(key, {"name": str(key)})}
        if history and group_by is GroupBy.unit and history.names.get(key):  # a renamed unit: the name it had at the row's start
            group["name"] = group["unit_name"] = history.unit_name_at(key, group["name"], bucket.start)
        if history and key in sites_of:  # a moved room or renamed unit: the names at the row's start
            _names_then(session, history, group, group_by, sites_of[key], bucket.start)
        rows.append({"group": group, "period_start": bucket.first, "period_end": bucket.after, **figures})
    rows.sort(key=lambda r: (r["group"]["name"], r["group"]["id"], r["period_start"]))
    period_s = int((after - first).total_seconds())
    totals = _figures(totals_raw, bridge=bridge, rooms=total_rooms, work_s=sum(work.values()),
                      capacity_s=total_capacity * period_s, faults_known=faults is not None)
    notes = [] if faults is not None else ["faults: not yet counted (no endpoint status history in this database)"]
    return {"group_by": group_by.value, "period": period.value, "from": from_date, "to": to_date,
            "timezone": settings.timezone, "rows": rows, "totals": totals, "notes": notes}

