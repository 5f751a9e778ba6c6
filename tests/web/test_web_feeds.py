"""Leaders' calendar feeds (issue 13): every role, the viewer included, gets a link for what it may
see, as https and webcal://, with a QR code (segno SVG drawn on the server) and steps for Outlook,
Google Calendar and iPhone; the scope picker is searchable."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from tests.web_support import csrf_of, login, make_province


def test_viewer_gets_a_calendar_link_with_webcal_qr_code_and_steps(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        room_id = province.rooms[1].id
    login(client, "lanhdao")
    home = client.get("/").text
    assert '<a href="/feeds">Lịch đăng ký</a>' in home or 'href="/feeds"' in home
    page = client.get("/feeds")
    assert page.status_code == 200
    assert 'id="scope-filter"' in page.text and "feeds.js" in page.text
    assert f'value="room:{room_id}" data-search="diem cau phuong viet tri phuong viet tri"' in page.text
    issued = client.post("/feeds", data={"csrf": csrf_of(page.text), "scope": f"room:{room_id}", "name": "Lịch Chủ tịch"})
    assert issued.status_code == 200
    url = re.search(r'id="feed-url" readonly value="([^"]+)"', issued.text).group(1)
    assert re.fullmatch(rf"http://testserver/ical/room/{room_id}\.ics\?token=cal_[\w-]+", url)
    webcal = re.search(r'href="(webcal://[^"]+)" id="webcal"', issued.text).group(1)
    assert webcal.replace("&amp;", "&") == "webcal://" + url.split("://", 1)[1]
    assert re.search(r'<svg[^>]*class="qr"', issued.text) and "Mã QR của liên kết lịch" in issued.text
    assert "Đăng ký từ web" in issued.text and "Từ URL" in issued.text and "Thêm lịch đã đăng ký" in issued.text
    assert client.get(url.replace("http://testserver", "")).status_code == 200
    # The leader sees only their own link.
    listed = client.get("/feeds").text
    assert listed.count("Lịch Chủ tịch") == 1
