"""Unit mergers in Chromium (issue 15, "Unit mergers and renames with history"), at 1366 px and on a 375-px
phone, on both backends: after Xã Bằng Luân and Xã Chí Đám merge into Xã Đoan Hùng Tây, the former unit's
edit page says "Đã sáp nhập vào …", and the statistics page's option "Gộp đơn vị cũ vào đơn vị kế thừa"
rolls the former units' November into their successor's row. Screenshots under
``test-artifacts/units/<backend>/``; the pages never scroll sideways."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.users.models import Role
from tests.endpoints.test_unit_history import _merge, build
from tests.factories import make_user
from tests.web.test_web_browser import browser_page, live_server  # noqa: F401 (fixtures)
from tests.web_support import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "units"


def _shot(page, backend: str, name: str) -> None:
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _fits(page, width: int) -> None:
    """No horizontal scroll: the document is no wider than the viewport."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_merged_unit_page_names_its_successor_and_statistics_roll_it_up(
        engine: Engine, settings: Settings, live_server: str, browser_page, backend: str,  # noqa: F811
        width: int, height: int) -> None:
    from playwright.sync_api import expect

    with make_session(engine) as session:
        scene = build(session, settings)
        make_user(session, Role.admin, username="quantri", password=PASSWORD)
        _merge(session, settings, scene)
        session.commit()
        former_id = scene.a.id
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server}/login")
    page.get_by_label("Tên đăng nhập").fill("quantri")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{live_server}/")

    page.goto(f"{live_server}/inventory/units/{former_id}/edit")
    expect(page.get_by_text("Đã sáp nhập vào Xã Đoan Hùng Tây từ ngày 01/12/2026")).to_be_visible()
    _fits(page, width)
    _shot(page, backend, f"unit-merged-{width}")

    page.goto(f"{live_server}/statistics?group_by=unit&period=month&from=01/11/2026&to=30/11/2026")
    rollup = page.get_by_label("Gộp đơn vị cũ vào đơn vị kế thừa")
    expect(rollup).not_to_be_checked()
    expect(page.locator(".stats-table tbody th", has_text="Xã Bằng Luân")).to_have_count(1)
    rollup.check()
    page.get_by_role("button", name="Xem").click()
    page.wait_for_url("**rollup=successor**")
    expect(page.get_by_label("Gộp đơn vị cũ vào đơn vị kế thừa")).to_be_checked()
    expect(page.locator(".stats-table tbody th", has_text="Xã Đoan Hùng Tây")).to_have_count(1)
    expect(page.locator(".stats-table tbody th", has_text="Xã Bằng Luân")).to_have_count(0)
    expect(page.get_by_role("link", name="Xuất Excel")).to_have_attribute("href", "/api/v1/stats/usage.xlsx?"
        "group_by=unit&period=month&from=2026-11-01&to=2026-12-01&rollup=successor")
    _fits(page, width)
    _shot(page, backend, f"statistics-rollup-{width}")
