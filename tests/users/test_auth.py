"""Login, tokens (hashed at rest, revocable, expiring) and users, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.users import security
from confsvc.users.models import ApiToken, Role
from confsvc.users.service import issue_token
from tests.factories import bearer, make_unit, make_user


def test_login_issues_a_token_stored_only_as_a_hash(client: TestClient, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password="mật-khẩu-rất-dài")
    session.commit()
    response = client.post("/api/v1/auth/token", json={"username": "vanphong", "password": "mật-khẩu-rất-dài"})
    assert response.status_code == 201
    secret = response.json()["token"]
    assert secret.startswith("cfs_")
    stored = session.exec(select(ApiToken)).one()
    assert stored.token_hash == security.hash_token(secret) and secret not in stored.token_hash
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {secret}"})
    assert (me.json()["username"], me.json()["role"]) == ("vanphong", "secretariat")


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient, session: Session) -> None:
    make_user(session, username="admin1")
    session.commit()
    wrong = client.post("/api/v1/auth/token", json={"username": "admin1", "password": "sai-mat-khau"})
    unknown = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "sai-mat-khau"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password", "code": "bad_credentials"}


def test_revoked_token_stops_working(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.viewer)
    headers = bearer(session, user)
    session.commit()
    tokens = client.get("/api/v1/tokens", headers=headers).json()
    assert len(tokens) == 1 and "token" not in tokens[0]
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=headers).status_code == 204
    after = client.get("/api/v1/users/me", headers=headers)
    assert (after.status_code, after.json()["code"]) == (401, "invalid_token")


def test_expired_token_is_refused(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.viewer)
    token, secret = issue_token(session, user, "short", ttl=timedelta(minutes=5))
    token.expires_at = utc_now() - timedelta(seconds=1)
    session.commit()
    response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401


def test_cannot_revoke_someone_elses_token(client: TestClient, session: Session) -> None:
    owner = make_user(session, Role.viewer)
    other = bearer(session, make_user(session, Role.viewer))
    token, _ = issue_token(session, owner, "mine")
    session.commit()
    assert client.delete(f"/api/v1/tokens/{token.id}", headers=other).status_code == 404


def test_admin_creates_operator_scoped_to_units(client: TestClient, session: Session) -> None:
    make_unit(session, code="07900", name="Phường Việt Trì")
    admin = bearer(session, make_user(session, Role.admin))
    session.commit()
    created = client.post("/api/v1/users", headers=admin, json={
        "username": "kythuat.viettri", "password": "mat-khau-dai", "role": "operator",
        "full_name": "Trần Thị Mai", "unit_codes": ["07900"]})
    assert created.status_code == 201, created.text
    assert created.json()["full_name"] == "Trần Thị Mai" and len(created.json()["unit_ids"]) == 1
    unknown = client.post("/api/v1/users", headers=admin, json={
        "username": "x1", "password": "mat-khau-dai", "role": "operator", "unit_codes": ["00000"]})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_unit")
    bad_role = client.post("/api/v1/users", headers=admin, json={
        "username": "x2", "password": "mat-khau-dai", "role": "superuser"})
    assert (bad_role.status_code, bad_role.json()["code"]) == (422, "validation_error")
    dup = client.post("/api/v1/users", headers=admin, json={
        "username": "kythuat.viettri", "password": "mat-khau-dai", "role": "viewer"})
    assert (dup.status_code, dup.json()["code"]) == (409, "duplicate_username")


def test_non_admin_cannot_create_users(client: TestClient, session: Session) -> None:
    secretariat = bearer(session, make_user(session, Role.secretariat))
    session.commit()
    response = client.post("/api/v1/users", headers=secretariat, json={
        "username": "xy", "password": "mat-khau-dai", "role": "admin"})
    assert response.status_code == 403


def test_token_comparison_is_constant_time_helper() -> None:
    secret, digest = security.new_token()
    assert security.token_matches(secret, digest)
    assert not security.token_matches(secret + "x", digest)


def test_login_tokens_expire_after_the_setting(client: TestClient, session: Session, settings) -> None:
    make_user(session, Role.viewer, username="lanhdao", password="mat-khau-dai")
    session.commit()
    before = utc_now()
    issued = client.post("/api/v1/auth/token", json={"username": "lanhdao", "password": "mat-khau-dai"}).json()
    expires = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(hours=settings.login_token_ttl_hours) <= expires - before < timedelta(
        hours=settings.login_token_ttl_hours, minutes=1)


def test_favicon(client: TestClient) -> None:
    response = client.get("/favicon.ico", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (308, "/static/favicon.svg")
    assert client.get("/static/favicon.svg").headers["content-type"].startswith("image/svg+xml")
