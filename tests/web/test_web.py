"""The HTML inventory page: login with CSRF, scoped listing, autoescaping; served from the package."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from confsvc.users.models import Role
from tests.factories import make_endpoint, make_room, make_unit, make_user


def _login(client: TestClient, username: str, password: str):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf, "next": "/"},
                       follow_redirects=False)


def test_pages_need_login(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login?next=%2F")
    response = client.get("/calendar?view=day", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login?next=%2Fcalendar%3Fview%3Dday")


def test_login_without_csrf_is_refused(client: TestClient, session: Session) -> None:
    make_user(session, username="vanphong", password="mat-khau-dai", role=Role.secretariat)
    session.commit()
    client.get("/login")
    response = client.post("/login", data={"username": "vanphong", "password": "mat-khau-dai", "csrf": "forged"})
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")


def test_wrong_password_shows_vietnamese_error(client: TestClient, session: Session) -> None:
    make_user(session, username="vanphong", password="mat-khau-dai", role=Role.secretariat)
    session.commit()
    response = _login(client, "vanphong", "sai")
    assert response.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu." in response.text


def test_inventory_lists_endpoints_escaped_and_scoped(client: TestClient, session: Session) -> None:
    viet_tri = make_unit(session, code="07900", name="Phường Việt Trì")
    other = make_unit(session, code="08020", name="Xã Đoan Hùng")
    make_endpoint(session, make_room(session, viet_tri, name="Điểm cầu <script>alert(1)</script>"),
                  serial="SN-VT", vendor="Poly", model="G7500")
    make_endpoint(session, make_room(session, other, name="Điểm cầu Đoan Hùng"), serial="SN-DH")
    make_user(session, Role.operator, units=[viet_tri], username="kythuat", password="mat-khau-dai")
    session.commit()
    assert _login(client, "kythuat", "mat-khau-dai").status_code == 303
    page = client.get("/inventory")
    assert page.status_code == 200
    assert "<h1>Danh mục điểm cầu</h1>" in page.text
    assert "SN-VT" in page.text and "SN-DH" not in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert client.get("/static/confsvc.css").status_code == 200


def test_logout_ends_the_session(client: TestClient, session: Session) -> None:
    make_user(session, username="vanphong", password="mat-khau-dai", role=Role.secretariat)
    session.commit()
    _login(client, "vanphong", "mat-khau-dai")
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


def test_openapi_docs_list_the_inventory(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/units", "/api/v1/rooms", "/api/v1/endpoints", "/api/v1/bridges",
            "/api/v1/endpoints/import", "/api/v1/endpoints/export.csv"} <= set(paths)
