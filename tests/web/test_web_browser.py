"""The web UI in a real browser: Debian's headless Chromium driven by Playwright against a real
uvicorn server on a free port, on the test database (SQLite and PostgreSQL).

The secretariat logs in, books a weekly meeting for the chair room and three communes, sees an
overlapping booking refused on the form by the live check, accepts a suggested free slot, cancels
one occurrence, and switches to English and back. Screenshots of each main page are saved under
``test-artifacts/web/<backend>/``.

Needs ``playwright`` (pip) and Chromium at ``/usr/bin/chromium``; ``scripts/test`` installs both and
the test fails, never skips, without them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.main import create_app
from confsvc.scheduling.models import Meeting, Occurrence, OccurrenceStatus
from tests.factories import next_monday_local
from tests.web_support import PASSWORD, make_province

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def _require_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package"
    else:
        missing = "" if Path(CHROMIUM).exists() else CHROMIUM
    if missing:
        pytest.fail(f"browser tests need {missing} (scripts/test installs them: pip install playwright; "
                    "apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(settings: Settings, engine: Engine) -> Iterator[str]:
    """The real app under uvicorn in a thread, on the test database; stopped and joined afterwards."""
    port = _free_port()
    config = uvicorn.Config(create_app(settings, engine=engine), host="127.0.0.1", port=port, log_level="warning",
                            ws="none", http="h11", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def browser_page(backend: str) -> Iterator[object]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="vi-VN",
                                          timezone_id="Asia/Ho_Chi_Minh")
            page = context.new_page()
            page.set_default_timeout(15000)
            yield page
            context.close()
        finally:
            browser.close()


def _shot(page, backend: str, name: str) -> None:
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_secretariat_books_sees_conflict_takes_free_slot_cancels_and_switches_language(
        live_server: str, browser_page, engine: Engine, backend: str) -> None:
    from playwright.sync_api import expect

    page = browser_page
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        commune_names = [u.name for u in province.communes[:3]]
    monday = next_monday_local(weeks_ahead=2)
    day = monday.strftime("%d/%m/%Y")

    # Log in as the secretariat (Vietnamese by default).
    page.goto(f"{live_server}/login")
    _shot(page, backend, "01-login")
    page.get_by_label("Tên đăng nhập").fill("vanphong")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Tổng quan", exact=True)).to_be_visible()

    # Book a weekly meeting (3 occurrences) for the chair room and three communes.
    page.get_by_role("link", name="Đặt lịch họp").click()
    page.get_by_label("Tên cuộc họp").fill("Hội nghị giao ban trực tuyến tháng 3")
    page.get_by_label("Ngày").first.fill(day)
    page.get_by_label("Bắt đầu").fill("08:00")
    page.get_by_label("Kết thúc").fill("10:00")
    page.get_by_label("Lặp lại", exact=True).select_option("weekly")
    page.get_by_label("Số buổi họp").fill("3")
    for name in commune_names:
        page.locator(".unit", has_text=name).locator(".unit-toggle").check()
    expect(page.locator("#selected-count")).to_have_text("Đã chọn 3 điểm cầu")
    expect(page.locator("#check")).to_contain_text("Không trùng lịch")
    _shot(page, backend, "02-booking-form")
    page.get_by_role("button", name="Đặt lịch họp").click()
    expect(page.get_by_role("heading", name="Hướng dẫn kết nối")).to_be_visible()
    expect(page.locator(".join")).to_contain_text("sip:1000@mcu.phutho.gov.vn")
    expect(page.locator(".when")).to_contain_text(f"08:00–10:00 Thứ Hai, {day}")
    for name in commune_names:
        expect(page.locator("table", has_text="Điểm cầu tham dự").or_(page.locator("table")).last
               ).to_contain_text(name)
    first_url = page.url
    _shot(page, backend, "03-meeting")

    # An overlapping booking: the live check names the meeting it collides with.
    page.get_by_role("link", name="Đặt lịch họp").click()
    page.get_by_label("Tên cuộc họp").fill("Họp chuyên đề chuyển đổi số")
    page.get_by_label("Ngày").first.fill(day)
    page.get_by_label("Bắt đầu").fill("09:00")
    page.get_by_label("Kết thúc").fill("11:00")
    page.locator(".unit", has_text=commune_names[0]).locator(".unit-toggle").check()
    # The script shows the server's grouped line (web.booking.conflict_messages), linked to the meeting,
    # with the rooms in an expandable list.
    expect(page.locator("#check .conflict-text")).to_have_text(
        f"2 điểm cầu trùng với «Hội nghị giao ban trực tuyến tháng 3» (08:00–10:00 Thứ Hai, {day}, "
        "kiểm tra kỹ thuật từ 07:00).")
    expect(page.locator("#check .conflict-text a")).to_have_attribute(
        "href", "/meetings/" + first_url.rsplit("/meetings/", 1)[1].split("?")[0])
    expect(page.locator("#check details summary")).to_have_text("Xem 2 điểm cầu")
    _shot(page, backend, "04-booking-conflict")

    # Accept the first suggested free slot: the check turns green and the booking goes through.
    page.get_by_role("button", name="Tìm khung giờ trống").click()
    slot = page.locator("#slots .slot").first
    expect(slot).to_be_visible()
    slot_text = slot.inner_text()
    slot.click()
    expect(page.locator("#check")).to_contain_text("Không trùng lịch")
    page.get_by_role("button", name="Đặt lịch họp").click()
    expect(page.locator(".when")).to_have_text(slot_text)
    expect(page.locator("h1")).to_contain_text("Họp chuyên đề chuyển đổi số")

    # Cancel the second occurrence of the weekly meeting, through the confirmation step.
    page.goto(first_url)
    page.get_by_role("link", name="Hủy buổi họp này").nth(1).click()
    expect(page.get_by_role("heading", name="Hủy buổi họp này?")).to_be_visible()
    _shot(page, backend, "05-cancel-confirm")
    page.get_by_role("button", name="Đồng ý hủy").click()
    expect(page.locator(".when")).to_contain_text("Buổi họp này đã hủy")
    with make_session(engine) as session:
        meeting = session.exec(select(Meeting).where(Meeting.title == "Hội nghị giao ban trực tuyến tháng 3")).one()
        states = [o.status for o in session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)
                                                 .order_by(Occurrence.start)).all()]
    assert states == [OccurrenceStatus.scheduled, OccurrenceStatus.cancelled, OccurrenceStatus.scheduled]

    # The calendar's week shows both meetings; a click opens the meeting.
    page.goto(f"{live_server}/calendar?view=week&date={monday.date().isoformat()}")
    expect(page.locator(".week .event")).to_have_count(2)
    expect(page.locator(".week")).to_contain_text("Thứ Hai")
    expect(page.locator(".week")).to_contain_text("Chủ nhật")
    _shot(page, backend, "06-calendar-week")
    page.locator(".week .event", has_text="Hội nghị giao ban").click()
    expect(page.get_by_role("heading", name="Hướng dẫn kết nối")).to_be_visible()

    # English and back.
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Join instructions")).to_be_visible()
    expect(page.locator(".when")).to_contain_text(f"08:00–10:00 Monday, {day}")
    _shot(page, backend, "07-meeting-english")
    page.get_by_role("button", name="Tiếng Việt").click()
    expect(page.get_by_role("heading", name="Hướng dẫn kết nối")).to_be_visible()

    # The other main pages.
    page.goto(f"{live_server}/calendar?view=day&date={monday.date().isoformat()}")
    _shot(page, backend, "08-calendar-day")
    page.goto(f"{live_server}/")
    _shot(page, backend, "09-dashboard")
    page.goto(f"{live_server}/inventory?q=viet+tri")
    expect(page.locator("table.grid tbody tr")).to_have_count(1)
    expect(page.locator("table.grid")).to_contain_text("Phường Việt Trì")
    page.goto(f"{live_server}/inventory")
    _shot(page, backend, "10-inventory")
    page.goto(f"{live_server}/feeds")
    page.get_by_label("Lịch của").select_option(label="Tỉnh Phú Thọ")
    page.get_by_label("Tên", exact=True).fill("Lịch Văn phòng")
    page.get_by_role("button", name="Tạo liên kết").click()
    expect(page.locator("#feed-url")).to_have_value(
        __import__("re").compile(r"^http://127\.0\.0\.1:\d+/ical/province/\d+\.ics\?token=cal_"))
    _shot(page, backend, "11-feeds")
