"""Inventory API on both databases: CRUD, filters, pagination, scoped permissions, bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from confsvc.endpoints.models import Endpoint, EndpointStatus, LifecycleState, Protocol, UnitLevel
from confsvc.users.models import Role
from tests.factories import bearer, make_endpoint, make_room, make_unit, make_user


@pytest.fixture
def world(session: Session) -> dict:
    """A province with two communes, a room and endpoint in each, and one user per role."""
    province = make_unit(session, code="25", name="Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
    viet_tri = make_unit(session, code="07900", name="Phường Việt Trì", division_type="phường", parent_id=province.id)
    doan_hung = make_unit(session, code="08020", name="Xã Đoan Hùng", division_type="xã", parent_id=province.id)
    room_vt = make_room(session, viet_tri, name="Điểm cầu UBND Phường Việt Trì")
    room_dh = make_room(session, doan_hung, name="Điểm cầu UBND Xã Đoan Hùng")
    ep_vt = make_endpoint(session, room_vt, name="Poly Việt Trì", serial="SN-VT-1", status=EndpointStatus.online)
    ep_dh = make_endpoint(session, room_dh, name="Huawei Đoan Hùng", vendor="Huawei", model="TE30",
                          serial="SN-DH-1", protocol=Protocol.h323, dial_address="0210080200")
    users = {
        "admin": make_user(session, Role.admin),
        "secretariat": make_user(session, Role.secretariat),
        "operator": make_user(session, Role.operator, units=[viet_tri]),
        "viewer": make_user(session, Role.viewer),
    }
    headers = {role: bearer(session, user) for role, user in users.items()}
    session.commit()
    return {"province": province, "viet_tri": viet_tri, "doan_hung": doan_hung, "room_vt": room_vt,
            "room_dh": room_dh, "ep_vt": ep_vt, "ep_dh": ep_dh, "headers": headers}


def test_requests_without_credentials_are_401(client: TestClient) -> None:
    response = client.get("/api/v1/endpoints")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_unknown_bearer_token_is_401(client: TestClient, world: dict) -> None:
    response = client.get("/api/v1/endpoints", headers={"Authorization": "Bearer cfs_nope"})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_token")


def test_units_filter_by_level_and_parent(client: TestClient, world: dict) -> None:
    h = world["headers"]["viewer"]
    provinces = client.get("/api/v1/units", params={"level": "province"}, headers=h).json()
    assert [u["name"] for u in provinces["items"]] == ["Phú Thọ"]
    communes = client.get("/api/v1/units", params={"parent_id": world["province"].id}, headers=h).json()
    assert [u["code"] for u in communes["items"]] == ["07900", "08020"]
    assert communes["total"] == 2


@pytest.mark.parametrize("query", ["Đoan Hùng", "doan hung", "ĐOAN", "đoan"])
def test_search_with_or_without_diacritics(client: TestClient, world: dict, query: str) -> None:
    body = client.get("/api/v1/endpoints", params={"q": query}, headers=world["headers"]["viewer"]).json()
    assert [e["serial"] for e in body["items"]] == ["SN-DH-1"]


def test_search_with_diacritics_is_exact_about_them(client: TestClient, world: dict) -> None:
    # "Hưng" is not "Hùng": a query written with marks does not match other marks.
    body = client.get("/api/v1/units", params={"q": "Đoan Hưng"}, headers=world["headers"]["viewer"]).json()
    assert body["items"] == []


def test_endpoint_filters_combine(client: TestClient, world: dict) -> None:
    h = world["headers"]["secretariat"]
    by_unit = client.get("/api/v1/endpoints", params={"unit_id": world["province"].id}, headers=h).json()
    assert {e["serial"] for e in by_unit["items"]} == {"SN-VT-1", "SN-DH-1"}
    online = client.get("/api/v1/endpoints", params={"status": "online"}, headers=h).json()
    assert [e["serial"] for e in online["items"]] == ["SN-VT-1"]
    h323 = client.get("/api/v1/endpoints", params={"protocol": "h323", "vendor": "huawei"}, headers=h).json()
    assert [e["serial"] for e in h323["items"]] == ["SN-DH-1"]
    assert h323["items"][0]["unit_id"] == world["doan_hung"].id


def test_pagination(client: TestClient, world: dict, session: Session) -> None:
    for i in range(5):
        make_endpoint(session, world["room_vt"], name=f"Thiết bị {i}", serial=f"SN-P-{i}")
    session.commit()
    h = world["headers"]["admin"]
    first = client.get("/api/v1/endpoints", params={"limit": 3, "offset": 0}, headers=h).json()
    second = client.get("/api/v1/endpoints", params={"limit": 3, "offset": 3}, headers=h).json()
    assert first["total"] == second["total"] == 7
    assert len(first["items"]) == 3 and len(second["items"]) == 3
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in second["items"]}
    too_big = client.get("/api/v1/endpoints", params={"limit": 100000}, headers=h)
    assert (too_big.status_code, too_big.json()["code"]) == (422, "limit_too_large")


def test_operator_sees_only_own_units(client: TestClient, world: dict) -> None:
    h = world["headers"]["operator"]
    listed = client.get("/api/v1/endpoints", headers=h).json()
    assert [e["serial"] for e in listed["items"]] == ["SN-VT-1"]
    own = client.get(f"/api/v1/endpoints/{world['ep_vt'].id}", headers=h)
    assert own.status_code == 200
    other = client.get(f"/api/v1/endpoints/{world['ep_dh'].id}", headers=h)
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_scope")
    other_room = client.get(f"/api/v1/rooms/{world['room_dh'].id}", headers=h)
    assert other_room.status_code == 403
    units = client.get("/api/v1/units", headers=h).json()
    assert [u["code"] for u in units["items"]] == ["07900"]


@pytest.mark.parametrize("role", ["secretariat", "operator", "viewer"])
def test_only_admin_changes_inventory(client: TestClient, world: dict, role: str) -> None:
    response = client.patch(f"/api/v1/endpoints/{world['ep_vt'].id}", json={"firmware": "x"},
                            headers=world["headers"][role])
    assert (response.status_code, response.json()["code"]) == (403, "forbidden_role")


def test_endpoint_crud(client: TestClient, world: dict, session: Session) -> None:
    h = world["headers"]["admin"]
    created = client.post("/api/v1/endpoints", headers=h, json={
        "room_id": world["room_dh"].id, "vendor": "Yealink", "model": "VC800", "serial": "YL-0001",
        "protocol": "sip", "dial_address": "SIP:doanhung2@vc.phutho.gov.vn", "management_ip": "10.25.80.11"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "Điểm cầu UBND Xã Đoan Hùng – Yealink VC800"
    assert body["dial_address"] == "sip:doanhung2@vc.phutho.gov.vn"
    assert (body["lifecycle_state"], body["status"], body["unit_id"]) == ("active", "unknown", world["doan_hung"].id)

    patched = client.patch(f"/api/v1/endpoints/{body['id']}", headers=h,
                           json={"lifecycle_state": "maintenance", "firmware": "63.345.0.10"})
    assert patched.status_code == 200
    assert (patched.json()["lifecycle_state"], patched.json()["firmware"]) == ("maintenance", "63.345.0.10")
    assert client.delete(f"/api/v1/endpoints/{body['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/endpoints/{body['id']}", headers=h).status_code == 404
    assert session.exec(select(Endpoint).where(Endpoint.serial == "YL-0001")).first() is None


@pytest.mark.parametrize(("patch", "status", "code"), [
    ({"serial": "SN-VT-1"}, 409, "duplicate_serial"),
    ({"room_id": 999999}, 422, "unknown_room"),
    ({"dial_address": "viettri"}, 422, "invalid_dial_address"),
    ({"protocol": "h323", "dial_address": "sip:a@b.vn"}, 422, "invalid_dial_address"),
    ({"management_ip": "10.25.300.1"}, 422, "validation_error"),
    ({"protocol": "webrtc"}, 422, "validation_error"),
    ({"serial": ""}, 422, "validation_error"),
    ({"unexpected": 1}, 422, "validation_error"),
])
def test_bad_endpoint_input_is_a_clear_4xx_and_writes_nothing(
    client: TestClient, world: dict, session: Session, patch: dict, status: int, code: str
) -> None:
    payload = {"room_id": world["room_vt"].id, "vendor": "Cisco", "model": "Room Kit", "serial": "C-1",
               "protocol": "sip", "dial_address": "sip:c1@vc.phutho.gov.vn", **patch}
    response = client.post("/api/v1/endpoints", json=payload, headers=world["headers"]["admin"])
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["detail"]
    assert len(session.exec(select(Endpoint)).all()) == 2


def test_room_crud_and_conflicts(client: TestClient, world: dict) -> None:
    h = world["headers"]["admin"]
    created = client.post("/api/v1/rooms", headers=h, json={
        "unit_id": world["viet_tri"].id, "name": "Phòng họp tầng 2", "seats": 40,
        "contact_name": "Nguyễn Văn Hùng", "contact_email": "ktdc.viettri@phutho.gov.vn"})
    assert created.status_code == 201
    dup = client.post("/api/v1/rooms", headers=h, json={"unit_id": world["viet_tri"].id, "name": "Phòng họp tầng 2"})
    assert (dup.status_code, dup.json()["code"]) == (409, "duplicate_room_name")
    unknown = client.post("/api/v1/rooms", headers=h, json={"unit_id": 424242, "name": "X"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_unit")
    busy = client.delete(f"/api/v1/rooms/{world['room_vt'].id}", headers=h)
    assert (busy.status_code, busy.json()["code"]) == (409, "room_has_endpoints")
    assert client.delete(f"/api/v1/rooms/{created.json()['id']}", headers=h).status_code == 204
    search = client.get("/api/v1/rooms", params={"q": "nguyen van hung"}, headers=h).json()
    assert search["items"] == []


def test_bridges(client: TestClient, world: dict, session: Session) -> None:
    h = world["headers"]["admin"]
    created = client.post("/api/v1/bridges", headers=h, json={
        "name": "MCU Trung tâm tỉnh", "port_capacity": 200, "sip_domain": "mcu1.phutho.gov.vn",
        "h323_prefix": "8801", "conference_number_min": 1000, "conference_number_max": 1999})
    assert created.status_code == 201
    assert created.json()["port_capacity"] == 200
    inverted = client.post("/api/v1/bridges", headers=h, json={
        "name": "MCU 2", "port_capacity": 10, "sip_domain": "m2.vn", "conference_number_min": 5,
        "conference_number_max": 1})
    assert inverted.status_code == 422
    zero = client.patch(f"/api/v1/bridges/{created.json()['id']}", headers=h, json={"port_capacity": 0})
    assert zero.status_code == 422
    listed = client.get("/api/v1/bridges", headers=world["headers"]["viewer"]).json()
    assert [b["name"] for b in listed["items"]] == ["MCU Trung tâm tỉnh"]


def test_unit_create_and_duplicate(client: TestClient, world: dict) -> None:
    h = world["headers"]["admin"]
    created = client.post("/api/v1/units", headers=h, json={
        "code": "99999", "name": "Đặc khu Thử", "division_type": "đặc khu", "level": "commune",
        "parent_id": world["province"].id})
    assert created.status_code == 201
    dup = client.post("/api/v1/units", headers=h, json={
        "code": "99999", "name": "Khác", "division_type": "xã", "level": "commune"})
    assert (dup.status_code, dup.json()["code"]) == (409, "duplicate_unit_code")


def test_request_body_limit(client: TestClient, world: dict, settings) -> None:
    big = b"x" * (settings.max_request_bytes + 1)
    response = client.post("/api/v1/endpoints", content=big, headers={
        **world["headers"]["admin"], "content-type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")


def test_malformed_json_is_422(client: TestClient, world: dict) -> None:
    response = client.post("/api/v1/endpoints", content=b"{not json", headers={
        **world["headers"]["admin"], "content-type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_lifecycle_state_values(world: dict) -> None:
    assert world["ep_vt"].lifecycle_state is LifecycleState.active


@pytest.mark.parametrize("path", [
    "/api/v1/bridges/910070247918102400134553796608",
    "/api/v1/endpoints/9223372036854775808",
    "/api/v1/endpoints?unit_id=99999999999999999999",
    "/api/v1/units/0",
])
def test_out_of_range_ids_are_422_not_500(client: TestClient, world: dict, path: str) -> None:
    # Regression: schemathesis found a 30-digit bridge id overflowing the SQLite driver (500).
    response = client.get(path, headers=world["headers"]["admin"])
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_out_of_range_id_in_body_is_422(client: TestClient, world: dict) -> None:
    response = client.post("/api/v1/rooms", json={"unit_id": 2**63, "name": "X"}, headers=world["headers"]["admin"])
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_renaming_a_room_or_unit_renews_endpoint_search(client: TestClient, world: dict) -> None:
    # Regression: endpoints kept the old room/unit name in their search text after a rename.
    h = world["headers"]["admin"]
    assert client.patch(f"/api/v1/rooms/{world['room_dh'].id}", headers=h, json={"name": "Phòng Hồng Lĩnh"}).status_code == 200
    assert client.patch(f"/api/v1/units/{world['doan_hung'].id}", headers=h, json={"name": "Xã Chân Mộng"}).status_code == 200
    for query in ("hong linh", "Chân Mộng"):
        found = client.get("/api/v1/endpoints", params={"q": query}, headers=h).json()
        assert [e["serial"] for e in found["items"]] == ["SN-DH-1"]
    assert client.get("/api/v1/endpoints", params={"q": "diem cau ubnd xa doan hung"}, headers=h).json()["items"] == []
    rooms = client.get("/api/v1/rooms", params={"q": "chan mong"}, headers=h).json()
    assert [r["name"] for r in rooms["items"]] == ["Phòng Hồng Lĩnh"]
