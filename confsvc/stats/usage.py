"""Usage statistics (thống kê sử dụng, SPEC "Usage statistics"), computed by SQL aggregates.

A report covers the local dates ``[from, to)`` in ``Settings.timezone``, cut into buckets of a local
day, ISO week (Monday first) or calendar month (the first and last bucket clipped to the period),
and one row per group (endpoint, room, unit, bridge) and bucket with any activity. Every figure is
computed by ``GROUP BY`` queries over a bucket table sent with the query; intervals are clipped to
each bucket, so a call across midnight or a month's end counts in both buckets.

Bucket bounds are local midnights converted to UTC with the zone's rules (``zoneinfo``), so each
bucket is exact in any IANA zone, DST included (Asia/Ho_Chi_Minh has none: its days are 24 h).
The one limitation: a zone whose clocks skip or repeat midnight gets that day's first instant
(``fold=0``). Nothing shifts UTC times by a fixed offset inside SQL.

Definitions (also in the API description, :data:`FIGURE_DEFINITIONS`). A *site* is a participating
endpoint of an occurrence (its own participant list if overridden, else the meeting's); a
*cancelled* occurrence is one cancelled on its own or whose meeting is cancelled. A group's sites are
those of its endpoints (a room: its endpoints; a unit: the endpoints in its rooms and in every
sub-unit's rooms; a bridge: the sites of occurrences of meetings on that bridge).

Query shape (``bench/stats.py``, issue 6): three statements per report (occurrence figures, site
figures, working-hours use; ports instead for bridges). Each computes the period's occurrences and
sites once (``MATERIALIZED`` CTEs; the occurrences' start is bounded on both sides, so the cost
follows the period, not the history), aggregates per endpoint (or room) and bucket, and only then
joins the small member → group table, in which every member also belongs to the totals' key
:data:`TOTAL_KEY`; so the totals come out of the same statements. A site's call records, status
history and readiness are index seeks (``ix_call_records_occurrence_id_endpoint_id_connected_at``,
``ix_endpoint_status_history_endpoint_id_at``, the readiness primary key).

Unit reports (group_by=unit over the whole network or one unit's subtree) read the usage summary
(``stats.summary``) for the local days it holds: the same figures, stored per unit and day once a day
is settled. A report stores up to :data:`SUMMARY_CHUNK_DAYS` missing days itself; a background job
(:func:`running`) and ``confsvc stats refresh`` fill the rest. Other days go through the statements
above. Other groupings always do (a province's quarter by room takes ~0.1 s at national scale).
"""

from __future__ import annotations

import calendar
import dataclasses
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session

from confsvc import periodic
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import UTCDateTime, make_session
from confsvc.endpoints import unit_history
from confsvc.endpoints.models import Bridge, Endpoint, Room, RoomUnit, Unit, UnitLevel
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.scheduling import participants
from confsvc.scheduling.models import Booking, Meeting, MeetingStatus, Occurrence, OccurrenceStatus, ResourceKind
from confsvc.stats import rollup as stats_rollup
from confsvc.stats import summary
from confsvc.stats.models import CallRecord
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users.principal import Principal
from confsvc.users.service import expand_units

#: Largest period accepted (days) and largest number of buckets in one report.
MAX_PERIOD_DAYS = 3660
MAX_BUCKETS = 1000

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


# ---------------------------------------------------------------- buckets (pure)

@dataclass(frozen=True)
class Bucket:
    """Local dates ``[first, after)`` and their UTC bounds ``[start, end)``."""

    key: int
    first: date
    after: date
    start: datetime
    end: datetime


def _midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _next_boundary(day: date, period: Period) -> date:
    if period is Period.day:
        return day + timedelta(days=1)
    if period is Period.week:
        return day + timedelta(days=7 - day.weekday())
    last = calendar.monthrange(day.year, day.month)[1]
    return date(day.year, day.month, last) + timedelta(days=1)


def make_buckets(first: date, after: date, period: Period, zone: ZoneInfo,
                 max_days: int = MAX_PERIOD_DAYS) -> list[Bucket]:
    """Buckets covering local dates ``[first, after)``; the first and last are clipped to the period.

    Raises Invalid: ``empty_period`` (after ≤ first), ``period_too_long`` (> ``max_days``, callers pass
    ``Settings.stats_max_period_days``), ``too_many_buckets`` (> MAX_BUCKETS).
    """
    if after <= first:
        raise Invalid("`to` must be after `from` (the period is [from, to), local dates)", code="empty_period")
    if (after - first).days > max_days:
        raise Invalid(f"a report covers at most {max_days} days", code="period_too_long")
    buckets: list[Bucket] = []
    day = first
    while day < after:
        nxt = min(_next_boundary(day, period), after)
        buckets.append(Bucket(len(buckets), day, nxt, _midnight_utc(day, zone), _midnight_utc(nxt, zone)))
        if len(buckets) > MAX_BUCKETS:
            raise Invalid(f"at most {MAX_BUCKETS} buckets: choose a longer period unit", code="too_many_buckets")
        day = nxt
    return buckets


def working_windows(buckets: list[Bucket], settings: Settings) -> list[tuple[int, datetime, datetime]]:
    """``(bucket key, start, end)`` in UTC for each working day's working hours inside each bucket."""
    zone, weekdays = settings.zone, settings.working_weekday_set
    start_t, end_t = settings.working_hours_start, settings.working_hours_end
    windows = []
    for bucket in buckets:
        day = bucket.first
        while day < bucket.after:
            if day.weekday() in weekdays and start_t < end_t:
                windows.append((bucket.key, datetime.combine(day, start_t, tzinfo=zone).astimezone(UTC),
                                datetime.combine(day, end_t, tzinfo=zone).astimezone(UTC)))
            day += timedelta(days=1)
    return windows


# ---------------------------------------------------------------- SQL building blocks

def _table_of(name: str, rows: list[tuple[int, datetime, datetime]], lead: timedelta = timedelta(0)) -> Any:
    """A ``(b_key, b_start, b_end, b_lo)`` derived table of ``rows``, as ``VALUES`` (both backends name the
    columns column1…; SQLite accepts no column list on a VALUES alias). ``b_lo = b_start − lead``: a
    lower bound on the start of anything that overlaps the row and lasts at most ``lead``, so a join
    can seek an index on the start instead of comparing every pair."""
    if not rows:
        rows = [(-1, datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))]
    params, values = [], []
    for i, (key, start, end) in enumerate(rows):
        params += [sa.bindparam(f"{name}_k{i}", key, type_=sa.Integer),
                   sa.bindparam(f"{name}_s{i}", start, type_=UTCDateTime),
                   sa.bindparam(f"{name}_e{i}", end, type_=UTCDateTime),
                   sa.bindparam(f"{name}_l{i}", start - lead, type_=UTCDateTime)]
        values.append(f"(:{name}_k{i}, :{name}_s{i}, :{name}_e{i}, :{name}_l{i})")
    text = sa.text(f"SELECT column1 AS b_key, column2 AS b_start, column3 AS b_end, column4 AS b_lo "
                   f"FROM (VALUES {', '.join(values)}) AS {name}_values").bindparams(*params)
    return text.columns(sa.column("b_key", sa.Integer), sa.column("b_start", UTCDateTime),
                        sa.column("b_end", UTCDateTime), sa.column("b_lo", UTCDateTime)).subquery(name)


class _Sql:
    """The few expressions whose spelling differs between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def seconds(self, start: Any, end: Any) -> Any:
        """Whole seconds from ``start`` to ``end``."""
        if self.pg:
            return sa.func.round(sa.extract("epoch", end - start))
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400)

    def minus_minutes(self, at: Any, minutes: Any) -> Any:
        """``at − minutes`` as a value comparable with a stored datetime column, so that a comparison
        ``column >= minus_minutes(…)`` can use the column's index (SQLite: the text form it stores,
        ``YYYY-MM-DD HH:MM:SS.ffffff``, exact to the millisecond: ``strftime``'s ``%f`` has three digits,
        three zeros follow, so equal instants compare equal as text)."""
        if self.pg:
            return at - sa.func.make_interval(0, 0, 0, 0, 0, minutes)
        return (sa.func.strftime("%Y-%m-%d %H:%M:%f", at, sa.literal_column("'-'").op("||")(minutes)
                                 .op("||")(sa.literal_column("' minutes'"))).op("||")(sa.literal_column("'000'")))

    def greatest(self, a: Any, b: Any) -> Any:
        return sa.func.greatest(a, b) if self.pg else sa.func.max(a, b)

    def least(self, a: Any, b: Any) -> Any:
        return sa.func.least(a, b) if self.pg else sa.func.min(a, b)


@dataclass
class _Scope:
    """Which units' endpoints count (None = all), the bridge filter, and (group_by=unit) the level of the
    units that get rows (None = every unit)."""

    unit_ids: frozenset[int] | None
    bridge_id: int | None
    unit_level: UnitLevel | None = None


def _scope(session: Session, principal: Principal, group_by: GroupBy, unit_id: int | None,
           bridge_id: int | None, unit_level: UnitLevel | None = None) -> _Scope:
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
    if bridge_id is not None and not principal.in_scope(getattr(session.get(Bridge, bridge_id), "unit_id", -1)):
        raise NotFound(f"bridge {bridge_id} not found", code="bridge_not_found")
    return _Scope(units, bridge_id, unit_level)


#: The key of the totals in every aggregate (ids are positive): one statement gives rows and totals.
TOTAL_KEY = summary.TOTAL_KEY


def _materialized(select: Any, name: str) -> Any:
    """A CTE computed once per statement (``AS MATERIALIZED``: SQLite ≥ 3.35, PostgreSQL ≥ 12)."""
    return select.cte(name).prefix_with("MATERIALIZED")


def _occurrences(settings: Settings, sql: _Sql, first: datetime, after: datetime) -> Any:
    """CTE: occurrences whose window ``[start − check lead, end)`` overlaps ``[first, after)`` (so a call
    record of the technical check before midnight counts in its own day, whichever days a report or the
    summary computes together), with their meeting's ``bridge_id`` and ``check_lead_minutes``,
    ``cancelled`` (0/1), ``overridden`` (own participant list) and ``window_start`` (computed once per
    occurrence, in the stored form: see :meth:`_Sql.minus_minutes`).

    The start is bounded on both sides, by ``first − max_meeting_duration_minutes`` (no occurrence lasts
    longer) and ``after + max_check_lead_minutes``, so the scan of ``ix_occurrences_start_end`` covers
    the period, not all history. Figures by start or by ``[start, end)`` join their buckets on those,
    so an occurrence seen only through its check lead adds nothing else."""
    cancelled = sa.case((sa.or_(Occurrence.status == OccurrenceStatus.cancelled,
                                Meeting.status == MeetingStatus.cancelled), 1), else_=0)
    lowest = first - timedelta(minutes=settings.max_meeting_duration_minutes)
    highest = after + timedelta(minutes=settings.max_check_lead_minutes)
    return _materialized(
        sa.select(Occurrence.id, Occurrence.meeting_id, Occurrence.start, Occurrence.end,
                  Occurrence.participants_overridden.label("overridden"), Meeting.bridge_id,
                  Meeting.check_lead_minutes, cancelled.label("cancelled"),
                  sql.minus_minutes(Occurrence.start, Meeting.check_lead_minutes).label("window_start"))
        .join(Meeting, Meeting.id == Occurrence.meeting_id)
        .where(Occurrence.start < highest, Occurrence.start > lowest, Occurrence.end > first), "o")


def _sites(scope: _Scope, occ: Any, moved: bool = True) -> Any:
    """CTE ``(occurrence_id, endpoint_id, room_id, unit_id)``: every site of an occurrence in ``occ`` whose room
    was in the scope's units at the occurrence's start (``unit_id``: that unit, ``unit_history.room_unit_at``:
    a merge moves rooms, the days before it stay with the former units); a bridge filter applies to the
    occurrence: only that bridge's. ``moved`` False (no room was ever moved by a merge): the rooms' units."""
    union = participants.endpoint_rows(occ, overridden="overridden").subquery("participants")
    unit_at = unit_history.room_unit_at(Endpoint.room_id, Room.unit_id, occ.c.start) if moved else Room.unit_id
    query = (sa.select(union.c.occurrence_id, union.c.endpoint_id, Endpoint.room_id, unit_at.label("unit_id"))
             .join(Endpoint, Endpoint.id == union.c.endpoint_id).join(Room, Room.id == Endpoint.room_id))
    if moved or scope.bridge_id is not None:
        query = query.join(occ, occ.c.id == union.c.occurrence_id)
    if scope.unit_ids is not None:
        query = query.where(unit_at.in_(sorted(scope.unit_ids)))
    if scope.bridge_id is not None:
        query = query.where(occ.c.bridge_id == scope.bridge_id)
    return _materialized(query, "sites")


def _keys_of(group_by: GroupBy, scope: _Scope, level: str) -> Any:
    """``(member, key)``: the groups each endpoint (``level`` "endpoint") or room ("room") belongs to, plus
    :data:`TOTAL_KEY` for every member. A small table (members × depth), joined after aggregating."""
    member, room_col = (Endpoint.id, Endpoint.room_id) if level == "endpoint" else (Room.id, Room.id)
    if level == "unit":  # group_by=unit: members are the sites' units at the time (``_sites``)
        up = _ancestors()
        keyed = sa.select(up.c.unit_id.label("member"), up.c.ancestor_id.label("key"))
        if scope.unit_ids is not None:
            keyed = keyed.where(up.c.ancestor_id.in_(sorted(scope.unit_ids)))
        if scope.unit_level is not None:
            keyed = keyed.where(up.c.ancestor_id.in_(sa.select(Unit.id).where(Unit.level == scope.unit_level)))
        total = sa.select(Unit.id.label("member"), sa.literal(TOTAL_KEY, sa.Integer).label("key"))
        return sa.union_all(keyed, total).subquery("unit_keys")
    if group_by is GroupBy.endpoint:
        keyed = sa.select(member.label("member"), Endpoint.id.label("key"))
    elif group_by is GroupBy.room:
        keyed = (sa.select(member.label("member"), room_col.label("key"))
                 if level == "room" else sa.select(member.label("member"), Endpoint.room_id.label("key")))
    else:
        up = _ancestors()
        keyed = (sa.select(member.label("member"), up.c.ancestor_id.label("key"))
                 .select_from(Endpoint if level == "endpoint" else Room))
        if level == "endpoint":
            keyed = keyed.join(Room, Room.id == Endpoint.room_id)
        keyed = keyed.join(up, up.c.unit_id == Room.unit_id)
        if scope.unit_ids is not None:
            keyed = keyed.where(up.c.ancestor_id.in_(sorted(scope.unit_ids)))
        if scope.unit_level is not None:
            keyed = keyed.where(up.c.ancestor_id.in_(sa.select(Unit.id).where(Unit.level == scope.unit_level)))
    total = sa.select(member.label("member"), sa.literal(TOTAL_KEY, sa.Integer).label("key"))
    return sa.union_all(keyed, total).subquery(f"{level}_keys")


def _bridge_keys(occ_bridge: Any) -> tuple[Any, Any]:
    """For group_by=bridge: a two-row table and the key expression: each occurrence on a bridge counts for
    its bridge and for :data:`TOTAL_KEY`."""
    which = sa.select(sa.literal(0, sa.Integer).label("total")).union_all(
        sa.select(sa.literal(1, sa.Integer))).subquery("which")
    return which, sa.case((which.c.total == 1, TOTAL_KEY), else_=occ_bridge)


def _ancestors() -> Any:
    """Recursive CTE ``(unit_id, ancestor_id)``: every unit with itself and each ancestor."""
    units = sa.table("units", sa.column("id", sa.Integer), sa.column("parent_id", sa.Integer))
    up = (sa.select(units.c.id.label("unit_id"), units.c.id.label("ancestor_id"), units.c.parent_id)
          .cte("up", recursive=True))
    parent = units.alias("parent")
    return up.union_all(sa.select(up.c.unit_id, parent.c.id, parent.c.parent_id)
                        .where(parent.c.id == up.c.parent_id))


# ---------------------------------------------------------------- the aggregate queries

def _site_statement(settings: Settings, sql: _Sql, group_by: GroupBy, scope: _Scope, occ: Any, sites: Any,
                    b: Any, now: datetime, faults: Any | None) -> Any:
    """sites invited / connected, late joins, faults (bucket of the occurrence's start) and connected seconds
    (each call record clipped to each bucket), per (key, bucket), in one statement.

    Aggregated per (endpoint, bridge, bucket) first, so the per-site work (one seek in
    ``ix_call_records_occurrence_id_endpoint_id_connected_at`` per site, the fault lookups) runs once per
    site; only those few rows are joined with the groups. The buckets are joined with ``LEFT JOIN … IS NOT
    NULL``: an inner join let SQLite loop over the buckets outermost and rebuild its automatic index on the
    sites once per bucket (12 × for a year by month: 48 s instead of well under one)."""
    r = CallRecord.__table__
    # A record counts only inside its occurrence's window [start − lead, end): records stay where they
    # were observed when an occurrence is moved later, and must then count nowhere, whatever the period.
    window_start = occ.c.window_start
    first_at = (sa.select(sa.func.min(r.c.connected_at))
                .where(r.c.occurrence_id == sites.c.occurrence_id, r.c.endpoint_id == sites.c.endpoint_id,
                       r.c.connected_at < occ.c.end, sa.func.coalesce(r.c.disconnected_at, occ.c.end) > window_start)
                .scalar_subquery())
    fault = sa.case((faults(sql, sites, occ), 1), else_=0) if faults is not None else sa.literal(0, sa.Integer)
    now_p = sa.bindparam("stats_now", now, type_=UTCDateTime)
    facts = (sa.select(sites.c.endpoint_id, sites.c.unit_id, occ.c.bridge_id, b.c.b_key, occ.c.start,
                       first_at.label("first_at"), fault.label("fault"))
             .select_from(sites).join(occ, occ.c.id == sites.c.occurrence_id)
             .outerjoin(b, sa.and_(occ.c.start >= b.c.b_start, occ.c.start < b.c.b_end))
             # Only occurrences that have started by the report's now: a future booking has no attendance
             # yet and must not count as 0 % (issue 13).
             .where(occ.c.cancelled == 0, b.c.b_key.is_not(None), occ.c.start <= now_p).subquery("facts"))
    late = sa.case((sql.seconds(facts.c.start, facts.c.first_at) > settings.late_join_minutes * 60, 1), else_=0)
    zero = sa.literal(0, sa.Integer)
    per_site = (sa.select(facts.c.endpoint_id, facts.c.unit_id, facts.c.bridge_id, facts.c.b_key,
                          sa.func.count().label("invited"),
                          sa.func.count(facts.c.first_at).label("connected"), sa.func.sum(late).label("late"),
                          sa.func.sum(facts.c.fault).label("faults"), zero.label("connected_s"))
                .group_by(facts.c.endpoint_id, facts.c.unit_id, facts.c.bridge_id, facts.c.b_key))
    rec_start = sql.greatest(r.c.connected_at, window_start)
    rec_end = sql.least(sa.func.coalesce(r.c.disconnected_at, now_p), occ.c.end)
    seconds = sql.seconds(sql.greatest(rec_start, b.c.b_start), sql.least(rec_end, b.c.b_end))
    per_record = (sa.select(sites.c.endpoint_id, sites.c.unit_id, occ.c.bridge_id, b.c.b_key, zero, zero, zero, zero,
                            sa.func.sum(seconds))
                  .select_from(sites).join(occ, occ.c.id == sites.c.occurrence_id)
                  .join(r, sa.and_(r.c.occurrence_id == sites.c.occurrence_id, r.c.endpoint_id == sites.c.endpoint_id))
                  .outerjoin(b, sa.and_(rec_start < b.c.b_end, rec_end > b.c.b_start))
                  .where(occ.c.cancelled == 0, rec_end > rec_start, b.c.b_key.is_not(None))
                  .group_by(sites.c.endpoint_id, sites.c.unit_id, occ.c.bridge_id, b.c.b_key))
    per = sa.union_all(per_site, per_record).subquery("per_endpoint")
    sums = [sa.func.sum(c) for c in (per.c.invited, per.c.connected, per.c.late, per.c.faults, per.c.connected_s)]
    if group_by is GroupBy.bridge:
        which, key = _bridge_keys(per.c.bridge_id)
        return (sa.select(key, per.c.b_key, *sums).select_from(per).join(which, sa.true())
                .where(per.c.bridge_id.is_not(None)).group_by(key, per.c.b_key))
    unit_level = group_by is GroupBy.unit
    keys = _keys_of(group_by, scope, "unit" if unit_level else "endpoint")
    return (sa.select(keys.c.key, per.c.b_key, *sums).select_from(per)
            .join(keys, keys.c.member == (per.c.unit_id if unit_level else per.c.endpoint_id))
            .group_by(keys.c.key, per.c.b_key))


def _occurrence_statement(sql: _Sql, group_by: GroupBy, scope: _Scope, occ: Any, sites: Any, b: Any) -> Any:
    """meetings, cancelled (bucket of the start) and booked seconds (clipped to each bucket) per (key, bucket):
    each occurrence once per group, from the distinct (group, occurrence) pairs."""
    if group_by is GroupBy.bridge:
        which, key = _bridge_keys(occ.c.bridge_id)
        pairs = (sa.select(key.label("key"), occ.c.id.label("occurrence_id")).select_from(occ).join(which, sa.true())
                 .where(occ.c.bridge_id.is_not(None), occ.c.id.in_(sa.select(sites.c.occurrence_id))))
    else:
        level = {GroupBy.endpoint: "endpoint", GroupBy.unit: "unit"}.get(group_by, "room")
        member = {"endpoint": sites.c.endpoint_id, "unit": sites.c.unit_id}.get(level, sites.c.room_id)
        members = sa.select(member.label("member"), sites.c.occurrence_id).distinct().subquery("members")
        keys = _keys_of(group_by, scope, level)
        pairs = (sa.select(keys.c.key, members.c.occurrence_id).select_from(members)
                 .join(keys, keys.c.member == members.c.member).distinct())
    ok = pairs.subquery("ok")
    starts_in = sa.and_(occ.c.start >= b.c.b_start, occ.c.start < b.c.b_end)
    booked = sql.seconds(sql.greatest(occ.c.start, b.c.b_start), sql.least(occ.c.end, b.c.b_end))
    return (sa.select(ok.c.key, b.c.b_key,
                      sa.func.sum(sa.case((sa.and_(starts_in, occ.c.cancelled == 0), 1), else_=0)),
                      sa.func.sum(sa.case((sa.and_(starts_in, occ.c.cancelled == 1), 1), else_=0)),
                      sa.func.sum(sa.case((occ.c.cancelled == 0, booked), else_=0)))
            .select_from(ok).join(occ, occ.c.id == ok.c.occurrence_id)
            .outerjoin(b, sa.and_(occ.c.start < b.c.b_end, occ.c.end > b.c.b_start))
            .where(b.c.b_key.is_not(None)).group_by(ok.c.key, b.c.b_key))


def _busy_statement(sql: _Sql, group_by: GroupBy, scope: _Scope, occ: Any, sites: Any, w: Any) -> Any:
    """Booked seconds of the group's rooms (endpoints for group_by=endpoint) inside working hours, per
    (key, bucket): per occurrence and working window first (each window seeks ``ix_occurrences_start_end``
    from ``w.b_lo``), then per room, then rolled up to the groups (the figure adds up over rooms)."""
    o = Occurrence.__table__
    seconds = sql.seconds(sql.greatest(o.c.start, w.c.b_start), sql.least(o.c.end, w.c.b_end))
    per_occ = (sa.select(o.c.id.label("occurrence_id"), w.c.b_key, sa.func.sum(seconds).label("s")).select_from(w)
               .join(o, sa.and_(o.c.start < w.c.b_end, o.c.start >= w.c.b_lo, o.c.end > w.c.b_start))
               .group_by(o.c.id, w.c.b_key).subquery("per_occ"))
    level = {GroupBy.endpoint: "endpoint", GroupBy.unit: "unit"}.get(group_by, "room")
    member = sites.c.endpoint_id if level == "endpoint" else sites.c.room_id
    # group_by=unit: per (room, its unit then), so each room's booked time counts once in its unit.
    members = (sa.select(member.label("room"), sites.c.unit_id.label("member") if level == "unit" else member.label("member"),
                         sites.c.occurrence_id).distinct()
               .select_from(sites).join(occ, occ.c.id == sites.c.occurrence_id).where(occ.c.cancelled == 0)
               .subquery("members"))
    per_member = (sa.select(members.c.member, per_occ.c.b_key, sa.func.sum(per_occ.c.s).label("s"))
                  .select_from(members).join(per_occ, per_occ.c.occurrence_id == members.c.occurrence_id)
                  .group_by(members.c.member, per_occ.c.b_key).subquery("per_member"))
    keys = _keys_of(group_by, scope, level)
    return (sa.select(keys.c.key, per_member.c.b_key, sa.func.sum(per_member.c.s)).select_from(per_member)
            .join(keys, keys.c.member == per_member.c.member).group_by(keys.c.key, per_member.c.b_key))


def _site_counts(session: Session, group_by: GroupBy | None, scope: _Scope) -> dict[int, int]:
    """Rooms per group (endpoints for group_by=endpoint): the utilisation denominator's multiplier."""
    if group_by is GroupBy.endpoint:
        query = sa.select(Endpoint.id, sa.literal(1)).join(Room, Room.id == Endpoint.room_id)
        if scope.unit_ids is not None:
            query = query.where(Room.unit_id.in_(sorted(scope.unit_ids)))
    elif group_by is GroupBy.room:
        query = sa.select(Room.id, sa.literal(1))
        if scope.unit_ids is not None:
            query = query.where(Room.unit_id.in_(sorted(scope.unit_ids)))
    elif group_by is GroupBy.unit:
        up = _ancestors()
        # A former unit (merged) counts the rooms it had: the rooms' current units and their former ones.
        rooms = sa.union(sa.select(Room.id.label("room_id"), Room.unit_id),
                         sa.select(RoomUnit.room_id, RoomUnit.unit_id)).subquery("room_units_ever")
        query = (sa.select(up.c.ancestor_id, sa.func.count(sa.distinct(rooms.c.room_id)))
                 .join(rooms, rooms.c.unit_id == up.c.unit_id).group_by(up.c.ancestor_id))
        if scope.unit_ids is not None:
            query = query.where(up.c.ancestor_id.in_(sorted(scope.unit_ids)), rooms.c.unit_id.in_(sorted(scope.unit_ids)))
        if scope.unit_level is not None:
            query = query.where(up.c.ancestor_id.in_(sa.select(Unit.id).where(Unit.level == scope.unit_level)))
    else:
        query = sa.select(sa.literal(0), sa.func.count(Room.id))
        if scope.unit_ids is not None:
            query = query.where(Room.unit_id.in_(sorted(scope.unit_ids)))
    return {k: n for k, n in session.execute(query)}


def _port_figures(session: Session, sql: _Sql, b: Any, first: datetime, after: datetime, bridge_id: int | None,
                  total: bool) -> dict[tuple[int, int], dict]:
    """Booked port-seconds and peak ports per (bridge, bucket) (``total``: all bridges as key 0)."""
    key = sa.literal(0, sa.Integer) if total else Booking.resource_id
    bb = (sa.select(key.label("key"), Booking.window_start.label("ws"), Booking.window_end.label("we"),
                    Booking.ports)
          .where(Booking.resource_kind == ResourceKind.bridge, Booking.occurrence_id.is_not(None),
                 Booking.window_start < after, Booking.window_end > first))
    if bridge_id is not None:
        bb = bb.where(Booking.resource_id == bridge_id)
    bb = bb.subquery("bb")
    seconds = sql.seconds(sql.greatest(bb.c.ws, b.c.b_start), sql.least(bb.c.we, b.c.b_end))
    overlap = sa.and_(bb.c.ws < b.c.b_end, bb.c.we > b.c.b_start)
    hours = (sa.select(bb.c.key, b.c.b_key, sa.func.sum(bb.c.ports * seconds)).select_from(bb).join(b, overlap)
             .group_by(bb.c.key, b.c.b_key))
    # The peak is reached at a booking's start or at the bucket's start: sum the ports covering each such point.
    points = (sa.select(bb.c.key, b.c.b_key, sql.greatest(bb.c.ws, b.c.b_start).label("p")).select_from(bb)
              .join(b, overlap).distinct().subquery("points"))
    other = bb.alias("other")
    load = (sa.select(points.c.key, points.c.b_key, sa.func.sum(other.c.ports).label("ports")).select_from(points)
            .join(other, sa.and_(other.c.key == points.c.key, other.c.ws <= points.c.p, other.c.we > points.c.p))
            .group_by(points.c.key, points.c.b_key, points.c.p).subquery("load"))
    peak = sa.select(load.c.key, load.c.b_key, sa.func.max(load.c.ports)).group_by(load.c.key, load.c.b_key)
    out: dict[tuple[int, int], dict] = {}
    for k, bk, s in session.execute(hours):
        out.setdefault((k, bk), {})["port_s"] = int(s or 0)
    for k, bk, p in session.execute(peak):
        out.setdefault((k, bk), {})["port_peak"] = int(p or 0)
    return out


def _faults_condition(session: Session) -> Any | None:
    """``f(sql, sk, occ)`` → SQL condition "the site had a fault", or None without a status history table.

    Reads the status history and readiness tables by name, so this module does not depend on the
    live-status code that owns them. A fault: a change to ``fault`` during ``[start − lead, end)``, the
    endpoint already in ``fault`` when the window opened, or the room's readiness ``problem``.
    """
    names = set(sa.inspect(session.connection()).get_table_names())
    if "endpoint_status_history" not in names:
        return None
    history = sa.table("endpoint_status_history", sa.column("id", sa.Integer), sa.column("endpoint_id", sa.Integer),
                       sa.column("status", sa.String), sa.column("at", UTCDateTime))
    readiness = (sa.table("readiness", sa.column("occurrence_id", sa.Integer), sa.column("room_id", sa.Integer),
                          sa.column("state", sa.String)) if "readiness" in names else None)

    def condition(sql: _Sql, sk: Any, occ: Any) -> Any:
        h, hb = history.alias("h"), history.alias("hb")
        # Sargable bounds: one index range (endpoint_id, at) per site, however long the history.
        window_start = occ.c.window_start
        during = sa.exists(sa.select(h.c.id).where(
            h.c.endpoint_id == sk.c.endpoint_id, h.c.at >= window_start, h.c.at < occ.c.end, h.c.status == "fault"))
        at_open = (sa.select(hb.c.status).where(hb.c.endpoint_id == sk.c.endpoint_id, hb.c.at < window_start)
                   .order_by(hb.c.at.desc(), hb.c.id.desc()).limit(1).scalar_subquery())
        parts = [during, at_open == "fault"]
        if readiness is not None:
            parts.append(sa.exists(sa.select(readiness.c.room_id).where(
                readiness.c.occurrence_id == sk.c.occurrence_id, readiness.c.room_id == sk.c.room_id,
                readiness.c.state == "problem")))
        return sa.or_(*parts)

    return condition


# ---------------------------------------------------------------- the report

def _labels(session: Session, group_by: GroupBy, keys: set[int]) -> dict[int, dict[str, Any]]:
    """What each row is about: its name, and for units, rooms and endpoints the unit's official code
    (``unit_code``; ``code`` too for a unit), the unit's name and its parent unit's name (``parent_name``)."""
    if not keys:
        return {}
    ids = sorted(keys)
    parent = aliased(Unit)
    unit_cols = (Unit.code, Unit.name, parent.name)
    if group_by is GroupBy.endpoint:
        rows = session.execute(sa.select(Endpoint.id, Endpoint.name, Room.name, *unit_cols)
                               .join(Room, Room.id == Endpoint.room_id).join(Unit, Unit.id == Room.unit_id)
                               .outerjoin(parent, parent.id == Unit.parent_id).where(Endpoint.id.in_(ids)))
        return {i: {"name": n, "room_name": r, "unit_code": c, "unit_name": u, "parent_name": p}
                for i, n, r, c, u, p in rows}
    if group_by is GroupBy.room:
        rows = session.execute(sa.select(Room.id, Room.name, *unit_cols).join(Unit, Unit.id == Room.unit_id)
                               .outerjoin(parent, parent.id == Unit.parent_id).where(Room.id.in_(ids)))
        return {i: {"name": n, "unit_code": c, "unit_name": u, "parent_name": p} for i, n, c, u, p in rows}
    if group_by is GroupBy.unit:
        rows = session.execute(sa.select(Unit.id, *unit_cols).outerjoin(parent, parent.id == Unit.parent_id)
                               .where(Unit.id.in_(ids)))
        return {i: {"name": u, "code": c, "unit_code": c, "unit_name": u, "parent_name": p} for i, c, u, p in rows}
    rows = session.execute(sa.select(Bridge.id, Bridge.name).where(Bridge.id.in_(ids)))
    return {i: {"name": n} for i, n in rows}


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


def _collect(session: Session, settings: Settings, group_by: GroupBy, scope: _Scope, buckets: list[Bucket],
             first: datetime, after: datetime, now: datetime, faults: Any | None) -> dict[tuple[int, int], dict]:
    """Raw figures per (key, bucket key); key :data:`TOTAL_KEY` holds the whole scope's."""
    sql = _Sql(session.get_bind().dialect.name)
    occ = _occurrences(settings, sql, first, after)
    sites = _sites(scope, occ, moved=session.execute(sa.select(RoomUnit.id).limit(1)).first() is not None)
    b = _table_of("b", [(x.key, x.start, x.end) for x in buckets])
    merged: dict[tuple[int, int], dict[str, Any]] = {}

    def put(k: int, bk: int, **values: Any) -> None:
        merged.setdefault((k, bk), {}).update(values)

    for k, bk, m, c, s in session.execute(_occurrence_statement(sql, group_by, scope, occ, sites, b)):
        put(k, bk, meetings=int(m or 0), cancelled=int(c or 0), booked_s=int(s or 0))
    for k, bk, invited, connected, late, n_faults, conn_s in session.execute(
            _site_statement(settings, sql, group_by, scope, occ, sites, b, now, faults)):
        put(k, bk, sites_invited=int(invited or 0), sites_connected=int(connected or 0), late_joins=int(late or 0),
            faults=int(n_faults or 0) if faults is not None else None, connected_s=int(conn_s or 0))
    if group_by is GroupBy.bridge:
        for (k, bk), values in _port_figures(session, sql, b, first, after, scope.bridge_id, total=False).items():
            put(k, bk, **values)
    else:
        w = _table_of("w", working_windows(buckets, settings),
                      lead=timedelta(minutes=settings.max_meeting_duration_minutes))
        for k, bk, s in session.execute(_busy_statement(sql, group_by, scope, occ, sites, w)):
            put(k, bk, busy_s=int(s or 0))
    return merged


def _summary_total(session: Session, group_by: GroupBy, scope: _Scope, unit_id: int | None,
                   faults: Any | None) -> int | None:
    """The stored key whose rows are the report's totals when the summary (``stats.summary``) can answer:
    group_by=unit without a bridge filter over the whole network (:data:`TOTAL_KEY`) or over one unit's
    subtree (that unit); None otherwise (an operator's several units: their totals count a meeting
    shared by two of them once, which no sum of stored rows can)."""
    if group_by is not GroupBy.unit or scope.bridge_id is not None or faults is None:
        return None
    if scope.unit_ids is None:
        return TOTAL_KEY
    if unit_id is not None:
        return unit_id
    ids = sorted(scope.unit_ids)
    roots = session.execute(sa.select(Unit.id).where(Unit.id.in_(ids), sa.or_(
        Unit.parent_id.is_(None), Unit.parent_id.not_in(ids)))).scalars().all()
    return roots[0] if len(roots) == 1 else None


def _wanted_units(scope: _Scope) -> Any:
    """Select of the unit ids that get rows in a group_by=unit report of ``scope``."""
    query = sa.select(Unit.id)
    if scope.unit_ids is not None:
        query = query.where(Unit.id.in_(sorted(scope.unit_ids)))
    if scope.unit_level is not None:
        query = query.where(Unit.level == scope.unit_level)
    return query


#: Most local days computed by one set of live statements (their bucket table) when filling the summary.
SUMMARY_CHUNK_DAYS = 31


def _day_runs(days: list[date]) -> list[list[date]]:
    """Sorted ``days`` cut into runs of consecutive dates of at most :data:`SUMMARY_CHUNK_DAYS`."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] + timedelta(days=1) == day and len(runs[-1]) < SUMMARY_CHUNK_DAYS:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def compute_days(session: Session, settings: Settings, scope: _Scope, days: list[date], now: datetime,
                 faults: Any) -> dict[date, dict[int, dict[str, int]]]:
    """Raw unit figures per local day (``{day: {unit id or TOTAL_KEY: figures}}``, every day of ``days``
    present) by the live statements, with one-day buckets, :data:`SUMMARY_CHUNK_DAYS` days at a time."""
    zone = settings.zone
    out: dict[date, dict[int, dict[str, int]]] = {d: {} for d in days}
    for run in _day_runs(days):
        buckets = [Bucket(i, d, d + timedelta(days=1), _midnight_utc(d, zone), _midnight_utc(d + timedelta(days=1), zone))
                   for i, d in enumerate(run)]
        merged = _collect(session, settings, GroupBy.unit, scope, buckets, buckets[0].start, buckets[-1].end, now,
                          faults)
        for (key, b_key), raw in merged.items():
            out[run[b_key]][key] = {name: int(raw.get(name) or 0) for name in summary.FIGURES}
    return out


def _summary_days(session: Session, settings: Settings, first: date, after: date,
                  now: datetime) -> tuple[summary.Snapshot, set[date], list[date]]:
    """The summary's snapshot of ``[first, after)``, its settled days stored fresh (usable), and its settled
    days not stored fresh (missing, oldest first)."""
    snapshot = summary.fresh_days(session, settings, first, after)
    settled_before = summary.settled_before(settings, now)
    settled = [date.fromordinal(n) for n in range(first.toordinal(), after.toordinal())
               if _midnight_utc(date.fromordinal(n + 1), settings.zone) <= settled_before]
    return (snapshot, {d for d in settled if d in snapshot.fresh},
            [d for d in settled if d not in snapshot.fresh])


def _fill(session: Session, settings: Settings, snapshot: summary.Snapshot, days: list[date], now: datetime,
          faults: Any) -> dict[date, dict[int, dict[str, int]]]:
    """Compute ``days`` (settled) for the whole network and store them; returns their figures."""
    computed = compute_days(session, settings, _Scope(None, None), days, now, faults)
    summary.store_days(session, settings, snapshot, computed, now=now)
    return computed


def refresh_summary(engine: Engine, settings: Settings, first: date, after: date, *, now: datetime | None = None,
                    limit_days: int | None = None, newest_first: bool = False) -> list[date]:
    """Compute and store the settled local days of ``[first, after)`` that the usage summary lacks or holds
    stale, :data:`SUMMARY_CHUNK_DAYS` at a time, each run in a read session of its own and stored in a
    short write transaction (so SQLite writers are not held off for long). ``limit_days`` stops after
    that many days (``newest_first``: the most recent ones). Returns the days stored.

    Used by ``confsvc stats refresh`` and by the background job (:func:`running`); a report fills up to
    :data:`SUMMARY_CHUNK_DAYS` missing days itself. Raises Invalid (``empty_period``, ``period_too_long``).
    """
    now = now or utc_now()
    make_buckets(first, after, Period.month, settings.zone, settings.stats_max_period_days)  # a report's limits
    with make_session(engine, write=False) as session:
        _, _, days = _summary_days(session, settings, first, after, now)
    if newest_first:
        days.reverse()
    days = days[:limit_days] if limit_days is not None else days
    done: list[date] = []
    for run in _day_runs(days):
        with make_session(engine, write=False) as session:
            snapshot = summary.fresh_days(session, settings, run[0], run[-1] + timedelta(days=1))
            _fill(session, settings, snapshot, run, now, _faults_condition(session))
        done += run
    return sorted(done)


def refresh_due(engine: Engine, settings: Settings, now: datetime | None = None) -> list[date]:
    """The background job's tick: store at most :data:`SUMMARY_CHUNK_DAYS` missing settled days among the last
    ``stats_summary_days`` local days, the most recent first (bounded work per tick: about a second at
    national scale). Returns the days stored."""
    now = now or utc_now()
    today = now.astimezone(settings.zone).date()
    return refresh_summary(engine, settings, today - timedelta(days=settings.stats_summary_days), today, now=now,
                           limit_days=SUMMARY_CHUNK_DAYS, newest_first=True)


def running(engine: Engine, settings: Settings) -> AbstractAsyncContextManager[None]:
    """For ``main``'s lifespan: :func:`refresh_due` on the scheduler's cadence (``scheduler_interval_seconds``;
    off when that is 0 or ``stats_summary_days`` is 0), in a worker thread."""
    interval = settings.scheduler_interval_seconds if settings.stats_summary_days else 0
    return periodic.running("usage-summary", lambda: refresh_due(engine, settings), interval)


def _run_buckets(days: list[date], bucket_of: dict[date, int], zone: ZoneInfo) -> list[Bucket]:
    """Runs of consecutive ``days`` within one report bucket, as buckets keyed by that report bucket (several
    runs may share a key: every statement sums per key, and a start lies in one run only)."""
    return [Bucket(key, a, b, _midnight_utc(a, zone), _midnight_utc(b, zone))
            for key, a, b in _bucket_runs(days, bucket_of)]


def _collect_by_days(session: Session, settings: Settings, scope: _Scope, total_unit: int, buckets: list[Bucket],
                     now: datetime, faults: Any) -> dict[tuple[int, int], dict]:
    """:func:`_collect` for group_by=unit with the usage summary: stored days are read; up to
    :data:`SUMMARY_CHUNK_DAYS` settled days not stored are computed for the whole network and stored;
    other days (unsettled, or too many missing: the background job or ``confsvc stats refresh`` fills
    those) are computed by the live statements for ``scope``, over runs of days. The rows of
    ``total_unit`` are also the totals (:data:`TOTAL_KEY`)."""
    zone = settings.zone
    bucket_of: dict[date, int] = {}
    for bucket in buckets:
        for n in range(bucket.first.toordinal(), bucket.after.toordinal()):
            bucket_of[date.fromordinal(n)] = bucket.key
    snapshot, usable, missing = _summary_days(session, settings, buckets[0].first, buckets[-1].after, now)
    fill = missing if len(missing) <= SUMMARY_CHUNK_DAYS else []
    computed_here = usable | set(fill)
    live = [d for d in bucket_of if d not in computed_here]

    merged: dict[tuple[int, int], dict[str, int]] = {}

    def add(key: int, b_key: int, raw: dict[str, Any]) -> None:
        into = merged.setdefault((key, b_key), {})
        for name in summary.FIGURES:
            into[name] = into.get(name, 0) + int(raw.get(name) or 0)

    wanted = set(session.execute(_wanted_units(scope)).scalars())

    def add_stored(key: int, b_key: int, raw: dict[str, int]) -> None:
        if key in wanted:
            add(key, b_key, raw)
        if key == total_unit:
            add(TOTAL_KEY, b_key, raw)

    stored = _bucket_runs(sorted(usable), bucket_of)
    for (key, b_key), raw in summary.read_days(session, stored, sorted(wanted | {total_unit})).items():
        add_stored(key, b_key, raw)
    if fill:
        for day, rows in _fill(session, settings, snapshot, fill, now, faults).items():
            for key, raw in rows.items():
                add_stored(key, bucket_of[day], raw)
    if live:
        runs = _run_buckets(live, bucket_of, zone)
        first, after = min(r.start for r in runs), max(r.end for r in runs)
        for (key, b_key), raw in _collect(session, settings, GroupBy.unit, scope, runs, first, after, now,
                                          faults).items():
            add(key, b_key, raw)
    return merged


def _bucket_runs(days: list[date], bucket_of: dict[date, int]) -> list[tuple[int, date, date]]:
    """``(bucket key, first, after)`` runs of consecutive ``days`` within one bucket."""
    runs: list[tuple[int, date, date]] = []
    for day in sorted(days):
        key = bucket_of[day]
        if runs and runs[-1][0] == key and runs[-1][2] == day:
            runs[-1] = (key, runs[-1][1], day + timedelta(days=1))
        else:
            runs.append((key, day, day + timedelta(days=1)))
    return runs


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
    units keep their rows, under the name each unit had at the row's period start; ``rollup`` (group_by=unit)
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
    faults = _faults_condition(session)
    total_unit = _summary_total(session, group_by, scope, unit_id, faults)
    if final and scope.unit_ids is not None:
        total_unit = None  # the successor's stored rows are not the totals of it and its former units
    if total_unit is not None:
        merged = _collect_by_days(session, settings, scope, total_unit, buckets, now, faults)
    else:
        merged = _collect(session, settings, group_by, scope, buckets, first, after, now, faults)
    rows_raw = {k: v for k, v in merged.items() if k[0] != TOTAL_KEY}
    if final:
        rows_raw = stats_rollup.fold(rows_raw, final)
    port_total: dict[str, int] = {}
    if bridge:  # all bridges together (or the one asked for): their peak is not the largest of each's
        sql = _Sql(session.get_bind().dialect.name)
        b = _table_of("b", [(0, first, after)])
        port_total = _port_figures(session, sql, b, first, after, scope.bridge_id, total=True).get((0, 0), {})
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
        counts = _site_counts(session, group_by, scope)
        total_rooms = _site_counts(session, None, scope).get(0, 0)
    labels = _labels(session, group_by, {k for k, _ in rows_raw})
    by_key = {x.key: x for x in buckets}
    history = unit_history.load_history(session) if group_by is GroupBy.unit else None
    rows = []
    for (key, bkey), raw in rows_raw.items():
        bucket = by_key[bkey]
        seconds = int((bucket.end - bucket.start).total_seconds())
        figures = _figures(raw, bridge=bridge, rooms=counts.get(key, 0), work_s=work[bkey],
                           capacity_s=capacities.get(key, 0) * seconds, faults_known=faults is not None)
        group = {"kind": group_by.value, "id": key, **labels.get(key, {"name": str(key)})}
        if history and history.names.get(key):  # a renamed unit: the name it had at the row's start
            group["name"] = group["unit_name"] = history.unit_name_at(key, group["name"], bucket.start)
        rows.append({"group": group, "period_start": bucket.first, "period_end": bucket.after, **figures})
    rows.sort(key=lambda r: (r["group"]["name"], r["group"]["id"], r["period_start"]))
    period_s = int((after - first).total_seconds())
    totals = _figures(totals_raw, bridge=bridge, rooms=total_rooms, work_s=sum(work.values()),
                      capacity_s=total_capacity * period_s, faults_known=faults is not None)
    notes = [] if faults is not None else ["faults: not yet counted (no endpoint status history in this database)"]
    return {"group_by": group_by.value, "period": period.value, "from": from_date, "to": to_date,
            "timezone": settings.timezone, "rows": rows, "totals": totals, "notes": notes}
