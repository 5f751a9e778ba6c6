"""Issue 16: CSRF with malformed Authorization headers, revocable web sessions, security headers,
login throttling and password strength, on both databases."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc.main import create_app
from confsvc.middleware import CONTENT_SECURITY_POLICY
from confsvc.users.models import Role, User, WebSession
from tests.factories import bearer, make_user
from tests.web_support import PASSWORD, login


def _csrf(client: TestClient) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


# ---------------------------------------------------------------- defect 7: CSRF and Authorization


def test_basic_authorization_header_does_not_skip_the_api_csrf_check(client: TestClient, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    login(client, "vanphong")
    response = client.post("/api/v1/tokens", json={"name": "forged"}, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    empty = client.post("/api/v1/tokens", json={"name": "forged"}, headers={"Authorization": "Bearer "})
    assert (empty.status_code, empty.json()["code"]) == (403, "csrf_failed")
    assert session.exec(select(User).where(User.username == "vanphong")).one() is not None
    assert client.get("/api/v1/tokens").json() == []


def test_malformed_authorization_header_is_401_never_the_cookie(client: TestClient, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    login(client, "vanphong")
    token = _csrf(client)
    for header in ("Basic Zm9vOmJhcg==", "Bearer ", "Bearer", "Bearer a b", "cfs_abc"):
        response = client.post("/api/v1/tokens", json={"name": "x"},
                               headers={"Authorization": header, "X-CSRF-Token": token})
        assert (header, response.status_code, response.json()["code"]) == (header, 401, "invalid_authorization")
        read = client.get("/api/v1/users/me", headers={"Authorization": header})
        assert (header, read.status_code) == (header, 401)
    assert client.get("/api/v1/tokens").json() == []


def test_well_formed_bearer_token_needs_no_csrf_header(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    headers = bearer(session, user)
    session.commit()
    login(client, "vanphong")
    response = client.post("/api/v1/tokens", json={"name": "tích hợp"}, headers=headers)
    assert (response.status_code, response.json()["name"]) == (201, "tích hợp")


# ---------------------------------------------------------------- defect 6: sessions, cookie, headers


def _copied_cookie_works(client: TestClient, cookie: str) -> bool:
    client.cookies.clear()
    client.cookies.set("confsvc_session", cookie)
    return client.get("/api/v1/users/me").status_code == 200


def test_copied_session_cookie_stops_working_after_logout(client: TestClient, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    login(client, "vanphong")
    cookie = client.cookies["confsvc_session"]
    assert _copied_cookie_works(client, cookie) is True
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert _copied_cookie_works(client, cookie) is False
    assert session.exec(select(WebSession)).all() == []


def test_password_change_ends_every_web_session(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    headers = bearer(session, user)
    session.commit()
    login(client, "vanphong")
    cookie = client.cookies["confsvc_session"]
    response = client.post("/api/v1/users/me/password", headers=headers,
                           json={"current_password": PASSWORD, "new_password": "hoa-sen-nở-giữa-đầm"})
    assert response.status_code == 204
    assert _copied_cookie_works(client, cookie) is False
    client.cookies.clear()
    login(client, "vanphong", "hoa-sen-nở-giữa-đầm")
    assert client.get("/api/v1/users/me").json()["username"] == "vanphong"


def test_role_change_and_disabling_end_the_users_web_sessions(client: TestClient, session: Session) -> None:
    admin = make_user(session, Role.admin, username="quantri", password=PASSWORD)
    target = make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    headers = bearer(session, admin)
    session.commit()
    login(client, "vanphong")
    cookie = client.cookies["confsvc_session"]
    changed = client.patch(f"/api/v1/users/{target.id}", json={"role": "viewer"}, headers=headers)
    assert (changed.status_code, changed.json()["role"]) == (200, "viewer")
    assert _copied_cookie_works(client, cookie) is False
    client.cookies.clear()
    login(client, "vanphong")
    cookie = client.cookies["confsvc_session"]
    disabled = client.patch(f"/api/v1/users/{target.id}", json={"active": False}, headers=headers)
    assert (disabled.status_code, disabled.json()["active"]) == (200, False)
    assert _copied_cookie_works(client, cookie) is False


def test_every_response_carries_the_security_headers(client: TestClient, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    for path in ("/login", "/healthz", "/api/v1/users/me", "/static/confsvc.css", "/no-such-page"):
        response = client.get(path, follow_redirects=False)
        assert (path, response.headers["content-security-policy"], response.headers["x-frame-options"],
                response.headers["x-content-type-options"], response.headers["referrer-policy"]) == (
            path, CONTENT_SECURITY_POLICY, "DENY", "nosniff", "same-origin")
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY


def test_session_cookie_has_no_secure_flag_over_http_and_has_it_over_https(settings, engine: Engine,
                                                                           session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    for base_url, secure in (("http://testserver", False), ("https://testserver", True)):
        with TestClient(create_app(settings, engine=engine), base_url=base_url) as client:
            response = client.get("/login")
            cookie = response.headers["set-cookie"]
            assert (base_url, "; secure" in cookie.lower()) == (base_url, secure)
    with TestClient(create_app(settings.model_copy(update={"cookie_secure": True}), engine=engine)) as client:
        assert "; secure" in client.get("/login").headers["set-cookie"].lower()


# ---------------------------------------------------------------- defect 5: throttling, weak passwords


def _throttled_client(settings, engine: Engine, **limits) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=limits), engine=engine))


def test_api_login_is_throttled_by_account_with_retry_after(settings, engine: Engine, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    with _throttled_client(settings, engine, login_attempts_per_account=3, login_window_seconds=600) as client:
        codes = [client.post("/api/v1/auth/token", json={"username": "vanphong", "password": "sai-mat-khau"}).status_code
                 for _ in range(3)]
        refused = client.post("/api/v1/auth/token", json={"username": "VanPhong", "password": PASSWORD})
        other = client.post("/api/v1/auth/token", json={"username": "khac", "password": "sai-mat-khau"})
    assert codes == [401, 401, 401]
    assert (refused.status_code, refused.json()["code"]) == (429, "login_throttled")
    assert 590 <= int(refused.headers["retry-after"]) <= 600 and refused.json()["retry_after"] == int(
        refused.headers["retry-after"])
    assert other.status_code == 401  # another account from the same address is not over the address limit


def test_api_login_is_throttled_by_address(settings, engine: Engine) -> None:
    with _throttled_client(settings, engine, login_attempts_per_address=4) as client:
        codes = [client.post("/api/v1/auth/token", json={"username": f"nguoi{i}", "password": "sai-mat-khau"}
                             ).status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 429]


def test_web_login_form_is_throttled_with_a_vietnamese_message(settings, engine: Engine, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    with _throttled_client(settings, engine, login_attempts_per_account=2) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        form = {"username": "vanphong", "password": "sai-mat-khau", "csrf": csrf, "next": "/"}
        codes = [client.post("/login", data=form, follow_redirects=False).status_code for _ in range(2)]
        refused = client.post("/login", data={**form, "password": PASSWORD}, follow_redirects=False)
    assert (codes, refused.status_code) == ([401, 401], 429)
    seconds = int(refused.headers["retry-after"])
    assert f"Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {seconds} giây." in refused.text


def test_successful_login_clears_the_account_count(settings, engine: Engine, session: Session) -> None:
    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    with _throttled_client(settings, engine, login_attempts_per_account=2) as client:
        wrong = {"username": "vanphong", "password": "sai-mat-khau"}
        right = {"username": "vanphong", "password": PASSWORD}
        codes = [client.post("/api/v1/auth/token", json=body).status_code for body in (wrong, right, wrong, right)]
    assert codes == [401, 201, 401, 201]


def test_weak_passwords_are_refused_on_user_creation(client: TestClient, session: Session) -> None:
    headers = bearer(session, make_user(session, Role.admin))
    session.commit()
    for username, password in (("vanphong", "12345678"), ("vanphong", "password"), ("vanphong2", "vanphong2"),
                               ("quantri", "abcdefgh"), ("lanhdao", "Lanhdao2026")):
        response = client.post("/api/v1/users", headers=headers,
                               json={"username": username, "password": password, "role": "viewer"})
        assert (password, response.status_code, response.json()["code"]) == (password, 422, "weak_password")
    accepted = client.post("/api/v1/users", headers=headers,
                           json={"username": "vanphong", "password": "hoa-sen-nở-giữa-đầm", "role": "viewer"})
    assert accepted.status_code == 201


def test_weak_password_is_refused_on_password_change(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    headers = bearer(session, user)
    session.commit()
    for weak in ("12345678", "password", "vanphong"):
        response = client.post("/api/v1/users/me/password", headers=headers,
                               json={"current_password": PASSWORD, "new_password": weak})
        assert (weak, response.status_code, response.json()["code"]) == (weak, 422, "weak_password")
    wrong = client.post("/api/v1/users/me/password", headers=headers,
                        json={"current_password": "sai-mat-khau", "new_password": "hoa-sen-nở-giữa-đầm"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "bad_credentials")


def test_cli_refuses_a_weak_password(settings, engine: Engine, monkeypatch) -> None:
    from typer.testing import CliRunner

    from confsvc import cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    result = CliRunner().invoke(cli.app, ["users", "create", "vanphong", "--role", "viewer", "--password", "password"])
    assert result.exit_code == 1 and "weak_password" in result.output


def test_demo_passwords_pass_the_strength_check() -> None:
    from confsvc.users.security import generate_password, password_weakness

    assert [password_weakness(generate_password(), "quantri") for _ in range(50)] == [None] * 50


def test_admin_cannot_lock_themselves_out(client: TestClient, session: Session) -> None:
    admin = make_user(session, Role.admin, username="quantri", password=PASSWORD)
    headers = bearer(session, admin)
    session.commit()
    for change in ({"active": False}, {"role": "viewer"}):
        response = client.patch(f"/api/v1/users/{admin.id}", json=change, headers=headers)
        assert (response.status_code, response.json()["code"]) == (422, "own_admin_access")
    assert client.get("/api/v1/users/me", headers=headers).json()["role"] == "admin"


def test_login_throttle_counts_are_shared_through_redis(settings) -> None:
    """Two workers (two throttles on one Redis) see the same failures: 2 + 1 failures reach a limit of 3."""
    import secrets

    from confsvc.errors import TooManyRequests
    from confsvc.users.throttle import LoginThrottle

    shared = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0", "login_attempts_per_account": 3})
    first, second = LoginThrottle(shared), LoginThrottle(shared)
    username = f"vanphong-{secrets.token_hex(4)}"  # no collision with a parallel run on the same Redis
    try:
        first.failed(username, None)
        first.failed(username, None)
        second.check(username, None)
        second.failed(username, None)
        try:
            first.check(username, None)
        except TooManyRequests as exc:
            refused = (exc.status_code, exc.code, 0 < exc.extra["retry_after"] <= 300)
        else:
            refused = None
        assert refused == (429, "login_throttled", True)
    finally:
        first.succeeded(username)


def test_login_works_while_the_throttles_redis_is_down(settings, engine: Engine, session: Session) -> None:
    """Redis stopped: logins are still answered (counted in memory), never a 500."""
    from confsvc.users.throttle import LoginThrottle

    make_user(session, Role.secretariat, username="vanphong", password=PASSWORD)
    session.commit()
    with TestClient(create_app(settings, engine=engine)) as client:
        client.app.state.login_throttle = LoginThrottle(settings.model_copy(update={
            "redis_url": "redis://127.0.0.1:1/0", "login_attempts_per_account": 2}))
        codes = [client.post("/api/v1/auth/token", json={"username": "vanphong", "password": password}).status_code
                 for password in (PASSWORD, "sai-mat-khau", "sai-mat-khau", PASSWORD)]
    assert codes == [201, 401, 401, 429]
