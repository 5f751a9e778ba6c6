"""Vietnamese everywhere a person looks (issue 13): HTML error pages for browsers instead of the API's
JSON, the booking form's impossible date, and every fault of a CSV import row, from the catalog."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from tests.web_support import csrf_of, login, make_province

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
#: English words that show an untranslated message (none is a Vietnamese word).
ENGLISH = re.compile(r"\b(the|not|found|meeting|input|should|valid|datetime|unknown|must|error|internal|"
                     r"server|page|body|field|repeats|serial|empty|required|protocol|lifecycle|code)\b", re.I)


def _main_text(page: str) -> str:
    main = page[page.index("<main"):page.index("</main>")]
    return html.unescape(re.sub(r"<[^>]+>", " ", main))


def _province(engine: Engine):
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        return province


def test_missing_meeting_unknown_url_and_non_numeric_id_answer_vietnamese_html_pages_not_json(
        client: TestClient, engine: Engine) -> None:
    _province(engine)
    login(client, "vanphong")
    cases = {"/meetings/99999": (404, "Cuộc họp này không tồn tại hoặc đã bị xóa."),
             "/meetings/abc": (404, "Trang bạn yêu cầu không tồn tại."),
             "/khong-co-trang-nay": (404, "Trang bạn yêu cầu không tồn tại."),
             "/inventory/rooms/abc/edit": (404, "Trang bạn yêu cầu không tồn tại.")}
    for path, (status, sentence) in cases.items():
        response = client.get(path, headers=BROWSER)
        assert (response.status_code, response.headers["content-type"]) == (status, "text/html; charset=utf-8"), path
        text = _main_text(response.text)
        assert sentence in text, path
        assert "Không tìm thấy" in text, path
        assert ENGLISH.findall(text) == [], (path, text)
        assert '<html lang="vi">' in response.text
    bad_query = client.get("/calendar?view=thang", headers=BROWSER)
    assert (bad_query.status_code, bad_query.headers["content-type"]) == (422, "text/html; charset=utf-8")
    text = _main_text(bad_query.text)
    assert "Địa chỉ hoặc biểu mẫu có giá trị không hợp lệ." in text and ENGLISH.findall(text) == []
    # Programs keep the JSON answer (an API path, or no text/html in Accept).
    api = client.get("/api/v1/meetings/99999", headers=BROWSER)
    assert api.headers["content-type"] == "application/json" and api.json()["code"] == "meeting_not_found"
    assert client.get("/khong-co-trang-nay").json() == {"detail": "Not Found", "code": "http_404"}


def test_unexpected_error_answers_a_vietnamese_500_page_to_a_browser_and_json_to_a_program(
        settings, engine: Engine) -> None:
    from confsvc.main import create_app

    app = create_app(settings, engine=engine)

    def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/boom", headers=BROWSER)
        assert page.status_code == 500 and page.headers["content-type"] == "text/html; charset=utf-8"
        text = _main_text(page.text)
        assert "Máy chủ gặp sự cố" in text and "kaboom" not in page.text
        assert ENGLISH.findall(text) == []
        program = client.get("/boom")
        assert (program.status_code, program.json()) == (500, {"detail": "internal server error",
                                                                "code": "internal_error"})


def test_booking_form_with_an_impossible_date_says_so_in_vietnamese(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    form = client.get("/meetings/new")
    response = client.post("/meetings/new", data={
        "csrf": csrf_of(form.text), "title": "Giao ban", "date": "31/02/2027", "start_time": "08:00",
        "end_time": "10:00", "check_lead_minutes": "60", "chair_room_id": str(province.chair.id),
        "participant_room_ids": [str(province.rooms[0].id)], "repeat": "none"})
    assert response.status_code == 422
    errors = re.search(r'<div class="alert alert-error"[^>]*id="form-errors">(.*?)</div>', response.text, re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", errors.group(1)))
    assert "Ngày: 31/02/2027 không phải là một ngày hợp lệ theo dạng dd/mm/yyyy." in text
    assert ENGLISH.findall(text) == [], text


def test_csv_import_page_lists_every_fault_of_a_row_in_vietnamese(client: TestClient, engine: Engine) -> None:
    _province(engine)
    login(client, "quantri")
    page = client.get("/inventory")
    header = "serial,unit_code,unit_name,room_name,name,vendor,model,protocol,dial_address,management_ip,firmware," \
             "lifecycle_state"
    data = (header + "\r\n"
            + "X-1,99999,,Điểm cầu A,,Poly,G7500,webrtc,sip:x@vc.phutho.gov.vn,10.0.0.300,,broken\r\n"
            + "X-2,07900,,,,Poly,G7500,sip,khong-hop-le,,,\r\n").encode()
    response = client.post("/inventory/import", data={"csrf": csrf_of(page.text)},
                           files={"file": ("thiet-bi.csv", data, "text/csv")})
    assert response.status_code == 422
    table = response.text[response.text.index('id="import-result"'):]
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>(.*?)</td></tr>', table)
    assert [(int(line), html.unescape(reason)) for line, reason in rows] == [
        (2, "mã đơn vị 99999 không tồn tại; giao thức webrtc không phải sip hoặc h323; trạng thái broken không "
            "phải active (hoạt động), maintenance (bảo trì) hoặc retired (ngừng sử dụng); IP quản trị 10.0.0.300 "
            "không phải là địa chỉ IP"),
        (3, "các cột bắt buộc đang trống: room_name; địa chỉ kết nối khong-hop-le không hợp lệ với giao thức SIP"),
    ]
    assert "2 dòng không hợp lệ" in response.text
