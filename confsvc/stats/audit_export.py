"""The audit trail (nhật ký hệ thống) as CSV and XLSX, Vietnamese headers, local times.

CSV follows ``stats.export`` (UTF-8 with a BOM so Excel reads Vietnamese, CRLF lines). Text that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return: OWASP "CSV Injection") is neutralised with a leading apostrophe, in both formats; openpyxl
would otherwise store a string starting with ``=`` as a formula.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font

HEADERS = ["Thời điểm", "Người thực hiện", "Tên đăng nhập", "Thao tác", "Mã thao tác", "Mã cuộc họp", "Cuộc họp",
           "Mã buổi họp", "Chi tiết"]
SHEET_TITLE = "Nhật ký hệ thống"
SYSTEM_ACTOR = "Hệ thống (tự động)"
TIME_FORMAT = "%d/%m/%Y %H:%M:%S"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` with a leading apostrophe when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _lines(rows: list[dict[str, Any]], zone: ZoneInfo) -> list[list[Any]]:
    return [[r["at"].astimezone(zone).strftime(TIME_FORMAT), r["user_name"] or SYSTEM_ACTOR, r["username"] or "",
             r["action_label"], r["action"], r["meeting_id"], r["meeting_title"] or "", r["occurrence_id"],
             json.dumps(r["details"], ensure_ascii=False, sort_keys=True) if r["details"] else ""] for r in rows]


def to_csv(rows: list[dict[str, Any]], zone: ZoneInfo) -> bytes:
    """Rows of ``audit_log.list_entries`` as CSV (UTF-8 with BOM), times local to ``zone``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for line in _lines(rows, zone):
        writer.writerow(["" if v is None else neutralise(str(v)) for v in line])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: list[dict[str, Any]], zone: ZoneInfo) -> bytes:
    """Rows as one sheet with a bold header row; ids are numbers, the rest text."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET_TITLE
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for line in _lines(rows, zone):
        sheet.append([neutralise(v) for v in line])
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEFGHI", (20, 24, 16, 22, 20, 10, 40, 10, 60), strict=True):
        sheet.column_dimensions[letter].width = width
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
