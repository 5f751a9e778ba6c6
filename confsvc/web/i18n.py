"""UI language and local formats: gettext catalogs (Babel) and dd/mm/yyyy, 24-hour local times.

Message ids are English; ``confsvc/locale/vi/LC_MESSAGES/messages.po`` holds the Vietnamese text
(GLOSSARY.md words) and its compiled ``messages.mo`` ships inside the package (committed, checked
against the ``.po`` by ``tests/web/test_web_i18n.py``; regenerate with ``scripts/i18n``). English needs
no catalog: a message id is its own English text.

The language of one request lives in a :class:`~contextvars.ContextVar` set by :func:`activate`
just before a template renders (templates are rendered synchronously inside the handler's thread),
so one shared Jinja2 environment serves every language without a race.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.support import NullTranslations, Translations

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"

#: GLOSSARY: "Thứ Hai … Chủ nhật" (CLDR writes "Chủ Nhật"; the province writes a lower-case n).
VI_WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")

_language: ContextVar[str] = ContextVar("confsvc_language", default=DEFAULT_LANGUAGE)


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated later, where it is shown."""
    return message


@lru_cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language`` (English: the message ids themselves)."""
    if language == "en":
        return NullTranslations()
    loaded = Translations.load(str(LOCALE_DIR), [language], DOMAIN)
    if not isinstance(loaded, Translations):
        raise RuntimeError(f"confsvc's {language} catalog is missing from {LOCALE_DIR}")
    return loaded


def normalise_language(value: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    return value if value in LANGUAGES else (default if default in LANGUAGES else DEFAULT_LANGUAGE)


def activate(language: str) -> None:
    """Make ``language`` the current one for this thread's context (the request being rendered)."""
    _language.set(normalise_language(language))


def current_language() -> str:
    return _language.get()


def gettext(message: str) -> str:
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


_ = gettext


# ---------------------------------------------------------------- local formats (GLOSSARY)

def weekday(value: date) -> str:
    """``Thứ Hai`` … ``Chủ nhật`` in Vietnamese; ``Monday`` … in English."""
    if current_language() == "vi":
        return VI_WEEKDAYS[value.weekday()]
    return _babel_date(value, "EEEE", locale="en")


def local(value: datetime, zone: ZoneInfo) -> datetime:
    """An aware datetime in ``zone`` (naive values are taken as UTC, as the database returns them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(zone)


def fmt_date(value: date | datetime, zone: ZoneInfo | None = None) -> str:
    """``02/03/2026`` (dd/mm/yyyy); a datetime is first shown in ``zone``."""
    if isinstance(value, datetime):
        value = local(value, zone or ZoneInfo("UTC")).date()
    return _babel_date(value, "dd/MM/yyyy", locale=current_language())


def fmt_time(value: datetime, zone: ZoneInfo) -> str:
    """``08:00`` (24-hour, local)."""
    return _babel_datetime(local(value, zone), "HH:mm", tzinfo=zone, locale=current_language())


def fmt_datetime(value: datetime, zone: ZoneInfo) -> str:
    """``08:00 Thứ Hai, 02/03/2026`` in Vietnamese, ``08:00 Monday, 02/03/2026`` in English."""
    value = local(value, zone)
    return f"{fmt_time(value, zone)} {weekday(value.date())}, {fmt_date(value.date())}"


def fmt_day(value: date) -> str:
    """``Thứ Hai, 02/03/2026``."""
    return f"{weekday(value)}, {fmt_date(value)}"


def fmt_range(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """``08:00–10:00 Thứ Hai, 02/03/2026`` (the end's date is added when it differs)."""
    start_l, end_l = local(start, zone), local(end, zone)
    text = f"{fmt_time(start_l, zone)}–{fmt_time(end_l, zone)} {fmt_day(start_l.date())}"
    if end_l.date() != start_l.date():
        text += f" → {fmt_day(end_l.date())}"
    return text
