"""Issue 16, defect 6: the Content-Security-Policy blocks nothing the pages of confsvc need: a real
Chromium visits every main page as the secretariat and reports no CSP violation (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from confsvc.db import make_session
from tests.web.test_web_browser import browser_page, live_server  # noqa: F401  (fixtures)
from tests.web_support import PASSWORD, make_province

PAGES = ("/", "/calendar", "/calendar?view=day", "/meetings/new", "/inventory", "/feeds", "/statistics")


def test_no_page_breaks_the_content_security_policy(live_server: str, browser_page, engine: Engine) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    with make_session(engine) as session:
        make_province(session)
        session.commit()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('Content Security Policy: ' + e.violatedDirective + ' ' + e.blockedURI))")
    page.goto(f"{live_server}/login")
    page.get_by_label("Tên đăng nhập").fill("vanphong")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Tổng quan", exact=True)).to_be_visible()
    for path in PAGES:
        response = page.goto(f"{live_server}{path}")
        assert (path, response.status) == (path, 200)
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        page.wait_for_load_state("networkidle")
    assert violations == []
