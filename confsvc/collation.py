"""One order for Vietnamese names everywhere (issue 13: "Phường Âu Cơ" sorted after "Xuân Hòa" by code
point, and three different orders were used for the same 148 units).

The order is the Unicode Collation Algorithm's root order (DUCET): "Âu Cơ" sorts with A, "Đ" after "D".
PostgreSQL sorts with its ICU collation ``und-x-icu``; SQLite with the collation ``vi_uca`` that
``confsvc.db`` registers on every connection, backed by ``pyuca`` (the same DUCET order); Python code
sorts rows it has in memory with :func:`sort_key`. Every list and select of units, rooms and endpoints
uses :func:`collated` (SQL) or :func:`sort_key` (Python), nothing else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pyuca import Collator
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

SQLITE_COLLATION = "vi_uca"
POSTGRESQL_COLLATION = "und-x-icu"
_collator = Collator()


@lru_cache(maxsize=100_000)
def sort_key(value: str | None) -> tuple[int, ...]:
    """The collation key of ``value`` (``None`` sorts first, as an empty string)."""
    return tuple(_collator.sort_key(value or ""))


def compare(a: str | None, b: str | None) -> int:
    """-1, 0 or 1: SQLite's collation callback."""
    ka, kb = sort_key(a), sort_key(b)
    return (ka > kb) - (ka < kb)


class _Collated(ColumnElement[Any]):
    inherit_cache = True

    def __init__(self, expression: ColumnElement[Any]) -> None:
        self.collated_element = expression
        self.type = expression.type


@compiles(_Collated)
def _default(element: _Collated, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.collated_element, **kw)


@compiles(_Collated, "postgresql")
def _postgresql(element: _Collated, compiler: Any, **kw: Any) -> str:
    return f'{compiler.process(element.collated_element, **kw)} COLLATE "{POSTGRESQL_COLLATION}"'


@compiles(_Collated, "sqlite")
def _sqlite(element: _Collated, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.collated_element, **kw)} COLLATE {SQLITE_COLLATION}"


def collated(column: Any) -> ColumnElement[Any]:
    """``column`` in the shared order, for ``ORDER BY`` (``COLLATE "und-x-icu"`` / ``COLLATE vi_uca``)."""
    return _Collated(column)
