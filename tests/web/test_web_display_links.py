"""A room's display links from the room's page (issue 13: only the API issued them): the administrator
creates one (shown once, with a QR code), sees it listed, revokes it; the link opens the display until then."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from tests.web_support import csrf_of, login, make_province


def test_admin_creates_lists_and_revokes_a_room_display_link_with_a_qr_code(client: TestClient,
                                                                          engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        room_id = province.chair.id
    login(client, "quantri")
    assert f'href="/inventory/rooms/{room_id}/displays"' in client.get(f"/inventory/rooms/{room_id}/edit").text
    page = client.get(f"/inventory/rooms/{room_id}/displays")
    assert page.status_code == 200 and "Chưa có liên kết màn hình nào." in page.text
    created = client.post(f"/inventory/rooms/{room_id}/displays", data={"csrf": csrf_of(page.text),
                                                                        "name": "TV phòng họp tầng 3"})
    assert created.status_code == 200
    url = re.search(r'id="display-url" readonly value="([^"]+)"', created.text).group(1)
    assert re.fullmatch(rf"http://testserver/display/rooms/{room_id}\?token=dsp_[\w-]+", url)
    assert re.search(r'<svg[^>]*class="qr"', created.text) and "Mã QR của liên kết màn hình" in created.text
    assert client.get(url.replace("http://testserver", "")).status_code == 200
    rows = re.findall(r"<tr class=\"\">\s*<td>([^<]+)</td>", created.text)
    assert rows == ["TV phòng họp tầng 3"]
    token_id = re.search(rf'action="/inventory/rooms/{room_id}/displays/(\d+)/revoke"', created.text).group(1)
    revoked = client.post(f"/inventory/rooms/{room_id}/displays/{token_id}/revoke",
                          data={"csrf": csrf_of(created.text)}, follow_redirects=False)
    assert (revoked.status_code, revoked.headers["location"]) == (303, f"/inventory/rooms/{room_id}/displays")
    assert "Đã thu hồi" in client.get(f"/inventory/rooms/{room_id}/displays").text
    assert client.get(url.replace("http://testserver", "")).status_code == 404


def test_operator_may_not_manage_display_links(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
        room_id = province.rooms[0].id
    login(client, "kythuat")
    page = client.get(f"/inventory/rooms/{room_id}/displays")
    assert page.status_code == 403 and "<html" in page.text
