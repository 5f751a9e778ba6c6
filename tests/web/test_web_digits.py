"""Regression (both backends): a number typed in a form or a query string that ``str.isdigit`` accepted
and ``int`` refused — ``"²"``, a superscript two — was a 500 on the pages. Every such field is read by
``text.natural`` / ``db.row_id`` now: a whole-number field answers its form's Vietnamese message, an id
field its page's message or "no filter", never a 500. Other scripts' digits (``"٣"``) and ids past
``MAX_ID`` are treated the same way."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, Room
from confsvc.scheduling.models import Meeting
from tests.web.test_web_edit import _form_values
from tests.web.test_web_pages import _book, _province
from tests.web_support import csrf_of, login

BAD = ("²", "٣", "99999999999999999999")


def test_booking_form_whole_numbers_and_room_ids_with_a_superscript_digit_answer_the_form(
        client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")

    for i, value in enumerate(BAD):
        lead = _book(client, province, check_lead_minutes=value)
        count = _book(client, province, repeat="weekly", repeat_count=value)
        chair = _book(client, province, chair_room_id=value)
        sites = _book(client, province, participant_room_ids=[str(province.rooms[0].id), value],
                      start_time=f"{8 + 3 * i:02d}:00", end_time=f"{10 + 3 * i:02d}:00")
        prefilled = client.get("/meetings/new", params={"chair_room_id": value, "participant_room_ids": value})

        assert lead.status_code == 422, lead.text
        assert "Kiểm tra kỹ thuật: số phút trước giờ họp, là số nguyên." in lead.text
        assert count.status_code == 422, count.text
        assert "Số buổi họp: số nguyên từ 1 đến 500." in count.text
        # A chair or a site that is not a room id is left out, as any other non-id always was.
        assert chair.status_code == 422 and "<h1>" in chair.text
        assert sites.status_code == 303
        assert prefilled.status_code == 200
    with make_session(engine, write=False) as session:
        booked = session.exec(select(Meeting)).all()
        assert len(booked) == len(BAD)  # the three with a stray site value, each with its one real site


def test_filters_of_the_calendar_and_the_audit_with_a_superscript_digit_mean_no_filter(
        client: TestClient, engine: Engine) -> None:
    _province(engine)
    login(client, "quantri")
    for value in BAD:
        assert client.get("/calendar", params={"unit_id": value, "room_id": value}).status_code == 200
        assert client.get("/audit", params={"unit_id": value, "user_id": value, "meeting_id": value,
                                            "page": value}).status_code == 200


def test_inventory_forms_with_a_superscript_digit_answer_their_message(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    with make_session(engine, write=False) as session:
        endpoint_id = session.exec(select(Endpoint.id).where(Endpoint.room_id == province.rooms[0].id)).one()
        seats_before = session.get(Room, province.rooms[0].id).seats
    room_id = province.rooms[0].id
    login(client, "quantri")
    room_form = client.get(f"/inventory/rooms/{room_id}/edit").text
    endpoint_form = _form_values(client.get(f"/inventory/endpoints/{endpoint_id}/edit").text)

    for value in BAD[:2]:
        seats = client.post(f"/inventory/rooms/{room_id}/edit", data={
            "csrf": csrf_of(room_form), "name": "Điểm cầu Xã Thanh Ba", "seats": value})
        moved = client.post(f"/inventory/endpoints/{endpoint_id}/edit", data={**endpoint_form, "room_id": value})

        assert seats.status_code == 422 and "Số chỗ ngồi: phải là số nguyên." in seats.text
        assert moved.status_code == 422
        assert "Điểm cầu đã chọn không có trong danh sách: đề nghị chọn lại điểm cầu." in moved.text
    with make_session(engine, write=False) as session:
        assert session.get(Endpoint, endpoint_id).room_id == room_id
        assert session.get(Room, room_id).seats == seats_before


def test_a_site_group_with_a_superscript_digit_room_is_refused_with_the_forms_message(
        client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    page = client.get("/site-groups").text

    refused = client.post("/site-groups", data={"csrf": csrf_of(page), "name": "Nhóm xã", "visibility": "private",
                                                "room_ids": [str(province.rooms[0].id), "²"]})

    assert refused.status_code == 422
    assert "Điểm cầu đã chọn không tồn tại." in refused.text  # the site groups form's own words
