"""Issue 14: ``PATCH /api/v1/users/{id}`` moves a user to another province (``province_code``). Only an
administrator without a province scope (the national one) does; a province's administrator cannot move
a user out of their province; the province must be a unit of level province holding the user's units;
the change is audited (``user.updated``) and ends the user's web sessions and live channels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from confsvc import events
from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling.models import AuditEntry
from confsvc.users import service as users
from confsvc.users.models import Role, User, WebSession
from confsvc.users.security import hash_token
from tests.factories import bearer, make_room, make_unit, make_user


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    """Phú Thọ (25) and Hà Nội (01), a commune and a room each; the national administrator, Phú Thọ's
    administrator, a viewer and an operator of Phú Thọ (the viewer with a web session)."""
    w: dict[str, Any] = {}
    for key, code, name in (("phutho", "25", "Tỉnh Phú Thọ"), ("hanoi", "01", "Thành phố Hà Nội")):
        province = make_unit(session, code=code, name=name, division_type="tỉnh", level=UnitLevel.province)
        commune = make_unit(session, code=f"{code}901", name=f"Xã Thử {code}", parent_id=province.id)
        w[key] = {"province": province.id, "commune": commune.id, "commune_code": commune.code,
                  "room": make_room(session, commune).id}
    national = make_user(session, Role.admin, username="quantri.quocgia")
    assert national.province_id is None
    local = make_user(session, Role.admin, username="quantri.phutho", province_id=w["phutho"]["province"])
    viewer = make_user(session, Role.viewer, username="xem.phutho", province_id=w["phutho"]["province"])
    operator = users.create_user(session, username="kythuat.phutho", password="mật-khẩu-dài-1", role=Role.operator,
                                 unit_ids=[w["phutho"]["commune"]])
    viewer_web = users.start_web_session(session, viewer, ttl=timedelta(hours=1))
    w.update(viewer_web_session=hash_token(viewer_web))
    w.update(national=bearer(session, national), local=bearer(session, local), viewer_headers=bearer(session, viewer),
             viewer=viewer.id, operator=operator.id, local_id=local.id, national_id=national.id)
    session.commit()
    return w


def _entries(session: Session) -> list[tuple[int | None, str, dict[str, Any]]]:
    session.expire_all()
    found = [(e.user_id, e.action, e.details) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()]
    session.rollback()  # SQLite: end the read's transaction before the next request writes
    return found


def test_the_national_admin_moves_a_user_to_another_province_audited_and_signed_out(
        client: TestClient, session: Session, world: dict[str, Any]) -> None:
    phutho, hanoi = world["phutho"], world["hanoi"]
    seen = events.latest_id(session)
    session.rollback()
    assert client.get(f"/api/v1/rooms/{phutho['room']}", headers=world["viewer_headers"]).status_code == 200
    r = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["national"], json={"province_code": "01"})
    assert r.status_code == 200, r.text
    assert (r.json()["username"], r.json()["province_id"]) == ("xem.phutho", hanoi["province"])
    assert _entries(session) == [(world["national_id"], "user.updated", {
        "user": "xem.phutho", "fields": ["province_id"], "province_id": hanoi["province"],
        "province": "Tỉnh Phú Thọ → Thành phố Hà Nội", "request_id": _entries(session)[0][2]["request_id"]})]
    assert session.exec(select(WebSession).where(WebSession.user_id == world["viewer"])).all() == []
    revoked = [e.data for e in session.exec(select(events.Event).where(
        events.Event.type == "access.revoked", events.Event.id > seen)).all()]
    session.rollback()
    # One event: the user's channels, and those their ended web session's pages opened.
    assert revoked == [{"user_ids": [world["viewer"]], "api_token_ids": [], "display_token_ids": [],
                        "web_sessions": [world["viewer_web_session"]]}]
    # Their token now acts in Hà Nội: Phú Thọ's room is another province's, Hà Nội's is theirs.
    assert client.get(f"/api/v1/rooms/{phutho['room']}", headers=world["viewer_headers"]).status_code == 404
    assert client.get(f"/api/v1/rooms/{hanoi['room']}", headers=world["viewer_headers"]).status_code == 200
    # Phú Thọ's administrator no longer sees them; the audit page labels the action in Vietnamese.
    assert "xem.phutho" not in [u["username"] for u in client.get("/api/v1/users", headers=world["local"]).json()]
    listed = client.get("/api/v1/audit", headers=world["national"], params={"action": "user.updated"}).json()
    assert [e["action_label"] for e in listed["items"]] == ["Sửa người dùng"]


def test_the_national_admin_makes_a_user_national_and_back(client: TestClient, world: dict[str, Any]) -> None:
    r = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["national"], json={"province_code": None})
    assert (r.status_code, r.json()["province_id"]) == (200, None)
    r = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["national"], json={"province_code": "25"})
    assert (r.status_code, r.json()["province_id"]) == (200, world["phutho"]["province"])


def test_a_province_admin_cannot_move_a_user_out_of_the_province(
        client: TestClient, session: Session, world: dict[str, Any]) -> None:
    for body in ({"province_code": "01"}, {"province_code": None}):
        r = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["local"], json=body)
        assert (r.status_code, r.json()["code"]) == (403, "province_outside_scope"), body
    # Their own province is no move; a user of another province is not found.
    same = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["local"], json={"province_code": "25"})
    assert (same.status_code, same.json()["province_id"]) == (200, world["phutho"]["province"])
    moved = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["national"], json={"province_code": "01"})
    assert moved.status_code == 200
    back = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["local"], json={"province_code": "25"})
    assert (back.status_code, back.json()["code"]) == (404, "user_not_found")
    assert [action for _, action, _ in _entries(session)] == ["user.updated"]  # the national admin's move only
    # Not an administrator at all.
    r = client.patch(f"/api/v1/users/{world['operator']}", headers=world["viewer_headers"],
                     json={"province_code": "01"})
    assert r.status_code == 403


def test_the_province_must_be_a_province_holding_the_users_units(
        client: TestClient, session: Session, world: dict[str, Any]) -> None:
    cases = [(world["viewer"], {"province_code": world["phutho"]["commune_code"]}, "not_a_province"),
             (world["viewer"], {"province_code": "99"}, "unknown_unit"),
             (world["operator"], {"province_code": "01"}, "units_outside_province"),
             (world["viewer"], {"province_code": "0" * 11}, "validation_error")]
    for user_id, body, code in cases:
        r = client.patch(f"/api/v1/users/{user_id}", headers=world["national"], json=body)
        assert (r.status_code, r.json()["code"]) == (422, code), body
    session.expire_all()
    assert {u.username: u.province_id for u in session.exec(select(User)).all()
            if u.username in ("xem.phutho", "kythuat.phutho")} == {
        "xem.phutho": world["phutho"]["province"], "kythuat.phutho": world["phutho"]["province"]}
    session.rollback()
    assert _entries(session) == []


def test_a_role_change_is_audited_too_and_no_change_is_not(
        client: TestClient, session: Session, world: dict[str, Any]) -> None:
    r = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["national"],
                     json={"role": "secretariat", "password": "mật-khẩu-mới-dài-2"})
    assert r.status_code == 200
    nothing = client.patch(f"/api/v1/users/{world['viewer']}", headers=world["national"], json={"role": "secretariat"})
    assert nothing.status_code == 200
    [(_, action, details)] = _entries(session)
    assert (action, details["user"], details["fields"], details["role"]) == (
        "user.updated", "xem.phutho", ["role", "password"], "secretariat")
    assert "password" not in details  # that it changed, never what it is
