"""Web pages over HTTP (TestClient): dashboard, calendar, meeting page, booking form, cancel with
confirmation, inventory import/search, feeds, and the CSRF guard on cookie-authenticated API writes."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session

from confsvc.scheduling.models import Meeting, Occurrence, OccurrenceStatus
from confsvc.users.models import Role
from tests.factories import bearer, make_user, next_monday_local
from tests.web_support import csrf_of, login, make_province


def _province(engine: Engine):
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        return province


def _booking_form(province, **overrides) -> dict:
    monday = next_monday_local(weeks_ahead=2)
    form = {"title": "Hội nghị giao ban", "date": monday.strftime("%d/%m/%Y"), "start_time": "08:00",
            "end_time": "10:00", "check_lead_minutes": "60", "chair_room_id": str(province.chair.id),
            "participant_room_ids": [str(r.id) for r in province.rooms[:3]], "bridge_id": "", "repeat": "none",
            "repeat_count": "", "repeat_until": "", "description": ""}
    return {**form, **overrides}


def _book(client: TestClient, province, **overrides):
    page = client.get("/meetings/new")
    return client.post("/meetings/new", data={**_booking_form(province, **overrides), "csrf": csrf_of(page.text)},
                       follow_redirects=False)


def test_booking_form_books_through_the_service_and_names_conflicts(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    form = client.get("/meetings/new")
    assert form.status_code == 200
    assert "Tất cả xã/phường của tỉnh" in form.text and "Tất cả điểm cầu của các đơn vị này" in form.text
    response = _book(client, province, repeat="weekly", repeat_count="3")
    assert response.status_code == 303
    meeting_id = int(response.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/meetings/{meeting_id}")
    day = next_monday_local(weeks_ahead=2).strftime("%d/%m/%Y")
    assert f"08:00–10:00 Thứ Hai, {day}" in page.text
    assert "sip:1000@mcu.phutho.gov.vn" in page.text
    assert "Điểm cầu Xã Thanh Ba" in page.text and "Điểm cầu Xã Tam Nông" not in page.text

    refused = _book(client, province, title="Họp trùng", start_time="09:00", end_time="11:00")
    assert refused.status_code == 422
    # One line per other meeting (issue 11/13): count, its own times, its technical check, a link; the rooms
    # in an expandable list.
    assert re.findall(r'<span class="conflict-text"><a href="([^"]+)">(.*?)</a></span>', refused.text) == [
        (f"/meetings/{meeting_id}",
         f"4 điểm cầu trùng với «Hội nghị giao ban» (08:00–10:00 Thứ Hai, {day}, kiểm tra kỹ thuật từ 07:00).")]
    assert re.findall(r"<summary>(.*?)</summary><ul>(.*?)</ul>", refused.text) == [
        ("Xem 4 điểm cầu", "<li>Phòng họp trực tuyến UBND tỉnh</li><li>Điểm cầu Xã Thanh Ba</li>"
         "<li>Điểm cầu Phường Việt Trì</li><li>Điểm cầu Xã Đoan Hùng</li>")]
    assert 'value="Họp trùng"' in refused.text  # the form keeps what was typed
    bad = _book(client, province, date="2026-03-02")
    assert (bad.status_code, "Ngày: 2026-03-02 không phải là một ngày hợp lệ theo dạng dd/mm/yyyy." in bad.text) == (422, True)


def test_booking_form_is_for_writers_only(client: TestClient, engine: Engine) -> None:
    _province(engine)
    login(client, "lanhdao")
    page = client.get("/meetings/new")
    assert page.status_code == 403
    assert "Bạn không được đặt lịch họp" in page.text
    assert 'href="/meetings/new"' not in client.get("/").text


def test_cancel_one_occurrence_with_confirmation(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = int(_book(client, province, repeat="weekly", repeat_count="3").headers["location"].rsplit("/", 1)[1])
    with make_session(engine) as session:
        occ_ids = [o.id for o in session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting_id)
                                              .order_by(Occurrence.start)).all()]
    confirm = client.get(f"/meetings/{meeting_id}/cancel?occurrence={occ_ids[1]}")
    assert "Hủy buổi họp này?" in confirm.text
    assert client.post(f"/meetings/{meeting_id}/cancel", data={"occurrence": occ_ids[1], "csrf": "forged"}
                       ).status_code == 403
    done = client.post(f"/meetings/{meeting_id}/cancel", data={"occurrence": occ_ids[1], "csrf": csrf_of(confirm.text)},
                       follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, f"/meetings/{meeting_id}?occurrence={occ_ids[1]}")
    with make_session(engine) as session:
        states = [session.get(Occurrence, i).status for i in occ_ids]
    assert states == [OccurrenceStatus.scheduled, OccurrenceStatus.cancelled, OccurrenceStatus.scheduled]

    series = client.get(f"/meetings/{meeting_id}/cancel")
    assert "Hủy cả chuỗi cuộc họp?" in series.text
    client.post(f"/meetings/{meeting_id}/cancel", data={"csrf": csrf_of(series.text)})
    with make_session(engine) as session:
        assert session.get(Meeting, meeting_id).status.value == "cancelled"


def test_cancel_confirmation_is_for_writers_only(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = int(_book(client, province).headers["location"].rsplit("/", 1)[1])
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    login(client, "lanhdao")
    page = client.get(f"/meetings/{meeting_id}/cancel")
    assert page.status_code == 403
    assert "Bạn không được đặt lịch họp" in page.text and "Hủy cả chuỗi cuộc họp?" not in page.text


def test_calendar_and_dashboard_are_scoped_to_an_operators_units(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    _book(client, province, title="Họp có Thanh Ba", participant_room_ids=[str(province.rooms[0].id)])
    _book(client, province, title="Họp không có Thanh Ba", start_time="14:00", end_time="16:00",
          participant_room_ids=[str(province.rooms[1].id)])
    monday = next_monday_local(weeks_ahead=2).date().isoformat()
    week = client.get(f"/calendar?view=week&date={monday}")
    assert week.text.count('class="event event-confirmed"') == 2
    assert "Thứ Hai" in week.text and "Chủ nhật" in week.text
    client.cookies.clear()
    login(client, "kythuat")
    week = client.get(f"/calendar?view=week&date={monday}")
    assert "Họp có Thanh Ba" in week.text and "Họp không có Thanh Ba" not in week.text
    day = client.get(f"/calendar?view=day&date={monday}")
    assert "08:00–10:00" in day.text and "Kiểm tra kỹ thuật: 07:00" in day.text
    with make_session(engine) as session:
        other = session.exec(select(Meeting).where(Meeting.title == "Họp không có Thanh Ba")).one()
    assert client.get(f"/meetings/{other.id}").status_code == 403
    dashboard = client.get("/")
    assert "Tình trạng thiết bị theo đơn vị" in dashboard.text
    assert "Xã Thanh Ba" in dashboard.text and "Xã Đoan Hùng" not in dashboard.text


def test_api_writes_with_the_session_cookie_need_the_csrf_header(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    body = {"title": "Kiểm tra", "chair_room_id": province.chair.id,
            "start": next_monday_local(weeks_ahead=2).isoformat(),
            "end": next_monday_local(weeks_ahead=2, hour=10).isoformat()}
    refused = client.post("/api/v1/meetings/check", json=body)
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    checked = client.post("/api/v1/meetings/check", json=body, headers={"X-CSRF-Token": token})
    assert (checked.status_code, checked.json()["ok"]) == (200, True)
    assert client.get("/api/v1/meetings").status_code == 200  # reads need no header
    with make_session(engine) as session:
        headers = bearer(session, make_user(session, Role.secretariat))
        session.commit()
    client.cookies.clear()
    assert client.post("/api/v1/meetings/check", json=body, headers=headers).status_code == 200


def test_inventory_search_without_diacritics_and_csv_import_errors(client: TestClient, engine: Engine) -> None:
    _province(engine)
    login(client, "quantri")
    found = client.get("/inventory", params={"q": "viet tri"})
    assert "Điểm cầu Phường Việt Trì" in found.text and "Điểm cầu Xã Thanh Ba" not in found.text
    assert 'href="/api/v1/endpoints/export.csv"' in found.text
    page = client.get("/inventory")
    csv = ("serial,unit_code,unit_name,room_name,name,vendor,model,protocol,dial_address,management_ip,firmware,"
           "lifecycle_state\nSN-OK-1,25,,Phòng họp 2,,Poly,G7500,sip,sip:p2@vc.phutho.gov.vn,,,active\n"
           "SN-BAD-1,99999,,Phòng X,,Poly,G7500,sip,sip:x@vc.phutho.gov.vn,,,active\n")
    answer = client.post("/inventory/import", data={"csrf": csrf_of(page.text)},
                         files={"file": ("thiet-bi.csv", csv.encode("utf-8"), "text/csv")})
    assert answer.status_code == 422
    assert "1 dòng không hợp lệ; chưa nhập dữ liệu nào." in answer.text
    assert re.search(r'<td class="num">3</td><td>[^<]*99999', answer.text)
    fixed = csv.replace("99999", "25")
    ok = client.post("/inventory/import", data={"csrf": csrf_of(page.text)},
                     files={"file": ("thiet-bi.csv", fixed.encode("utf-8"), "text/csv")})
    assert "Đã nhập: 2 thiết bị mới, 0 cập nhật, 0 không đổi, 2 điểm cầu mới." in ok.text


def test_feed_link_is_shown_once_and_rotation_revokes_the_old_one(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    page = client.get("/feeds")
    assert f'value="province:{province.province.id}"' in page.text
    created = client.post("/feeds", data={"scope": f"unit:{province.communes[0].id}", "name": "Lịch Thanh Ba",
                                          "csrf": csrf_of(page.text)})
    url = re.search(r'id="feed-url" readonly value="([^"]+)"', created.text).group(1)
    path = url.replace("http://testserver", "")
    assert client.get(path).status_code == 200
    assert url not in client.get("/feeds").text  # never shown again
    token_id = re.search(r'action="/feeds/(\d+)/rotate"', created.text).group(1)
    rotated = client.post(f"/feeds/{token_id}/rotate", data={"csrf": csrf_of(created.text)})
    new_path = re.search(r'id="feed-url" readonly value="([^"]+)"', rotated.text).group(1).replace(
        "http://testserver", "")
    assert (client.get(path).status_code, client.get(new_path).status_code) == (404, 200)
    assert "Sao chép liên kết lịch" in rotated.text


MAIL_OFF = "Thư mời họp không được gửi qua e-mail."


def _banner_pages(client: TestClient, province) -> dict[str, str]:
    """The pages where invitations matter (booking, editing, cancelling), as the secretariat sees them."""
    login(client, "vanphong")
    booked = _book(client, province)
    assert booked.status_code == 303, booked.text
    meeting = booked.headers["location"]
    return {path: client.get(path).text for path in ("/meetings/new", f"{meeting}/edit", f"{meeting}/cancel")}


def test_pages_say_mail_is_off_without_smtp_settings(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    assert client.app.state.settings.smtp_host is None
    for path, html in _banner_pages(client, province).items():
        assert html.count('id="mail-off"') == 1, path
        assert MAIL_OFF in html and "CONFSVC_SMTP_HOST" in html, path
    # Who does not book sees no banner; pages where invitations do not matter show none.
    for path in ("/inventory", "/", "/calendar", "/statistics"):
        assert 'id="mail-off"' not in client.get(path).text, path
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    login(client, "lanhdao")
    assert 'id="mail-off"' not in client.get("/").text and 'id="mail-off"' not in client.get("/calendar").text


def test_pages_show_no_mail_banner_with_smtp_settings(settings, engine: Engine) -> None:
    from confsvc.main import create_app

    mail_on = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": 2525, "mail_interval_seconds": 0})
    province = _province(engine)
    with TestClient(create_app(mail_on, engine=engine)) as client:
        for path, html in _banner_pages(client, province).items():
            assert 'id="mail-off"' not in html and MAIL_OFF not in html, path
        assert client.get("/api/v1/mail/status", headers=_bearer(engine)).json()["enabled"] is True


def _bearer(engine: Engine) -> dict[str, str]:
    with make_session(engine) as session:
        headers = bearer(session, make_user(session, Role.secretariat))
        session.commit()
    return headers
