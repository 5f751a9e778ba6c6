"""Spreadsheet-safe cells for every export (issue 16 defect 4: formula injection).

A spreadsheet reads a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and, in some programs, a
tab or carriage return) as a formula, so a unit or endpoint name like ``=HYPERLINK(…)`` would run
when an export is opened. Following OWASP's "CSV Injection" advice:

- CSV: such a cell gets a leading single quote (``'=HYPERLINK(…)``, ``'+84 210 3846 123``, ``'-``).
  A cell that already begins with ``'`` gets one more, so the mark is unambiguous and the round trip
  export → import gives back exactly what was stored: :func:`from_csv` removes one leading quote when
  what follows is a formula character or a quote, and leaves any other value alone (``'abc`` stays).
- XLSX: text is written as a string cell (never a formula) with Excel's *quote prefix* style, so it
  also stays text when someone edits the cell; the text itself is not changed.

Every CSV and XLSX export (inventory, usage statistics) goes through this module.
"""

from __future__ import annotations

from typing import Any

#: First characters a spreadsheet may read as the start of a formula (OWASP CSV Injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def needs_quote(value: str) -> bool:
    """Whether ``value`` would be read as a formula (or begins with the protective quote itself)."""
    return value.startswith(FORMULA_STARTS) or value.startswith(QUOTE)


def to_csv(value: Any) -> Any:
    """A CSV cell: strings that could start a formula get a leading ``'``; other values unchanged."""
    if isinstance(value, str) and needs_quote(value):
        return QUOTE + value
    return value


def from_csv(value: str) -> str:
    """Undo :func:`to_csv` on an imported cell: one leading ``'`` is removed when what follows would
    have needed it; any other value is returned unchanged."""
    if value.startswith(QUOTE) and needs_quote(value[1:]):
        return value[1:]
    return value


def protect_xlsx_row(cells: Any) -> None:
    """Make the text cells of an openpyxl row plain strings: ``data_type`` ``s`` (openpyxl turns a
    string starting with ``=`` into a formula) and the quote-prefix style (Excel keeps it text on edit)."""
    for cell in cells:
        if isinstance(cell.value, str):
            cell.data_type = "s"
            if needs_quote(cell.value):
                cell.quotePrefix = True
