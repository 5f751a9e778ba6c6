"""The users page in Chromium (issue 14), at 1366 px and on a 375-px phone, on both backends: the national
administrator moves ``lanhdao`` from Tỉnh Phú Thọ to Thành phố Hà Nội with the Tỉnh/Thành phố field and
the list then shows the new province. Screenshots under ``test-artifacts/users/<backend>/``; the page
never scrolls sideways."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.users.models import Role
from tests.factories import make_unit, make_user
from tests.web.test_web_browser import browser_page, live_server  # noqa: F401 (fixtures)
from tests.web_support import PASSWORD, make_province

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "users"


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_the_national_admin_moves_a_user_to_another_province_on_the_users_page(
        engine: Engine, live_server: str, browser_page, backend: str, width: int, height: int) -> None:  # noqa: F811
    from playwright.sync_api import expect

    with make_session(engine) as session:
        make_province(session)
        make_unit(session, code="01", name="Thành phố Hà Nội", division_type="thành phố", level=UnitLevel.province)
        make_user(session, Role.admin, username="quantri.quocgia", password=PASSWORD, full_name="Quản trị quốc gia")
        session.commit()
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server}/login")
    page.get_by_label("Tên đăng nhập").fill("quantri.quocgia")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{live_server}/")

    page.goto(f"{live_server}/users")
    row = page.locator("#users tbody tr", has_text="lanhdao")
    expect(row.locator("td.province")).to_have_text("Tỉnh Phú Thọ")
    row.get_by_role("link", name="lanhdao").click()
    field = page.get_by_label("Tỉnh/Thành phố")
    expect(field).to_have_value("25")
    field.select_option(label="Thành phố Hà Nội")
    page.get_by_role("button", name="Lưu thay đổi").click()
    page.wait_for_load_state()
    expect(page.locator("#users tbody tr", has_text="lanhdao").locator("td.province")).to_have_text("Thành phố Hà Nội")
    expect(page.get_by_label("Tỉnh/Thành phố")).to_have_value("01")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"users-{width}.png"), full_page=True)
