"""The one place that knows "now", and the helpers that keep times aware and in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def utc_now() -> datetime:
    """Current time, aware, in UTC, truncated to whole microseconds as databases store it."""
    return datetime.now(UTC)


def iso_utc(value: datetime) -> str:
    """``value`` as ISO-8601 in UTC with a ``Z`` (``2026-12-07T01:00:00Z``; microseconds when it has any):
    the wire form of every time in events, live messages and agent answers. ``value`` must be aware."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def require_aware(value: datetime) -> datetime:
    """Return ``value`` converted to UTC.

    Raises:
        ValueError: ``value`` is naive (has no UTC offset).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must carry a UTC offset")
    return value.astimezone(UTC)


def as_utc(value: datetime, local_zone: ZoneInfo) -> datetime:
    """Interpret ``value`` as UTC: aware values are converted, naive ones are read in ``local_zone``.

    SPEC rule 9: input without an offset is local time.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=local_zone)
    return value.astimezone(UTC)


def from_db(value: datetime | None) -> datetime | None:
    """Mark a datetime read from the database as UTC (SQLite returns naive values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
