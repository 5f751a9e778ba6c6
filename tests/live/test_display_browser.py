"""The room display page in a real browser against a real server process that is killed and restarted.

A uvicorn subprocess (so it can be killed: SIGKILL, no goodbye) serves the app on the test database
(SQLite and PostgreSQL); Debian's headless Chromium, driven by Playwright, opens
``/display/rooms/{id}?token=<display token>``. A booking made through the API and a readiness mark
appear within 2 seconds without a reload (Playwright's ``expect(..., timeout=2000)`` is the
assertion). Then the server is killed, a second booking is written straight through the service
while it is down, the server is restarted on the same port, and the page reconnects by itself with
``?since=<last id it saw>`` and shows the later booking. Screenshots: ``test-artifacts/display/<backend>/``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, EndpointStatus, Room
from confsvc.live import display
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_meeting, make_user
from tests.live_support import free_port
from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.web_support import make_province

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "display"
LIVE = "Đang cập nhật trực tiếp"
RECONNECTING = "Mất kết nối máy chủ, đang kết nối lại…"


class ServerProcess:
    """``confsvc.main:create_app`` under uvicorn in a subprocess on a fixed port: start, kill, start again."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = {**os.environ, **env}, port
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "confsvc.main:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--ws", "websockets-sansio", "--log-level", "warning"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120  # two CPUs shared with other work start a server slowly
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the sockets drop without a close frame, as when the host dies."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process.stderr.close()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stderr.close()
            self.process = None


def _at_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _shot(page, backend: str, name: str) -> None:
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def test_display_shows_bookings_live_and_resumes_after_server_restart(
        backend: str, db_url: str, engine: Engine, tmp_path: Path) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with make_session(engine) as session:
        province = make_province(session)
        room, chair = province.rooms[0], province.chair
        for endpoint in session.exec(select(Endpoint).where(Endpoint.room_id == room.id)).all():
            endpoint.status = EndpointStatus.online
            session.add(endpoint)
        secretariat = make_user(session, Role.secretariat, username="vanphong2")
        headers = bearer(session, secretariat)
        _, secret = display.create_display_token(session, users.principal_for(session, secretariat), room.id,
                                                 name="TV phòng họp Thanh Ba")
        session.commit()
        room_id, chair_id, chair_name = room.id, chair.id, chair.name
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32),
           "CONFSVC_DATA_DIR": str(tmp_path)}
    server = ServerProcess(env, free_port())
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="vi-VN",
                                              timezone_id="Asia/Ho_Chi_Minh")
                page = context.new_page()
                page.set_default_timeout(15000)
                sockets: list[str] = []
                first_frames: list[str] = []

                def opened(ws) -> None:
                    sockets.append(ws.url)
                    ws.on("framesent", lambda payload: first_frames.append(payload) if len(first_frames) < 1 else None)

                page.on("websocket", opened)
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                page_url = f"{server.base}/display/rooms/{room_id}?token={secret}"
                page.goto(page_url)
                expect(page.locator("#connection-text")).to_have_text(LIVE)
                expect(page.locator("#primary-title")).to_have_text("Chưa có lịch họp")
                expect(page.locator("#endpoints .d-endpoint .d-ep-status")).to_have_text(["Trực tuyến"])
                _shot(page, backend, "01-empty")

                # A booking through the API: on the page within 2 s, without a reload.
                now = datetime.now(UTC)
                start = _at_minute(now + timedelta(hours=3))
                title = "Hội nghị trực tuyến triển khai nhiệm vụ quý II"
                r = httpx.post(f"{server.base}/api/v1/meetings", headers=headers, timeout=20, json={
                    "title": title, "chair_room_id": chair_id, "participant_room_ids": [room_id],
                    "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()})
                assert r.status_code == 201, r.text
                expect(page.locator("#primary-title")).to_have_text(title, timeout=2000)
                expect(page.locator("#primary-label")).to_have_text("Cuộc họp sắp tới", timeout=2000)
                expect(page.locator("#join .d-join-dial .d-join-value")).to_have_text(
                    "sip:1000@mcu.phutho.gov.vn", timeout=2000)
                expect(page.locator("#join .d-join-number .d-join-value")).to_have_text("1000", timeout=2000)
                expect(page.locator("#readiness")).to_have_text("Chưa kiểm tra", timeout=2000)
                expect(page.locator("#primary-chair")).to_have_text(f"Điểm cầu chủ trì: {chair_name}")
                expect(page.locator("#count-check-label")).to_have_text("Kiểm tra kỹ thuật sau")

                # A readiness mark: live as well.
                meeting_id = r.json()["id"]
                occurrence_id = httpx.get(f"{server.base}/api/v1/meetings/{meeting_id}/occurrences",
                                          headers=headers, timeout=20).json()[0]["id"]
                r = httpx.put(f"{server.base}/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}"
                              f"/readiness/{room_id}", headers=headers, timeout=20, json={"state": "ready"})
                assert r.status_code == 200, r.text
                expect(page.locator("#readiness")).to_have_text("Đã sẵn sàng", timeout=2000)
                _shot(page, backend, "02-booked")

                # The server dies; a booking is written while it is down.
                with make_session(engine, write=False) as session:
                    seen = max(p.message["id"] for p in events.replay(session, 0) if room_id in p.room_ids)
                server.kill()
                expect(page.locator("#connection-text")).to_have_text(RECONNECTING)
                _shot(page, backend, "03-server-down")
                urgent = "Họp khẩn ứng phó mưa lũ"
                with make_session(engine) as session:
                    soon = _at_minute(datetime.now(UTC) + timedelta(minutes=30))
                    make_meeting(session, chair_room=session.get(Room, chair_id),
                                 rooms=[session.get(Room, room_id)], start=soon,
                                 end=soon + timedelta(hours=1), title=urgent)
                    session.commit()

                # Back on the same port: the page resumes from the last id it saw and shows the booking.
                server.start()
                expect(page.locator("#primary-title")).to_have_text(urgent, timeout=30000)
                expect(page.locator("#connection-text")).to_have_text(LIVE)
                expect(page.locator("#primary-label")).to_have_text("Cuộc họp hiện tại · Đang kiểm tra kỹ thuật")
                expect(page.locator("#next-title")).to_have_text(title)
                # Issue 16: the token is sent in the first message, never in a URL the page opens.
                assert sockets[0] == f"ws://127.0.0.1:{server.port}/ws/rooms/{room_id}?auth=message"
                assert sockets[-1] == f"ws://127.0.0.1:{server.port}/ws/rooms/{room_id}?auth=message&since={seen}"
                assert [frame for frame in first_frames if secret in frame] == [
                    f'{{"type":"auth","token":"{secret}"}}']
                assert [url for url in requested if secret in url] == [page_url]
                assert any("/chair-rooms?ids=" in url for url in requested)
                _shot(page, backend, "04-resumed")
                context.close()
            finally:
                browser.close()
    finally:
        server.stop()


def test_bad_token_shows_a_vietnamese_not_found_page(backend: str, engine: Engine,
                                                      client) -> None:
    """The page a wrong link shows on the TV (rendered by the browser for the screenshot)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    html = client.get("/display/rooms/1?token=dsp_wrong").text
    assert "Không tìm thấy màn hình điểm cầu" in html
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            css = (Path(__file__).resolve().parents[2] / "static" / "display.css").read_text(encoding="utf-8")
            page.set_content(html.replace('<link rel="stylesheet"', '<link rel="x"').replace(
                "</head>", f"<style>{css}</style></head>"))
            assert page.locator("h1").inner_text() == "Không tìm thấy màn hình điểm cầu"
            _shot(page, backend, "05-bad-token")
            page.close()
        finally:
            browser.close()


def test_display_marks_a_displaced_meeting_tentative_live_and_after_a_reload(
        backend: str, db_url: str, engine: Engine, tmp_path: Path) -> None:
    """Issue 14: a routine meeting displaced by a Government session is marked "Chờ xếp lịch lại" on
    its room's display at once (live message), with a banner, after the session that took its place,
    and still after a reload (snapshot)."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with make_session(engine) as session:
        province = make_province(session)
        room, chair = province.rooms[0], province.chair
        secretariat = make_user(session, Role.secretariat, username="vanphong2")
        headers = bearer(session, secretariat)
        _, secret = display.create_display_token(session, users.principal_for(session, secretariat), room.id,
                                                 name="TV phòng họp Thanh Ba")
        session.commit()
        room_id, chair_id = room.id, chair.id
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32),
           "CONFSVC_DATA_DIR": str(tmp_path)}
    server = ServerProcess(env, free_port())
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="vi-VN",
                                              timezone_id="Asia/Ho_Chi_Minh")
                page = context.new_page()
                page.set_default_timeout(15000)
                page.goto(f"{server.base}/display/rooms/{room_id}?token={secret}")
                expect(page.locator("#connection-text")).to_have_text(LIVE)
                start = _at_minute(datetime.now(UTC) + timedelta(hours=3))
                when = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
                r = httpx.post(f"{server.base}/api/v1/meetings", headers=headers, timeout=20,
                               json={"title": "Giao ban xã", "chair_room_id": room_id, **when})
                assert r.status_code == 201, r.text
                expect(page.locator("#primary-title")).to_have_text("Giao ban xã", timeout=2000)

                body = {"title": "Phiên họp Chính phủ với địa phương", "chair_room_id": chair_id,
                        "participant_room_ids": [room_id], "priority": 2, **when}
                asked = httpx.post(f"{server.base}/api/v1/meetings", headers=headers, timeout=20, json=body)
                assert asked.json()["code"] == "displacement_required", asked.text
                r = httpx.post(f"{server.base}/api/v1/meetings", headers=headers, timeout=20, json={
                    **body, "displace": True, "displacement_token": asked.json()["displacement_token"]})
                assert r.status_code == 201, r.text

                # The session that took its place comes first; the displaced one follows, without join details.
                expect(page.locator("#primary-title")).to_have_text("Phiên họp Chính phủ với địa phương",
                                                                    timeout=2000)
                expect(page.locator("#next-title")).to_have_text("Giao ban xã · Chờ xếp lịch lại", timeout=2000)
                expect(page.locator("#banner")).to_have_text(
                    "Một cuộc họp của điểm cầu này đã nhường chỗ cho cuộc họp có mức ưu tiên cao hơn")
                _shot(page, backend, "05-displaced")
                page.reload()
                expect(page.locator("#connection-text")).to_have_text(LIVE)
                expect(page.locator("#next-title")).to_have_text("Giao ban xã · Chờ xếp lịch lại")
                expect(page.locator("#primary-title")).to_have_text("Phiên họp Chính phủ với địa phương")
                context.close()
            finally:
                browser.close()
    finally:
        server.stop()
