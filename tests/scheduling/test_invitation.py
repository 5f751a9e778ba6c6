"""The official invitation (giấy mời, NĐ 30/2020/NĐ-CP): its text, DOCX and PDF parsed back, permissions.

A rendered PDF page is saved as ``test-artifacts/invitation-<backend>.png`` (looked at by a person)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdfium2
import pytest
from docx import Document
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling import invitation, join
from confsvc.scheduling.models import Meeting
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 12, 14, 8, 0, tzinfo=ZONE)  # a Monday
END = datetime(2026, 12, 14, 11, 0, tzinfo=ZONE)
TITLE = "Giao ban kinh tế - xã hội tháng 12 năm 2026"

EXPECTED_LINES = [
    "UBND TỈNH PHÚ THỌ", "VĂN PHÒNG", "Số: 123/GM-VP", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
    "Độc lập - Tự do - Hạnh phúc", "GIẤY MỜI", f"Dự hội nghị trực tuyến {TITLE}",
    "1. Thời gian: 08 giờ 00 phút, Thứ Hai, ngày 14/12/2026 (kết thúc lúc 11 giờ 00 phút).",
    "2. Điểm cầu chủ trì: Phòng họp trực tuyến UBND tỉnh (Tỉnh Phú Thọ).",
    "3. Các điểm cầu tham dự:",
    "- Phường Việt Trì: Hội trường phường Việt Trì.",
    "- Xã Đoan Hùng: Hội trường xã Đoan Hùng; Phòng họp số 2 xã Đoan Hùng.",
    "- Xã Hạ Hòa: Phòng họp trực tuyến xã Hạ Hòa.",
    "- Số hội nghị: 1000", "- Thiết bị SIP quay số: sip:1000@mcu.phutho.gov.vn",
    "- Thiết bị H.323 quay số: 881000",
    "Văn phòng UBND tỉnh Phú Thọ trân trọng kính mời./.", "Nơi nhận:", "- Như thành phần mời;", "- Lưu: VT.",
    "KT. CHÁNH VĂN PHÒNG", "PHÓ CHÁNH VĂN PHÒNG", "Nguyễn Thị Hằng",
]


# ---------------------------------------------------------------- pure

@pytest.mark.pure
@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 12, 7), "Phú Thọ, ngày 07 tháng 12 năm 2026"),
    (date(2027, 2, 1), "Phú Thọ, ngày 01 tháng 02 năm 2027"),
    (date(2027, 3, 15), "Phú Thọ, ngày 15 tháng 3 năm 2027"),
])
def test_date_line_pads_days_below_ten_and_months_one_and_two_only(day: date, expected: str) -> None:
    assert invitation.date_line("Phú Thọ", day) == expected


@pytest.mark.pure
def test_time_phrase_is_hours_minutes_weekday_and_date() -> None:
    assert invitation.time_phrase(START) == "08 giờ 00 phút, Thứ Hai, ngày 14/12/2026"
    assert invitation.time_phrase(datetime(2026, 12, 20, 14, 30, tzinfo=ZONE)) == \
        "14 giờ 30 phút, Chủ nhật, ngày 20/12/2026"


@pytest.mark.pure
@pytest.mark.parametrize(("number", "expected"), [
    ("123", "Số: 123/GM-VP"), ("45/GM-UBND", "Số: 45/GM-UBND"), ("", "Số:      /GM-VP")])
def test_number_line_adds_the_symbol_or_leaves_a_blank(number: str, expected: str) -> None:
    assert invitation.number_line(number) == expected


@pytest.mark.pure
def test_join_lines_in_dial_out_mode_tell_sites_not_to_dial() -> None:
    details = join.JoinDetails(conference_number=1234, sip_domain="mcu.example.vn", h323_prefix="88", pin="999")
    assert invitation.join_lines(details, "dial_out") == [
        "Số hội nghị: 1234", "MCU sẽ gọi tới thiết bị của các điểm cầu; các điểm cầu không cần quay số."]
    assert invitation.join_lines(details, "dial_in") == [
        "Số hội nghị: 1234", "Thiết bị SIP quay số: sip:1234@mcu.example.vn", "Thiết bị H.323 quay số: 881234",
        "Mã PIN: 999"]


# ---------------------------------------------------------------- database

def _province_meeting(engine: Engine) -> dict:
    """Tỉnh Phú Thọ's chair room and four participating rooms in three communes, booked by an admin."""
    with make_session(engine) as session:
        make_bridge(session, sip_domain="mcu.phutho.gov.vn", h323_prefix="88")
        province = make_unit(session, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh",
                             level=UnitLevel.province)
        viet_tri = make_unit(session, name="Phường Việt Trì", division_type="phường", parent_id=province.id)
        doan_hung = make_unit(session, name="Xã Đoan Hùng", parent_id=province.id)
        ha_hoa = make_unit(session, name="Xã Hạ Hòa", parent_id=province.id)
        other = make_unit(session, name="Xã Khác", parent_id=province.id)
        chair = make_room(session, province, name="Phòng họp trực tuyến UBND tỉnh")
        make_endpoint(session, chair)
        rooms = [make_room(session, viet_tri, name="Hội trường phường Việt Trì"),
                 make_room(session, doan_hung, name="Phòng họp số 2 xã Đoan Hùng"),
                 make_room(session, doan_hung, name="Hội trường xã Đoan Hùng"),
                 make_room(session, ha_hoa, name="Phòng họp trực tuyến xã Hạ Hòa")]
        for room in rooms:
            make_endpoint(session, room)
        headers = {"admin": bearer(session, make_user(session, Role.admin)),
                   "viewer": bearer(session, make_user(session, Role.viewer)),
                   "operator_in": bearer(session, make_user(session, Role.operator, units=[ha_hoa])),
                   "operator_out": bearer(session, make_user(session, Role.operator, units=[other]))}
        session.commit()
        return {"chair": chair.id, "rooms": [r.id for r in rooms], "h": headers}


def _book(client: TestClient, data: dict) -> int:
    r = client.post("/api/v1/meetings", headers=data["h"]["admin"], json={
        "title": TITLE, "chair_room_id": data["chair"], "participant_room_ids": data["rooms"],
        "start": START.isoformat(), "end": END.isoformat(), "document_number": "123",
        "signer_name": "Nguyễn Thị Hằng", "signer_title": "KT. Chánh Văn phòng\nPhó Chánh Văn phòng"})
    assert r.status_code == 201, r.text
    assert (r.json()["document_number"], r.json()["signer_title"]) == (
        "123", "KT. Chánh Văn phòng\nPhó Chánh Văn phòng")
    return r.json()["id"]


def test_invitation_text_groups_sites_by_unit_and_dates_the_letter(client: TestClient, engine: Engine) -> None:
    data = _province_meeting(engine)
    meeting_id = _book(client, data)
    with make_session(engine) as session:
        letter = invitation.build(session, session.get(Meeting, meeting_id), dial_mode="dial_in",
                                  now=datetime(2026, 12, 7, 2, 0, tzinfo=UTC))
    assert letter.place_date_line == "Phú Thọ, ngày 07 tháng 12 năm 2026"
    assert [(s.unit_name, s.room_names) for s in letter.sites] == [
        ("Phường Việt Trì", ["Hội trường phường Việt Trì"]),
        ("Xã Đoan Hùng", ["Hội trường xã Đoan Hùng", "Phòng họp số 2 xã Đoan Hùng"]),
        ("Xã Hạ Hòa", ["Phòng họp trực tuyến xã Hạ Hòa"])]
    assert letter.check_line.startswith("4. Kiểm tra kỹ thuật: 07 giờ 00 phút, Thứ Hai, ngày 14/12/2026;")
    assert letter.signer_title == "KT. CHÁNH VĂN PHÒNG\nPHÓ CHÁNH VĂN PHÒNG"
    assert letter.join_lines[-1].startswith("Mã PIN: ")


def test_invitation_docx_parses_back_with_every_vietnamese_character(client: TestClient, engine: Engine) -> None:
    data = _province_meeting(engine)
    meeting_id = _book(client, data)
    r = client.get(f"/api/v1/meetings/{meeting_id}/invitation.docx", headers=data["h"]["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"] == invitation.FORMATS["docx"]
    assert r.headers["content-disposition"].startswith(f'attachment; filename="giay-moi-{meeting_id}.docx"')
    document = Document(io.BytesIO(r.content))
    header, footer = document.tables
    lines = [p.text for p in document.paragraphs]
    lines += [p.text for table in document.tables for cell in table.rows[0].cells for p in cell.paragraphs]
    for expected in EXPECTED_LINES:
        assert expected in lines
    assert [p.text for p in header.rows[0].cells[0].paragraphs] == ["UBND TỈNH PHÚ THỌ", "VĂN PHÒNG", "Số: 123/GM-VP"]
    assert [p.text for p in header.rows[0].cells[1].paragraphs][:2] == [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]
    assert [round(c.width.mm) for c in header.columns] == [62, 103]  # quốc hiệu fits on one line
    title = next(p for p in document.paragraphs if p.text == "GIẤY MỜI")
    assert title.runs[0].bold is True and title.alignment == 1  # WD_ALIGN_PARAGRAPH.CENTER
    assert footer.rows[0].cells[1].paragraphs[-1].text == "Nguyễn Thị Hằng"


def test_invitation_pdf_parses_back_with_every_vietnamese_character(client: TestClient, engine: Engine,
                                                                    backend: str) -> None:
    data = _province_meeting(engine)
    meeting_id = _book(client, data)
    r = client.get(f"/api/v1/meetings/{meeting_id}/invitation.pdf", headers=data["h"]["operator_in"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = pypdfium2.PdfDocument(r.content)
    try:
        assert len(pdf) == 1
        page = pdf[0]
        text = page.get_textpage().get_text_range().replace("\r\n", "\n")
        lines = [line.strip() for line in text.split("\n")]
        for expected in EXPECTED_LINES:
            if len(expected) < 60:  # long lines wrap; their words are checked below
                assert expected in lines, expected
        words = " ".join(lines)
        assert "đề nghị cán bộ kỹ thuật các điểm cầu kết nối và báo sẵn sàng trước giờ này." in words
        assert "Phú Thọ, ngày" in words
        fonts = {obj.get_font().get_base_name() for obj in page.get_objects()
                 if obj.type == pypdfium2.raw.FPDF_PAGEOBJ_TEXT}
        assert fonts and all(name.split("+")[-1].startswith(("LiberationSerif", "DejaVuSerif")) for name in fonts)
        ARTIFACTS.mkdir(exist_ok=True)
        page.render(scale=1.5).to_pil().save(ARTIFACTS / f"invitation-{backend}.png")
    finally:
        pdf.close()


def test_invitation_follows_meeting_read_permission(client: TestClient, engine: Engine) -> None:
    data = _province_meeting(engine)
    meeting_id = _book(client, data)
    forbidden = client.get(f"/api/v1/meetings/{meeting_id}/invitation.pdf", headers=data["h"]["operator_out"])
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden_scope")
    missing = client.get("/api/v1/meetings/999999/invitation.docx", headers=data["h"]["viewer"])
    assert (missing.status_code, missing.json()["code"]) == (404, "meeting_not_found")
    no_occ = client.get(f"/api/v1/meetings/{meeting_id}/invitation.docx", headers=data["h"]["viewer"],
                        params={"occurrence_id": 999999})
    assert (no_occ.status_code, no_occ.json()["code"]) == (404, "occurrence_not_found")
    assert client.get(f"/api/v1/meetings/{meeting_id}/invitation.pdf").status_code == 401


def test_patching_number_and_signer_changes_the_invitation(client: TestClient, engine: Engine) -> None:
    data = _province_meeting(engine)
    meeting_id = _book(client, data)
    r = client.patch(f"/api/v1/meetings/{meeting_id}", headers=data["h"]["admin"],
                     json={"document_number": "77/GM-UBND", "signer_name": "Trần Văn Đức",
                           "signer_title": "Chánh Văn phòng"})
    assert r.status_code == 200, r.text
    document = Document(io.BytesIO(client.get(f"/api/v1/meetings/{meeting_id}/invitation.docx",
                                              headers=data["h"]["viewer"]).content))
    header, footer = document.tables
    assert header.rows[0].cells[0].paragraphs[2].text == "Số: 77/GM-UBND"
    assert [p.text for p in footer.rows[0].cells[1].paragraphs if p.text] == ["CHÁNH VĂN PHÒNG", "Trần Văn Đức"]
