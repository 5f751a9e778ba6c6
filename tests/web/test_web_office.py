"""Web pages of the office: site groups (nhóm điểm cầu) page, the group picker on the booking page
(in a real browser too), and the invitation (giấy mời) links on the meeting page."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.scheduling.site_group_models import SiteGroup, SiteGroupRoom
from tests.factories import next_monday_local
from tests.web.test_web_browser import _shot, browser_page, live_server  # noqa: F401 (fixtures)
from tests.web_support import PASSWORD, csrf_of, login, make_province


def test_site_groups_page_creates_changes_and_deletes_a_group(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        rooms = [r.id for r in province.rooms]
    login(client, "vanphong")
    booking = client.get("/meetings/new").text
    assert '<a href="/site-groups" id="manage-site-groups">Quản lý nhóm điểm cầu</a>' in booking
    page = client.get("/site-groups")
    assert page.status_code == 200
    created = client.post("/site-groups", data={"csrf": csrf_of(page.text), "name": "Các phường, xã phía Bắc",
                                                "visibility": "province", "room_ids": [str(rooms[0]), str(rooms[2])]},
                          follow_redirects=False)
    assert created.status_code == 303
    group_id = int(created.headers["location"].rsplit("/", 1)[1])
    edit = client.get(f"/site-groups/{group_id}")
    # The rooms are listed in Vietnamese order of their names (confsvc.collation), not by id.
    assert sorted(re.findall(r'<option value="(\d+)" selected>', edit.text)) == sorted([str(rooms[0]), str(rooms[2])])
    changed = client.post(f"/site-groups/{group_id}", data={"csrf": csrf_of(edit.text), "name": "Các xã phía Bắc",
                                                           "visibility": "units", "room_ids": [str(rooms[1])]},
                          follow_redirects=False)
    assert changed.status_code == 303
    with make_session(engine) as session:
        group = session.get(SiteGroup, group_id)
        assert (group.name, group.visibility.value) == ("Các xã phía Bắc", "units")
        assert session.exec(select(SiteGroupRoom.room_id).where(SiteGroupRoom.group_id == group_id)).all() == [rooms[1]]
    empty = client.post("/site-groups", data={"csrf": csrf_of(edit.text), "name": "  "})
    assert empty.status_code == 422 and 'id="form-errors"' in empty.text
    taken = client.post("/site-groups", data={"csrf": csrf_of(edit.text), "name": "Các xã phía Bắc"})
    assert taken.status_code == 422 and "Bạn đã có một nhóm điểm cầu với tên này." in taken.text
    deleted = client.post(f"/site-groups/{group_id}/delete", data={"csrf": csrf_of(edit.text)}, follow_redirects=False)
    assert deleted.status_code == 303
    with make_session(engine) as session:
        assert session.get(SiteGroup, group_id) is None


def test_booking_page_offers_visible_site_groups_with_their_rooms(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        rooms = [r.id for r in province.rooms]
    login(client, "vanphong")
    page = client.get("/site-groups")
    client.post("/site-groups", data={"csrf": csrf_of(page.text), "name": "Khối phường",
                                      "room_ids": [str(rooms[1]), str(rooms[3])]})
    booking = client.get("/meetings/new")
    assert re.search(rf'<option value="\d+" data-rooms="{rooms[1]},{rooms[3]}">Khối phường \(2\)</option>',
                     booking.text)
    assert "/static/site_groups.js" in booking.text


def test_meeting_page_links_the_invitation_in_docx_and_pdf(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        chair = province.chair.id
    login(client, "vanphong")
    t = next_monday_local()
    page = client.get("/meetings/new")
    booked = client.post("/meetings/new", data={
        "csrf": csrf_of(page.text), "title": "Hội nghị giao ban", "date": t.strftime("%d/%m/%Y"),
        "start_time": "08:00", "end_time": "10:00", "chair_room_id": str(chair),
        "participant_room_ids": [str(province.rooms[0].id)]}, follow_redirects=False)
    assert booked.status_code == 303, booked.text
    meeting = client.get(booked.headers["location"])
    meeting_id = int(booked.headers["location"].rsplit("/", 1)[1])
    link = rf'href="(/api/v1/meetings/{meeting_id}/invitation\.(?:docx|pdf)\?occurrence_id=\d+)"[^>]*>([^<]+)<'
    links = re.findall(link, meeting.text)
    assert [label for _href, label in links] == ["Tải giấy mời (DOCX)", "Tải giấy mời (PDF)"]
    pdf = client.get(links[1][0])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_choosing_a_site_group_ticks_its_rooms_in_the_browser(live_server: str, browser_page, engine: Engine,  # noqa: F811
                                                              backend: str) -> None:
    from playwright.sync_api import expect

    page = browser_page
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        rooms = [r.id for r in province.rooms]
    page.goto(f"{live_server}/login")
    page.get_by_label("Tên đăng nhập").fill("vanphong")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Tổng quan", exact=True)).to_be_visible()
    page.get_by_role("link", name="Đặt lịch họp").click()
    page.get_by_role("link", name="Quản lý nhóm điểm cầu").click()
    page.fill("#name", "Hai xã")
    page.select_option("#room_ids", [str(rooms[0]), str(rooms[2])])
    page.click("#site-group-form button[type=submit]")
    expect(page.locator("#site-groups")).to_contain_text("Hai xã")
    _shot(page, backend, "site-groups")
    page.goto(f"{live_server}/meetings/new")
    page.select_option("#site-group", label="Hai xã (2)")
    checked = page.locator('input[name="participant_room_ids"]:checked')
    expect(checked).to_have_count(2)
    assert sorted(int(v) for v in checked.evaluate_all("els => els.map(e => e.value)")) == sorted([rooms[0], rooms[2]])
    expect(page.locator("#selected-count")).to_contain_text("2")
    _shot(page, backend, "booking-site-group")
    page.get_by_role("link", name="Nhật ký", exact=True).click()
    expect(page.get_by_role("heading", name="Nhật ký hệ thống")).to_be_visible()
    _shot(page, backend, "audit")
