"""The giấy mời as PDF (fpdf2), A4, in the layout of NĐ 30/2020/NĐ-CP Phụ lục I. Pure: an
:class:`~confsvc.scheduling.invitation.Invitation` in, bytes out.

Fonts are embedded (subset) TrueType: Liberation Serif 2 (metric-compatible with Times New Roman,
which NĐ 30 prescribes; Debian ``fonts-liberation2``), else DejaVu Serif (``fonts-dejavu-core``).
A family is used only if it has every Vietnamese letter (Liberation 1.x, Debian ``fonts-liberation``,
lacks most of them).
Margins follow Phụ lục I: top and bottom 20 mm, left 30 mm, right 15 mm.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from confsvc.scheduling.invitation import Invitation

FONT_FAMILIES = (
    # (directory candidates, regular, bold, italic, bold italic)
    (("/usr/share/fonts/truetype/liberation2", "/usr/share/fonts/truetype/liberation"),
     "LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf", "LiberationSerif-Italic.ttf",
     "LiberationSerif-BoldItalic.ttf"),
    (("/usr/share/fonts/truetype/dejavu",),
     "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf"),
)
FAMILY = "Serif"
LEFT, RIGHT, TOP = 30.0, 15.0, 20.0
HEADER_LEFT_WIDTH = 68.0  # the issuing body's column; the rest is quốc hiệu's


class FontsMissing(RuntimeError):
    """No serif TrueType font with Vietnamese glyphs is installed (install ``fonts-liberation``)."""


#: Letters of Vietnamese beyond Latin-1 (each tone on each vowel, đ, ơ, ư): a font must have them all.
VIETNAMESE = ("ăâđêôơưĂÂĐÊÔƠƯ"
              "ạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"
              "ẠẢẤẦẨẪẬẮẰẲẴẶẸẺẼẾỀỂỄỆỈỊỌỎỐỒỔỖỘỚỜỞỠỢỤỦỨỪỬỮỰỲỴỶỸ")


def _covers_vietnamese(path: Path) -> bool:
    from fontTools.ttLib import TTFont  # fpdf2's own dependency

    with TTFont(path, lazy=True) as font:
        cmap = font.getBestCmap()
    return all(ord(ch) in cmap for ch in VIETNAMESE)


@cache
def font_files() -> dict[str, Path]:
    """``{"": regular, "B": bold, "I": italic, "BI": bold italic}`` of the first family installed
    whose every style covers Vietnamese.

    Raises FontsMissing.
    """
    for directories, *files in FONT_FAMILIES:
        for directory in directories:
            paths = [Path(directory) / f for f in files]
            if all(p.is_file() for p in paths) and all(_covers_vietnamese(p) for p in paths):
                return dict(zip(("", "B", "I", "BI"), paths, strict=True))
    raise FontsMissing("no serif font with Vietnamese letters: apt-get install fonts-liberation2")


def _centered(pdf: FPDF, x: float, width: float, text: str, style: str, size: float, *,
              underline_ratio: float | None = None) -> None:
    """One centered line in the column ``[x, x + width)``; optionally a rule under it
    (``underline_ratio`` of the text's width, as NĐ 30 draws under the issuer and the motto)."""
    pdf.set_font(FAMILY, style, size)
    pdf.set_x(x)
    pdf.multi_cell(width, size * 0.45, text, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    if underline_ratio:
        rule = min(pdf.get_string_width(text), width) * underline_ratio
        y = pdf.get_y() + 0.6
        pdf.set_line_width(0.3)
        pdf.line(x + (width - rule) / 2, y, x + (width + rule) / 2, y)
        pdf.set_y(y + 1.0)


def render(invitation: Invitation) -> bytes:
    """The invitation as a one-or-more-page A4 PDF with embedded fonts. Raises FontsMissing."""
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.set_auto_page_break(True, margin=20)
    for style, path in font_files().items():
        pdf.add_font(FAMILY, style, str(path))
    pdf.set_title(f"{invitation.kind} - {invitation.summary}")
    pdf.set_creator("confsvc")
    pdf.add_page()
    usable = pdf.w - LEFT - RIGHT
    right_x, right_width = LEFT + HEADER_LEFT_WIDTH - 8, usable - HEADER_LEFT_WIDTH + 8
    left_x = LEFT - 12  # the issuer's column may start in the left margin, as printed letters do

    # Header, left column: cơ quan chủ quản, cơ quan ban hành (bold, ruled), số/ký hiệu.
    pdf.set_y(TOP)
    _centered(pdf, left_x, HEADER_LEFT_WIDTH, invitation.issuer_parent, "", 12.5)
    _centered(pdf, left_x, HEADER_LEFT_WIDTH, invitation.issuer, "B", 12.5, underline_ratio=0.5)
    pdf.ln(2.5)
    _centered(pdf, left_x, HEADER_LEFT_WIDTH, invitation.number_line, "", 13)
    left_bottom = pdf.get_y()

    # Header, right column: quốc hiệu (bold caps), tiêu ngữ (bold, ruled its full length), place and date.
    pdf.set_y(TOP)
    _centered(pdf, right_x, right_width, invitation.national_title, "B", 12)
    _centered(pdf, right_x, right_width, invitation.motto, "B", 13, underline_ratio=1.0)
    pdf.ln(2.5)
    _centered(pdf, right_x, right_width, invitation.place_date_line, "I", 13)
    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)

    # Title and trích yếu: bold, centered.
    _centered(pdf, LEFT, usable, invitation.kind, "B", 14)
    pdf.ln(1)
    _centered(pdf, LEFT, usable, invitation.summary, "B", 14)
    pdf.ln(6)

    # Body: justified 13 pt, first lines indented 10 mm.
    pdf.set_font(FAMILY, "", 13)
    with pdf.text_columns(text_align="J", line_height=1.35, l_margin=LEFT, r_margin=RIGHT) as body:
        for text in invitation.body():
            with body.paragraph(first_line_indent=10.0, bottom_margin=1.2) as par:
                par.write(text)
    pdf.ln(4)

    # Footer: nơi nhận on the left, the signer on the right, side by side.
    if pdf.get_y() > pdf.h - 70:
        pdf.add_page()
    top = pdf.get_y()
    pdf.set_font(FAMILY, "BI", 12)
    pdf.set_x(LEFT)
    pdf.cell(70, 6, "Nơi nhận:", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, "", 11)
    for line in invitation.recipients:
        pdf.set_x(LEFT)
        pdf.cell(70, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    signer_x, signer_width = LEFT + usable / 2, usable / 2
    pdf.set_y(top)
    for line in invitation.signer_title.splitlines():
        _centered(pdf, signer_x, signer_width, line, "B", 13)
    pdf.ln(24)
    _centered(pdf, signer_x, signer_width, invitation.signer_name or " ", "B", 13)
    return bytes(pdf.output())
