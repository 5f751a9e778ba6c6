"""The SQL of the usage statistics: the dialect shim, the bucket tables sent with a statement, and
the ``GROUP BY`` statements that compute every figure (definitions: ``usage.FIGURE_DEFINITIONS``).

Intervals are clipped to each bucket, so a call across midnight or a month's end counts in both
buckets. A *site* is a participating endpoint of an occurrence (``scheduling.participants``: its own
participant list if overridden, else the meeting's); a *cancelled* occurrence is one cancelled on its
own or whose meeting is cancelled. A group's sites are those of its endpoints (a room: its endpoints;
a unit: the endpoints in its rooms and in every sub-unit's rooms; a bridge: the sites of occurrences
of meetings on that bridge).

Query shape (``bench/stats.py``, issue 6): three statements per report (occurrence figures, site
figures, working-hours use; ports instead for bridges). Each computes the period's occurrences and
sites once (``MATERIALIZED`` CTEs; the occurrences' start is bounded on both sides, so the cost
follows the period, not the history), aggregates per endpoint (or room) and bucket, and only then
joins the small member → group table, in which every member also belongs to the totals' key
:data:`TOTAL_KEY`; so the totals come out of the same statements. A site's call records, status
history and readiness are index seeks (``ix_call_records_occurrence_id_endpoint_id_connected_at``,
``ix_endpoint_status_history_endpoint_id_at``, the readiness primary key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session

from confsvc.calls.models import CallRecord
from confsvc.config import Settings
from confsvc.db import UTCDateTime
from confsvc.endpoints import unit_history
from confsvc.endpoints.models import Bridge, Endpoint, Room, RoomUnit, Unit, UnitLevel
from confsvc.scheduling import participants
from confsvc.scheduling.models import Booking, Meeting, MeetingStatus, Occurrence, OccurrenceStatus, ResourceKind
from confsvc.stats import summary
from confsvc.stats.buckets import Bucket, working_windows
from confsvc.stats.schemas import GroupBy


def table_of(name: str, rows: list[tuple[int, datetime, datetime]], lead: timedelta = timedelta(0)) -> Any:
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


class Sql:
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
class Scope:
    """Which units' endpoints count (None = all), the bridge filter, and (group_by=unit) the level of the
    units that get rows (None = every unit)."""

    unit_ids: frozenset[int] | None
    bridge_id: int | None
    unit_level: UnitLevel | None = None


#: The key of the totals in every aggregate (ids are positive): one statement gives rows and totals.
TOTAL_KEY = summary.TOTAL_KEY


def _materialized(select: Any, name: str) -> Any:
    """A CTE computed once per statement (``AS MATERIALIZED``: SQLite ≥ 3.35, PostgreSQL ≥ 12)."""
    return select.cte(name).prefix_with("MATERIALIZED")


def _occurrences(settings: Settings, sql: Sql, first: datetime, after: datetime) -> Any:
    """CTE: occurrences whose window ``[start − check lead, end)`` overlaps ``[first, after)`` (so a call
    record of the technical check before midnight counts in its own day, whichever days a report or the
    summary computes together), with their meeting's ``bridge_id`` and ``check_lead_minutes``,
    ``cancelled`` (0/1), ``overridden`` (own participant list) and ``window_start`` (computed once per
    occurrence, in the stored form: see :meth:`Sql.minus_minutes`).

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


def _sites(scope: Scope, occ: Any, moved: bool = True) -> Any:
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


def _keys_of(group_by: GroupBy, scope: Scope, level: str) -> Any:
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


def _site_statement(settings: Settings, sql: Sql, group_by: GroupBy, scope: Scope, occ: Any, sites: Any,
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


def _occurrence_statement(sql: Sql, group_by: GroupBy, scope: Scope, occ: Any, sites: Any, b: Any) -> Any:
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


def _busy_statement(sql: Sql, group_by: GroupBy, scope: Scope, occ: Any, sites: Any, w: Any) -> Any:
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


def site_counts(session: Session, group_by: GroupBy | None, scope: Scope) -> dict[int, int]:
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


def port_figures(session: Session, sql: Sql, b: Any, first: datetime, after: datetime, bridge_id: int | None,
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


def faults_condition(session: Session) -> Any | None:
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

    def condition(sql: Sql, sk: Any, occ: Any) -> Any:
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


def group_labels(session: Session, group_by: GroupBy, keys: set[int]) -> dict[int, dict[str, Any]]:
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


def collect(session: Session, settings: Settings, group_by: GroupBy, scope: Scope, buckets: list[Bucket],
             first: datetime, after: datetime, now: datetime, faults: Any | None) -> dict[tuple[int, int], dict]:
    """Raw figures per (key, bucket key); key :data:`TOTAL_KEY` holds the whole scope's."""
    sql = Sql(session.get_bind().dialect.name)
    occ = _occurrences(settings, sql, first, after)
    sites = _sites(scope, occ, moved=session.execute(sa.select(RoomUnit.id).limit(1)).first() is not None)
    b = table_of("b", [(x.key, x.start, x.end) for x in buckets])
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
        for (k, bk), values in port_figures(session, sql, b, first, after, scope.bridge_id, total=False).items():
            put(k, bk, **values)
    else:
        w = table_of("w", working_windows(buckets, settings),
                      lead=timedelta(minutes=settings.max_meeting_duration_minutes))
        for k, bk, s in session.execute(_busy_statement(sql, group_by, scope, occ, sites, w)):
            put(k, bk, busy_s=int(s or 0))
    return merged


def summary_total(session: Session, group_by: GroupBy, scope: Scope, unit_id: int | None,
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


def wanted_units(scope: Scope) -> Any:
    """Select of the unit ids that get rows in a group_by=unit report of ``scope``."""
    query = sa.select(Unit.id)
    if scope.unit_ids is not None:
        query = query.where(Unit.id.in_(sorted(scope.unit_ids)))
    if scope.unit_level is not None:
        query = query.where(Unit.level == scope.unit_level)
    return query

