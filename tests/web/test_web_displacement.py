"""The booking form's displacement confirmation (issue 14, SPEC rule 10): the priority field, the
Vietnamese list of who is displaced with a confirm button, the booking after confirmation, and the
displaced occurrence shown tentative with its proposed time on its meeting page."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint
from confsvc.scheduling.models import Occurrence
from tests.factories import next_monday_local
from tests.web.test_web_errors_vi import ENGLISH
from tests.web_support import csrf_of, login, make_province


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_booking_form_confirms_displacement_in_vietnamese_then_books(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        chair_id, room_id, room_name = province.chair.id, province.rooms[0].id, province.rooms[0].name
        session.commit()
    login(client, "vanphong")
    day = next_monday_local(hour=8)
    form_page = client.get("/meetings/new")
    assert '<select id="priority" name="priority">' in form_page.text
    fields = {"csrf": csrf_of(form_page.text), "date": day.strftime("%d/%m/%Y"), "start_time": "08:00",
              "end_time": "09:00", "check_lead_minutes": "0", "repeat": "none"}
    routine = client.post("/meetings/new", data={**fields, "title": "Giao ban xã", "chair_room_id": str(room_id),
                                                 "priority": "0"}, follow_redirects=False)
    assert routine.status_code == 303, routine.text
    routine_id = int(routine.headers["location"].rsplit("/", 1)[1])
    government = {**fields, "title": "Phiên họp Chính phủ với địa phương", "chair_room_id": str(chair_id),
                  "participant_room_ids": [str(room_id)], "priority": "2"}

    asked = client.post("/meetings/new", data=government)

    assert asked.status_code == 409
    section = re.search(r'<section class="alert alert-warn" role="alert" id="displacement".*?</section>', asked.text,
                        re.S).group(0)
    text = _text(section)
    assert ENGLISH.findall(text) == [], text
    with make_session(engine, write=False) as session:
        occ = session.exec(select(Occurrence).where(Occurrence.meeting_id == routine_id)).one()
        endpoint_name = session.exec(select(Endpoint.name).where(Endpoint.room_id == room_id)).one()
    items = [_text(li) for li in re.findall(r"<li>(.*?)</li>", section, re.S)]
    assert len(items) == 1
    assert items[0].startswith(f"“Giao ban xã” (mức ưu tiên: Thường xuyên), 08:00–09:00 Thứ Hai, "
                               f"{day.strftime('%d/%m/%Y')}, người tổ chức Văn phòng UBND tỉnh; trùng: {room_name}, ")
    assert items[0] == (f"“Giao ban xã” (mức ưu tiên: Thường xuyên), 08:00–09:00 Thứ Hai, {day.strftime('%d/%m/%Y')}, "
                        f"người tổ chức Văn phòng UBND tỉnh; trùng: {room_name}, {endpoint_name}")
    assert f'href="/meetings/{routine_id}?occurrence={occ.id}"' in section
    assert "Dời các buổi họp này và đặt lịch" in text
    assert '<option value="2" selected>Phiên họp Chính phủ/Đảng</option>' in asked.text
    token = re.search(r'name="displacement_token" value="([0-9a-f]{64})" form="booking"', section).group(1)

    booked = client.post("/meetings/new", data={**government, "displace": "1", "displacement_token": token},
                         follow_redirects=False)

    assert booked.status_code == 303, booked.text
    page = client.get(f"/meetings/{routine_id}")
    notice = _text(re.search(r'<p class="alert alert-warn" role="status" id="displaced-notice">(.*?)</p>',
                             page.text, re.S).group(1))
    assert notice == ("Chờ xếp lịch lại: buổi họp này đã nhường chỗ cho cuộc họp có mức ưu tiên cao hơn và không "
                      "giữ điểm cầu nào cho đến khi được dời sang giờ khác. Khung giờ trống gần nhất đề xuất: "
                      f"09:00–10:00 Thứ Hai, {day.strftime('%d/%m/%Y')}.")
    assert '<dd id="priority">Thường xuyên</dd>' in page.text
    assert '<span class="badge badge-tentative">Chờ xếp lịch lại</span>' in page.text
    new_page = client.get(booked.headers["location"])
    assert '<dd id="priority">Phiên họp Chính phủ/Đảng</dd>' in new_page.text


def test_edit_page_changes_the_priority(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        room_id = province.rooms[0].id
        session.commit()
    login(client, "vanphong")
    day = next_monday_local(hour=8)
    form_page = client.get("/meetings/new")
    booked = client.post("/meetings/new", data={
        "csrf": csrf_of(form_page.text), "title": "Giao ban xã", "date": day.strftime("%d/%m/%Y"),
        "start_time": "08:00", "end_time": "09:00", "check_lead_minutes": "0", "repeat": "none",
        "chair_room_id": str(room_id)}, follow_redirects=False)
    meeting_id = int(booked.headers["location"].rsplit("/", 1)[1])
    edit = client.get(f"/meetings/{meeting_id}/edit")
    assert '<option value="0" selected>Thường xuyên</option>' in edit.text

    shown = {"csrf": csrf_of(edit.text), "title": "Giao ban xã", "date": day.strftime("%d/%m/%Y"),
             "start_time": "08:00", "end_time": "09:00", "check_lead_minutes": "0", "chair_room_id": str(room_id)}
    saved = client.post(f"/meetings/{meeting_id}/edit", data={**shown, "priority": "1"}, follow_redirects=False)
    refused = client.post(f"/meetings/{meeting_id}/edit", data={**shown, "priority": "7"})

    assert saved.status_code == 303, saved.text
    assert '<dd id="priority">Cấp tỉnh</dd>' in client.get(f"/meetings/{meeting_id}").text
    assert refused.status_code == 422 and "Chọn mức ưu tiên trong danh sách." in html.unescape(refused.text)
