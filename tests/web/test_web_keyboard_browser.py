"""Keyboard users reach the booking form's actions at once (issue 13: 322 Tab presses with the 148
communes listed): the second Tab stop is "Chuyển đến nút đặt lịch", and following it puts the focus on
the schedule check beside the "Đặt lịch họp" button. On phones the header's menu collapses behind a button."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from confsvc.db import make_session
from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, live_server  # noqa: F401
from tests.web_support import PASSWORD, make_province


def test_booking_actions_are_two_tabs_away_and_the_phone_menu_collapses(live_server: str,  # noqa: F811
                                                                        engine: Engine) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with make_session(engine) as session:
        make_province(session)
        session.commit()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{live_server}/login?next=/meetings/new")
            page.get_by_label("Tên đăng nhập").fill("vanphong")
            page.get_by_label("Mật khẩu").fill(PASSWORD)
            page.get_by_role("button", name="Đăng nhập").click()
            page.wait_for_url(f"{live_server}/meetings/new")
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Chuyển đến nút đặt lịch"
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.id") == "booking-actions"
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent.trim()") == "Đặt lịch họp"
            # The live check says an impossible date in Vietnamese (it showed pydantic's English before).
            page.locator("#date").fill("31/02/2027")
            expect(page.locator("#check")).to_have_text(
                "Ngày hoặc giờ không hợp lệ: ghi ngày theo dạng dd/mm/yyyy (một ngày có thật) và giờ theo dạng HH:MM.")

            phone = browser.new_page(viewport={"width": 375, "height": 812})
            phone.context.add_cookies(page.context.cookies())
            phone.goto(f"{live_server}/")
            nav = phone.locator("#mainnav")
            toggle = phone.get_by_role("button", name="Danh mục")
            assert not nav.is_visible() and toggle.get_attribute("aria-expanded") == "false"
            assert phone.evaluate("document.querySelector('header.top').getBoundingClientRect().height") < 70
            toggle.click()
            assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
            assert phone.get_by_role("link", name="Lịch họp", exact=True).is_visible()
        finally:
            browser.close()
