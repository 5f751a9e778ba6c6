"""The planner (/planner, rooms × time) in Chromium at the province's real size: 149 rooms (a chair
room and 148 communes, as in Phú Thọ) with the weekly briefing booked on all of them, at 1366×768
and on a 375-px phone. Screenshots under ``test-artifacts/planner/<backend>/``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local
from tests.web.test_web_browser import browser_page, live_server  # noqa: F401 (fixtures)
from tests.web_support import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "planner"
COMMUNES = 148


def _province(engine: Engine) -> dict:
    with make_session(engine) as session:
        province = make_unit(session, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
        chair = make_room(session, province, name="Phòng họp trực tuyến UBND tỉnh")
        make_endpoint(session, chair)
        rooms = []
        for i in range(COMMUNES):
            unit = make_unit(session, code=f"{8000 + i:05d}", name=f"Xã Thử Nghiệm Số {i + 1}", parent_id=province.id)
            room = make_room(session, unit, name=f"Điểm cầu UBND xã Thử Nghiệm Số {i + 1}")
            make_endpoint(session, room)
            rooms.append(room.id)
        make_bridge(session, name="MCU Sở KH&CN", port_capacity=200)
        make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
        headers = bearer(session, make_user(session, Role.secretariat))
        ids = {"province": province.id, "chair": chair.id, "rooms": rooms, "headers": headers}
        session.commit()
    return ids


def _login(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", "vanphong")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{base}/")


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_planner_shows_149_rooms_and_books_a_clicked_free_time(
        client: TestClient, engine: Engine, live_server: str, browser_page, backend: str,  # noqa: F811
        width: int, height: int):
    ids = _province(engine)
    start = next_monday_local(hour=8)
    booked = client.post("/api/v1/meetings", headers=ids["headers"], json={
        "title": "Giao ban trực tuyến toàn tỉnh", "chair_room_id": ids["chair"], "participant_room_ids": ids["rooms"],
        "start": start.isoformat(), "end": (start + timedelta(hours=2, minutes=30)).isoformat()})
    assert booked.status_code == 201, booked.text

    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    _login(page, live_server)
    page.goto(f"{live_server}/planner?date={start.date().isoformat()}&unit_id={ids['province']}")
    page.wait_for_selector(".pl-block")
    assert page.locator(".pl-block.pl-kind-meeting").count() == COMMUNES + 1
    assert page.locator(".pl-lead").count() == COMMUNES + 1
    assert page.locator(".pl-load").count() == 1
    assert page.locator(".pl-bridge .pl-name").inner_text().endswith("149 trên 200")
    # The planner never widens the page: its sheet scrolls sideways inside its own box.
    assert page.evaluate("document.querySelector('.planner').getBoundingClientRect().right") <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"planner-{width}.png"), full_page=False)

    # Click 14:00 on the first row (the chair room): the booking form opens with that day, time and room.
    track = page.locator(".pl-group .pl-track").first
    box = track.bounding_box()
    hour_fraction = (14 - 6) / 14
    page.evaluate("(y) => window.scrollTo(0, y)", box["y"])
    # On a phone the sheet scrolls sideways in its own box: bring 14:00 into view first.
    page.evaluate("(x) => { document.querySelector('.pl-scroll').scrollLeft = x; }",
                  max(0, box["x"] + box["width"] * hour_fraction - width / 2))
    box = track.bounding_box()
    assert 0 < box["x"] + box["width"] * hour_fraction < width
    page.mouse.click(box["x"] + box["width"] * hour_fraction + 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/meetings/new?**")
    query = parse_qs(urlparse(page.url).query)
    assert query["date"] == [start.date().isoformat()]
    assert query["start_time"] == ["14:00"]
    assert query["chair_room_id"] == [str(ids["chair"])]
    assert page.input_value("#date") == start.strftime("%d/%m/%Y")
    assert page.input_value("#start_time") == "14:00"
    assert page.input_value("#end_time") == "16:00"


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_planner_shows_the_rooms_of_a_chosen_site_group(
        client: TestClient, engine: Engine, live_server: str, browser_page, backend: str,  # noqa: F811
        width: int, height: int):
    """Issue 15 "Site groups … usable in … the grid": choosing «Các phường» in the filter shows its three
    rooms only (their meeting too), and the page keeps to the screen's width at 375 px."""
    with make_session(engine) as session:
        province = make_unit(session, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
        chair = make_room(session, province, name="Phòng họp trực tuyến UBND tỉnh")
        make_endpoint(session, chair)
        wards = []
        for name in ("Phường Việt Trì", "Phường Nông Trang", "Phường Thanh Miếu"):
            unit = make_unit(session, name=name, division_type="phường", parent_id=province.id)
            wards.append(make_room(session, unit, name=f"Điểm cầu UBND {name}"))
        communes = [make_room(session, make_unit(session, name=name, parent_id=province.id), name=f"Điểm cầu UBND {name}")
                    for name in ("Xã Đoan Hùng", "Xã Hạ Hòa", "Xã Thanh Sơn", "Xã Tam Nông")]
        for room in (*wards, *communes):
            make_endpoint(session, room)
        make_bridge(session, name="MCU Sở KH&CN", port_capacity=200)
        make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
        headers = bearer(session, make_user(session, Role.secretariat))
        session.commit()
        ward_ids, chair_id, province_id = [r.id for r in wards], chair.id, province.id
    group = client.post("/api/v1/site-groups", headers=headers, json={
        "name": "Các phường", "visibility": "province", "room_ids": ward_ids})
    assert group.status_code == 201, group.text
    start = next_monday_local(hour=14)
    booked = client.post("/api/v1/meetings", headers=headers, json={
        "title": "Họp các phường về chuyển đổi số", "chair_room_id": chair_id, "site_group_ids": [group.json()["id"]],
        "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()})
    assert booked.status_code == 201, booked.text

    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    _login(page, live_server)
    page.goto(f"{live_server}/planner?date={start.date().isoformat()}&unit_id={province_id}")
    page.wait_for_selector(".pl-block")
    assert page.locator(".pl-row .pl-name span").count() == 8  # the province: chair room, 3 wards, 4 communes
    page.select_option("#p-group", label="Các phường")
    page.get_by_role("button", name="Xem").click()
    page.wait_for_url(f"**site_group_id={group.json()['id']}**")
    page.wait_for_selector(".pl-block")
    names = page.locator(".pl-row .pl-name span").all_inner_texts()
    assert names == ["Điểm cầu UBND Phường Nông Trang", "Điểm cầu UBND Phường Thanh Miếu",
                     "Điểm cầu UBND Phường Việt Trì"]
    assert page.locator(".pl-block.pl-kind-meeting").count() == 3
    assert page.locator("#p-group option:checked").inner_text() == "Các phường"
    assert page.locator("label[for=p-group]").inner_text() == "Nhóm điểm cầu"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.querySelector('#p-group').getBoundingClientRect().right") <= width
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"planner-group-{width}.png"), full_page=True)
