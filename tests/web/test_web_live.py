"""The live dashboard and readiness marking (TestClient), and the live channel's web-session
authentication for same-origin pages (real uvicorn server, ``websockets`` client): a cookie opens the
channel only when ``Origin`` names the server's host (no cross-site WebSocket hijacking)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.main import create_app
from confsvc.scheduling.models import Occurrence, ReadinessState, SiteReadiness
from confsvc.users.models import User
from tests.factories import make_meeting
from tests.live_support import ThreadServer, closed_with, recv
from tests.web_support import PASSWORD, csrf_of, login, make_province

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _soon():
    """A start two hours from now on a whole minute (local), so the dashboard lists it and the
    readiness deadline (15 min before) has not passed."""
    start = (utc_now() + timedelta(hours=2)).astimezone(ZONE).replace(second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def _province_with_meeting(engine: Engine):
    """The web province and a meeting in two hours: chair room + the first two communes' rooms."""
    with make_session(engine) as session:
        province = make_province(session)
        start, end = _soon()
        secretariat = session.exec(select(User).where(User.username == "vanphong")).one()
        result = make_meeting(session, chair_room=province.chair, rooms=province.rooms[:2], start=start, end=end,
                              title="Giao ban trực tuyến tuần", user=secretariat)
        occ = session.exec(select(Occurrence).where(Occurrence.meeting_id == result.meeting.id)).one()
        session.commit()
        return province, result.meeting.id, occ.id, start


def _board_rows(html: str) -> list[tuple[str, str, str]]:
    """``(room, state label, note)`` per row of the dashboard's readiness board."""
    board = html[html.index('id="readiness-board"'):]
    board = board[:board.index("</section>")]
    rows = re.findall(r'<tr data-room="\d+"><th scope="row">(.*?)(?:<span class="tag chair-tag">.*?</span>)?</th>\s*'
                      r'<td><span class="ready ready-\w+">(.*?)</span></td>\s*<td>(.*?)</td>', board)
    return rows


def test_dashboard_shows_the_readiness_board_of_the_next_meeting(client: TestClient, engine: Engine) -> None:
    province, meeting_id, occ_id, start = _province_with_meeting(engine)
    login(client, "vanphong")
    page = client.get("/")
    assert page.status_code == 200
    assert "Mức độ sẵn sàng của cuộc họp sắp tới" in page.text
    assert f'href="/meetings/{meeting_id}?occurrence={occ_id}">Giao ban trực tuyến tuần</a>' in page.text
    assert "0/3 điểm cầu đã sẵn sàng" in page.text
    deadline = (start - timedelta(minutes=15)).strftime("%H:%M")
    assert f"Báo sẵn sàng trước {deadline}" in page.text
    assert _board_rows(page.text) == [
        ("Phòng họp trực tuyến UBND tỉnh", "Chưa kiểm tra", ""),
        ("Điểm cầu Phường Việt Trì", "Chưa kiểm tra", ""),
        ("Điểm cầu Xã Thanh Ba", "Chưa kiểm tra", "")]
    assert 'data-channels="[&#34;/ws/secretariat&#34;]"' in page.text
    assert "/static/live.js" in page.text

    # The fragment the script fetches: the same panels, without the layout.
    fragment = client.get("/dashboard/live")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="readiness-board"' in fragment.text
    assert _board_rows(fragment.text) == _board_rows(page.text)
    client.cookies.clear()
    assert client.get("/dashboard/live").status_code == 401


def test_operator_marks_own_site_ready_or_problem_and_the_board_shows_it(client: TestClient, engine: Engine) -> None:
    province, meeting_id, occ_id, _start = _province_with_meeting(engine)
    login(client, "kythuat")  # operator of Xã Thanh Ba
    dashboard = client.get("/")
    assert f'data-channels="[&#34;/ws/units/{province.communes[0].id}&#34;]"' in dashboard.text
    page = client.get(f"/meetings/{meeting_id}")
    assert "Kiểm tra kỹ thuật tại điểm cầu" in page.text
    # Only the operator's own site can be chosen.
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>',
                         page.text[page.text.index('id="ready-room"'):])
    assert options == [(str(province.rooms[0].id), "Điểm cầu Xã Thanh Ba — Chưa kiểm tra")]
    action = f"/meetings/{meeting_id}/occurrences/{occ_id}/readiness"

    refused = client.post(action, data={"csrf": csrf_of(page.text), "room_id": province.rooms[0].id,
                                        "state": "problem", "note": "  "})
    assert refused.status_code == 422
    assert "Hãy mô tả sự cố trong phần ghi chú." in refused.text
    other = client.post(action, data={"csrf": csrf_of(page.text), "room_id": province.rooms[1].id, "state": "ready"})
    assert (other.status_code, "Bạn chỉ được báo cho điểm cầu của đơn vị mình." in other.text) == (403, True)
    assert client.post(action, data={"csrf": "forged", "room_id": province.rooms[0].id, "state": "ready"}
                       ).status_code == 403

    done = client.post(action, data={"csrf": csrf_of(page.text), "room_id": province.rooms[0].id,
                                     "state": "problem", "note": "Mất tiếng micro"}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (
        303, f"/meetings/{meeting_id}?occurrence={occ_id}#readiness")
    page = client.get(f"/meetings/{meeting_id}")
    assert '<span class="ready ready-problem">Gặp sự cố</span><small class="ready-note">Mất tiếng micro</small>' \
        in page.text
    client.post(action, data={"csrf": csrf_of(page.text), "room_id": province.rooms[0].id, "state": "ready"})
    with make_session(engine) as session:
        rows = session.exec(select(SiteReadiness).where(SiteReadiness.occurrence_id == occ_id)).all()
        assert [(r.room_id, r.state, r.note) for r in rows] == [(province.rooms[0].id, ReadinessState.ready, "")]

    client.cookies.clear()
    login(client, "vanphong")
    assert _board_rows(client.get("/").text) == [
        ("Phòng họp trực tuyến UBND tỉnh", "Chưa kiểm tra", ""),
        ("Điểm cầu Phường Việt Trì", "Chưa kiểm tra", ""),
        ("Điểm cầu Xã Thanh Ba", "Đã sẵn sàng", "")]
    assert "1/3 điểm cầu đã sẵn sàng" in client.get("/").text
    # A viewer gets no marking form.
    client.cookies.clear()
    login(client, "lanhdao")
    assert "Kiểm tra kỹ thuật tại điểm cầu" not in client.get(f"/meetings/{meeting_id}").text


# ---------------------------------------------------------------- the live channel with the web session

@pytest.fixture
def server(db_url: str, tmp_path: Path, engine: Engine) -> Iterator[ThreadServer]:
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    with ThreadServer(create_app(settings, engine=engine)) as running:
        yield running


def _cookie(server: ThreadServer, username: str) -> str:
    """The ``confsvc_session`` cookie of a web login (the login form with its CSRF token)."""
    with httpx.Client(base_url=server.base, timeout=10) as web:
        form = web.get("/login")
        answer = web.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf_of(form.text),
                                          "next": "/"})
        assert answer.status_code == 303
        return f"confsvc_session={web.cookies['confsvc_session']}"


def test_web_session_opens_the_channel_from_the_same_origin_only(server: ThreadServer, engine: Engine) -> None:
    province, meeting_id, _occ, _start = _province_with_meeting(engine)
    secretariat, operator = _cookie(server, "vanphong"), _cookie(server, "kythuat")
    with server.ws("/ws/secretariat", origin=server.base, additional_headers={"Cookie": secretariat}) as ws:
        snap = recv(ws)
        assert (snap["type"], [o["meeting_id"] for o in snap["data"]["next"]]) == ("snapshot", [meeting_id])
    unit = f"/ws/units/{province.communes[0].id}"
    with server.ws(unit, origin=server.base, additional_headers={"Cookie": operator}) as ws:
        assert recv(ws)["data"]["scope"] == {"kind": "unit", "id": province.communes[0].id}
    with server.ws("/ws/secretariat", origin=server.base, additional_headers={"Cookie": operator}) as ws:
        assert closed_with(ws)[0] == 4403  # an operator's session does not open the whole province
    # Another site's page (or a client without Origin) gets nothing from the cookie: a token is required.
    for origin in ("http://evil.example", None):
        options = {"origin": origin} if origin else {}
        with server.ws("/ws/secretariat", additional_headers={"Cookie": secretariat}, **options) as ws:
            ws.send(json.dumps({"type": "hello"}))
            assert closed_with(ws) == (4401, "not_authenticated: the first message carries no token")


def test_logout_closes_the_channels_its_session_opened_and_no_other(server: ThreadServer, engine: Engine) -> None:
    """Regression: a board's channel opened with the session cookie stayed open after ``POST /logout``
    (a new connection with the old cookie was refused, the open one kept receiving events)."""
    _province_with_meeting(engine)
    with httpx.Client(base_url=server.base, timeout=10) as web, \
            server.ws("/ws/secretariat", origin=server.base,
                      additional_headers={"Cookie": _cookie(server, "vanphong")}) as other_session:
        form = web.get("/login")
        web.post("/login", data={"username": "vanphong", "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/"})
        cookie = f"confsvc_session={web.cookies['confsvc_session']}"
        with server.ws("/ws/secretariat", origin=server.base, additional_headers={"Cookie": cookie}) as board:
            assert recv(board)["type"] == "snapshot" and recv(other_session)["type"] == "snapshot"
            assert web.post("/logout", data={"csrf": csrf_of(web.get("/").text)}).status_code == 303
            assert closed_with(board) == (4401, "access_revoked: token revoked or access changed "
                                                "(quyền truy cập đã bị thu hồi hoặc thay đổi)")
        other_session.send(json.dumps({"type": "ping"}))
        assert recv(other_session)["type"] == "pong"  # the same user's other browser stays signed in


def test_display_token_goes_in_the_first_message_not_the_url_and_beats_a_logged_in_cookie(
        server: ThreadServer, engine: Engine) -> None:
    """Issue 16: the room display page put its token into the WebSocket URL (``?token=``), which browsers
    keep and proxies log. It now opens ``/ws/rooms/{id}?auth=message`` and sends the token first; the
    web session of someone logged in in the same browser (an operator of another commune) does not
    take the channel over. The deprecated ``?token=`` still opens it."""
    from confsvc.live import display
    from confsvc.users import service as users

    province, meeting_id, _occ, _start = _province_with_meeting(engine)
    room_id = province.rooms[1].id  # the second commune's: outside kythuat's unit
    with make_session(engine) as session:
        secretariat = session.exec(select(User).where(User.username == "vanphong")).one()
        _, secret = display.create_display_token(session, users.principal_for(session, secretariat), room_id)
        session.commit()
    operator = _cookie(server, "kythuat")
    with server.ws(f"/ws/rooms/{room_id}", origin=server.base, additional_headers={"Cookie": operator}) as ws:
        assert closed_with(ws)[0] == 4403  # without auth=message the cookie decides: not this operator's room
    with server.ws(f"/ws/rooms/{room_id}?auth=message", origin=server.base,
                   additional_headers={"Cookie": operator}) as ws:
        ws.send(json.dumps({"type": "auth", "token": secret}))
        snap = recv(ws)
        assert (snap["type"], snap["data"]["scope"]) == ("snapshot", {"kind": "room", "id": room_id})
        assert [o["meeting_id"] for o in snap["data"]["next"]] == [meeting_id]
    with server.ws(f"/ws/rooms/{room_id}?auth=message") as ws:
        ws.send(json.dumps({"type": "auth", "token": "dsp_" + "x" * 43}))
        assert closed_with(ws) == (4401, "invalid_token: invalid display token")
    with server.ws(f"/ws/rooms/{room_id}?auth=message") as ws:
        ws.send(json.dumps({"type": "hello"}))  # no token in the first message: refused, not the cookie
        assert closed_with(ws) == (4401, "not_authenticated: the first message carries no token")
    with server.ws(f"/ws/rooms/{room_id}?token={secret}") as ws:  # deprecated, kept for existing displays
        assert recv(ws)["data"]["scope"] == {"kind": "room", "id": room_id}


def test_meeting_page_participants_panel_is_live(client: TestClient, engine: Engine) -> None:
    """The meeting page listens on the live channel and re-fetches its participants panel."""
    province, meeting_id, occ_id, _start = _province_with_meeting(engine)
    login(client, "vanphong")
    page = client.get(f"/meetings/{meeting_id}")
    assert f'data-refresh="/meetings/{meeting_id}/participants?occurrence={occ_id}"' in page.text
    assert 'data-channels="[&#34;/ws/secretariat&#34;]"' in page.text
    assert "/static/live.js" in page.text
    fragment = client.get(f"/meetings/{meeting_id}/participants", params={"occurrence": occ_id})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    rows = re.findall(r'<tr data-room="(\d+)">', fragment.text)
    assert sorted(map(int, rows)) == sorted([province.chair.id, province.rooms[0].id, province.rooms[1].id])
    client.cookies.clear()
    assert client.get(f"/meetings/{meeting_id}/participants").status_code == 401
    login(client, "kythuat")  # an operator of one commune: the meeting touches it
    assert client.get(f"/meetings/{meeting_id}/participants").status_code == 200
