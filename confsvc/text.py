"""Vietnamese text helpers: NFC normalisation and diacritic-insensitive search keys."""

from __future__ import annotations

import unicodedata

_EXTRA_FOLDS = str.maketrans({"đ": "d", "Đ": "d"})


def nfc(value: str) -> str:
    """Unicode NFC, as GLOSSARY requires for stored text; surrounding whitespace removed."""
    return unicodedata.normalize("NFC", value).strip()


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
