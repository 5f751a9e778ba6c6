"""Recurrence expansion (RFC 5545 §3.3.10 RRULE, §3.8.5.1 EXDATE) with python-dateutil. Pure.

A series expands in its own IANA zone: ``FREQ=WEEKLY;BYDAY=MO`` means Monday on the local
calendar at the local wall-clock time of DTSTART, whatever the UTC date. Results are UTC.

The product honours a fixed subset of RRULE (``SUPPORTED_PARTS``, ``SUPPORTED_FREQS``): meetings
recur by day, week, month or year at the time of day of their first start, so BYHOUR, BYMINUTE,
BYSECOND, BYYEARDAY, BYWEEKNO and the SECONDLY/MINUTELY/HOURLY frequencies are refused, as is any
combination that can never produce an occurrence (``BYMONTH=2;BYMONTHDAY=30``). Refusing them up
front is also what bounds the work of an expansion: dateutil searches a rule that matches nothing
until year 9999 (seconds of CPU for ``FREQ=DAILY``).

``UNTIL`` is stored and published in UTC (``…Z``): RFC 5545 §3.3.10 requires it when DTSTART has a
TZID, which every confsvc DTSTART has. A date-only ``UNTIL=20270225`` means the last local day
inclusive (its 23:59:59 in the series' zone); a local date-time is read in the series' zone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from confsvc.text import ascii_digits, natural

#: A single request never materialises more occurrences than this; also the largest COUNT.
MAX_OCCURRENCES = 1000
#: Largest INTERVAL accepted (every 1000th day/week/month/year is already past any horizon).
MAX_INTERVAL = 1000
SUPPORTED_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
SUPPORTED_PARTS = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST")
#: Parts RFC 5545 §3.3.10 (and RFC 7529) define that the product does not honour.
_RFC_PARTS = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYYEARDAY", "BYWEEKNO", "RSCALE", "SKIP")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"^([+-]?)([0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_SIGNED = re.compile(r"^[+-]?[0-9]{1,3}$")  # ASCII digits only, as ``text.natural`` reads them
_UNTIL = re.compile(r"^([0-9]{8})(?:T([0-9]{6})(Z?))?$")
#: Days of each month in a leap year: whether a BYMONTH/BYMONTHDAY pair can ever exist.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class RecurrenceError(ValueError):
    """The RRULE text is not one this service can expand; ``code`` is the API error code."""

    def __init__(self, message: str, code: str = "invalid_rrule") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ParsedRule:
    """A checked rule. ``text`` is its normalised form (no ``RRULE:`` prefix, upper case, parts in
    the given order, ``UNTIL`` in UTC); ``rule`` is anchored at the aware local DTSTART."""

    rule: rrule
    open_ended: bool
    text: str
    count: int | None = None
    until_utc: datetime | None = None


def _int(value: str, name: str, low: int, high: int, *, signed: bool = False) -> int:
    if (_SIGNED.match(value) is None) if signed else natural(value, high=99_999) is None:
        raise RecurrenceError(f"invalid RRULE: {name}={value} is not an integer")
    number = int(value)
    if not low <= abs(number) <= high or number == 0:
        raise RecurrenceError(f"invalid RRULE: {name} must be {'±' if signed else ''}{low}…{high}")
    return number


def _until_utc(value: str, zone: ZoneInfo) -> datetime:
    """``UNTIL`` as an aware UTC instant: ``…Z`` as is; a local date-time in ``zone``; a date as the
    end (23:59:59) of that local day, so its last day is included."""
    match = _UNTIL.match(value)
    if match is None:
        raise RecurrenceError(f"invalid RRULE: UNTIL={value} is not a DATE or DATE-TIME (RFC 5545 §3.3.4, §3.3.5)")
    day_text, time_text, utc = match.groups()
    try:
        day = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:]))
        at = time(int(time_text[:2]), int(time_text[2:4]), int(time_text[4:])) if time_text else time(23, 59, 59)
    except ValueError:
        raise RecurrenceError(f"invalid RRULE: UNTIL={value} is not a valid date") from None
    if utc:
        return datetime.combine(day, at, UTC)
    try:
        return datetime.combine(day, at, zone).astimezone(UTC)
    except OverflowError:
        raise RecurrenceError(f"invalid RRULE: UNTIL={value} is out of range") from None


def _check_parts(parts: dict[str, str]) -> None:
    """Supported parts and values, and combinations that can produce an occurrence (RFC 5545 §3.3.10)."""
    freq = parts.get("FREQ")
    if freq is None:
        raise RecurrenceError("invalid RRULE: FREQ is required, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10")
    if freq not in (*SUPPORTED_FREQS, "SECONDLY", "MINUTELY", "HOURLY"):
        raise RecurrenceError(f"invalid RRULE: FREQ={freq} is not a frequency (RFC 5545 §3.3.10)")
    if freq not in SUPPORTED_FREQS:
        raise RecurrenceError(f"FREQ={freq} is not supported: meetings recur {', '.join(SUPPORTED_FREQS)}",
                              code="rrule_unsupported")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("invalid RRULE: COUNT and UNTIL cannot both be given (RFC 5545 §3.3.10)")
    if "INTERVAL" in parts:
        _int(parts["INTERVAL"], "INTERVAL", 1, MAX_INTERVAL)
    if "COUNT" in parts:
        count = parts["COUNT"]
        if not ascii_digits(count) or not count.strip("0"):
            raise RecurrenceError(f"invalid RRULE: COUNT={count} is not a positive integer")
        if natural(count, high=MAX_OCCURRENCES) is None:
            raise RecurrenceError(f"a series has at most {MAX_OCCURRENCES} occurrences (COUNT={count})",
                                  code="rrule_too_long")
    if parts.get("WKST", "MO") not in _WEEKDAYS:
        raise RecurrenceError(f"invalid RRULE: WKST={parts['WKST']} is not a weekday (MO…SU)")
    months = [_int(m, "BYMONTH", 1, 12) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else []
    monthdays = ([_int(d, "BYMONTHDAY", 1, 31, signed=True) for d in parts["BYMONTHDAY"].split(",")]
                 if "BYMONTHDAY" in parts else [])
    if monthdays and freq == "WEEKLY":
        raise RecurrenceError("invalid RRULE: BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545 §3.3.10)")
    if monthdays and months and not any(abs(d) <= _MONTH_DAYS[m - 1] for m in months for d in monthdays):
        raise RecurrenceError("the RRULE names days that do not exist in its months (BYMONTH/BYMONTHDAY)",
                              code="no_occurrences")
    plain_days, ordinal_days = 0, 0
    if "BYDAY" in parts:
        for item in parts["BYDAY"].split(","):
            match = _BYDAY.match(item)
            if match is None:
                raise RecurrenceError(f"invalid RRULE: BYDAY value {item!r} (e.g. MO, 1MO, -1FR)")
            if match.group(2) is None:
                plain_days += 1
                continue
            ordinal_days += 1
            if freq not in ("MONTHLY", "YEARLY"):
                raise RecurrenceError("invalid RRULE: BYDAY with an ordinal (1MO, -1FR) needs FREQ=MONTHLY or "
                                      "YEARLY (RFC 5545 §3.3.10)")
            limit = 5 if freq == "MONTHLY" or months else 53
            _int(match.group(1) + match.group(2), "BYDAY ordinal", 1, limit, signed=True)
        if ordinal_days and monthdays:
            raise RecurrenceError("BYDAY with an ordinal cannot be combined with BYMONTHDAY",
                                  code="rrule_unsupported")
    if "BYSETPOS" in parts:
        if freq == "DAILY":
            raise RecurrenceError("BYSETPOS is not supported with FREQ=DAILY", code="rrule_unsupported")
        if not any(k in parts for k in ("BYDAY", "BYMONTHDAY", "BYMONTH")):
            raise RecurrenceError("invalid RRULE: BYSETPOS needs BYDAY, BYMONTHDAY or BYMONTH (RFC 5545 §3.3.10)")
        # The most instances one period can hold: a position past it never matches.
        if freq == "WEEKLY":
            size = max(plain_days, 1)
        else:
            per_month = len(monthdays) if monthdays else (5 * plain_days + ordinal_days if "BYDAY" in parts else 1)
            size = per_month if freq == "MONTHLY" else (
                len(months) * per_month if months else (12 * len(monthdays) if monthdays else
                                                         53 * plain_days + ordinal_days or 1))
        for item in parts["BYSETPOS"].split(","):
            _int(item, "BYSETPOS", 1, size, signed=True)


def _check_reachable(parts: dict[str, str], local_start: datetime) -> None:
    """Refuse an INTERVAL that never lands where the BY parts look (dateutil would search to year 9999):
    every 12th month of January with ``BYMONTH=3``, every 7th day of a Thursday with ``BYDAY=TU``."""
    interval = int(parts.get("INTERVAL", "1"))
    if parts["FREQ"] == "MONTHLY" and "BYMONTH" in parts:
        reachable = {(local_start.month - 1 + k * interval) % 12 + 1 for k in range(12)}
        if reachable.isdisjoint(int(m) for m in parts["BYMONTH"].split(",")):
            raise RecurrenceError("with this INTERVAL the series never reaches its BYMONTH months",
                                  code="no_occurrences")
    if parts["FREQ"] == "DAILY" and "BYDAY" in parts and interval % 7 == 0:
        if _WEEKDAYS[local_start.weekday()] not in {d[-2:] for d in parts["BYDAY"].split(",")}:
            raise RecurrenceError("with this INTERVAL the series never reaches its BYDAY weekdays",
                                  code="no_occurrences")


def normalise(text: str, zone: ZoneInfo) -> tuple[str, dict[str, str], datetime | None]:
    """The rule's normalised text (see ``ParsedRule.text``), its parts, and ``UNTIL`` in UTC.

    Raises:
        RecurrenceError: not one RRULE value; a part that is unknown, repeated, unsupported
            (``code="rrule_unsupported"``, e.g. BYHOUR or FREQ=HOURLY) or malformed; COUNT over
            ``MAX_OCCURRENCES`` (``rrule_too_long``); a rule that can never occur (``no_occurrences``).
    """
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body or "\n" in body or "\r" in body or ":" in body:
        raise RecurrenceError("give one RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10")
    parts: dict[str, str] = {}
    for item in body.upper().split(";"):
        name, eq, value = item.strip().partition("=")
        if not eq or not name or not value:
            raise RecurrenceError(f"invalid RRULE: {item.strip()!r} is not NAME=VALUE")
        if name in parts:
            raise RecurrenceError(f"invalid RRULE: {name} is given twice")
        if name not in SUPPORTED_PARTS and name not in _RFC_PARTS and not name.startswith("X-"):
            raise RecurrenceError(f"invalid RRULE: {name} is not an RRULE part (RFC 5545 §3.3.10)")
        if name not in SUPPORTED_PARTS:
            raise RecurrenceError(f"the RRULE part {name} is not supported (supported: {', '.join(SUPPORTED_PARTS)})",
                                  code="rrule_unsupported")
        parts[name] = value
    _check_parts(parts)
    until = _until_utc(parts["UNTIL"], zone) if "UNTIL" in parts else None
    if until is not None:
        parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%SZ")  # RFC 5545 §3.3.10: UTC when DTSTART has a TZID
    return ";".join(f"{k}={v}" for k, v in parts.items()), parts, until


@functools.lru_cache(maxsize=1024)
def publishable(text: str, timezone: str) -> str:
    """The form of a stored rule that feeds and invites write (``UNTIL`` in UTC, RFC 5545 §3.3.10).

    Rules stored before normalisation (a date-only ``UNTIL``) are rewritten; a rule that cannot be
    normalised is returned as it is."""
    try:
        return normalise(text, ZoneInfo(timezone))[0]
    except RecurrenceError:
        return text


def parse(text: str, dtstart_utc: datetime, zone: ZoneInfo) -> ParsedRule:
    """Parse an RRULE value (with or without the ``RRULE:`` prefix) anchored at ``dtstart_utc``.

    ``UNTIL`` may be UTC (``…Z``, as RFC 5545 asks when DTSTART has a zone), a local date-time
    read in ``zone``, or a date: the last local day, inclusive.

    Raises:
        RecurrenceError: see :func:`normalise`.
    """
    normal, parts, until = normalise(text, zone)
    local_start = dtstart_utc.astimezone(zone)
    _check_reachable(parts, local_start)
    try:
        rule = rrulestr(normal, dtstart=local_start)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise RecurrenceError(f"invalid RRULE: {exc}") from None
    if not isinstance(rule, rrule):
        raise RecurrenceError("give one RRULE value")
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    return ParsedRule(rule=rule, open_ended=count is None and until is None, text=normal, count=count,
                      until_utc=until)


def _starts(parsed: ParsedRule, zone: ZoneInfo) -> Iterator[datetime]:
    """The rule's starts in UTC, in order (dateutil's errors past year 9999 end the iteration)."""
    iterator = iter(parsed.rule)
    while True:
        try:
            value = next(iterator)
        except StopIteration:
            return
        except (ValueError, OverflowError):  # a date past datetime's range: the series ends there
            return
        aware = value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
        yield aware.astimezone(UTC)


def check_limits(parsed: ParsedRule, zone: ZoneInfo, *, latest_start_utc: datetime, horizon_days: int) -> None:
    """A rule that ends must end by ``latest_start_utc`` (now + the booking horizon, SPEC rule 9).

    ``UNTIL`` past it, or a ``COUNT`` whose last occurrence starts after it, is refused. The work is
    bounded: at most ``COUNT`` (≤ ``MAX_OCCURRENCES``) starts are generated.

    Raises:
        RecurrenceError: ``code="rrule_beyond_horizon"``, the message naming the limit.
    """
    limit = f"{horizon_days} days ahead, until {latest_start_utc.astimezone(zone):%d/%m/%Y}"
    if parsed.until_utc is not None and parsed.until_utc > latest_start_utc:
        raise RecurrenceError(f"UNTIL is past the booking horizon ({limit})", code="rrule_beyond_horizon")
    if parsed.count is not None:
        seen = 0
        for start in _starts(parsed, zone):
            seen += 1
            if start > latest_start_utc:
                raise RecurrenceError(f"COUNT={parsed.count} ends past the booking horizon ({limit}): occurrence "
                                      f"{seen} would start on {start.astimezone(zone):%d/%m/%Y}",
                                      code="rrule_beyond_horizon")
            if seen >= parsed.count:
                return
        if seen < parsed.count:
            raise RecurrenceError(f"COUNT={parsed.count} ends past year 9999", code="rrule_beyond_horizon")


def expand(text: str, dtstart_utc: datetime, zone: ZoneInfo, *, until_utc: datetime,
           exdates_utc: frozenset[datetime] = frozenset(), limit: int = MAX_OCCURRENCES) -> list[datetime]:
    """Original starts (UTC) of the series, in order, up to ``until_utc`` (exclusive), minus EXDATEs.

    Raises:
        RecurrenceError: bad RRULE, or more than ``limit`` occurrences (``Settings.max_series_occurrences``).
    """
    parsed = parse(text, dtstart_utc, zone)
    starts: list[datetime] = []
    for start in _starts(parsed, zone):
        if start >= until_utc:
            break
        if start in exdates_utc:
            continue
        starts.append(start)
        if len(starts) > limit:
            raise RecurrenceError(f"the series has more than {limit} occurrences in range", code="rrule_too_long")
    return starts
