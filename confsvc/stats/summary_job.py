"""Filling the usage summary (``stats.summary``): the figures of settled local days computed by the
live statements (``usage_queries``) for the whole network and stored per unit and day.

A report stores up to :data:`SUMMARY_CHUNK_DAYS` missing days itself (``usage``); the background job
(:func:`running`, installed by ``main``'s lifespan) and ``confsvc stats refresh``
(:func:`refresh_summary`) fill the rest.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc import periodic
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.stats import summary
from confsvc.stats.buckets import Bucket, make_buckets, midnight_utc
from confsvc.stats.schemas import GroupBy, Period
from confsvc.stats.usage_queries import Scope, collect, faults_condition

#: Most local days computed by one set of live statements (their bucket table) when filling the summary.
SUMMARY_CHUNK_DAYS = 31


def day_runs(days: list[date]) -> list[list[date]]:
    """Sorted ``days`` cut into runs of consecutive dates of at most :data:`SUMMARY_CHUNK_DAYS`."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] + timedelta(days=1) == day and len(runs[-1]) < SUMMARY_CHUNK_DAYS:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def compute_days(session: Session, settings: Settings, scope: Scope, days: list[date], now: datetime,
                 faults: Any) -> dict[date, dict[int, dict[str, int]]]:
    """Raw unit figures per local day (``{day: {unit id or TOTAL_KEY: figures}}``, every day of ``days``
    present) by the live statements, with one-day buckets, :data:`SUMMARY_CHUNK_DAYS` days at a time."""
    zone = settings.zone
    out: dict[date, dict[int, dict[str, int]]] = {d: {} for d in days}
    for run in day_runs(days):
        buckets = [Bucket(i, d, d + timedelta(days=1), midnight_utc(d, zone), midnight_utc(d + timedelta(days=1), zone))
                   for i, d in enumerate(run)]
        merged = collect(session, settings, GroupBy.unit, scope, buckets, buckets[0].start, buckets[-1].end, now,
                          faults)
        for (key, b_key), raw in merged.items():
            out[run[b_key]][key] = {name: int(raw.get(name) or 0) for name in summary.FIGURES}
    return out


def summary_days(session: Session, settings: Settings, first: date, after: date,
                  now: datetime) -> tuple[summary.Snapshot, set[date], list[date]]:
    """The summary's snapshot of ``[first, after)``, its settled days stored fresh (usable), and its settled
    days not stored fresh (missing, oldest first)."""
    snapshot = summary.fresh_days(session, settings, first, after)
    settled_before = summary.settled_before(settings, now)
    settled = [date.fromordinal(n) for n in range(first.toordinal(), after.toordinal())
               if midnight_utc(date.fromordinal(n + 1), settings.zone) <= settled_before]
    return (snapshot, {d for d in settled if d in snapshot.fresh},
            [d for d in settled if d not in snapshot.fresh])


def fill_days(session: Session, settings: Settings, snapshot: summary.Snapshot, days: list[date], now: datetime,
          faults: Any) -> dict[date, dict[int, dict[str, int]]]:
    """Compute ``days`` (settled) for the whole network and store them; returns their figures."""
    computed = compute_days(session, settings, Scope(None, None), days, now, faults)
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
        _, _, days = summary_days(session, settings, first, after, now)
    if newest_first:
        days.reverse()
    days = days[:limit_days] if limit_days is not None else days
    done: list[date] = []
    for run in day_runs(days):
        with make_session(engine, write=False) as session:
            snapshot = summary.fresh_days(session, settings, run[0], run[-1] + timedelta(days=1))
            fill_days(session, settings, snapshot, run, now, faults_condition(session))
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

