"""Site groups (nhóm điểm cầu): CRUD, visibility, and expansion into rooms at booking time."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local


def _setup(engine: Engine) -> dict:
    with make_session(engine) as session:
        make_bridge(session)
        ward_a = make_unit(session, name="Phường Việt Trì")
        ward_b = make_unit(session, name="Phường Nông Trang")
        commune = make_unit(session, name="Xã Đoan Hùng")
        chair = make_room(session, make_unit(session, name="Tỉnh Phú Thọ"), name="Phòng họp UBND tỉnh")
        rooms = {"a": make_room(session, ward_a, name="Hội trường Việt Trì"),
                 "b": make_room(session, ward_b, name="Hội trường Nông Trang"),
                 "c": make_room(session, commune, name="Hội trường Đoan Hùng")}
        endpoints = {k: make_endpoint(session, r).id for k, r in rooms.items()}
        make_endpoint(session, chair)
        users = {"sec": make_user(session, Role.secretariat, full_name="Lê Thu Trang"),
                 "sec2": make_user(session, Role.secretariat),
                 "admin": make_user(session, Role.admin), "viewer": make_user(session, Role.viewer),
                 "op": make_user(session, Role.operator, units=[ward_a]),
                 "op2": make_user(session, Role.operator, units=[ward_a, ward_b]),
                 "op3": make_user(session, Role.operator, units=[commune])}
        h = {k: bearer(session, u) for k, u in users.items()}
        session.commit()
        return {"h": h, "chair": chair.id, "rooms": {k: r.id for k, r in rooms.items()}, "endpoints": endpoints,
                "owner_id": users["sec"].id}


def test_site_group_crud_lists_rooms_by_unit_and_keeps_owner(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    r = client.post("/api/v1/site-groups", headers=d["h"]["sec"], json={
        "name": "  Các phường ", "visibility": "units", "room_ids": [d["rooms"]["a"], d["rooms"]["b"]]})
    assert r.status_code == 201, r.text
    group = r.json()
    assert (group["name"], group["visibility"], group["owner_user_id"], group["owner_name"], group["editable"]) == (
        "Các phường", "units", d["owner_id"], "Lê Thu Trang", True)
    assert [(room["name"], room["unit_name"]) for room in group["rooms"]] == [
        ("Hội trường Nông Trang", "Phường Nông Trang"), ("Hội trường Việt Trì", "Phường Việt Trì")]
    assert group["room_ids"] == [d["rooms"]["b"], d["rooms"]["a"]]

    again = client.post("/api/v1/site-groups", headers=d["h"]["sec"], json={"name": "Các phường"})
    assert (again.status_code, again.json()["code"]) == (409, "site_group_name_taken")
    twice = client.post("/api/v1/site-groups", headers=d["h"]["sec"],
                        json={"name": "Trùng", "room_ids": [d["rooms"]["a"], d["rooms"]["a"]]})
    assert (twice.status_code, twice.json()["code"]) == (422, "duplicate_room")
    unknown = client.post("/api/v1/site-groups", headers=d["h"]["sec"], json={"name": "Lạ", "room_ids": [999999]})
    assert (unknown.status_code, unknown.json()["code"], unknown.json()["room_ids"]) == (422, "unknown_room", [999999])
    viewer = client.post("/api/v1/site-groups", headers=d["h"]["viewer"], json={"name": "Xem"})
    assert (viewer.status_code, viewer.json()["code"]) == (403, "forbidden_role")
    outside = client.post("/api/v1/site-groups", headers=d["h"]["op"], json={"name": "Ngoài",
                                                                           "room_ids": [d["rooms"]["c"]]})
    assert (outside.status_code, outside.json()["code"]) == (403, "forbidden_scope")

    patched = client.patch(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["sec"],
                           json={"room_ids": [d["rooms"]["c"]], "description": "Sau sắp xếp"})
    assert patched.status_code == 200
    assert (patched.json()["room_ids"], patched.json()["description"]) == ([d["rooms"]["c"]], "Sau sắp xếp")
    by_other = client.patch(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["sec2"], json={"name": "Của tôi"})
    assert by_other.json()["code"] == "not_group_owner"  # sec2 sees it (units, both province-wide)
    assert (by_other.status_code, by_other.json()["code"]) == (403, "not_group_owner")
    assert client.delete(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["sec2"]).status_code == 403
    assert client.delete(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["admin"]).status_code == 204
    gone = client.get(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["sec"])
    assert (gone.status_code, gone.json()["code"]) == (404, "site_group_not_found")


def test_site_group_visibility_private_units_and_province(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    ids = {}
    for owner in ("op", "sec"):
        for name, visibility in (("Riêng", "private"), ("Cùng đơn vị", "units"), ("Toàn tỉnh", "province")):
            r = client.post("/api/v1/site-groups", headers=d["h"][owner],
                            json={"name": f"{name} ({owner})", "visibility": visibility})
            assert r.status_code == 201, r.text
            ids[f"{name} ({owner})"] = r.json()["id"]

    def names(who: str) -> list[str]:
        page = client.get("/api/v1/site-groups", headers=d["h"][who]).json()
        assert page["total"] == len(page["items"])
        return [g["name"] for g in page["items"]]

    assert names("op") == ["Cùng đơn vị (op)", "Riêng (op)", "Toàn tỉnh (op)", "Toàn tỉnh (sec)"]
    assert names("op2") == ["Cùng đơn vị (op)", "Toàn tỉnh (op)", "Toàn tỉnh (sec)"]  # shares Phường Việt Trì
    assert names("op3") == ["Toàn tỉnh (op)", "Toàn tỉnh (sec)"]
    assert names("sec2") == ["Cùng đơn vị (sec)", "Toàn tỉnh (op)", "Toàn tỉnh (sec)"]  # the provincial office
    assert len(names("admin")) == 6
    assert client.get(f"/api/v1/site-groups/{ids['Riêng (op)']}", headers=d["h"]["op2"]).status_code == 404
    shared = client.get(f"/api/v1/site-groups/{ids['Cùng đơn vị (op)']}", headers=d["h"]["op2"]).json()
    assert shared["editable"] is False


def test_booking_with_a_site_group_books_its_rooms_and_a_later_change_keeps_the_meeting(
        client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    group = client.post("/api/v1/site-groups", headers=d["h"]["sec"], json={
        "name": "Các phường", "room_ids": [d["rooms"]["a"], d["rooms"]["b"]]}).json()
    t = next_monday_local()
    body = {"title": "Giao ban", "chair_room_id": d["chair"], "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat(), "site_group_ids": [group["id"]],
            "participant_room_ids": [d["rooms"]["a"]]}  # listed explicitly too: counted once
    check = client.post("/api/v1/meetings/check", headers=d["h"]["sec"], json=body)
    assert check.json() == {"ok": True, "conflicts": [], "groups": [], "warnings": [], "displaceable": [],
                           "displacement_token": None, "by_province": []}
    booked = client.post("/api/v1/meetings", headers=d["h"]["sec"], json=body)
    assert booked.status_code == 201, booked.text
    chair_endpoints = set(booked.json()["participant_endpoint_ids"]) - {d["endpoints"]["a"], d["endpoints"]["b"]}
    assert len(chair_endpoints) == 1
    assert sorted(booked.json()["participant_endpoint_ids"]) == sorted(
        [*chair_endpoints, d["endpoints"]["a"], d["endpoints"]["b"]])

    clash = client.post("/api/v1/meetings/check", headers=d["h"]["sec"], json={**body, "participant_room_ids": []})
    assert {(c["resource_kind"], c["resource_id"]) for c in clash.json()["conflicts"] if c["resource_kind"] == "room"} \
        == {("room", d["chair"]), ("room", d["rooms"]["a"]), ("room", d["rooms"]["b"])}

    client.patch(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["sec"], json={"room_ids": [d["rooms"]["c"]]})
    client.delete(f"/api/v1/site-groups/{group['id']}", headers=d["h"]["sec"])
    meeting = client.get(f"/api/v1/meetings/{booked.json()['id']}", headers=d["h"]["sec"]).json()
    assert sorted(meeting["participant_endpoint_ids"]) == sorted(booked.json()["participant_endpoint_ids"])


def test_booking_with_an_invisible_or_unknown_site_group_is_refused(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    private = client.post("/api/v1/site-groups", headers=d["h"]["sec"], json={
        "name": "Riêng", "room_ids": [d["rooms"]["a"]]}).json()
    t = next_monday_local()
    body = {"title": "Giao ban", "chair_room_id": d["chair"], "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat(), "site_group_ids": [private["id"], 999999]}
    r = client.post("/api/v1/meetings", headers=d["h"]["admin"], json={**body, "site_group_ids": [999999]})
    assert (r.status_code, r.json()["code"], r.json()["site_group_ids"]) == (422, "unknown_site_group", [999999])
    r = client.post("/api/v1/meetings", headers=d["h"]["sec2"], json=body)
    assert (r.status_code, r.json()["code"], r.json()["site_group_ids"]) == (
        422, "unknown_site_group", [private["id"], 999999])
