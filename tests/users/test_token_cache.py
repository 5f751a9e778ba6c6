"""Bearer tokens verified once per TTL in each process (``users.token_cache``, issue 16 "Throughput under
contention"): the cache answers without the database, and every way of closing access still closes it."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc.clock import utc_now
from confsvc.users import security, token_cache
from confsvc.users.models import ApiToken, Role, User
from confsvc.users.principal import Principal
from confsvc.users.service import issue_token
from tests.factories import bearer, make_user

VIEWER = Principal(user_id=7, username="xem", role=Role.viewer, unit_ids=None)


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    return seen


def test_a_verified_token_is_answered_from_the_cache(client: TestClient, session: Session, engine: Engine) -> None:
    headers = bearer(session, make_user(session, Role.viewer, username="xem"))
    session.commit()
    assert client.get("/api/v1/users/me", headers=headers).json()["username"] == "xem"
    seen = _statements(engine)
    again = client.get("/api/v1/users/me", headers=headers)
    assert again.json()["username"] == "xem"
    assert not [s for s in seen if "api_tokens" in s]


def test_a_token_revoked_by_another_process_is_refused_once_access_revoked_arrives(
        client: TestClient, session: Session) -> None:
    headers = bearer(session, make_user(session, Role.viewer))
    session.commit()
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    # Another process revokes it: no ORM change here, only its access.revoked event (live.revocation).
    session.execute(sa.update(ApiToken).values(revoked_at=utc_now()))
    session.commit()
    token_id = session.exec(sa.select(ApiToken.id)).scalar_one()
    client.app.state.hub.revoked_tokens({"user_ids": [], "api_token_ids": [token_id], "display_token_ids": []})
    after = client.get("/api/v1/users/me", headers=headers)
    assert (after.status_code, after.json()["code"]) == (401, "invalid_token")


def test_a_user_disabled_in_this_process_is_refused_at_once(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.viewer)
    headers = bearer(session, user)
    session.commit()
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    stored = session.get(User, user.id)
    assert stored is not None
    stored.active = False
    session.commit()
    after = client.get("/api/v1/users/me", headers=headers)
    assert (after.status_code, after.json()["code"]) == (401, "invalid_token")


def test_a_role_change_is_seen_by_the_next_request(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.viewer)
    headers = bearer(session, user)
    session.commit()
    assert client.get("/api/v1/users/me", headers=headers).json()["role"] == "viewer"
    stored = session.get(User, user.id)
    assert stored is not None
    stored.role = Role.secretariat
    session.commit()
    assert client.get("/api/v1/users/me", headers=headers).json()["role"] == "secretariat"


def test_a_token_expiring_while_cached_is_refused(client: TestClient, session: Session) -> None:
    user = make_user(session, Role.viewer)
    _, secret = issue_token(session, user, "short", ttl=timedelta(minutes=5))
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    cache: token_cache.PrincipalCache = client.app.state.principals
    digest = security.hash_token(secret)
    assert cache.lookup(digest) is not None
    assert cache.lookup(digest, now=utc_now() + timedelta(minutes=5)) is None


def test_an_entry_read_before_an_invalidation_is_never_cached() -> None:
    cache = token_cache.PrincipalCache(60)
    read = token_cache.generation()
    token_cache.invalidate()  # e.g. a revocation committed while the database read was running
    cache.remember("a" * 64, VIEWER, None, read)
    assert cache.lookup("a" * 64) is None
    cache.remember("a" * 64, VIEWER, None, token_cache.generation())
    assert cache.lookup("a" * 64) == VIEWER
    token_cache.invalidate()
    assert cache.lookup("a" * 64) is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = token_cache.PrincipalCache(0)
    cache.remember("b" * 64, VIEWER, None, token_cache.generation())
    assert (cache.lookup("b" * 64), len(cache)) == (None, 0)
