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
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import UTCDateTime
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.scheduling.models import (Booking, Meeting, MeetingParticipant, MeetingStatus, Occurrence,
                                       OccurrenceParticipant, OccurrenceStatus, ResourceKind)
from confsvc.stats.models import CallRecord
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users.models import Role
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
                       "Records lie within [start − check lead, end): the technical check counts.",
    "sites_invited": "Số điểm cầu được mời: sites of the group's occurrences (not cancelled) starting in the bucket.",
    "sites_connected": "Số điểm cầu tham dự: of those, sites with at least one call record (a reconnect is still one "
                       "site).",
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


def make_buckets(first: date, after: date, period: Period, zone: ZoneInfo) -> list[Bucket]:
    """Buckets covering local dates ``[first, after)``; the first and last are clipped to the period.

    Raises Invalid: ``empty_period`` (after ≤ first), ``period_too_long`` (> MAX_PERIOD_DAYS),
    ``too_many_buckets`` (> MAX_BUCKETS).
    """
    if after <= first:
        raise Invalid("`to` must be after `from` (the period is [from, to), local dates)", code="empty_period")
    if (after - first).days > MAX_PERIOD_DAYS:
        raise Invalid(f"a report covers at most {MAX_PERIOD_DAYS} days", code="period_too_long")
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

def _table_of(name: str, rows: list[tuple[int, datetime, datetime]]) -> Any:
    """A ``(b_key, b_start, b_end)`` derived table of ``rows``, as ``VALUES`` (both backends name the
    columns column1…; SQLite accepts no column list on a VALUES alias)."""
    if not rows:
        rows = [(-1, datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))]
    params, values = [], []
    for i, (key, start, end) in enumerate(rows):
        params += [sa.bindparam(f"{name}_k{i}", key, type_=sa.Integer),
                   sa.bindparam(f"{name}_s{i}", start, type_=UTCDateTime),
                   sa.bindparam(f"{name}_e{i}", end, type_=UTCDateTime)]
        values.append(f"(:{name}_k{i}, :{name}_s{i}, :{name}_e{i})")
    text = sa.text(f"SELECT column1 AS b_key, column2 AS b_start, column3 AS b_end "
                   f"FROM (VALUES {', '.join(values)}) AS {name}_values").bindparams(*params)
    return text.columns(sa.column("b_key", sa.Integer), sa.column("b_start", UTCDateTime),
                        sa.column("b_end", UTCDateTime)).subquery(name)


class _Sql:
    """The few expressions whose spelling differs between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def seconds(self, start: Any, end: Any) -> Any:
        """Whole seconds from ``start`` to ``end``."""
        if self.pg:
            return sa.func.round(sa.extract("epoch", end - start))
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400)

    def greatest(self, a: Any, b: Any) -> Any:
        return sa.func.greatest(a, b) if self.pg else sa.func.max(a, b)

    def least(self, a: Any, b: Any) -> Any:
        return sa.func.least(a, b) if self.pg else sa.func.min(a, b)


@dataclass
class _Scope:
    """Which units' endpoints count (None = all), and the bridge filter."""

    unit_ids: frozenset[int] | None
    bridge_id: int | None


def _scope(session: Session, principal: Principal, group_by: GroupBy, unit_id: int | None,
           bridge_id: int | None) -> _Scope:
    """Raises Forbidden (operators: bridges, or a unit outside theirs), NotFound (unit, bridge)."""
    units = principal.unit_ids
    if principal.role is Role.operator and (group_by is GroupBy.bridge or bridge_id is not None):
        raise Forbidden("bridge statistics cover the whole network", code="forbidden_scope")
    if unit_id is not None:
        if session.get(Unit, unit_id) is None:
            raise NotFound(f"unit {unit_id} not found", code="unit_not_found")
        principal.require_unit(unit_id)
        units = expand_units(session, {unit_id})
    if bridge_id is not None and session.get(Bridge, bridge_id) is None:
        raise NotFound(f"bridge {bridge_id} not found", code="bridge_not_found")
    return _Scope(units, bridge_id)


def _occurrences(first: datetime, after: datetime) -> Any:
    """Occurrences overlapping ``[first, after)`` with ``cancelled`` (0/1), ``bridge_id`` and window start."""
    cancelled = sa.case((sa.or_(Occurrence.status == OccurrenceStatus.cancelled,
                                Meeting.status == MeetingStatus.cancelled), 1), else_=0)
    return (sa.select(Occurrence.id, Occurrence.start, Occurrence.end, Meeting.bridge_id,
                      Meeting.check_lead_minutes, cancelled.label("cancelled"))
            .join(Meeting, Meeting.id == Occurrence.meeting_id)
            .where(Occurrence.start < after, Occurrence.end > first).subquery("o"))


def _site_keys(group_by: GroupBy | None, scope: _Scope, occ: Any) -> Any:
    """``(key, occurrence_id, endpoint_id, room_id)``: each site of an occurrence in ``occ`` for each group it
    belongs to (``group_by`` None: one group, key 0, for the totals)."""
    inherited = (sa.select(Occurrence.id.label("occurrence_id"), MeetingParticipant.endpoint_id)
                 .join(MeetingParticipant, MeetingParticipant.meeting_id == Occurrence.meeting_id)
                 .where(Occurrence.participants_overridden.is_(False), Occurrence.id.in_(sa.select(occ.c.id))))
    own = (sa.select(OccurrenceParticipant.occurrence_id, OccurrenceParticipant.endpoint_id)
           .join(Occurrence, Occurrence.id == OccurrenceParticipant.occurrence_id)
           .where(Occurrence.participants_overridden.is_(True), Occurrence.id.in_(sa.select(occ.c.id))))
    sites = sa.union_all(inherited, own).subquery("sites")
    query = (sa.select(sites.c.occurrence_id, sites.c.endpoint_id, Endpoint.room_id)
             .join(Endpoint, Endpoint.id == sites.c.endpoint_id).join(Room, Room.id == Endpoint.room_id))
    if scope.unit_ids is not None:
        query = query.where(Room.unit_id.in_(sorted(scope.unit_ids)))
    if group_by is GroupBy.endpoint:
        key = sites.c.endpoint_id
    elif group_by is GroupBy.room:
        key = Endpoint.room_id
    elif group_by is GroupBy.unit:
        up = _ancestors()
        query = query.join(up, up.c.unit_id == Room.unit_id)
        if scope.unit_ids is not None:
            query = query.where(up.c.ancestor_id.in_(sorted(scope.unit_ids)))
        key = up.c.ancestor_id
    elif group_by is GroupBy.bridge:
        query = query.join(occ, occ.c.id == sites.c.occurrence_id).where(occ.c.bridge_id.is_not(None))
        if scope.bridge_id is not None:
            query = query.where(occ.c.bridge_id == scope.bridge_id)
        key = occ.c.bridge_id
    else:
        key = sa.literal(0, sa.Integer)
        if scope.bridge_id is not None:
            query = query.join(occ, occ.c.id == sites.c.occurrence_id).where(occ.c.bridge_id == scope.bridge_id)
    return query.add_columns(key.label("key")).subquery("sk")


def _ancestors() -> Any:
    """Recursive CTE ``(unit_id, ancestor_id)``: every unit with itself and each ancestor."""
    units = sa.table("units", sa.column("id", sa.Integer), sa.column("parent_id", sa.Integer))
    up = (sa.select(units.c.id.label("unit_id"), units.c.id.label("ancestor_id"), units.c.parent_id)
          .cte("up", recursive=True))
    parent = units.alias("parent")
    return up.union_all(sa.select(up.c.unit_id, parent.c.id, parent.c.parent_id)
                        .where(parent.c.id == up.c.parent_id))


# ---------------------------------------------------------------- the aggregate queries

def _occurrence_figures(session: Session, sql: _Sql, sk: Any, occ: Any, b: Any) -> dict[tuple[int, int], dict]:
    """meetings, cancelled, booked seconds per (key, bucket)."""
    ok = sa.select(sk.c.key, sk.c.occurrence_id).distinct().subquery("ok")
    starts_in = sa.and_(occ.c.start >= b.c.b_start, occ.c.start < b.c.b_end)
    booked = sql.seconds(sql.greatest(occ.c.start, b.c.b_start), sql.least(occ.c.end, b.c.b_end))
    query = (sa.select(ok.c.key, b.c.b_key,
                       sa.func.count(sa.distinct(sa.case((sa.and_(starts_in, occ.c.cancelled == 0), occ.c.id)))),
                       sa.func.count(sa.distinct(sa.case((sa.and_(starts_in, occ.c.cancelled == 1), occ.c.id)))),
                       sa.func.sum(sa.case((occ.c.cancelled == 0, booked), else_=0)))
             .select_from(ok).join(occ, occ.c.id == ok.c.occurrence_id)
             .join(b, sa.and_(occ.c.start < b.c.b_end, occ.c.end > b.c.b_start))
             .group_by(ok.c.key, b.c.b_key))
    return {(k, bk): {"meetings": m, "cancelled": c, "booked_s": int(s or 0)}
            for k, bk, m, c, s in session.execute(query)}


def _site_figures(session: Session, settings: Settings, sql: _Sql, sk: Any, occ: Any, b: Any, first: datetime,
                  after: datetime, faults: Any | None) -> dict[tuple[int, int], dict]:
    """sites invited / connected, late joins and faults per (key, bucket of the occurrence's start)."""
    earliest = first - timedelta(minutes=settings.max_booking_window_minutes)
    rec = (sa.select(CallRecord.occurrence_id, CallRecord.endpoint_id,
                     sa.func.min(CallRecord.connected_at).label("first_at"))
           .where(CallRecord.connected_at >= earliest, CallRecord.connected_at < after)
           .group_by(CallRecord.occurrence_id, CallRecord.endpoint_id).subquery("rec"))
    late = sa.case((sql.seconds(occ.c.start, rec.c.first_at) > settings.late_join_minutes * 60, 1), else_=0)
    columns = [sk.c.key, b.c.b_key, sa.func.count(), sa.func.count(rec.c.first_at), sa.func.sum(late)]
    if faults is not None:
        columns.append(sa.func.sum(sa.case((faults(sql, sk, occ), 1), else_=0)))
    query = (sa.select(*columns).select_from(sk).join(occ, occ.c.id == sk.c.occurrence_id)
             .join(b, sa.and_(occ.c.start >= b.c.b_start, occ.c.start < b.c.b_end))
             .outerjoin(rec, sa.and_(rec.c.occurrence_id == sk.c.occurrence_id,
                                     rec.c.endpoint_id == sk.c.endpoint_id))
             .where(occ.c.cancelled == 0).group_by(sk.c.key, b.c.b_key))
    out = {}
    for row in session.execute(query):
        out[(row[0], row[1])] = {"sites_invited": row[2], "sites_connected": row[3], "late_joins": int(row[4] or 0),
                                 "faults": int(row[5] or 0) if faults is not None else None}
    return out


def _connected_figures(session: Session, settings: Settings, sql: _Sql, sk: Any, occ: Any, b: Any,
                       first: datetime, after: datetime, now: datetime) -> dict[tuple[int, int], dict]:
    """Connected seconds per (key, bucket): each call record clipped to each bucket."""
    earliest = first - timedelta(minutes=settings.max_booking_window_minutes)
    r = sa.select(CallRecord).where(CallRecord.connected_at >= earliest,
                                    CallRecord.connected_at < after).subquery("r")
    now_p = sa.bindparam("stats_now", now, type_=UTCDateTime)
    rec_end = sa.func.coalesce(r.c.disconnected_at, sql.least(occ.c.end, now_p))
    seconds = sql.seconds(sql.greatest(r.c.connected_at, b.c.b_start), sql.least(rec_end, b.c.b_end))
    query = (sa.select(sk.c.key, b.c.b_key, sa.func.sum(seconds))
             .select_from(r).join(sk, sa.and_(sk.c.occurrence_id == r.c.occurrence_id,
                                              sk.c.endpoint_id == r.c.endpoint_id))
             .join(occ, occ.c.id == r.c.occurrence_id)
             .join(b, sa.and_(r.c.connected_at < b.c.b_end, rec_end > b.c.b_start))
             .where(occ.c.cancelled == 0, rec_end > r.c.connected_at)
             .group_by(sk.c.key, b.c.b_key))
    return {(k, bk): {"connected_s": int(s or 0)} for k, bk, s in session.execute(query)}


def _busy_figures(session: Session, sql: _Sql, sk: Any, occ: Any, w: Any, by_endpoint: bool) -> dict:
    """Booked seconds of the group's rooms (or endpoints) inside working hours, per (key, bucket)."""
    unit_col = sk.c.endpoint_id if by_endpoint else sk.c.room_id
    pairs = sa.select(sk.c.key, unit_col.label("site"), sk.c.occurrence_id).distinct().subquery("pairs")
    seconds = sql.seconds(sql.greatest(occ.c.start, w.c.b_start), sql.least(occ.c.end, w.c.b_end))
    query = (sa.select(pairs.c.key, w.c.b_key, sa.func.sum(seconds)).select_from(pairs)
             .join(occ, occ.c.id == pairs.c.occurrence_id)
             .join(w, sa.and_(occ.c.start < w.c.b_end, occ.c.end > w.c.b_start))
             .where(occ.c.cancelled == 0).group_by(pairs.c.key, w.c.b_key))
    return {(k, bk): {"busy_s": int(s or 0)} for k, bk, s in session.execute(query)}


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
        query = (sa.select(up.c.ancestor_id, sa.func.count(Room.id)).join(Room, Room.unit_id == up.c.unit_id)
                 .group_by(up.c.ancestor_id))
        if scope.unit_ids is not None:
            query = query.where(up.c.ancestor_id.in_(sorted(scope.unit_ids)), Room.unit_id.in_(sorted(scope.unit_ids)))
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
        lead_s = occ.c.check_lead_minutes * 60
        during = sa.exists(sa.select(h.c.id).where(
            h.c.endpoint_id == sk.c.endpoint_id, h.c.status == "fault", h.c.at < occ.c.end,
            sql.seconds(h.c.at, occ.c.start) <= lead_s))
        at_open = (sa.select(hb.c.status).where(hb.c.endpoint_id == sk.c.endpoint_id,
                                                sql.seconds(hb.c.at, occ.c.start) > lead_s)
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
    if not keys:
        return {}
    ids = sorted(keys)
    if group_by is GroupBy.endpoint:
        rows = session.execute(sa.select(Endpoint.id, Endpoint.name, Room.name, Unit.name)
                               .join(Room, Room.id == Endpoint.room_id).join(Unit, Unit.id == Room.unit_id)
                               .where(Endpoint.id.in_(ids)))
        return {i: {"name": n, "room_name": r, "unit_name": u} for i, n, r, u in rows}
    if group_by is GroupBy.room:
        rows = session.execute(sa.select(Room.id, Room.name, Unit.name).join(Unit, Unit.id == Room.unit_id)
                               .where(Room.id.in_(ids)))
        return {i: {"name": n, "unit_name": u} for i, n, u in rows}
    if group_by is GroupBy.unit:
        rows = session.execute(sa.select(Unit.id, Unit.name, Unit.code).where(Unit.id.in_(ids)))
        return {i: {"name": n, "code": c} for i, n, c in rows}
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


def _collect(session: Session, settings: Settings, group_by: GroupBy | None, scope: _Scope, buckets: list[Bucket],
             first: datetime, after: datetime, now: datetime, bridge: bool, faults: Any | None) -> dict:
    sql = _Sql(session.get_bind().dialect.name)
    occ = _occurrences(first, after)
    sk = _site_keys(group_by, scope, occ)
    b = _table_of("b", [(x.key, x.start, x.end) for x in buckets])
    merged: dict[tuple[int, int], dict[str, Any]] = {}
    parts = [_occurrence_figures(session, sql, sk, occ, b),
             _site_figures(session, settings, sql, sk, occ, b, first, after, faults),
             _connected_figures(session, settings, sql, sk, occ, b, first, after, now)]
    if bridge:
        parts.append(_port_figures(session, sql, b, first, after, scope.bridge_id, total=group_by is None))
    else:
        w = _table_of("w", working_windows(buckets, settings))
        parts.append(_busy_figures(session, sql, sk, occ, w, by_endpoint=group_by is GroupBy.endpoint))
    for part in parts:
        for k, values in part.items():
            merged.setdefault(k, {}).update(values)
    return merged


def usage_report(session: Session, settings: Settings, principal: Principal, *, group_by: GroupBy, period: Period,
                 from_date: date, to_date: date, unit_id: int | None = None, bridge_id: int | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """Usage statistics over local dates ``[from_date, to_date)`` by ``group_by`` and ``period``.

    Returns ``{"group_by", "period", "from", "to", "timezone", "rows": [...], "totals": {...}, "notes"}``;
    each row ``{"group": {"kind", "id", "name", …}, "period_start", "period_end" (exclusive), figures…}``
    ordered by group name, id and period; ``totals`` are the figures of the whole scope over the whole
    period (each occurrence and site once, so a unit report's totals are not the sum of nested rows).
    Figures: :data:`FIGURE_DEFINITIONS`. ``unit_id`` keeps the unit and its sub-units; operators see
    only their units (and no bridge statistics). Every reader role may ask.

    Raises: Invalid (``empty_period``, ``period_too_long``, ``too_many_buckets``), Forbidden, NotFound.
    """
    now = now or utc_now()
    scope = _scope(session, principal, group_by, unit_id, bridge_id)
    zone = settings.zone
    buckets = make_buckets(from_date, to_date, period, zone)
    first, after = buckets[0].start, buckets[-1].end
    bridge = group_by is GroupBy.bridge
    faults = _faults_condition(session)
    rows_raw = _collect(session, settings, group_by, scope, buckets, first, after, now, bridge, faults)
    total_bucket = [Bucket(0, from_date, to_date, first, after)]
    totals_raw = _collect(session, settings, None, scope, total_bucket, first, after, now, bridge, faults).get(
        (0, 0), {})

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
    rows = []
    for (key, bkey), raw in rows_raw.items():
        bucket = by_key[bkey]
        seconds = int((bucket.end - bucket.start).total_seconds())
        figures = _figures(raw, bridge=bridge, rooms=counts.get(key, 0), work_s=work[bkey],
                           capacity_s=capacities.get(key, 0) * seconds, faults_known=faults is not None)
        rows.append({"group": {"kind": group_by.value, "id": key, **labels.get(key, {"name": str(key)})},
                     "period_start": bucket.first, "period_end": bucket.after, **figures})
    rows.sort(key=lambda r: (r["group"]["name"], r["group"]["id"], r["period_start"]))
    period_s = int((after - first).total_seconds())
    totals = _figures(totals_raw, bridge=bridge, rooms=total_rooms, work_s=sum(work.values()),
                      capacity_s=total_capacity * period_s, faults_known=faults is not None)
    notes = [] if faults is not None else ["faults: not yet counted (no endpoint status history in this database)"]
    return {"group_by": group_by.value, "period": period.value, "from": from_date, "to": to_date,
            "timezone": settings.timezone, "rows": rows, "totals": totals, "notes": notes}
