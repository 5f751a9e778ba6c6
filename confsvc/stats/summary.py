"""Usage summary: each local day's unit statistics, stored once nothing can change them any more.

Why (issue 6 benchmark): the country's yearly report per province reads a year of occurrences,
sites, call records and status history (≈ 300,000 sites) every time; its figures for a past day do
not change unless someone writes about that day. So a *summary day* stores, for every unit (each
one rolled up over its sub-units, exactly as ``usage_report(group_by=unit)`` counts it) and for the
network (key :data:`TOTAL_KEY`), that local day's raw figures: rows of ``usage_days``. Every unit
figure adds up over days (meetings and sites count in the day of the occurrence's start, seconds are
split at local midnights), so a report by day, week or month is the sum of its days' rows: the same
numbers as the live statements (``tests/test_stats_summary.py`` compares the two).

A stored day is used only when all of these hold (:func:`fresh_days`):

* the day is *settled*: its end plus the longest booking window
  (``Settings.max_booking_window_minutes``) has passed, so no figure of it still depends on the
  clock (an open call record counts up to ``min(now, end)``; a fault counts from the status at the
  window's opening);
* no ``usage_dirty`` row names the day. Every ORM flush that can change a day's figures appends
  such rows in the same transaction (:func:`_after_flush`): occurrences (time, status, participant
  list), meetings (status, check lead), participants, call records, readiness, endpoint status
  changes. Dates are marked with one day of margin either side of the UTC date, so the marks hold
  for any zone (UTC−12…UTC+14);
* its ``epoch`` equals ``usage_epoch.epoch``: moving an endpoint to another room, a room to another
  unit, a unit to another parent, or deleting one of them changes which unit every past site belongs
  to, so it bumps the epoch and invalidates every day at once;
* its ``fingerprint`` equals that of the settings that shape figures (:func:`fingerprint`).

Otherwise the report computes the day with the live statements, and stores it when it is settled
(read-through); ``confsvc stats refresh`` fills a period ahead of time.

Concurrency without locks on the write path: marks are appends (no row is updated, so bookings
never wait on each other here). :func:`store_days` deletes only the marks it read *before* computing
and records the epoch it read then: a change committed after that read leaves its mark (or a newer
epoch) behind, and the day is computed again next time. Two stores of one day queue on its
``usage_day_state`` row, which each upserts first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, attributes
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.util import identity_key
from sqlmodel import Field, Session, SQLModel

from confsvc.calls.models import CallRecord
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import WRITE_OPTION, UTCDateTime, make_session
from confsvc.endpoints.models import Endpoint, EndpointStatusChange, Room, Unit
from confsvc.scheduling import participants
from confsvc.scheduling.models import Meeting, MeetingParticipant, Occurrence, OccurrenceParticipant, SiteReadiness

#: The network's key in ``usage_days.unit_id`` (unit ids are positive); the same as ``usage_queries.TOTAL_KEY``.
TOTAL_KEY = -1

#: The figures a summary row holds, in ``usage_report``'s raw names (seconds, counts).
FIGURES = ("meetings", "cancelled", "booked_s", "sites_invited", "sites_connected", "late_joins", "faults",
           "connected_s", "busy_s")


class UsageDay(SQLModel, table=True):
    """One unit's (or, ``unit_id`` = :data:`TOTAL_KEY`, the network's) figures for one local day.

    No foreign key on ``unit_id``: the network's row has none, and a deleted unit's rows go with the
    epoch bump its deletion causes. Durations in seconds; definitions: ``usage.FIGURE_DEFINITIONS``.
    """

    __tablename__ = "usage_days"

    day: date = Field(primary_key=True)
    unit_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    meetings: int = 0
    cancelled: int = 0
    booked_s: int = Field(default=0, sa_type=sa.BigInteger)
    sites_invited: int = 0
    sites_connected: int = 0
    late_joins: int = 0
    faults: int = 0
    connected_s: int = Field(default=0, sa_type=sa.BigInteger)
    busy_s: int = Field(default=0, sa_type=sa.BigInteger)


class UsageDayState(SQLModel, table=True):
    """A stored day: the epoch and settings fingerprint it was computed under (UTC ``computed_at``)."""

    __tablename__ = "usage_day_state"

    day: date = Field(primary_key=True)
    epoch: int
    fingerprint: str = Field(max_length=64)
    computed_at: datetime = Field(sa_type=UTCDateTime)


class UsageDirty(SQLModel, table=True):
    """A mark: something about local ``day`` changed after it may have been stored."""

    __tablename__ = "usage_dirty"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)


class UsageEpoch(SQLModel, table=True):
    """One row (``id`` 1): bumped when the unit tree under past sites changes."""

    __tablename__ = "usage_epoch"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    epoch: int = 0


def fingerprint(settings: Settings) -> str:
    """SHA-256 (hex) of the settings that shape a day's figures: zone, late-join minutes, working hours, and
    the longest meeting and check lead (they bound which occurrences the statements look at)."""
    parts = (settings.timezone, settings.late_join_minutes, settings.working_hours_start.isoformat(),
             settings.working_hours_end.isoformat(), sorted(settings.working_weekday_set),
             settings.max_meeting_duration_minutes, settings.max_check_lead_minutes)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def settled_before(settings: Settings, now: datetime) -> datetime:
    """UTC instant: a local day ending at or before it is settled (its figures no longer depend on ``now``)."""
    return now - timedelta(minutes=settings.max_booking_window_minutes)


# ---------------------------------------------------------------- reading and storing

@dataclass(frozen=True)
class Snapshot:
    """What :func:`fresh_days` read before a report computes anything: the fresh days, the marks seen
    on the others (ids per day) and the epoch, handed back to :func:`store_days`."""

    fresh: frozenset[date]
    marks: dict[date, list[int]]
    epoch: int


def _epoch(session: Session) -> int:
    return session.execute(sa.select(UsageEpoch.epoch).where(UsageEpoch.id == 1)).scalar() or 0


def fresh_days(session: Session, settings: Settings, first: date, after: date) -> Snapshot:
    """The stored days of ``[first, after)`` that are usable (epoch, fingerprint, no mark), the marks of
    the others, and the epoch; settledness is the caller's check (it depends on ``now`` only)."""
    epoch = _epoch(session)
    marks: dict[date, list[int]] = {}
    for mark_id, day in session.execute(sa.select(UsageDirty.id, UsageDirty.day)
                                        .where(UsageDirty.day >= first, UsageDirty.day < after)):
        marks.setdefault(day, []).append(mark_id)
    stored = session.execute(sa.select(UsageDayState.day).where(
        UsageDayState.day >= first, UsageDayState.day < after, UsageDayState.epoch == epoch,
        UsageDayState.fingerprint == fingerprint(settings))).scalars()
    return Snapshot(frozenset(d for d in stored if d not in marks), marks, epoch)


def read_days(session: Session, days: list[tuple[int, date, date]], keys: list[int]) -> dict[tuple[int, int], dict]:
    """Sums of stored rows per (key, bucket key): ``days`` lists ``(bucket key, first, after)`` runs of
    fresh local days; ``keys`` are the unit ids (and :data:`TOTAL_KEY`) wanted."""
    out: dict[tuple[int, int], dict] = {}
    if not days:
        return out
    bucket = sa.case(*[(sa.and_(UsageDay.day >= a, UsageDay.day < b), k) for k, a, b in days])
    span = sa.or_(*[sa.and_(UsageDay.day >= a, UsageDay.day < b) for _, a, b in days])
    columns = [sa.func.sum(getattr(UsageDay, name)) for name in FIGURES]
    query = (sa.select(UsageDay.unit_id, bucket.label("b_key"), *columns)
             .where(span, UsageDay.unit_id.in_(keys)).group_by(UsageDay.unit_id, bucket))
    for key, b_key, *values in session.execute(query):
        out[(key, b_key)] = {name: int(v or 0) for name, v in zip(FIGURES, values, strict=True)}
    return out


def store_days(session: Session, settings: Settings, snapshot: Snapshot,
               figures: dict[date, dict[int, dict[str, int]]], *, now: datetime | None = None) -> None:
    """Store computed settled days: ``figures[day][unit id or TOTAL_KEY]`` raw figures (every unit with a
    row; a day without activity maps to ``{}``).

    Uses ``session`` when it is a write session (the rows commit or roll back with the caller's work),
    else a write session of its own, committed here. Per day, in date order: upsert the state row (so
    two stores of a day queue), delete the marks seen in ``snapshot`` and the old rows, insert the rows.
    """
    if not figures:
        return
    now = now or utc_now()
    bind = session.get_bind()
    own = not bind.get_execution_options().get(WRITE_OPTION, True)
    target = make_session(bind.execution_options(**{WRITE_OPTION: True})) if own else session
    try:
        insert = postgresql.insert if target.get_bind().dialect.name == "postgresql" else sqlite.insert
        fp = fingerprint(settings)
        for day in sorted(figures):
            state = insert(UsageDayState).values(day=day, epoch=snapshot.epoch, fingerprint=fp, computed_at=now)
            target.execute(state.on_conflict_do_update(
                index_elements=["day"], set_={"epoch": snapshot.epoch, "fingerprint": fp, "computed_at": now}))
            seen = snapshot.marks.get(day)
            if seen:
                target.execute(sa.delete(UsageDirty).where(UsageDirty.id.in_(seen)))
            target.execute(sa.delete(UsageDay).where(UsageDay.day == day))
            rows = [{"day": day, "unit_id": key, **{name: values.get(name) or 0 for name in FIGURES}}
                    for key, values in figures[day].items()]
            if rows:
                target.execute(sa.insert(UsageDay), rows)
        if own:
            target.commit()
    finally:
        if own:
            target.close()


# ---------------------------------------------------------------- marking what changed

@dataclass
class _Marks:
    """What one flush touched: UTC intervals, occurrence and meeting ids, status changes, epoch bump."""

    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)
    occurrences: set[int] = field(default_factory=set)
    meetings: set[int] = field(default_factory=set)
    status: list[tuple[int, datetime]] = field(default_factory=list)
    epoch: bool = False

    def __bool__(self) -> bool:
        return bool(self.intervals or self.occurrences or self.meetings or self.status or self.epoch)


def _old(obj: Any, name: str) -> Any:
    """The value ``name`` had before this flush's change (the current one when unchanged)."""
    history = attributes.get_history(obj, name)
    return history.deleted[0] if history.deleted else getattr(obj, name)


def _changed(obj: Any, *names: str) -> bool:
    return any(attributes.get_history(obj, n).has_changes() for n in names)


def _changes(session: OrmSession) -> _Marks:
    marks = _Marks()
    changed = [(o, "new") for o in session.new] + [(o, "dirty") for o in session.dirty] + \
              [(o, "deleted") for o in session.deleted]
    for obj, how in changed:
        if isinstance(obj, Occurrence):
            lead = _lead_margin(session, obj.meeting_id)
            spans = [(obj.start, obj.end)] + ([(_old(obj, "start"), _old(obj, "end"))] if how == "dirty" else [])
            marks.intervals += [(start - lead, end) for start, end in spans]
        elif isinstance(obj, Meeting):
            if how == "deleted":
                marks.epoch = True
            elif how == "dirty" and _changed(obj, "status", "check_lead_minutes") and obj.id is not None:
                marks.meetings.add(obj.id)
        elif isinstance(obj, MeetingParticipant):
            marks.meetings.add(obj.meeting_id)
        elif isinstance(obj, (OccurrenceParticipant, SiteReadiness)):
            marks.occurrences.add(obj.occurrence_id)
        elif isinstance(obj, CallRecord):
            marks.occurrences.add(obj.occurrence_id)
            if how == "dirty":
                marks.occurrences.add(_old(obj, "occurrence_id"))
        elif isinstance(obj, EndpointStatusChange):
            marks.status.append((obj.endpoint_id, obj.at))
        elif isinstance(obj, Endpoint):
            marks.epoch |= how == "deleted" or (how == "dirty" and _changed(obj, "room_id"))
        elif isinstance(obj, Room):
            marks.epoch |= how == "deleted" or (how == "dirty" and _changed(obj, "unit_id"))
        elif isinstance(obj, Unit):
            marks.epoch |= how == "deleted" or (how == "dirty" and _changed(obj, "parent_id"))
    return marks


def _lead_margin(session: OrmSession, meeting_id: int | None) -> timedelta:
    """The check lead of ``meeting_id`` from the identity map when loaded, else one day (an upper bound
    for marking: a mark of too many days only costs a recomputation)."""
    meeting = session.identity_map.get(identity_key(Meeting, meeting_id)) if meeting_id else None
    return timedelta(minutes=meeting.check_lead_minutes) if meeting is not None else timedelta(days=1)


def _occurrence_windows(conn: sa.Connection, marks: _Marks, now: datetime) -> list[tuple[datetime, datetime]]:
    """``[start − check lead, end)`` of the occurrences the marks name, of every occurrence of the marked
    meetings, and of the occurrences whose faults a status change can alter (the endpoint's occurrences
    not yet ended at the change whose window had opened by ``now``)."""
    o, m = Occurrence.__table__, Meeting.__table__
    base = sa.select(o.c.start, o.c.end, m.c.check_lead_minutes).join(m, m.c.id == o.c.meeting_id)
    rows: list[Any] = []
    if marks.occurrences:
        rows += conn.execute(base.where(o.c.id.in_(sorted(marks.occurrences)))).all()
    if marks.meetings:
        rows += conn.execute(base.where(o.c.meeting_id.in_(sorted(marks.meetings)))).all()
    for endpoint_id, at in marks.status:
        # A week ahead bounds the scan; the exact condition (window opened by now) is checked below.
        when = sa.select(o).where(o.c.end > at, o.c.start <= now + timedelta(days=7)).subquery("o")
        taking_part = participants.endpoint_rows(when, endpoint_ids=endpoint_id).subquery("taking_part")
        candidates = conn.execute(base.where(o.c.id.in_(sa.select(taking_part.c.occurrence_id)))).all()
        rows += [r for r in candidates if _aware(r[0]) - timedelta(minutes=r[2]) <= now]
    return [(_aware(start) - timedelta(minutes=lead), _aware(end)) for start, end, lead in rows]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _days(intervals: Iterable[tuple[datetime, datetime]]) -> set[date]:
    """Every UTC date an interval touches, widened by one day each side: a superset of the local dates it
    touches in any zone between UTC−12 and UTC+14."""
    days: set[date] = set()
    for lo, hi in intervals:
        lo, hi = _aware(lo).astimezone(UTC).date(), _aware(hi).astimezone(UTC).date()
        day = lo - timedelta(days=1)
        while day <= hi + timedelta(days=1):
            days.add(day)
            day += timedelta(days=1)
    return days


def _write_marks(conn: sa.Connection, marks: _Marks) -> None:
    days = _days(marks.intervals + _occurrence_windows(conn, marks, utc_now()))
    if days:
        conn.execute(sa.insert(UsageDirty), [{"day": d} for d in sorted(days)])
    if marks.epoch:
        bump = conn.execute(sa.update(UsageEpoch).where(UsageEpoch.id == 1).values(epoch=UsageEpoch.epoch + 1))
        if bump.rowcount == 0:
            conn.execute(sa.insert(UsageEpoch).values(id=1, epoch=1))


def install() -> None:
    """Mark the usage summary's changed days on every flush and bulk statement of a tracked table
    (listeners on every ORM ``Session``). Idempotent; ``main.install_hooks`` calls it."""
    if not event.contains(OrmSession, "after_flush", _after_flush):
        event.listen(OrmSession, "after_flush", _after_flush)
    if not event.contains(OrmSession, "do_orm_execute", _on_bulk):
        event.listen(OrmSession, "do_orm_execute", _on_bulk)


def _after_flush(session: OrmSession, _context: Any) -> None:
    """Append ``usage_dirty`` marks for what this flush changed (see the module docstring)."""
    marks = _changes(session)
    if marks:
        _write_marks(session.connection(), marks)


#: Bulk statements on these tables name their rows only in the WHERE clause; see :func:`_on_bulk`.
_BULK_COLUMNS = {"meeting_participants": ("meeting_id", "meetings"),
                 "occurrence_participants": ("occurrence_id", "occurrences")}
_TRACKED_TABLES = {model.__tablename__ for model in (Occurrence, Meeting, MeetingParticipant, OccurrenceParticipant,
                                                      SiteReadiness, CallRecord, EndpointStatusChange, Endpoint,
                                                      Room, Unit)}


def _equal_values(clause: Any, column: str) -> list[int] | None:
    """The values ``v`` of every ``<column> = :v`` or ``<column> IN (:v…)`` ANDed into ``clause``; None
    when there is none."""
    found: list[int] = []
    for criterion in sa.sql.visitors.iterate(clause):
        if isinstance(criterion, sa.sql.elements.BinaryExpression) and getattr(criterion.left, "name", None) == column:
            right = criterion.right
            if isinstance(right, sa.sql.elements.BindParameter):
                value = right.effective_value
                found += list(value) if isinstance(value, (list, tuple)) else [value]
    return found or None


def _on_bulk(state: ORMExecuteState) -> None:
    """Bulk ``UPDATE``/``DELETE`` statements bypass flushes. On the participant tables the rows are named by
    ``meeting_id`` / ``occurrence_id`` in the WHERE clause (``scheduling.editing`` replaces a list that
    way); any other bulk change of a tracked table bumps the epoch (everything is computed again)."""
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    if name not in _TRACKED_TABLES:
        return
    marks = _Marks()
    column, kind = _BULK_COLUMNS.get(name, (None, None))
    ids = _equal_values(state.statement.whereclause, column) if column else None
    if ids is None:
        marks.epoch = True
    else:
        getattr(marks, kind).update(ids)
    _write_marks(state.session.connection(), marks)
