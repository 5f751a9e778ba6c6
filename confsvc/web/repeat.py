"""The booking component's repeat rule (issue 13): form fields ↔ one RRULE value, and the rule in words.

The form has ``repeat`` (``none``/``daily``/``weekly``/``monthly``, or ``custom`` for a stored rule
the form cannot show, kept as it is from the hidden ``repeat_rule``), ``repeat_byday`` (many, ``MO``…
``SU``, weekly only), ``repeat_count`` or ``repeat_until`` (dd/mm/yyyy, the last local day included).
The RRULE it gives is validated by the server code the API uses (``scheduling.recurrence`` through
``service.book_meeting``/``edit_meeting``/``series.split_series``): nothing is checked twice here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from confsvc.errors import Invalid
from confsvc.scheduling import recurrence
from confsvc.text import natural
from confsvc.web import i18n
from confsvc.web.i18n import N_, _

DATE_FORMAT = "%d/%m/%Y"
FREQS = {"daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY"}
WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LABELS = {"none": N_("Does not repeat"), "daily": N_("Daily"), "weekly": N_("Weekly"), "monthly": N_("Monthly"),
          "custom": N_("Keep the current rule")}


def weekday_names() -> list[str]:
    """Monday…Sunday in the request's language."""
    return list(i18n.VI_WEEKDAYS if i18n.current_language() == "vi" else _EN_WEEKDAYS)


def weekday_options(chosen: Iterable[str]) -> list[dict[str, Any]]:
    """``[{"code": "MO", "name": "Thứ Hai", "checked"}]`` for the weekday boxes."""
    picked = set(chosen)
    return [{"code": code, "name": name, "checked": code in picked}
            for code, name in zip(WEEKDAY_CODES, weekday_names(), strict=True)]


def rrule_for(repeat: str, count: str, until: str, byday: Iterable[str] = (), rule: str = "") -> str | None:
    """``FREQ=DAILY|WEEKLY|MONTHLY`` (weekly: ``BYDAY`` of the boxes ticked, in week order) with
    ``COUNT`` or a local ``UNTIL`` (the end of that day); ``rule`` itself for ``custom``; ``None``
    for a single meeting.

    Raises Invalid (``invalid_form``): no end, a bad count, a bad date.
    """
    if repeat == "custom":
        return rule.strip() or None
    if repeat not in FREQS:
        return None
    text = f"FREQ={FREQS[repeat]}"
    days = [code for code in WEEKDAY_CODES if code in set(byday)]
    if repeat == "weekly" and days:
        text += ";BYDAY=" + ",".join(days)
    if count.strip():
        number = natural(count.strip(), low=1, high=500)
        if number is None:
            raise Invalid(_("Number of occurrences: a whole number from 1 to 500."), code="invalid_form")
        return f"{text};COUNT={number}"
    if until.strip():
        try:
            last = datetime.strptime(until.strip(), DATE_FORMAT)
        except ValueError:
            raise Invalid(_("%(field)s: %(value)s is not a valid date in the form dd/mm/yyyy.")
                          % {"field": _("Repeat until"), "value": until.strip()[:20]}, code="invalid_form") from None
        return f"{text};UNTIL={last:%Y%m%d}T235959"
    raise Invalid(_("A repeating meeting needs a number of occurrences or an end date."), code="invalid_form")


def form_of(rule: str | None, zone: ZoneInfo) -> dict[str, Any]:
    """The form fields showing ``rule`` (a stored, normalised RRULE): ``repeat``, ``repeat_byday``,
    ``repeat_count``, ``repeat_until`` and ``repeat_rule`` (the rule itself, kept for ``custom``)."""
    fields: dict[str, Any] = {"repeat": "none", "repeat_byday": [], "repeat_count": "", "repeat_until": "",
                              "repeat_rule": rule or ""}
    if not rule:
        return fields
    try:
        parts = recurrence.normalise(rule, zone)[1]
    except recurrence.RecurrenceError:
        return {**fields, "repeat": "custom"}
    freq = next((k for k, v in FREQS.items() if v == parts.get("FREQ")), None)
    days = [d for d in parts.get("BYDAY", "").split(",") if d]
    plain = set(parts) <= {"FREQ", "COUNT", "UNTIL", "BYDAY", "INTERVAL", "WKST"} and parts.get("INTERVAL", "1") == "1"
    if freq is None or not plain or (days and (freq != "weekly" or not set(days) <= set(WEEKDAY_CODES))):
        return {**fields, "repeat": "custom"}
    if "UNTIL" in parts and "COUNT" not in parts:
        until = recurrence.normalise(rule, zone)[2]
        assert until is not None
        fields["repeat_until"] = until.astimezone(zone).strftime(DATE_FORMAT)
    if "COUNT" in parts:
        fields["repeat_count"] = parts["COUNT"]
    return {**fields, "repeat": freq, "repeat_byday": days}


def summary(rule: str | None, zone: ZoneInfo, first: date | None = None) -> str:
    """The rule in words, in the request's language: "Hằng tuần vào Thứ Hai, đến hết ngày 28/12/2026",
    "Hằng tuần vào Thứ Hai, Thứ Năm, 10 buổi", "Không lặp lại". ``first`` (the local first day)
    names the weekday of a weekly rule without BYDAY. A rule the server refuses is said so."""
    if not rule:
        return _("Does not repeat")
    try:
        parts = recurrence.normalise(rule, zone)[1]
        until = recurrence.normalise(rule, zone)[2]
    except recurrence.RecurrenceError:
        return _("The repeat rule is not valid.")
    names = dict(zip(WEEKDAY_CODES, weekday_names(), strict=True))
    freq, interval = parts["FREQ"], int(parts.get("INTERVAL", "1"))
    days = [names[d] for d in WEEKDAY_CODES if d in parts.get("BYDAY", "").split(",")]
    if freq == "WEEKLY" and not days and first is not None:
        days = [weekday_names()[first.weekday()]]
    if freq == "DAILY":
        text = _("Daily") if interval == 1 else _("Every %(n)s days") % {"n": interval}
    elif freq == "WEEKLY":
        text = _("Weekly") if interval == 1 else _("Every %(n)s weeks") % {"n": interval}
        if days:
            text = _("%(every)s on %(days)s") % {"every": text, "days": ", ".join(days)}
    elif freq == "MONTHLY":
        text = _("Monthly") if interval == 1 else _("Every %(n)s months") % {"n": interval}
    else:
        text = _("Yearly") if interval == 1 else _("Every %(n)s years") % {"n": interval}
    if "COUNT" in parts:
        return _("%(rule)s, %(n)s occurrences") % {"rule": text, "n": parts["COUNT"]}
    if until is not None:
        return _("%(rule)s, until %(date)s") % {"rule": text, "date": i18n.fmt_date(until.astimezone(zone))}
    return _("%(rule)s, with no end date") % {"rule": text}
