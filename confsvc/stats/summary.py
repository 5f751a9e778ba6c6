"""Usage summary: each local day's unit statistics, stored once nothing can change them any more.

Why (issue 6 benchmark): the country's yearly report per province reads a year of occurrences,
sites, call records and status history (≈ 300,000 sites) every time; its figures for a past day do
not change unless someone writes about that day. So a *summary day* stores, for every unit (each
one rolled up over its sub-units, exactly as ``usage_report(group_by=unit)`` counts it) and for the
network (key :data:`TOTAL_KEY`), that local day's raw figures: rows of ``usage_days``. Every unit
figure adds up over days (meetings and sites count in the day of the occurrence's start, seconds are
split at local midnights), so a report by day, week or month is the sum of its days' rows: the same
numbers as the live statements (``tests/stats/test_stats_summary.py`` compares the two).

A stored day is used only when all of these hold (:func:`fresh_days`):

* the day is *settled*: its end plus the longest booking window
  (``Settings.max_booking_window_minutes``) has passed, so no figure of it still depends on the
  clock (an open call record counts up to ``min(now, end)``; a fault counts from the status at the
  window's opening);
* no ``usage_dirty`` mark covers the day. The database appends marks (UTC date ranges) in the same
  transaction as every write that can change a day's figures, whatever code, process or plain SQL
  made it: triggers (migration ``20261208_usage_triggers``, the same mechanism that raises the
  calendar feeds' version) on occurrences (time, status, participant list), meetings (status, check
  lead), participants, call records, readiness and endpoint status changes. A range spans the
  changed window's UTC dates with one day of margin either side, so the marks hold for any zone
  (UTC−12…UTC+14);
* its ``epoch`` equals ``usage_epoch.epoch``: moving an endpoint to another room, a room to another
  unit, a unit to another parent, or deleting one of them changes which unit every past site belongs
  to, so it bumps the epoch and invalidates every day at once;
* its ``fingerprint`` equals that of the settings that shape figures (:func:`fingerprint`).

Otherwise the report computes the day with the live statements, and stores it when it is settled
(read-through); ``confsvc stats refresh`` fills a period ahead of time.

Concurrency without locks on the write path: marks are appends (no row is updated, so bookings
never wait on each other here). :func:`store_days` deletes only the marks it read *before* computing
(keeping, as new marks, a read mark's days it did not store)
and records the epoch it read then: a change committed after that read leaves its mark (or a newer
epoch) behind, and the day is computed again next time. Two stores of one day queue on its
``usage_day_state`` row, which each upserts first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import WRITE_OPTION, UTCDateTime, make_session

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
    """A mark: something about the UTC dates ``[first_day, last_day]`` changed after they may have been
    stored. Written only by database triggers (migration ``20261208_usage_triggers``); a range already
    holds one day of margin either side, so it covers every local date of the change in any zone."""

    __tablename__ = "usage_dirty"

    id: int | None = Field(default=None, primary_key=True)
    first_day: date
    last_day: date = Field(index=True)


class UsageEpoch(SQLModel, table=True):
    """One row (``id`` 1): bumped when the unit tree under past sites changes."""

    __tablename__ = "usage_epoch"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    epoch: int = 0


#: The settings that shape a day's figures: zone, late-join minutes, working hours, and the longest
#: meeting and check lead (they bound which occurrences the statements look at).
FIGURE_SETTINGS = ("timezone", "late_join_minutes", "working_hours_start", "working_hours_end",
                   "working_weekday_set", "max_meeting_duration_minutes", "max_check_lead_minutes")


def fingerprint(settings: Settings) -> str:
    """``Settings.fingerprint`` of :data:`FIGURE_SETTINGS` (SHA-256, hex)."""
    return settings.fingerprint(FIGURE_SETTINGS)


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
    ranges: dict[int, tuple[date, date]] = field(default_factory=dict)


def _epoch(session: Session) -> int:
    return session.execute(sa.select(UsageEpoch.epoch).where(UsageEpoch.id == 1)).scalar() or 0


def fresh_days(session: Session, settings: Settings, first: date, after: date) -> Snapshot:
    """The stored days of ``[first, after)`` that are usable (epoch, fingerprint, no mark), the marks of
    the others, and the epoch; settledness is the caller's check (it depends on ``now`` only)."""
    epoch = _epoch(session)
    marks: dict[date, list[int]] = {}
    ranges: dict[int, tuple[date, date]] = {}
    for mark_id, lo, hi in session.execute(sa.select(UsageDirty.id, UsageDirty.first_day, UsageDirty.last_day)
                                           .where(UsageDirty.first_day < after, UsageDirty.last_day >= first)):
        ranges[mark_id] = (lo, hi)
        for n in range(max(lo, first).toordinal(), min(hi, after - timedelta(days=1)).toordinal() + 1):
            marks.setdefault(date.fromordinal(n), []).append(mark_id)
    stored = session.execute(sa.select(UsageDayState.day).where(
        UsageDayState.day >= first, UsageDayState.day < after, UsageDayState.epoch == epoch,
        UsageDayState.fingerprint == fingerprint(settings))).scalars()
    return Snapshot(frozenset(d for d in stored if d not in marks), marks, epoch, ranges)


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
    two stores of a day queue), delete the old rows, insert the rows; then the marks seen in ``snapshot``
    on the stored days are deleted, each replaced by the runs of its days not stored here.
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
            target.execute(sa.delete(UsageDay).where(UsageDay.day == day))
            rows = [{"day": day, "unit_id": key, **{name: values.get(name) or 0 for name in FIGURES}}
                    for key, values in figures[day].items()]
            if rows:
                target.execute(sa.insert(UsageDay), rows)
        _consume_marks(target, snapshot, set(figures))
        if own:
            target.commit()
    finally:
        if own:
            target.close()


def _consume_marks(session: Session, snapshot: Snapshot, stored: set[date]) -> None:
    """Delete the marks ``snapshot`` saw on the ``stored`` days; a mark's days outside ``stored`` stay marked
    (new marks of their runs). Marks written after the snapshot are not touched."""
    seen = sorted({mark_id for day in stored for mark_id in snapshot.marks.get(day, ())})
    remainders: list[dict[str, date]] = []
    for mark_id in seen:
        lo, hi = snapshot.ranges[mark_id]
        run: list[date] = []
        for n in range(lo.toordinal(), hi.toordinal() + 2):
            day = date.fromordinal(n)
            if n <= hi.toordinal() and day not in stored:
                run.append(day)
            elif run:
                remainders.append({"first_day": run[0], "last_day": run[-1]})
                run = []
    for i in range(0, len(seen), 500):
        session.execute(sa.delete(UsageDirty).where(UsageDirty.id.in_(seen[i:i + 500])))
    if remainders:
        session.execute(sa.insert(UsageDirty), remainders)
