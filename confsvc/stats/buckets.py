"""The buckets of a usage report (pure: values in, values out, no session).

A report covers the local dates ``[from, to)`` in ``Settings.timezone``, cut into buckets of a local
day, ISO week (Monday first) or calendar month (the first and last bucket clipped to the period).
Bucket bounds are local midnights converted to UTC with the zone's rules (``zoneinfo``), so each
bucket is exact in any IANA zone, DST included (Asia/Ho_Chi_Minh has none: its days are 24 h).
The one limitation: a zone whose clocks skip or repeat midnight gets that day's first instant
(``fold=0``). Nothing shifts UTC times by a fixed offset inside SQL.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from confsvc.config import Settings
from confsvc.errors import Invalid
from confsvc.stats.schemas import Period

#: Largest period accepted (days) and largest number of buckets in one report.
MAX_PERIOD_DAYS = 3660


MAX_BUCKETS = 1000


@dataclass(frozen=True)
class Bucket:
    """Local dates ``[first, after)`` and their UTC bounds ``[start, end)``."""

    key: int
    first: date
    after: date
    start: datetime
    end: datetime


def midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) of local date ``day`` in ``zone``."""
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
        buckets.append(Bucket(len(buckets), day, nxt, midnight_utc(day, zone), midnight_utc(nxt, zone)))
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


def bucket_runs(days: list[date], bucket_of: dict[date, int]) -> list[tuple[int, date, date]]:
    """``(bucket key, first, after)`` runs of consecutive ``days`` within one bucket."""
    runs: list[tuple[int, date, date]] = []
    for day in sorted(days):
        key = bucket_of[day]
        if runs and runs[-1][0] == key and runs[-1][2] == day:
            runs[-1] = (key, runs[-1][1], day + timedelta(days=1))
        else:
            runs.append((key, day, day + timedelta(days=1)))
    return runs


def run_buckets(days: list[date], bucket_of: dict[date, int], zone: ZoneInfo) -> list[Bucket]:
    """Runs of consecutive ``days`` within one report bucket, as buckets keyed by that report bucket (several
    runs may share a key: every statement sums per key, and a start lies in one run only)."""
    return [Bucket(key, a, b, midnight_utc(a, zone), midnight_utc(b, zone))
            for key, a, b in bucket_runs(days, bucket_of)]

