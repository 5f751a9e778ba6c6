"""Edit screens (TestClient, SQLite and PostgreSQL): a whole series (exceptions and occurrence ids
kept), one occurrence (moved, chair room changed), conflicts named in words, and an endpoint (admin)."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, LifecycleState
from confsvc.scheduling.models import Meeting, Occurrence, OccurrenceStatus
from tests.factories import next_monday_local
from tests.web.test_web_pages import _book, _province
from tests.web_support import csrf_of, login

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _occurrences(engine: Engine, meeting_id: int) -> list[tuple[int, str, OccurrenceStatus, int | None]]:
    """``(id, local "dd/mm HH:MM–HH:MM", status, chair room override)`` in id order."""
    with make_session(engine) as session:
        rows = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting_id).order_by(Occurrence.id)).all()
        return [(o.id, f"{o.start.astimezone(ZONE):%d/%m %H:%M}–{o.end.astimezone(ZONE):%H:%M}", o.status,
                 o.chair_room_id) for o in rows]


def _form_values(html: str) -> dict[str, object]:
    """The edit form as a browser would post it (inputs, selected options, checked boxes, textarea)."""
    values: dict[str, object] = {name: value for name, value in re.findall(
        r'<input id="\w+" name="(\w+)" value="([^"]*)"', html)}
    values["csrf"] = csrf_of(html)
    for name, body in re.findall(r'<select id="\w+" name="(\w+)">(.*?)</select>', html, re.S):
        values[name] = re.search(r'<option value="([^"]*)" selected>', body).group(1)
    values["participant_room_ids"] = re.findall(r'name="participant_room_ids" value="(\d+)" checked', html)
    description = re.search(r'<textarea id="description" name="description"[^>]*>(.*?)</textarea>', html, re.S)
    if description:
        values["description"] = description.group(1)
    return values


def _day(weeks: int) -> str:
    return next_monday_local(weeks_ahead=weeks).strftime("%d/%m")


def test_series_edit_keeps_exceptions_and_ids_and_names_conflicts(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = int(_book(client, province, repeat="weekly", repeat_count="3").headers["location"].rsplit("/", 1)[1])
    before = _occurrences(engine, meeting_id)
    page = client.get(f"/meetings/{meeting_id}")
    client.post(f"/meetings/{meeting_id}/cancel", data={"occurrence": before[1][0], "csrf": csrf_of(page.text)})

    form = client.get(f"/meetings/{meeting_id}/edit")
    assert form.status_code == 200 and "Sửa cuộc họp" in form.text
    values = _form_values(form.text)
    assert (values["title"], values["start_time"], values["end_time"], values["chair_room_id"]) == (
        "Hội nghị giao ban", "08:00", "10:00", str(province.chair.id))
    # Listed in the Vietnamese order of their units (confsvc.collation): Phường Việt Trì, Xã Đoan Hùng, Xã Thanh Ba.
    assert values["participant_room_ids"] == [str(province.rooms[i].id) for i in (1, 2, 0)]
    saved = client.post(f"/meetings/{meeting_id}/edit", data={**values, "title": "Giao ban (đổi giờ)",
                                                               "start_time": "13:30", "end_time": "15:00"},
                        follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"/meetings/{meeting_id}")
    ids = [o[0] for o in before]
    assert _occurrences(engine, meeting_id) == [
        (ids[0], f"{_day(2)} 13:30–15:00", OccurrenceStatus.scheduled, None),
        (ids[1], f"{_day(3)} 08:00–10:00", OccurrenceStatus.cancelled, None),  # the exception is kept
        (ids[2], f"{_day(4)} 13:30–15:00", OccurrenceStatus.scheduled, None)]
    with make_session(engine) as session:
        assert session.get(Meeting, meeting_id).title == "Giao ban (đổi giờ)"

    # Another meeting chaired by the fourth commune at 16:00 (technical check from 15:00): ending the series
    # at 15:30 with that commune added is refused, naming the meeting and the overlap.
    other = _book(client, province, title="Họp chuyên đề", start_time="16:00", end_time="17:00",
                  chair_room_id=str(province.rooms[3].id), participant_room_ids=[])
    assert other.status_code == 303
    form = client.get(f"/meetings/{meeting_id}/edit")
    values = _form_values(form.text)
    refused = client.post(f"/meetings/{meeting_id}/edit", data={
        **values, "end_time": "15:30", "participant_room_ids": [str(r.id) for r in province.rooms]})
    assert refused.status_code == 409
    monday = next_monday_local(weeks_ahead=2).strftime("%d/%m/%Y")
    # Grouped by the other meeting (issue 11/13): its own times and technical check, a link, the rooms.
    other_id = int(other.headers["location"].rsplit("/", 1)[1])
    assert re.findall(r'<span class="conflict-text"><a href="([^"]+)">(.*?)</a></span>', refused.text) == [
        (f"/meetings/{other_id}",
         f"1 điểm cầu trùng với «Họp chuyên đề» (16:00–17:00 Thứ Hai, {monday}, kiểm tra kỹ thuật từ 15:00).")]
    assert re.findall(r"<summary>(.*?)</summary><ul>(.*?)</ul>", refused.text) == [
        ("Xem 1 điểm cầu", "<li>Điểm cầu Xã Tam Nông</li>")]
    assert 'value="15:30"' in refused.text  # what was typed is kept
    assert _occurrences(engine, meeting_id)[0][1] == f"{_day(2)} 13:30–15:00"  # nothing changed


def test_one_occurrence_moved_and_its_chair_room_changed(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = int(_book(client, province, repeat="weekly", repeat_count="2").headers["location"].rsplit("/", 1)[1])
    first, second = _occurrences(engine, meeting_id)
    page = client.get(f"/meetings/{meeting_id}")
    assert f'href="/meetings/{meeting_id}/occurrences/{second[0]}/edit">Đổi buổi họp này</a>' in page.text
    form = client.get(f"/meetings/{meeting_id}/occurrences/{second[0]}/edit")
    assert "Đổi buổi họp này" in form.text
    values = _form_values(form.text)
    moved = client.post(f"/meetings/{meeting_id}/occurrences/{second[0]}/edit", data={
        **values, "date": next_monday_local(weeks_ahead=3).strftime("%d/%m/%Y"), "start_time": "14:00",
        "end_time": "16:00", "chair_room_id": str(province.rooms[3].id)}, follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (303, f"/meetings/{meeting_id}?occurrence={second[0]}")
    assert _occurrences(engine, meeting_id) == [first, (second[0], f"{_day(3)} 14:00–16:00",
                                                        OccurrenceStatus.scheduled, province.rooms[3].id)]

    # Onto the first occurrence's time, in the same week: refused with the reason.
    clash = client.post(f"/meetings/{meeting_id}/occurrences/{first[0]}/edit", data={
        **_form_values(client.get(f"/meetings/{meeting_id}/occurrences/{first[0]}/edit").text),
        "date": next_monday_local(weeks_ahead=3).strftime("%d/%m/%Y"), "start_time": "14:30", "end_time": "15:00"})
    assert clash.status_code == 422
    assert "Hai buổi họp trong chuỗi sẽ trùng thời gian với nhau." in clash.text  # refusal in Vietnamese
    # A viewer may not edit.
    client.cookies.clear()
    login(client, "lanhdao")
    assert client.get(f"/meetings/{meeting_id}/occurrences/{first[0]}/edit").status_code == 403
    assert client.get(f"/meetings/{meeting_id}/edit").status_code == 403


def test_admin_edits_an_endpoint_through_the_inventory_service(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    with make_session(engine) as session:
        endpoint = session.exec(select(Endpoint).where(Endpoint.room_id == province.rooms[0].id)).one()
        endpoint_id, serial = endpoint.id, endpoint.serial
    login(client, "quantri")
    listing = client.get("/inventory")
    assert f'href="/inventory/endpoints/{endpoint_id}/edit"' in listing.text
    form = client.get(f"/inventory/endpoints/{endpoint_id}/edit")
    assert form.status_code == 200 and "Sửa thiết bị đầu cuối" in form.text
    values = _form_values(form.text)
    assert (values["protocol"], values["lifecycle_state"], values["room_id"]) == (
        "sip", "active", str(province.rooms[0].id))
    bad = client.post(f"/inventory/endpoints/{endpoint_id}/edit", data={**values, "dial_address": "không hợp lệ"})
    assert bad.status_code == 422 and "Thiết bị chưa được thay đổi:" in bad.text
    assert "Địa chỉ kết nối không đúng với giao thức." in bad.text  # the service's refusal, in Vietnamese
    saved = client.post(f"/inventory/endpoints/{endpoint_id}/edit", data={
        **values, "dial_address": "sip:thanhba@vc.phutho.gov.vn", "lifecycle_state": "maintenance",
        "firmware": "6.4.1", "room_id": str(province.rooms[1].id)}, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"/inventory?q={serial}")
    with make_session(engine) as session:
        e = session.get(Endpoint, endpoint_id)
        assert (e.dial_address, e.lifecycle_state, e.firmware, e.room_id) == (
            "sip:thanhba@vc.phutho.gov.vn", LifecycleState.maintenance, "6.4.1", province.rooms[1].id)
    client.cookies.clear()
    login(client, "vanphong")
    assert client.get(f"/inventory/endpoints/{endpoint_id}/edit").status_code == 403
    assert f'href="/inventory/endpoints/{endpoint_id}/edit"' not in client.get("/inventory").text
    page = client.get("/inventory")
    assert client.post(f"/inventory/endpoints/{endpoint_id}/edit", data={**values, "csrf": csrf_of(page.text)}
                       ).status_code == 403


def test_filter_forms_all_option_sends_an_empty_id_and_is_no_filter(client: TestClient, engine: Engine) -> None:
    """Regression: "Tất cả" in the calendar's and the inventory's filters sends ``unit_id=`` and got a 422."""
    _province(engine)
    login(client, "vanphong")
    calendar = client.get("/calendar", params={"view": "week", "unit_id": "", "room_id": ""})
    inventory = client.get("/inventory", params={"unit_id": "", "q": ""})
    assert (calendar.status_code, inventory.status_code) == (200, 200)
    assert inventory.text.count('href="/inventory/endpoints/') == 0  # a secretariat: no edit links
    assert "Điểm cầu Xã Tam Nông" in inventory.text


def _simple_form(html: str) -> dict[str, str]:
    values = dict(re.findall(r'<input id="\w+" name="(\w+)" type="\w+" value="([^"]*)"', html))
    values["csrf"] = csrf_of(html)
    return values


def test_admin_edits_a_room_and_a_unit_through_the_inventory_service(client: TestClient, engine: Engine) -> None:
    from confsvc.endpoints.models import Room, Unit

    province = _province(engine)
    room, other = province.rooms[0], province.rooms[1]
    login(client, "quantri")
    listing = client.get("/inventory")
    assert f'href="/inventory/rooms/{room.id}/edit"' in listing.text
    assert f'href="/inventory/units/{room.unit_id}/edit"' in listing.text

    form = client.get(f"/inventory/rooms/{room.id}/edit")
    assert form.status_code == 200 and "Sửa thông tin điểm cầu" in form.text
    values = _simple_form(form.text)
    assert values["name"] == room.name
    taken = client.post(f"/inventory/rooms/{room.id}/edit", data={**values, "name": other.name})
    same_unit = other.unit_id == room.unit_id
    if same_unit:
        assert taken.status_code == 409
    seats = client.post(f"/inventory/rooms/{room.id}/edit", data={**values, "seats": "ba mươi"})
    assert seats.status_code == 422 and "Số chỗ ngồi: phải là số nguyên." in seats.text
    email = client.post(f"/inventory/rooms/{room.id}/edit", data={**values, "contact_email": "không-phải-email"})
    assert email.status_code == 422 and "Chưa lưu thay đổi nào:" in email.text
    saved = client.post(f"/inventory/rooms/{room.id}/edit", data={
        **values, "name": "Phòng họp trực tuyến tầng 2", "seats": "45", "contact_name": "Nguyễn Thị Hà",
        "contact_phone": "0210 3846 123", "contact_email": "ha.nt@phutho.gov.vn"}, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"/inventory?unit_id={room.unit_id}")
    with make_session(engine) as session:
        r = session.get(Room, room.id)
        assert (r.name, r.seats, r.contact_name, r.contact_phone, r.contact_email) == (
            "Phòng họp trực tuyến tầng 2", 45, "Nguyễn Thị Hà", "0210 3846 123", "ha.nt@phutho.gov.vn")
    found = client.get("/inventory", params={"q": "phong hop truc tuyen tang 2"})
    assert "Phòng họp trực tuyến tầng 2" in found.text  # the search key follows the rename

    unit_form = client.get(f"/inventory/units/{room.unit_id}/edit")
    assert unit_form.status_code == 200 and "Sửa thông tin đơn vị" in unit_form.text
    unit_values = _simple_form(unit_form.text)
    renamed = client.post(f"/inventory/units/{room.unit_id}/edit", data={**unit_values, "name": "Xã Thanh Ba Mới"},
                          follow_redirects=False)
    assert renamed.status_code == 303
    with make_session(engine) as session:
        assert session.get(Unit, room.unit_id).name == "Xã Thanh Ba Mới"

    client.cookies.clear()
    login(client, "vanphong")
    assert client.get(f"/inventory/rooms/{room.id}/edit").status_code == 403
    assert client.get(f"/inventory/units/{room.unit_id}/edit").status_code == 403
    page = client.get("/inventory")
    assert f'href="/inventory/rooms/{room.id}/edit"' not in page.text
    assert client.post(f"/inventory/rooms/{room.id}/edit", data={**values, "csrf": csrf_of(page.text)}
                       ).status_code == 403
