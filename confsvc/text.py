"""Vietnamese text helpers: NFC normalisation and diacritic-insensitive search keys; numbers typed as text."""

from __future__ import annotations

import unicodedata

_EXTRA_FOLDS = str.maketrans({"đ": "d", "Đ": "d"})


#: C0/C1 control characters except tab and line feed: PostgreSQL refuses NUL in text, and none of
#: them belongs in a name or a title.
_CONTROLS = {c: None for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)]}


def nfc(value: str) -> str:
    """Unicode NFC, as GLOSSARY requires for stored text; CRLF/CR → LF, other control characters
    dropped, surrounding whitespace removed."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROLS)
    return unicodedata.normalize("NFC", value).strip()


def one_line(value: str) -> str:
    """:func:`nfc`, with every run of whitespace (newlines included) collapsed to one space: for
    names and titles, which are shown on one line everywhere (iCal SUMMARY, tables, room displays)."""
    return " ".join(nfc(value).split())


def fold(value: str) -> str:
    """Lower-case ASCII form of ``value``: diacritics removed, ``đ`` → ``d``.

    ``fold("Phường Việt Trì") == "phuong viet tri"``.
    """
    decomposed = unicodedata.normalize("NFD", value.translate(_EXTRA_FOLDS))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.lower().split())


def search_key(*parts: str | None) -> str:
    """The text a search column holds: each part lower-cased as written and folded.

    A query with diacritics matches the first form, one without matches the folded form,
    so "Việt Trì", "viet tri" and "VIỆT" all find "Phường Việt Trì".
    """
    words = [p for p in parts if p]
    exact = " ".join(nfc(p).lower() for p in words)
    return f"{exact} | {fold(' '.join(words))}"


def search_pattern(query: str) -> str:
    """A LIKE pattern for :func:`search_key` columns (``%`` and ``_`` in the query are literal)."""
    q = nfc(query).lower()
    if q.isascii():
        q = fold(q)
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def ascii_digits(raw: str) -> bool:
    """Whether ``raw`` is one or more ASCII digits ``0``–``9`` and nothing else. ``str.isdigit`` is
    also true of ``"²"`` and other digits ``int`` refuses (a ValueError, a 500 where it was trusted),
    and ``int`` reads other scripts' digits (``"٣"``) that no form or header of ours sends."""
    return raw.isascii() and raw.isdigit()


def natural(raw: str, *, low: int = 0, high: int = 2**63 - 1) -> int | None:
    """``raw`` as an integer from ``low`` to ``high``, written in ASCII digits only (:func:`ascii_digits`,
    no sign, no surrounding whitespace: stripping is the caller's), else None. A string longer than
    ``high`` has digits is refused before ``int`` reads it (thousands of digits cost it time, and past
    4,300 it raises). The one reader of a number typed in a form, query string or rule part: a web form
    answers None with its page and a message, never a 500."""
    if not ascii_digits(raw) or len(raw) > len(str(high)):
        return None
    value = int(raw)
    return value if low <= value <= high else None
