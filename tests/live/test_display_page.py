"""The room display page over HTTP (``web/display.py``): a display token opens its room's page and
nothing else, every refusal is the same 404 page, and the chair-room names it may look up."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.live import display
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_meeting, make_user, next_monday_local
from tests.web_support import make_province

NOT_FOUND_TEXT = "Không tìm thấy màn hình điểm cầu"


def _setup(engine: Engine) -> dict:
    with make_session(engine) as session:
        province = make_province(session)
        secretariat = make_user(session, Role.secretariat)
        principal = users.principal_for(session, secretariat)
        room, other = province.rooms[0], province.rooms[1]
        _, secret = display.create_display_token(session, principal, room.id, name="TV phòng họp")
        revoked, revoked_secret = display.create_display_token(session, principal, room.id)
        display.revoke_display_token(session, principal, room.id, revoked.id)
        _, other_secret = display.create_display_token(session, principal, other.id)
        start = next_monday_local()
        make_meeting(session, chair_room=province.chair, rooms=[room], start=start, end=start + timedelta(hours=2),
                     title="Giao ban tháng 3")
        make_meeting(session, chair_room=other, rooms=[province.rooms[2]], start=start,
                     end=start + timedelta(hours=2), title="Họp không liên quan")
        session.commit()
        return {"room": room.id, "room_name": room.name, "unit_name": province.communes[0].name,
                "other": other.id, "chair": province.chair.id, "chair_name": province.chair.name,
                "secret": secret, "revoked": revoked_secret, "other_secret": other_secret}


def test_display_token_opens_its_rooms_page(client: TestClient, engine: Engine) -> None:
    data = _setup(engine)
    response = client.get(f"/display/rooms/{data['room']}", params={"token": data["secret"]})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers
    html = response.text
    assert f'<h1 class="d-room">{data["room_name"]}</h1>' in html
    assert f'<div class="d-unit">{data["unit_name"]}</div>' in html
    assert "<title>Điểm cầu Xã Thanh Ba · Màn hình điểm cầu</title>" in html
    assert "Cuộc họp hiện tại" in html and "Hướng dẫn kết nối" in html and "Thiết bị đầu cuối" in html
    config = re.search(r'<script type="application/json" id="display-config">(.*?)</script>', html).group(1)
    parsed = json.loads(config)
    assert parsed["room_id"] == data["room"] and parsed["token"] == data["secret"]
    assert parsed["timezone"] == "Asia/Ho_Chi_Minh" and parsed["ping_seconds"] == 25
    assert parsed["weekdays"] == ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật"]
    assert parsed["text"]["check_in"] == "Kiểm tra kỹ thuật sau"
    assert parsed["text"]["offline"] == "Mất kết nối" and parsed["text"]["online"] == "Trực tuyến"
    assert parsed["text"]["dial"] == "Chuỗi quay số" and parsed["text"]["pin"] == "Mã PIN"


def test_every_refusal_is_the_same_404_page(client: TestClient, engine: Engine) -> None:
    data = _setup(engine)
    room = data["room"]
    attempts = [
        (f"/display/rooms/{room}", {}),                                      # no token
        (f"/display/rooms/{room}", {"token": "dsp_" + "x" * 43}),            # unknown display token
        (f"/display/rooms/{room}", {"token": data["revoked"]}),              # revoked
        (f"/display/rooms/{room}", {"token": data["other_secret"]}),         # another room's token
        (f"/display/rooms/{data['other']}", {"token": data["secret"]}),      # the token, another room
        ("/display/rooms/999999", {"token": data["secret"]}),                # no such room
        ("/display/rooms/0", {"token": data["secret"]}),
        (f"/display/rooms/{room}", {"token": "cfs_not-a-display-token"}),   # a user-token-shaped secret
    ]
    bodies = set()
    for path, params in attempts:
        response = client.get(path, params=params)
        assert response.status_code == 404, (path, params)
        assert response.headers["cache-control"] == "no-store"
        assert NOT_FOUND_TEXT in response.text
        assert data["room_name"] not in response.text and data["unit_name"] not in response.text
        bodies.add(response.text)
    assert len(bodies) == 1


def test_chair_room_names_only_of_the_rooms_meetings(client: TestClient, engine: Engine) -> None:
    data = _setup(engine)
    url = f"/display/rooms/{data['room']}/chair-rooms"
    ids = f"{data['chair']},{data['other']},abc,0"
    response = client.get(url, params={"token": data["secret"], "ids": ids})
    assert response.status_code == 200
    assert response.json() == {str(data["chair"]): data["chair_name"]}
    assert response.headers["cache-control"] == "no-store"
    refused = client.get(url, params={"token": data["other_secret"], "ids": ids})
    assert refused.status_code == 404
    assert refused.json()["code"] == "display_not_found"


def test_chair_room_ids_in_superscript_or_other_scripts_digits_are_left_out_not_a_500(client: TestClient,
                                                                                      engine: Engine) -> None:
    # Regression: "²" passed str.isdigit() and int() raised (a 500).
    data = _setup(engine)
    response = client.get(f"/display/rooms/{data['room']}/chair-rooms",
                          params={"token": data["secret"], "ids": f"²,٣,{data['chair']},99999999999999999999"})
    assert (response.status_code, response.json()) == (200, {str(data["chair"]): data["chair_name"]})


def test_chair_room_names_take_the_display_token_from_the_header_not_only_the_url(client: TestClient,
                                                                                  engine: Engine) -> None:
    """Issue 16: ``display.js`` fetched the names with ``?token=`` in the URL; it now sends
    ``Authorization: Bearer``. A wrong or malformed header is the same 404 as a wrong ``?token=``."""
    data = _setup(engine)
    url = f"/display/rooms/{data['room']}/chair-rooms"
    ids = f"{data['chair']},{data['other']}"
    response = client.get(url, params={"ids": ids}, headers={"Authorization": f"Bearer {data['secret']}"})
    assert (response.status_code, response.json()) == (200, {str(data["chair"]): data["chair_name"]})
    for header in (f"Bearer {data['other_secret']}", "Basic abc", "Bearer "):
        refused = client.get(url, params={"ids": ids}, headers={"Authorization": header})
        assert (refused.status_code, refused.json()["code"]) == (404, "display_not_found")
