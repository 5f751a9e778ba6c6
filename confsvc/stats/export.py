"""CSV and XLSX renderings of a usage report (báo cáo thống kê sử dụng), Vietnamese headers.

One line per row of the report, named by what it holds (the unit's official code "Mã đơn vị", its name,
its parent's name; never the internal id), then a totals line labelled as counting each meeting and
site once (it is not the sum of the lines: a unit's figures include its sub-units'). Dates are dd/mm/yyyy (GLOSSARY);
"Đến ngày" is the bucket's last day (inclusive), unlike the JSON's exclusive ``period_end``.
Numbers are the JSON's numbers: hours with two decimals, rates as fractions 0…1 (the spreadsheet
formats them as percentages). CSV is UTF-8 with a BOM so Excel reads the Vietnamese text. Names that a
spreadsheet would read as a formula are neutralised (:mod:`confsvc.cells`: a leading ``'`` in CSV, string
cells with the quote prefix in XLSX).
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from openpyxl import Workbook

from confsvc import cells

GROUP_HEADERS = {"endpoint": "Thiết bị đầu cuối", "room": "Điểm cầu", "unit": "Đơn vị hành chính", "bridge": "MCU"}

#: (figure key, Vietnamese header, spreadsheet number format)
FIGURE_COLUMNS = [
    ("meetings", "Số buổi họp", "0"),
    ("cancelled", "Số buổi họp đã hủy", "0"),
    ("booked_hours", "Số giờ đặt lịch", "0.00"),
    ("connected_hours", "Số giờ kết nối", "0.00"),
    ("sites_invited", "Số điểm cầu được mời", "0"),
    ("sites_connected", "Số điểm cầu tham dự", "0"),
    ("attendance_rate", "Tỷ lệ điểm cầu tham dự", "0.00%"),
    ("late_joins", "Số điểm cầu kết nối muộn", "0"),
    ("faults", "Số sự cố", "0"),
    ("room_utilisation", "Hiệu suất sử dụng phòng họp", "0.00%"),
    ("port_peak", "Số cổng MCU sử dụng cao nhất", "0"),
    ("port_hours", "Số giờ cổng MCU", "0.00"),
    ("port_utilisation", "Hiệu suất sử dụng cổng MCU", "0.00%"),
]
#: The totals line is the whole scope counted once (a meeting with 148 communes is one meeting, and a
#: unit's rows include its sub-units'), so it is not the sum of the lines above: its label says so.
TOTALS_LABEL = "Tổng cộng (mỗi buổi họp, điểm cầu tính một lần; không phải tổng các dòng)"
SHEET_TITLE = "Thống kê sử dụng"
UNIT_CODE, UNIT_NAME, PARENT_NAME = "Mã đơn vị", "Đơn vị hành chính", "Đơn vị cấp trên"
#: Per grouping, the columns that say what a line is about: (header, group key, number format).
LABEL_COLUMNS = {
    "unit": [(UNIT_CODE, "unit_code", "@"), (UNIT_NAME, "name", "@"), (PARENT_NAME, "parent_name", "@")],
    "room": [("Điểm cầu", "name", "@"), (UNIT_CODE, "unit_code", "@"), (UNIT_NAME, "unit_name", "@"),
             (PARENT_NAME, "parent_name", "@")],
    "endpoint": [("Thiết bị đầu cuối", "name", "@"), ("Điểm cầu", "room_name", "@"), (UNIT_CODE, "unit_code", "@"),
                 (UNIT_NAME, "unit_name", "@")],
    "bridge": [("MCU", "name", "@")],
}


def headers(group_by: str) -> list[str]:
    return [*(h for h, _, _ in LABEL_COLUMNS[group_by]), "Từ ngày", "Đến ngày", *(h for _, h, _ in FIGURE_COLUMNS)]


def _lines(report: dict[str, Any]) -> list[list[Any]]:
    """Cells per line: dates as ``date`` (the last day inclusive), figures as numbers or None; the totals
    line's label stands in the first label column."""
    columns = LABEL_COLUMNS[report["group_by"]]
    lines = []
    for row in report["rows"]:
        group = row["group"]
        lines.append([*(group.get(key) for _, key, _ in columns), row["period_start"],
                      row["period_end"] - timedelta(days=1), *(row[k] for k, _, _ in FIGURE_COLUMNS)])
    totals = report["totals"]
    lines.append([TOTALS_LABEL, *([None] * (len(columns) - 1)), report["from"], report["to"] - timedelta(days=1),
                  *(totals[k] for k, _, _ in FIGURE_COLUMNS)])
    return lines


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def to_csv(report: dict[str, Any]) -> bytes:
    """The report as CSV (UTF-8 with BOM, comma-separated, dd/mm/yyyy dates)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers(report["group_by"]))
    for line in _lines(report):
        writer.writerow([_text(cells.to_csv(v)) for v in line])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(report: dict[str, Any]) -> bytes:
    """The report as an XLSX workbook: one sheet, header row, one row per line, a bold totals row."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET_TITLE
    sheet.append(headers(report["group_by"]))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    cells.protect_xlsx_row(sheet[1])
    labels = LABEL_COLUMNS[report["group_by"]]
    formats = [*(f for _, _, f in labels), "DD/MM/YYYY", "DD/MM/YYYY", *(f for _, _, f in FIGURE_COLUMNS)]
    lines = _lines(report)
    for line in lines:
        sheet.append(line)
        for cell, number_format in zip(sheet[sheet.max_row], formats, strict=True):
            cell.number_format = number_format
        cells.protect_xlsx_row(sheet[sheet.max_row])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    widths = [12 if key == "unit_code" else 36 for _, key, _ in labels] + [12, 12]
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
