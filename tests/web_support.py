"""Shared data and helpers for the web UI tests: a small province (a chair room and four communes with
one endpoint each, one bridge) and users of each role, plus a logged-in TestClient helper."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlmodel import Session

from confsvc.endpoints.models import Room, Unit, UnitLevel
from confsvc.endpoints.service import endpoint_search_text
from confsvc.users.models import Role
from tests.factories import make_bridge, make_endpoint, make_room, make_unit, make_user

PASSWORD = "mat-khau-dai-1"
COMMUNES = ("Xã Thanh Ba", "Phường Việt Trì", "Xã Đoan Hùng", "Xã Tam Nông")


@dataclass
class Province:
    province: Unit
    chair: Room
    communes: list[Unit]
    rooms: list[Room]


def make_province(session: Session) -> Province:
    """Tỉnh Phú Thọ with its chair room, four communes (room + endpoint each), a 200-port MCU and users
    ``vanphong`` (secretariat), ``quantri`` (admin), ``kythuat`` (operator of the first commune), ``lanhdao`` (viewer)."""
    province = make_unit(session, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
    chair = make_room(session, province, name="Phòng họp trực tuyến UBND tỉnh")
    make_endpoint(session, chair, name="Poly G7500 phòng chủ trì", vendor="Poly", model="G7500",
                  dial_address="sip:ubndtinh@vc.phutho.gov.vn")
    communes, rooms = [], []
    for i, name in enumerate(COMMUNES):
        unit = make_unit(session, code=f"0{7900 + i}", name=name, parent_id=province.id,
                         division_type=name.split(" ")[0].lower())
        room = make_room(session, unit, name=f"Điểm cầu {name}", contact_name="Nguyễn Văn An")
        endpoint = make_endpoint(session, room, vendor="Huawei", model="TE30")
        endpoint.search_text = endpoint_search_text(endpoint, room, unit)  # as the inventory service writes it
        session.add(endpoint)
        communes.append(unit)
        rooms.append(room)
    make_bridge(session, name="MCU Sở KH&CN", sip_domain="mcu.phutho.gov.vn", conference_number_min=1000)
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD, full_name="Văn phòng UBND tỉnh")
    make_user(session, Role.admin, username="quantri", password=PASSWORD, full_name="Quản trị hệ thống")
    make_user(session, Role.operator, units=[communes[0]], username="kythuat", password=PASSWORD,
              full_name="Cán bộ kỹ thuật Thanh Ba")
    make_user(session, Role.viewer, username="lanhdao", password=PASSWORD, full_name="Lãnh đạo tỉnh")
    return Province(province, chair, communes, rooms)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"username": username, "password": password, "csrf": csrf_of(page.text),
                                           "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text


def browser_login(browser, base: str, username: str, *, size: tuple[int, int] = (1440, 900),
                  timeout_ms: int = 15000, password: str = PASSWORD):
    """Sign ``username`` in through the login form in a new Playwright context (Vietnamese locale, Hà Nội
    time, a ``size`` viewport); returns ``(context, page)`` on the dashboard. The caller closes the context."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="vi-VN",
                                  timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(f"{base}/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{base}/")
    return context, page
