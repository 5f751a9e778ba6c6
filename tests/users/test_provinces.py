"""Issue 14: provinces as tenants. Two provinces (Phú Thọ "25" and Hà Nội "01"), one user per role in
Phú Thọ and a national user (a secretariat without a province). Every API route of the OpenAPI
document × every role × an object of each province: another province's object is 404 (or the 403
the role gets for its own province's object too), never a success; lists never carry it. Also the web pages
and the secretariat live channel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events
from confsvc.calendar.models import FeedScope
from confsvc.calendar.tokens import create_feed_token
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Bridge, Unit, UnitLevel
from confsvc.live.display import create_display_token
from confsvc.main import create_app
from confsvc.scheduling.models import Occurrence
from confsvc.users import service as users
from confsvc.users.models import Role, User
from tests.factories import (
    bearer,
    make_bridge,
    make_endpoint,
    make_meeting,
    make_room,
    make_unit,
    make_user,
    next_monday_local,
)
from tests.live_support import ThreadServer, recv

INSIDE, OUTSIDE = "TRONGTINH", "NGOAITINH"
ROLES = ("admin", "secretariat", "operator", "viewer", "requester", "national")


def _province(session: Session, code: str, name: str, marker: str, bridge_base: int) -> dict[str, Any]:
    province = make_unit(session, code=code, name=f"Tỉnh {name}", division_type="tỉnh", level=UnitLevel.province)
    commune = make_unit(session, code=f"{code}999", name=f"Xã {marker}", parent_id=province.id)
    room = make_room(session, commune, name=f"Phòng {marker}")
    endpoint = make_endpoint(session, room, name=f"Thiết bị {marker}")
    bridge = make_bridge(session, name=f"MCU {marker}", unit_id=province.id,
                         conference_number_min=bridge_base, conference_number_max=bridge_base + 99)
    return {"province": province, "commune": commune, "room": room, "endpoint": endpoint, "bridge": bridge}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    """Phú Thọ (inside: every role's province) and Hà Nội (outside), each with a unit, room, endpoint,
    bridge, meeting, user, tokens and a site group; headers per role."""
    inside = _province(session, "25", "Phú Thọ", INSIDE, 1000)
    outside = _province(session, "01", "Hà Nội", OUTSIDE, 2000)
    national = make_user(session, Role.secretariat, username="vanphongchinhphu")
    assert national.province_id is None
    start = next_monday_local(hour=9)
    for side, marker in ((inside, INSIDE), (outside, OUTSIDE)):
        side["user"] = make_user(session, Role.admin, username=f"quantri.{marker.lower()}",
                                 province_id=side["province"].id)
        result = make_meeting(session, chair_room=side["room"], start=start, end=start + timedelta(hours=1),
                              user=national, title=f"Họp {marker}", bridge_id=side["bridge"].id)
        side["meeting"] = result.meeting
        side["occurrence"] = session.exec(select(Occurrence).where(Occurrence.meeting_id == result.meeting.id)).one()
        side["api_token"] = users.issue_token(session, side["user"], f"khoá {marker}")[0]
        principal = users.principal_for(session, side["user"])
        side["feed"] = create_feed_token(session, principal, scope=FeedScope.unit, scope_id=side["commune"].id)[0]
        side["display"] = create_display_token(session, principal, side["room"].id)[0]
    headers = {"national": bearer(session, national)}
    for role in ("admin", "secretariat", "operator", "viewer", "requester"):
        units = [inside["commune"]] if role in ("operator", "requester") else []
        user = make_user(session, Role(role), units=units, username=f"{role}.phutho",
                         province_id=inside["province"].id)
        headers[role] = bearer(session, user)
    session.commit()
    return {"inside": inside, "outside": outside, "headers": headers}


def _ids(side: dict[str, Any]) -> dict[str, int | str]:
    return {"unit_id": side["commune"].id, "code": side["commune"].code, "room_id": side["room"].id, "endpoint_id": side["endpoint"].id,
            "bridge_id": side["bridge"].id, "meeting_id": side["meeting"].id,
            "occurrence_id": side["occurrence"].id, "user_id": side["user"].id, "request_id": side["meeting"].id,
            "block_id": 999999, "group_id": 999999}


def _token_id(path: str, side: dict[str, Any]) -> int:
    if path.startswith("/api/v1/feeds"):
        return side["feed"].id
    if "display-tokens" in path:
        return side["display"].id
    return side["api_token"].id


#: Bodies that pass validation, so a route reaches its lookup (else 422 before any object is read).
BODIES: dict[tuple[str, str], Any] = {
    ("patch", "/api/v1/units/{unit_id}"): {"name": "Xã Đổi Tên"},
    ("patch", "/api/v1/rooms/{room_id}"): {"seats": 12},
    ("patch", "/api/v1/endpoints/{endpoint_id}"): {"name": "Thiết bị đổi tên"},
    ("patch", "/api/v1/bridges/{bridge_id}"): {"port_capacity": 150},
    ("patch", "/api/v1/users/{user_id}"): {"active": False},
    ("patch", "/api/v1/meetings/{meeting_id}"): {"title": "Đổi tên"},
    ("patch", "/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}"): {"title": "Đổi tên"},
    ("post", "/api/v1/meetings/{meeting_id}/pin"): {"pin": "123456"},
    ("post", "/api/v1/endpoints/{endpoint_id}/status"): {"status": "online"},
    ("put", "/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}/readiness/{room_id}"): {"state": "ready"},
    ("post", "/api/v1/requests/{request_id}/reject"): {"reason": "Không phù hợp"},
    ("post", "/api/v1/rooms/{room_id}/display-tokens"): {"name": "Màn hình"},
}


def _routes(client: TestClient) -> list[tuple[str, str, bool]]:
    document = client.get("/openapi.json").json()
    return [(method, path, "requestBody" in op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def _fill(path: str, side: dict[str, Any]) -> str:
    ids = {**_ids(side), "token_id": _token_id(path, side)}
    return re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), path)


def test_every_route_answers_404_for_another_provinces_object(client: TestClient, world: dict[str, Any]):
    routes = [r for r in _routes(client) if "{" in r[1] and not r[1].startswith("/ical/")]
    assert len(routes) > 40
    checked = 0
    for role in ROLES:
        for method, path, has_body in routes:
            url = _fill(path, world["outside"])
            body = BODIES.get((method, path), {} if has_body else None)
            answer = client.request(method.upper(), url, json=body, headers=world["headers"][role])
            code = answer.json().get("code") if answer.headers.get("content-type", "").startswith(
                "application/json") and answer.status_code >= 400 else None
            if role == "national":
                # national: another province is no tenant of theirs (no object here is missing but these,
                # and another user's API token, which a secretariat never reaches)
                assert answer.status_code != 404 or path.endswith(("/{block_id}", "/{group_id}")) \
                    or path.startswith(("/api/v1/requests", "/api/v1/users", "/api/v1/tokens/")), (method, url)
                continue
            allowed = answer.status_code == 404 or (answer.status_code == 422 and code == "validation_error"
                                                    and has_body)
            if answer.status_code == 403:  # only a refusal the role gets inside its province too
                inside = client.request(method.upper(), _fill(path, world["inside"]), json=body,
                                        headers=world["headers"][role])
                allowed = (inside.status_code, inside.json().get("code")) == (403, code)
            assert allowed, (role, method, url, answer.status_code, answer.text)
            checked += 1
    assert checked > 200


def test_every_read_finds_the_object_of_the_own_province(client: TestClient, world: dict[str, Any]):
    reads = [r for r in _routes(client) if r[0] == "get" and "{" in r[1] and not r[1].startswith("/ical/")
             and "{block_id}" not in r[1] and "{group_id}" not in r[1] and "{request_id}" not in r[1]]
    for role in ROLES:
        for _method, path, _body in reads:
            answer = client.get(_fill(path, world["inside"]), headers=world["headers"][role])
            assert answer.status_code in (200, 403), (role, path, answer.status_code, answer.text)


#: Reads of the API without an object in the path that answer with data of other objects.
NOT_LISTS = ("/healthz", "/readyz", "/metrics", "/api/v1/users/me", "/api/v1/mail/status")


@pytest.mark.parametrize("role", ROLES)
def test_lists_carry_only_the_own_province(client: TestClient, world: dict[str, Any], role: str):
    lists = [path for method, path, _ in _routes(client) if method == "get" and "{" not in path
             and path not in NOT_LISTS]
    assert {"/api/v1/units", "/api/v1/rooms", "/api/v1/meetings", "/api/v1/audit", "/api/v1/feeds"} <= set(lists)
    day = next_monday_local().date()
    params = {"limit": 500, "from_date": str(day), "to_date": str(day + timedelta(days=1)),
              "date": str(day), "from": str(day), "to": str(day + timedelta(days=1))}
    seen = ""
    for path in lists:
        answer = client.get(path, headers=world["headers"][role], params=params)
        seen += answer.text
        if role != "national":
            assert OUTSIDE not in answer.text and OUTSIDE.lower() not in answer.text, (role, path, answer.text)
    assert INSIDE in seen
    assert (OUTSIDE in seen) is (role == "national")


def test_the_national_user_sees_both_provinces(client: TestClient, world: dict[str, Any]):
    headers = world["headers"]["national"]
    rooms = client.get("/api/v1/rooms", headers=headers, params={"limit": 500}).text
    meetings = client.get("/api/v1/meetings", headers=headers, params={"limit": 500}).json()
    assert INSIDE in rooms and OUTSIDE in rooms
    assert sorted(m["title"] for m in meetings["items"]) == [f"Họp {OUTSIDE}", f"Họp {INSIDE}"]


def test_a_province_books_only_its_own_rooms_and_bridges(client: TestClient, world: dict[str, Any]):
    start = next_monday_local(weeks_ahead=3, hour=14)
    body = {"title": "Họp liên tỉnh", "chair_room_id": world["inside"]["room"].id,
            "participant_room_ids": [world["outside"]["room"].id],
            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    assert client.post("/api/v1/meetings", json=body, headers=world["headers"]["secretariat"]).status_code == 404
    own = {**body, "participant_room_ids": [], "bridge_id": world["outside"]["bridge"].id}
    refused = client.post("/api/v1/meetings", json=own, headers=world["headers"]["secretariat"])
    assert (refused.status_code, refused.json()["code"]) == (422, "unknown_bridge")
    booked = client.post("/api/v1/meetings", json={**own, "bridge_id": None}, headers=world["headers"]["secretariat"])
    assert (booked.status_code, booked.json()["bridge_id"]) == (201, world["inside"]["bridge"].id)
    national = client.post("/api/v1/meetings", json={**body, "start": (start + timedelta(hours=2)).isoformat(),
                                                     "end": (start + timedelta(hours=3)).isoformat()},
                           headers=world["headers"]["national"])
    assert national.status_code == 201
    # The province sees the meeting that reaches into it, but only the national office changes it.
    both = national.json()["id"]
    secretariat = world["headers"]["secretariat"]
    assert client.get(f"/api/v1/meetings/{both}", headers=secretariat).status_code == 200
    for method, path, payload in (("PATCH", "", {"title": "Đổi"}), ("POST", "/cancel", None),
                                  ("POST", "/pin", {"pin": "654321"})):
        refused = client.request(method, f"/api/v1/meetings/{both}{path}", json=payload, headers=secretariat)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_scope"), path
    assert client.post(f"/api/v1/meetings/{both}/cancel", headers=world["headers"]["national"]).status_code == 200


def test_a_province_admin_creates_users_of_its_province_only(client: TestClient, world: dict[str, Any]):
    made = client.post("/api/v1/users", headers=world["headers"]["admin"], json={
        "username": "moi.phutho", "password": "mật-khẩu-rất-dài-9", "role": "viewer", "province_code": "01"})
    assert (made.status_code, made.json()["province_id"]) == (201, world["inside"]["province"].id)
    outside_units = client.post("/api/v1/users", headers=world["headers"]["admin"], json={
        "username": "kythuat.hanoi", "password": "mật-khẩu-rất-dài-9", "role": "operator",
        "unit_codes": [world["outside"]["commune"].code]})
    assert outside_units.status_code == 404


WEB_PAGES = ("/meetings/{meeting_id}", "/meetings/{meeting_id}/edit", "/meetings/{meeting_id}/participants",
             "/meetings/{meeting_id}/cancel", "/meetings/{meeting_id}/occurrences/{occurrence_id}/edit",
             "/inventory/rooms/{room_id}/edit", "/inventory/endpoints/{endpoint_id}/edit",
             "/inventory/units/{unit_id}/edit", "/inventory/rooms/{room_id}/displays")
WEB_LISTS = ("/", "/calendar", "/planner", "/inventory", "/feeds", "/requests", "/audit", "/dashboard/live")


@pytest.mark.parametrize("role", ROLES)
def test_web_pages_of_another_province_are_404(client: TestClient, world: dict[str, Any], role: str):
    headers = world["headers"][role]
    for path in WEB_PAGES:
        page = client.get(_fill(path, world["outside"]), headers=headers)
        own = client.get(_fill(path, world["inside"]), headers=headers)
        if role == "national":
            assert page.status_code == own.status_code, (path, page.status_code, own.status_code)
        else:
            assert page.status_code in (403, 404) and page.status_code >= own.status_code \
                and OUTSIDE not in page.text, (role, path, page.status_code, own.status_code)
    for path in WEB_LISTS:
        page = client.get(path, headers=headers)
        assert role == "national" or OUTSIDE not in page.text, (role, path)


@pytest.fixture
def server(settings: Settings, engine: Engine) -> Iterator[ThreadServer]:
    with ThreadServer(create_app(settings, engine=engine)) as running:
        yield running


def test_the_secretariat_channel_carries_only_the_own_province(server: ThreadServer, world: dict[str, Any],
                                                               engine: Engine):
    start = next_monday_local(weeks_ahead=4, hour=9)
    secret = world["headers"]["secretariat"]["Authorization"].split(" ", 1)[1]
    with server.ws(f"/ws/secretariat?token={secret}") as ws:
        snapshot = recv(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]["scope"] == {"kind": "secretariat", "id": world["inside"]["province"].id}
        assert OUTSIDE not in json.dumps(snapshot, ensure_ascii=False)
        assert [item["title"] for item in snapshot["data"]["next"]] == [f"Họp {INSIDE}"]
        booked = {}
        for side in ("outside", "inside"):
            made = httpx.post(f"{server.base}/api/v1/meetings", headers=world["headers"]["national"], timeout=30, json={
                "title": f"Họp mới {side}", "chair_room_id": world[side]["room"].id,
                "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
            assert made.status_code == 201, made.text
            booked[side] = made.json()["id"]
        with make_session(engine, write=False) as session:
            stored = [p.message for p in events.replay(session, snapshot["id"])]
        assert {m["data"].get("meeting_id") for m in stored} >= {booked["outside"], booked["inside"]}
        wanted = [m for m in stored if m["data"].get("meeting_id") == booked["inside"]
                  or m["data"].get("room_id") == world["inside"]["room"].id]
        assert [recv(ws) for _ in wanted] == wanted
        assert wanted[0]["type"] == "meeting.scheduled"


@pytest.mark.parametrize("provinces", [1, 2])
def test_migration_gives_existing_users_and_bridges_a_province(fresh_db_url: str, provinces: int) -> None:
    """20261208_provinces: a user gets the province of their units, else the only province (a single-province
    deployment stays as it was), else none; bridges the only province, else none (shared). Tokens, unit
    scopes and the feed-version triggers of the rebuilt tables survive."""
    import sqlalchemy as sa

    from confsvc.db import make_engine
    from confsvc.migrate import upgrade

    upgrade(fresh_db_url, "20261208_mail_invitation_pdf")
    stamp = "2026-01-01 00:00:00.000000+00:00"
    engine = make_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            rows = [(1, "25", "Tỉnh Phú Thọ", "province", None), (2, "07900", "Xã Thanh Ba", "commune", 1)]
            if provinces == 2:
                rows += [(3, "01", "Thành phố Hà Nội", "province", None), (4, "00004", "Phường Ba Đình", "commune", 3)]
            for unit_id, code, name, level, parent in rows:
                conn.execute(sa.text("INSERT INTO units (id, code, name, division_type, level, parent_id, search_text, "
                                     "updated_at) VALUES (:i, :c, :n, 'x', :l, :p, '', :t)"),
                             {"i": unit_id, "c": code, "n": name, "l": level, "p": parent, "t": stamp})
            for user_id, role in ((7, "operator"), (8, "secretariat")):
                conn.execute(sa.text("INSERT INTO users (id, username, full_name, role, password_hash, active, "
                                     "created_at, updated_at) VALUES (:i, :u, '', :r, 'x', true, :t, :t)"),
                             {"i": user_id, "u": f"u{user_id}", "r": role, "t": stamp})
            conn.execute(sa.text("INSERT INTO user_units (user_id, unit_id) VALUES (7, 2)"))
            conn.execute(sa.text("INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
                                 "VALUES (7, 'agent', 'cs_ab', 'h', :t)"), {"t": stamp})
            conn.execute(sa.text("INSERT INTO bridges (id, name, port_capacity, sip_domain, h323_prefix, "
                                 "conference_number_min, conference_number_max, active, updated_at) "
                                 "VALUES (5, 'MCU', 200, 'mcu.vn', '', 1000, 1999, true, :t)"), {"t": stamp})
    finally:
        engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            users_now = conn.execute(sa.text("SELECT id, province_id FROM users ORDER BY id")).all()
            bridge = conn.execute(sa.text("SELECT unit_id FROM bridges")).scalar_one()
            assert (users_now, bridge) == (([(7, 1), (8, 1)], 1) if provinces == 1 else ([(7, 1), (8, None)], None))
            assert conn.execute(sa.text("SELECT user_id, unit_id FROM user_units")).all() == [(7, 2)]
            assert conn.execute(sa.text("SELECT user_id, name FROM api_tokens")).all() == [(7, "agent")]
            version = conn.execute(sa.text("SELECT version FROM feed_versions")).scalar_one()
            conn.execute(sa.text("UPDATE bridges SET sip_domain = 'mcu2.vn'"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version FROM feed_versions")).scalar_one() == version + 1
    finally:
        engine.dispose()


def test_national_demo_loads_provinces_rooms_bridges_and_people_and_reruns(session: Session, settings: Settings):
    """``confsvc demo --national`` (here two provinces of the 34): a room and endpoint per commune and
    province, a bridge per province with ports for its sites + 25 %, five users per province and the
    national user; a second run adds nothing."""
    from confsvc import demo

    first = demo.seed_national(session, ["01", "25"])
    again = demo.seed_national(session, ["01", "25"])
    counts = [(s.provinces, s.communes, s.rooms, s.endpoints, s.bridges, s.users) for s in (first, again)]
    # Hà Nội 126 communes/wards, Phú Thọ 148 (vietnam-provinces).
    assert counts == [(2, 274, 276, 276, 2, 11)] * 2
    bridges = {b.name: (b.port_capacity, b.unit_id) for b in session.exec(select(Bridge)).all()}
    hanoi = session.exec(select(Unit).where(Unit.code == "01")).one()
    phutho = session.exec(select(Unit).where(Unit.code == "25")).one()
    assert bridges == {f"MCU {hanoi.name}": (200, hanoi.id), f"MCU {phutho.name}": (200, phutho.id)}
    people = {u.username: (u.role, u.province_id) for u in session.exec(select(User)).all()}
    assert people["vanphongchinhphu"] == (Role.secretariat, None)
    assert people["vanphong.01"] == (Role.secretariat, hanoi.id) and people["kythuat.01"] == (Role.operator, hanoi.id)
    assert people["admin"] == (Role.admin, phutho.id)
    assert demo.bridge_ports(149) == 200 and demo.bridge_ports(160) == 200 and demo.bridge_ports(161) == 250
