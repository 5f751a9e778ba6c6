"""Recurrence expansion (RFC 5545 §3.3.10 RRULE, §3.8.5.1 EXDATE) with python-dateutil. Pure.

A series expands in its own IANA zone: ``FREQ=WEEKLY;BYDAY=MO`` means Monday on the local
calendar at the local wall-clock time of DTSTART, whatever the UTC date. Results are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

#: A single request never materialises more occurrences than this.
MAX_OCCURRENCES = 1000


class RecurrenceError(ValueError):
    """The RRULE text is not one this service can expand."""


@dataclass(frozen=True)
class ParsedRule:
    rule: rrule
    open_ended: bool


def parse(text: str, dtstart_utc: datetime, zone: ZoneInfo) -> ParsedRule:
    """Parse an RRULE value (with or without the ``RRULE:`` prefix) anchored at ``dtstart_utc``.

    ``UNTIL`` may be UTC (``…Z``, as RFC 5545 asks when DTSTART has a zone) or local/date-only,
    read in ``zone``.

    Raises:
        RecurrenceError: unparsable, several rules, or DTSTART/RDATE/EXDATE inside the text.
    """
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body or "\n" in body or ":" in body:
        raise RecurrenceError("give one RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10")
    local_start = dtstart_utc.astimezone(zone)
    try:
        rule = rrulestr(body, dtstart=local_start.replace(tzinfo=None))
    except ValueError as exc:
        if "UTC" not in str(exc):
            raise RecurrenceError(f"invalid RRULE: {exc}") from None
        try:  # UNTIL given in UTC: anchor on the aware local start instead.
            rule = rrulestr(body, dtstart=local_start)
        except ValueError as exc2:
            raise RecurrenceError(f"invalid RRULE: {exc2}") from None
    except (TypeError, KeyError, AttributeError) as exc:
        raise RecurrenceError(f"invalid RRULE: {exc}") from None
    if not isinstance(rule, rrule):
        raise RecurrenceError("give one RRULE value")
    upper = body.upper()
    return ParsedRule(rule=rule, open_ended="COUNT=" not in upper and "UNTIL=" not in upper)


def expand(text: str, dtstart_utc: datetime, zone: ZoneInfo, *, until_utc: datetime,
           exdates_utc: frozenset[datetime] = frozenset(), limit: int = MAX_OCCURRENCES) -> list[datetime]:
    """Original starts (UTC) of the series, in order, up to ``until_utc`` (exclusive), minus EXDATEs.

    Raises:
        RecurrenceError: bad RRULE, or more than ``limit`` occurrences (``Settings.max_series_occurrences``).
    """
    parsed = parse(text, dtstart_utc, zone)
    starts: list[datetime] = []
    for value in parsed.rule:
        aware = value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
        start = aware.astimezone(UTC)
        if start >= until_utc:
            break
        if start in exdates_utc:
            continue
        starts.append(start)
        if len(starts) > limit:
            raise RecurrenceError(f"the series has more than {limit} occurrences in range")
    return starts
