"""The users page (/users, administrators only, issue 14): the province field (Tỉnh/Thành phố) and column
appear when the deployment holds more than one province; the national administrator creates a user in a
province and moves one to another (audited ``user.updated``); a province's administrator is offered
only their own province and is refused a move out of it, with the reason in Vietnamese."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling.models import AuditEntry
from confsvc.users.models import Role, User
from tests.factories import make_unit, make_user
from tests.web_support import PASSWORD, csrf_of, login, make_province


def _cells(html: str, username: str) -> list[str]:
    """The text of the cells of ``username``'s row in the users table."""
    row = re.search(rf'<tr[^>]*>\s*<td><a href="/users/\d+">{re.escape(username)}</a></td>(.*?)</tr>', html, re.S)
    assert row, username
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def _options(html: str, name: str) -> list[tuple[str, str]]:
    select_ = re.search(rf'<select id="{name}" name="{name}">(.*?)</select>', html, re.S)
    assert select_, name
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select_.group(1))


@pytest.fixture
def two(session: Session) -> dict[str, Any]:
    """The web tests' Phú Thọ (its users, ``quantri`` its administrator) and Hà Nội, plus the national
    administrator ``quantri.quocgia``."""
    make_province(session)
    hanoi = make_unit(session, code="01", name="Thành phố Hà Nội", division_type="thành phố", level=UnitLevel.province)
    make_user(session, Role.admin, username="quantri.quocgia", password=PASSWORD, full_name="Quản trị quốc gia")
    session.commit()
    found = {"hanoi": hanoi.id, "ids": {u.username: u.id for u in session.exec(select(User)).all()}}
    session.rollback()  # SQLite: no transaction left open while the app writes
    return found


def test_one_province_shows_no_province_field(client: TestClient, session: Session) -> None:
    make_province(session)
    session.commit()
    login(client, "quantri")
    page = client.get("/users")
    assert page.status_code == 200
    assert "Tỉnh/Thành phố" not in page.text and 'name="province_code"' not in page.text
    assert _cells(page.text, "lanhdao") == ["Lãnh đạo tỉnh", "Người xem", "Hoạt động"]


def test_the_national_admin_sees_provinces_creates_and_moves_users(
        client: TestClient, session: Session, two: dict[str, Any]) -> None:
    login(client, "quantri.quocgia")
    page = client.get("/users")
    assert '<th scope="col">Tỉnh/Thành phố</th>' in page.text
    assert _cells(page.text, "lanhdao") == ["Lãnh đạo tỉnh", "Người xem", "Tỉnh Phú Thọ", "Hoạt động"]
    assert _cells(page.text, "quantri.quocgia")[2] == "Toàn quốc"
    assert _options(page.text, "province_code") == [
        ("", "Theo đơn vị được gán (không có: toàn quốc)"), ("01", "Thành phố Hà Nội"), ("25", "Tỉnh Phú Thọ")]
    created = client.post("/users", follow_redirects=False, data={
        "csrf": csrf_of(page.text), "username": "xem.hanoi", "full_name": "Lãnh đạo Hà Nội", "email": "",
        "role": "viewer", "password": "mật-khẩu-dài-của-hà-nội", "unit_codes": "", "province_code": "01"})
    assert created.status_code == 303, created.text
    new_id = int(created.headers["location"].rsplit("/", 1)[1])
    assert _cells(client.get("/users").text, "xem.hanoi") == ["Lãnh đạo Hà Nội", "Người xem", "Thành phố Hà Nội",
                                                               "Hoạt động"]
    edit = client.get(f"/users/{two['ids']['lanhdao']}")
    assert ("25", "Tỉnh Phú Thọ") in _options(edit.text, "province_code")
    assert re.search(r'<option value="25" selected>Tỉnh Phú Thọ</option>', edit.text)
    moved = client.post(f"/users/{two['ids']['lanhdao']}", follow_redirects=False, data={
        "csrf": csrf_of(edit.text), "role": "viewer", "active": "1", "password": "", "province_code": "01"})
    assert moved.status_code == 303, moved.text
    assert _cells(client.get("/users").text, "lanhdao")[2] == "Thành phố Hà Nội"
    session.expire_all()
    assert session.get(User, new_id).province_id == two["hanoi"]
    [(action, details)] = [(e.action, e.details) for e in session.exec(select(AuditEntry)).all()]
    session.rollback()
    assert (action, details["user"], details["fields"], details["province"]) == (
        "user.updated", "lanhdao", ["province_id"], "Tỉnh Phú Thọ → Thành phố Hà Nội")


def test_a_province_admin_is_offered_only_their_province_and_refused_a_move(
        client: TestClient, session: Session, two: dict[str, Any]) -> None:
    login(client, "quantri")
    page = client.get("/users")
    assert _options(page.text, "province_code") == [("25", "Tỉnh Phú Thọ")]
    assert "quantri.quocgia" not in page.text  # a national user is outside every province
    edit = client.get(f"/users/{two['ids']['lanhdao']}")
    refused = client.post(f"/users/{two['ids']['lanhdao']}", data={
        "csrf": csrf_of(edit.text), "role": "viewer", "active": "1", "password": "", "province_code": "01"})
    assert refused.status_code == 422
    assert "Bạn không được chuyển người dùng sang tỉnh khác." in refused.text
    session.expire_all()
    assert session.get(User, two["ids"]["lanhdao"]).province_id != two["hanoi"]
    session.rollback()


def test_the_users_page_is_for_administrators_only(client: TestClient, session: Session) -> None:
    make_province(session)
    session.commit()
    login(client, "vanphong")
    page = client.get("/users")
    assert page.status_code == 403 and "Chỉ quản trị hệ thống được quản lý người dùng." in page.text
    assert 'href="/users"' not in client.get("/").text
