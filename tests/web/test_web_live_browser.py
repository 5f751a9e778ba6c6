"""The live dashboard in a real browser (Debian's headless Chromium via Playwright) against a real
uvicorn server with WebSockets, on the test database (SQLite and PostgreSQL).

The secretariat's dashboard is open in one browser context; an operator, in another context, marks
their commune's site "Gặp sự cố" then "Đã sẵn sàng" on the meeting page, and a device agent's status
report takes an endpoint offline through the API: the secretariat's dashboard shows each change
without a reload (its socket authenticated by the web session cookie). Screenshots under
``test-artifacts/web/<backend>/``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.main import create_app
from confsvc.users.models import Role
from tests.factories import bearer, make_user
from tests.live_support import ThreadServer
from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, _shot
from tests.web.test_web_live import _province_with_meeting
from tests.web_support import browser_login

#: How long the dashboard may take to show a change (the socket, one fragment fetch).
LIVE_TIMEOUT_MS = 5000


@pytest.fixture
def server(db_url: str, tmp_path: Path, engine: Engine) -> Iterator[ThreadServer]:
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    with ThreadServer(create_app(settings, engine=engine)) as running:
        yield running


@pytest.fixture
def browser(backend: str) -> Iterator[object]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _login(browser, base: str, username: str):
    return browser_login(browser, base, username)


def test_operator_marks_ready_and_the_secretariats_dashboard_changes_without_reload(
        server: ThreadServer, browser, engine: Engine, backend: str) -> None:
    from playwright.sync_api import expect

    province, meeting_id, _occ, _start = _province_with_meeting(engine)
    with make_session(engine) as session:
        admin = bearer(session, make_user(session, Role.admin))
        session.commit()
    secretariat_context, dashboard = _login(browser, server.base, "vanphong")
    operator_context, operator = _login(browser, server.base, "kythuat")
    try:
        board = dashboard.locator("#readiness-board")
        site = board.locator("tr", has_text="Điểm cầu Xã Thanh Ba")
        expect(site).to_contain_text("Chưa kiểm tra")
        expect(board).to_contain_text("0/3 điểm cầu đã sẵn sàng")
        expect(dashboard.locator("#live-state")).to_have_attribute("data-state", "live")
        expect(dashboard.locator("#live-state")).to_have_text(re.compile("Đang cập nhật trực tiếp"))
        dashboard.evaluate("window.__sameDocument = true")  # gone if the page reloads
        _shot(dashboard, backend, "12-dashboard-live")

        # The operator reports a problem on the meeting page, with a note.
        operator.goto(f"{server.base}/meetings/{meeting_id}")
        operator.get_by_role("radio", name="Gặp sự cố").check()
        operator.get_by_label("Ghi chú (bắt buộc khi gặp sự cố)").fill("Mất tiếng micro")
        _shot(operator, backend, "13-meeting-readiness-form")
        operator.get_by_role("button", name="Gửi báo cáo sẵn sàng").click()
        expect(operator.locator("tr", has_text="Điểm cầu Xã Thanh Ba")).to_contain_text("Gặp sự cố")
        expect(site).to_contain_text("Gặp sự cố", timeout=LIVE_TIMEOUT_MS)
        expect(site).to_contain_text("Mất tiếng micro")

        # Then ready: the count moves too.
        operator.get_by_role("radio", name="Đã sẵn sàng").check()
        operator.get_by_label("Ghi chú (bắt buộc khi gặp sự cố)").fill("")
        operator.get_by_role("button", name="Gửi báo cáo sẵn sàng").click()
        expect(site).to_contain_text("Đã sẵn sàng", timeout=LIVE_TIMEOUT_MS)
        expect(board).to_contain_text("1/3 điểm cầu đã sẵn sàng", timeout=LIVE_TIMEOUT_MS)

        # A device agent reports the commune's endpoint offline: the status counts change live.
        offline = dashboard.locator(".stat-offline .stat-n")
        expect(offline).to_have_text("0")
        with make_session(engine, write=False) as session:
            from sqlmodel import select

            from confsvc.endpoints.models import Endpoint
            endpoint_id = session.exec(select(Endpoint.id).where(Endpoint.room_id == province.rooms[1].id)).one()
        answer = httpx.post(f"{server.base}/api/v1/endpoints/{endpoint_id}/status", json={"status": "offline"},
                            headers=admin, timeout=10)
        assert answer.status_code == 200, answer.text
        expect(offline).to_have_text("1", timeout=LIVE_TIMEOUT_MS)
        expect(dashboard.locator(".down")).to_have_text(["Điểm cầu Phường Việt Trì – Huawei TE30"])
        assert dashboard.evaluate("window.__sameDocument === true")
        _shot(dashboard, backend, "14-dashboard-after-live-updates")
    finally:
        operator_context.close()
        secretariat_context.close()


def test_statistics_page_draws_its_charts_and_offers_the_exports(server: ThreadServer, browser, engine: Engine,
                                                                 backend: str) -> None:
    from playwright.sync_api import expect

    from tests import stats_scenario as sc
    from tests.web_support import PASSWORD as password

    with make_session(engine) as session:
        sc.build(session, Settings(secret_key="x" * 40))
        make_user(session, Role.secretariat, username="thongke", password=password)
        session.commit()
    context, page = _login(browser, server.base, "thongke")
    try:
        page.get_by_role("link", name="Thống kê").click()
        page.get_by_label("Từ ngày").fill("01/10/2026")
        page.get_by_label("Đến ngày").fill("30/11/2026")
        page.get_by_label("Nhóm theo").select_option(label="Đơn vị")
        page.get_by_role("button", name="Xem").click()
        expect(page.locator("svg.chart")).to_have_count(2)
        expect(page.locator(".stats-table tfoot")).to_contain_text("5,33")
        with page.expect_download() as download:
            page.get_by_role("link", name="Xuất Excel").click()
        # Both dates inclusive (issue 13: the name said 20261201 for a report ending 30/11).
        assert download.value.suggested_filename == "thong-ke-su-dung_unit_20261001-20261130.xlsx"
        _shot(page, backend, "15-statistics")
    finally:
        context.close()


def test_meeting_page_shows_a_status_change_without_reload(server: ThreadServer, browser, engine: Engine,
                                                           backend: str) -> None:
    from playwright.sync_api import expect
    from sqlmodel import select

    from confsvc.endpoints.models import Endpoint

    province, meeting_id, _occ, _start = _province_with_meeting(engine)
    with make_session(engine) as session:
        admin = bearer(session, make_user(session, Role.admin))
        endpoint_id = session.exec(select(Endpoint.id).where(Endpoint.room_id == province.rooms[1].id)).one()
        session.commit()
    context, page = _login(browser, server.base, "vanphong")
    try:
        page.goto(f"{server.base}/meetings/{meeting_id}")
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
        page.evaluate("window.__sameDocument = true")
        row = page.locator(f'#live-panels tr[data-room="{province.rooms[1].id}"]')
        expect(row.locator(".status")).not_to_have_class(re.compile("status-offline"))
        answer = httpx.post(f"{server.base}/api/v1/endpoints/{endpoint_id}/status", json={"status": "offline"},
                            headers=admin, timeout=10)
        assert answer.status_code == 200, answer.text
        expect(row.locator(".status")).to_have_class(re.compile("status-offline"), timeout=LIVE_TIMEOUT_MS)
        expect(row).to_contain_text("Mất kết nối")
        assert page.evaluate("window.__sameDocument === true")
        _shot(page, backend, "16-meeting-live")
    finally:
        context.close()
