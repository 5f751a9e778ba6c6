"""Revoked access closes open live channels (issue 16 defect 9): a revoked display or API token, a
disabled user, a changed role; in this process and in another one (the revocation is an event)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from websockets.sync.client import connect

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.live import display
from confsvc.main import create_app
from confsvc.users import service as users
from confsvc.users.models import ApiToken, Role, User
from tests.factories import bearer, make_endpoint, make_room, make_unit, make_user
from tests.live_support import ThreadServer, closed_with, process_server, recv

REVOKED = (4401, "access_revoked: token revoked or access changed (quyền truy cập đã bị thu hồi hoặc thay đổi)")


@pytest.fixture
def site(engine: Engine) -> dict:
    with make_session(engine) as session:
        unit = make_unit(session)
        room = make_room(session, unit)
        make_endpoint(session, room)
        secretariat, viewer = make_user(session, Role.secretariat), make_user(session, Role.viewer)
        token, display_secret = display.create_display_token(
            session, users.principal_for(session, secretariat), room.id)
        viewer_headers = bearer(session, viewer)
        ids = {"room": room.id, "display_id": token.id, "display": display_secret, "viewer_id": viewer.id,
               "viewer": viewer_headers["Authorization"].split(" ", 1)[1], "viewer_headers": viewer_headers,
               "secretariat": bearer(session, secretariat),
               "secretariat_token": bearer(session, secretariat)["Authorization"].split(" ", 1)[1]}
        ids["viewer_token_id"] = session.exec(
            select(ApiToken.id).where(ApiToken.user_id == viewer.id)).one()
        session.commit()
    return ids


@pytest.fixture
def server(db_url: str, tmp_path: Path, engine: Engine) -> Iterator[ThreadServer]:
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    with ThreadServer(create_app(settings, engine=engine)) as running:
        yield running


def _status(engine: Engine, room: int, n: int) -> dict:
    with make_session(engine) as session:
        event = events.record(session, "endpoint.status", {"n": n}, room_ids=[room])
        session.commit()
        return events.to_published(event).message


def test_revoked_display_token_socket_no_longer_receives_events(server: ThreadServer, site: dict,
                                                                engine: Engine) -> None:
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as shown, \
            server.ws(f"/ws/secretariat?token={site['secretariat_token']}") as board:
        assert recv(shown)["type"] == recv(board)["type"] == "snapshot"
        r = httpx.delete(f"{server.base}/api/v1/rooms/{site['room']}/display-tokens/{site['display_id']}",
                         headers=site["secretariat"], timeout=10)
        assert r.status_code == 204
        assert closed_with(shown) == REVOKED
        # The board stays open, and the internal revocation never reaches it: its next message is the next event.
        sent = _status(engine, site["room"], 1)
        assert recv(board) == sent


def test_revoked_api_token_closes_its_socket(server: ThreadServer, site: dict) -> None:
    with server.ws(f"/ws/secretariat?token={site['viewer']}") as ws:
        assert recv(ws)["type"] == "snapshot"
        r = httpx.delete(f"{server.base}/api/v1/tokens/{site['viewer_token_id']}", headers=site["viewer_headers"],
                         timeout=10)
        assert r.status_code == 204
        assert closed_with(ws) == REVOKED
    with server.ws(f"/ws/secretariat?token={site['viewer']}") as ws:
        assert closed_with(ws) == (4401, "invalid_token: token revoked or expired")


@pytest.mark.parametrize("change", ["disabled", "role_changed"])
def test_disabled_or_re_roled_user_socket_is_closed(server: ThreadServer, site: dict, engine: Engine,
                                                    change: str) -> None:
    with server.ws(f"/ws/secretariat?token={site['viewer']}") as ws, \
            server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as shown:
        assert recv(ws)["type"] == recv(shown)["type"] == "snapshot"
        with make_session(engine) as session:
            user = session.get(User, site["viewer_id"])
            if change == "disabled":
                user.active = False
            else:
                user.role = Role.secretariat
            session.add(user)
            session.commit()
        assert closed_with(ws) == REVOKED
        sent = _status(engine, site["room"], 2)
        assert recv(shown) == sent  # someone else's channel is untouched
    with make_session(engine, write=False) as session:
        [revoked] = [p.message for p in events.replay(session, 0) if p.message["type"] == "access.revoked"]
    assert revoked["data"] == {"user_ids": [site["viewer_id"]], "api_token_ids": [], "display_token_ids": []}


def test_rolled_back_user_change_revokes_nothing(engine: Engine, site: dict) -> None:
    from confsvc.live import revocation

    revocation.install()
    with make_session(engine) as session:
        user = session.get(User, site["viewer_id"])
        user.active = False
        session.add(user)
        session.flush()
        session.rollback()
        make_unit(session)
        session.commit()
    with make_session(engine, write=False) as session:
        assert [p.message["type"] for p in events.replay(session, 0)] == []


@pytest.mark.postgresql_only
def test_display_token_revoked_on_process_a_closes_its_socket_on_process_b(db_url: str, site: dict) -> None:
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_REDIS_URL": "", "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32)}
    with process_server(env) as a, process_server(env) as b:
        with connect(f"{b.replace('http://', 'ws://')}/ws/rooms/{site['room']}?token={site['display']}",
                     open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
            r = httpx.delete(f"{a}/api/v1/rooms/{site['room']}/display-tokens/{site['display_id']}",
                             headers=site["secretariat"], timeout=20)
            assert r.status_code == 204
            assert closed_with(ws, timeout=20) == REVOKED
