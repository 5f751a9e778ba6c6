"""The giấy mời as an editable DOCX (python-docx), A4, in the layout of NĐ 30/2020/NĐ-CP Phụ lục I.
Pure: an :class:`~confsvc.scheduling.invitation.Invitation` in, bytes out.

Built with python-docx directly (no template file to keep in step): the header and the footer are
borderless two-column tables (issuing body | quốc hiệu; nơi nhận | signer), the text is Times New
Roman 13–14 pt as NĐ 30 prescribes, so the office edits and signs it as any of its letters.
"""

from __future__ import annotations

import io
from typing import Any

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from docx.table import _Cell
from docx.text.paragraph import Paragraph

from confsvc.scheduling.invitation import Invitation

FONT = "Times New Roman"


def _run(paragraph: Paragraph, text: str, *, size: float = 13, bold: bool = False, italic: bool = False,
         underline: bool = False) -> None:
    run = paragraph.add_run(text)
    run.font.name, run.font.size = FONT, Pt(size)
    run.bold, run.italic, run.underline = bold, italic, underline
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONT)


def _line(cell: _Cell | None, container: Any, text: str, *, size: float = 13, bold: bool = False,
          italic: bool = False, underline: bool = False, align: int = WD_ALIGN_PARAGRAPH.CENTER,
          first: bool = False, after: float = 0, indent_mm: float = 0) -> Paragraph:
    target = cell if cell is not None else container
    paragraph = target.paragraphs[0] if first else target.add_paragraph()
    paragraph.alignment = align
    fmt = paragraph.paragraph_format
    fmt.space_before, fmt.space_after = Pt(0), Pt(after)
    if indent_mm:
        fmt.first_line_indent = Mm(indent_mm)
    _run(paragraph, text, size=size, bold=bold, italic=italic, underline=underline)
    return paragraph


def _widths(table: Any, *widths: Mm) -> None:
    """Fixed column widths (Word reads the cells', LibreOffice the grid's: both are set)."""
    table.autofit = False
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
        for cell in column.cells:
            cell.width = width


def _borderless(table: Any) -> None:
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        element.set(qn("w:val"), "nil")
        borders.append(element)
    table._tbl.tblPr.append(borders)


def render(invitation: Invitation) -> bytes:
    """The invitation as a DOCX document (one section, A4 portrait)."""
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    style = document.styles["Normal"]
    style.font.name, style.font.size = FONT, Pt(13)

    header = document.add_table(rows=1, cols=2)
    header.alignment = WD_TABLE_ALIGNMENT.CENTER
    _borderless(header)
    _widths(header, Mm(62), Mm(103))  # 165 mm: the text width between NĐ 30's margins
    left, right = header.rows[0].cells
    _line(left, None, invitation.issuer_parent, size=12.5, first=True)
    _line(left, None, invitation.issuer, size=12.5, bold=True, underline=True, after=6)
    _line(left, None, invitation.number_line)
    _line(right, None, invitation.national_title, size=12, bold=True, first=True)
    _line(right, None, invitation.motto, bold=True, underline=True, after=6)
    _line(right, None, invitation.place_date_line, italic=True)

    _line(None, document, "", after=6)
    _line(None, document, invitation.kind, size=14, bold=True)
    _line(None, document, invitation.summary, size=14, bold=True, after=12)

    for text in invitation.body():
        _line(None, document, text, align=WD_ALIGN_PARAGRAPH.JUSTIFY, after=4, indent_mm=10)
    _line(None, document, "", after=6)

    footer = document.add_table(rows=1, cols=2)
    _borderless(footer)
    _widths(footer, Mm(80), Mm(85))
    recipients, signer = footer.rows[0].cells
    _line(recipients, None, "Nơi nhận:", size=12, bold=True, italic=True, align=WD_ALIGN_PARAGRAPH.LEFT,
          first=True)
    for line in invitation.recipients:
        _line(recipients, None, line, size=11, align=WD_ALIGN_PARAGRAPH.LEFT)
    for i, line in enumerate(invitation.signer_title.splitlines() or [""]):
        _line(signer, None, line, bold=True, first=i == 0)
    for _ in range(4):
        _line(signer, None, "")
    _line(signer, None, invitation.signer_name, bold=True)

    core = document.core_properties
    core.title, core.author = f"{invitation.kind} - {invitation.summary}", "confsvc"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
