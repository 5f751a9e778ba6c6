"""The request pages in Chromium (issue 15, "Requests and approval"), at 1366 px and on a 375-px phone,
on both backends: a requester submits a request from the booking form; the secretariat's queue "Yêu cầu
đặt lịch" lists it after an older one (oldest first) with the conflict that appeared since; one click
approves the older one; the newer one is rejected with a reason, which the requester then reads.
Screenshots under ``test-artifacts/requests/<backend>/``; the page never scrolls sideways."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint
from confsvc.scheduling.models import Meeting, MeetingStatus
from confsvc.scheduling.request_models import MeetingRequest, RequestState
from confsvc.users.models import Role
from tests.factories import bearer, make_user, next_monday_local
from tests.web.test_web_browser import browser_page, live_server  # noqa: F401 (fixtures)
from tests.web_support import PASSWORD, make_province

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "requests"
TITLE = "Giao ban xã Thanh Ba về chuyển đổi số"
REASON = "Trùng lịch họp Tỉnh ủy; đề nghị chọn ngày khác."


def _login(page, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{base}/")


def _day(moment) -> str:
    """"Thứ Hai, 21/12/2026": the weekday and date as the pages write them."""
    weekdays = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
    return f"{weekdays[moment.weekday()]}, {moment:%d/%m/%Y}"


def _fits(page, width: int) -> None:
    """No horizontal scroll: the document is no wider than the viewport."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _shot(page, backend: str, name: str) -> None:
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_requester_submits_secretariat_sees_queue_with_conflicts_approves_and_rejects(
        client: TestClient, engine: Engine, live_server: str, browser_page, backend: str,  # noqa: F811
        width: int, height: int) -> None:
    from playwright.sync_api import expect

    with make_session(engine) as session:
        province = make_province(session)
        requester = make_user(session, Role.requester, units=[province.communes[0]], username="xathanhba",
                              password=PASSWORD, full_name="UBND xã Thanh Ba")
        h = {"requester": bearer(session, requester), "secretariat": bearer(session, make_user(session, Role.secretariat))}
        own, ward, third = (r.id for r in province.rooms[:3])
        ward_name = province.communes[1].name  # Phường Việt Trì
        session.commit()
    start = next_monday_local(hour=8)
    older = client.post("/api/v1/requests", headers=h["requester"], json={
        "title": "Họp chi bộ xã Thanh Ba", "chair_room_id": own, "start": (start + timedelta(days=1)).isoformat(),
        "end": (start + timedelta(days=1, hours=1)).isoformat()})
    assert older.status_code == 201, older.text
    older_id = older.json()["id"]

    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    # The requester fills the booking form: their own room chairs, Phường Việt Trì takes part.
    _login(page, live_server, "xathanhba")
    if width < 700:  # on a phone the main navigation is folded behind "Danh mục"
        page.get_by_role("button", name="Danh mục").click()
    page.locator("#mainnav").get_by_role("link", name="Đăng ký lịch họp").click()
    expect(page.get_by_role("heading", name="Đăng ký lịch họp")).to_be_visible()
    page.get_by_label("Tên cuộc họp").fill(TITLE)
    page.get_by_label("Ngày").first.fill(start.strftime("%d/%m/%Y"))
    page.get_by_label("Bắt đầu").fill("08:00")
    page.get_by_label("Kết thúc").fill("10:00")
    page.locator(".unit", has_text=ward_name).locator(".unit-toggle").check()
    expect(page.locator("#selected-count")).to_have_text("Đã chọn 1 điểm cầu")
    _fits(page, width)
    _shot(page, backend, f"01-request-form-{width}")
    page.get_by_role("button", name="Gửi yêu cầu").click()
    page.wait_for_url("**/requests/mine?submitted=*")
    newer_id = int(page.url.rsplit("=", 1)[1])
    expect(page.locator("#request-sent")).to_be_visible()
    expect(page.locator(f"#request-{newer_id}")).to_contain_text("Chờ duyệt")
    _fits(page, width)
    _shot(page, backend, f"02-my-requests-{width}")

    # A conflict appears after submission: Phường Việt Trì's endpoint is moved into a room that the
    # secretariat has booked for that time (the queue's dry run sees participants as they are now).
    busy = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Họp Tỉnh ủy", "chair_room_id": third, "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat()})
    assert busy.status_code == 201, busy.text
    with make_session(engine) as session:
        endpoint = session.exec(select(Endpoint).where(Endpoint.room_id == ward)).one()
        endpoint.room_id = third
        session.add(endpoint)
        session.commit()

    # The secretariat's queue: oldest first, the newer request with its conflict, the older with none.
    _login(page, live_server, "vanphong")
    page.goto(f"{live_server}/requests")
    expect(page.get_by_role("heading", name="Yêu cầu đặt lịch")).to_be_visible()
    rows = page.locator("#request-queue tbody tr")
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("id") for i in range(2)] == [f"request-{older_id}", f"request-{newer_id}"]
    expect(rows.nth(0)).to_contain_text("Họp chi bộ xã Thanh Ba")
    expect(rows.nth(0)).to_contain_text("Không có")
    expect(rows.nth(1)).to_contain_text(TITLE)
    expect(rows.nth(1)).to_contain_text("UBND xã Thanh Ba")
    # The conflict reads as a sentence linked to the other meeting (it was once a Python dict's repr).
    conflict = rows.nth(1).locator(".conflicts li.conflict")
    expect(conflict.locator(".conflict-text a")).to_have_text(
        f"1 điểm cầu trùng với «Họp Tỉnh ủy» (08:00–09:00 {_day(start)}, kiểm tra kỹ thuật từ 07:00).")
    expect(conflict.locator(".conflict-text a")).to_have_attribute("href", f"/meetings/{busy.json()['id']}")
    expect(conflict.locator("summary")).to_have_text("Xem 1 điểm cầu")
    assert "{'text'" not in rows.nth(1).inner_text()
    _fits(page, width)
    _shot(page, backend, f"03-queue-{width}")

    # One click approves the older request.
    rows.nth(0).get_by_role("button", name="Duyệt").click()
    page.wait_for_url(f"{live_server}/requests")
    expect(page.locator("#request-queue tbody tr")).to_have_count(1)
    expect(page.locator(f"#request-{older_id}")).to_have_count(0)
    # The newer one is rejected with a reason.
    row = page.locator(f"#request-{newer_id}")
    row.get_by_label("Lý do").fill(REASON)
    row.get_by_role("button", name="Từ chối").click()
    page.wait_for_url(f"{live_server}/requests")
    expect(page.locator("#request-queue")).to_contain_text("Không có yêu cầu nào chờ duyệt.")
    _fits(page, width)
    _shot(page, backend, f"04-queue-done-{width}")
    with make_session(engine, write=False) as session:
        decided = {r.meeting_id: (r.state, r.reason) for r in session.exec(select(MeetingRequest)).all()}
        statuses = {m.id: m.status for m in session.exec(select(Meeting).where(Meeting.id.in_([older_id, newer_id])))}
    assert decided == {older_id: (RequestState.approved, ""), newer_id: (RequestState.rejected, REASON)}
    assert statuses == {older_id: MeetingStatus.confirmed, newer_id: MeetingStatus.cancelled}

    # The requester reads the outcome and the reason.
    _login(page, live_server, "xathanhba")
    page.goto(f"{live_server}/requests/mine")
    expect(page.locator(f"#request-{older_id}")).to_contain_text("Đã duyệt")
    expect(page.locator(f"#request-{newer_id}")).to_contain_text("Bị từ chối")
    expect(page.locator(f"#request-{newer_id}")).to_contain_text(REASON)
    _fits(page, width)
    _shot(page, backend, f"05-my-requests-decided-{width}")
