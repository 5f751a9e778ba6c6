"""The connect path without the database (issue 14): display tokens from the process's cache (a revoked
one refused at once, here and in another process through Redis), ``since`` resumes from the hub's
recent events (exactly the missed ones, after a restart too; none that were pruned)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from websockets.sync.client import connect

from confsvc import events
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.events import Published
from confsvc.live import display
from confsvc.live.display import CachedDisplay, DisplayTokenCache
from confsvc.live.hub import NARROW_ROOMS, Connection, Hub
from confsvc.live.snapshot import Scope
from confsvc.main import create_app
from confsvc.tokens import hash_secret
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_endpoint, make_room, make_unit, make_user
from tests.live_support import ThreadServer, closed_with, delivered, process_server, recv

REVOKED = (4401, "access_revoked: token revoked or access changed (quyền truy cập đã bị thu hồi hoặc thay đổi)")
INVALID = (4401, "invalid_token: invalid display token")


@pytest.fixture
def site(engine: Engine) -> dict:
    with make_session(engine) as session:
        unit = make_unit(session)
        room, other = make_room(session, unit), make_room(session, unit)
        make_endpoint(session, room)
        secretariat = make_user(session, Role.secretariat)
        principal = users.principal_for(session, secretariat)
        token, secret = display.create_display_token(session, principal, room.id)
        ids = {"unit": unit.id, "room": room.id, "other": other.id, "display_id": token.id, "display": secret,
               "secretariat": bearer(session, secretariat)}
        session.commit()
    return ids


def _settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))


@pytest.fixture
def app(db_url: str, tmp_path: Path, engine: Engine, site: dict) -> FastAPI:
    return create_app(_settings(db_url, tmp_path), engine=engine)


@pytest.fixture
def server(app: FastAPI) -> Iterator[ThreadServer]:
    with ThreadServer(app) as running:
        yield running


def _status(engine: Engine, room: int, n: int) -> dict:
    """Record and commit an ``endpoint.status`` event routed to ``room``; its client message."""
    with make_session(engine) as session:
        event = events.record(session, "endpoint.status", {"n": n}, room_ids=[room])
        session.commit()
        return events.to_published(event).message



def _client(message: dict) -> dict:
    return {k: message[k] for k in ("id", "type", "data")}


def test_display_tokens_are_cached_at_start_and_a_revoked_one_is_refused(server: ThreadServer, app: FastAPI,
                                                                       site: dict) -> None:
    hub: Hub = app.state.hub
    cached = hub.display_tokens.lookup(site["display"])
    assert cached == CachedDisplay(site["display_id"], site["room"], site["unit"], hash_secret(site["display"]),
                                   cached.loaded_at if cached else 0.0)
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        assert recv(ws)["type"] == "snapshot"
        r = httpx.delete(f"{server.base}/api/v1/rooms/{site['room']}/display-tokens/{site['display_id']}",
                         headers=site["secretariat"])
        assert r.status_code == 204
        # Evicted in the committing thread, before the answer: refused at once, not after the fan-out.
        assert hub.display_tokens.lookup(site["display"]) is None
        assert closed_with(ws) == REVOKED
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as again:
        assert closed_with(again) == INVALID
    assert hub.display_tokens.lookup(site["display"]) is None


def test_display_token_created_after_start_is_cached_on_first_use_and_scoped_to_its_room(
        server: ThreadServer, app: FastAPI, engine: Engine, site: dict) -> None:
    r = httpx.post(f"{server.base}/api/v1/rooms/{site['other']}/display-tokens", headers=site["secretariat"],
                   json={"name": "màn hình mới"})
    assert r.status_code == 201
    secret, token_id = r.json()["token"], r.json()["id"]
    hub: Hub = app.state.hub
    assert hub.display_tokens.lookup(secret) is None
    with server.ws(f"/ws/rooms/{site['other']}?token={secret}") as ws:
        assert recv(ws)["type"] == "snapshot"
    cached = hub.display_tokens.lookup(secret)
    assert cached is not None and (cached.id, cached.room_id, cached.unit_id) == (token_id, site["other"], site["unit"])
    # A cached token still opens its own room only.
    with server.ws(f"/ws/rooms/{site['room']}?token={secret}") as wrong:
        assert closed_with(wrong) == (4403, f"forbidden_scope: display token of room {site['other']} cannot open "
                                            f"room {site['room']}")


def test_display_token_read_before_its_revocation_is_not_cached_after_it() -> None:
    tokens = DisplayTokenCache()
    secret = display.SECRET_PREFIX + "x" * 43
    entry = CachedDisplay(7, 1, 2, hash_secret(secret), 0.0)
    tokens.revoke([7])  # the revocation lands while the connect path was reading the token
    tokens.remember(entry)
    assert tokens.lookup(secret) is None and len(tokens) == 0 and tokens.is_revoked(7)


def test_expired_cache_entry_is_read_again() -> None:
    tokens = DisplayTokenCache(ttl_seconds=0.0)
    secret = display.SECRET_PREFIX + "y" * 43
    tokens.remember(CachedDisplay(8, 1, 2, hash_secret(secret), -1.0))
    assert tokens.lookup(secret) is None


def test_since_resume_from_memory_returns_exactly_the_missed_events(server: ThreadServer, app: FastAPI,
                                                                    engine: Engine, site: dict) -> None:
    room, other = site["room"], site["other"]
    seen = _status(engine, room, 1)
    missed_1 = _status(engine, room, 2)
    elsewhere = _status(engine, other, 3)  # another room's: not this channel's
    missed_2 = _status(engine, room, 4)
    hub: Hub = app.state.hub
    delivered(hub, missed_2["id"])
    window = hub.recent_since(seen["id"])  # answered from memory
    assert [p.message["id"] for p in window or []] == [missed_1["id"], elsewhere["id"], missed_2["id"]]
    with server.ws(f"/ws/rooms/{room}?token={site['display']}&since={seen['id']}") as ws:
        assert [_client(recv(ws)), _client(recv(ws))] == [_client(missed_1), _client(missed_2)]
        live = _status(engine, room, 5)
        assert _client(recv(ws)) == _client(live)
    # Up to date: nothing replayed, the next message is the next event.
    with server.ws(f"/ws/rooms/{room}?token={site['display']}&since={live['id']}") as ws:
        after = _status(engine, room, 6)
        assert _client(recv(ws)) == _client(after)


def test_events_committed_while_down_are_resumed_from_memory_after_a_restart(db_url: str, tmp_path: Path,
                                                                             engine: Engine, site: dict) -> None:
    room = site["room"]
    with ThreadServer(create_app(_settings(db_url, tmp_path), engine=engine)) as first:
        with first.ws(f"/ws/rooms/{room}?token={site['display']}") as ws:
            assert recv(ws)["type"] == "snapshot"
            last_seen = _status(engine, room, -1)["id"]
            assert recv(ws)["id"] == last_seen
    while_down = [_status(engine, room, n) for n in range(3)]
    app = create_app(_settings(db_url, tmp_path), engine=engine)
    with ThreadServer(app) as second:
        assert [p.message["id"] for p in app.state.hub.recent_since(last_seen) or []] == [m["id"] for m in while_down]
        with second.ws(f"/ws/rooms/{room}?token={site['display']}&since={last_seen}") as ws:
            assert [_client(recv(ws)) for _ in while_down] == [_client(m) for m in while_down]


def test_pruned_events_leave_the_memory_window(server: ThreadServer, app: FastAPI, engine: Engine,
                                               site: dict) -> None:
    first = _status(engine, site["room"], 1)
    _status(engine, site["room"], 2)
    hub: Hub = app.state.hub
    newest = _status(engine, site["room"], 3)["id"]
    delivered(hub, newest)
    assert hub.recent_since(first["id"]) is not None
    with make_session(engine) as session:  # every event but the newest is deleted
        assert events.prune(session, utc_now() + timedelta(seconds=1)) >= 2
        session.commit()
    delivered(hub, newest + 1)  # the events.pruned event
    assert [p.message["id"] for p in hub.recent_since(newest - 1) or []] == [newest]
    assert hub.recent_since(first["id"]) is None  # a resume from there gets a snapshot, as from the outbox
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}&since={first['id']}") as ws:
        assert recv(ws)["type"] == "snapshot"


@pytest.mark.postgresql_only
def test_display_token_revoked_on_process_a_is_refused_by_process_b_through_redis(db_url: str, site: dict) -> None:
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_REDIS_URL": "redis://127.0.0.1:6379/0",
           "CONFSVC_REDIS_CHANNEL": f"confsvc-test-{secrets.token_hex(6)}:events",
           "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32)}
    with process_server(env) as a, process_server(env) as b:
        b_ws = b.replace("http://", "ws://")
        # B cached the token at start (and again on use).
        with connect(f"{b_ws}/ws/rooms/{site['room']}?token={site['display']}", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
            r = httpx.delete(f"{a}/api/v1/rooms/{site['room']}/display-tokens/{site['display_id']}",
                             headers=site["secretariat"], timeout=20)
            assert r.status_code == 204
            assert closed_with(ws, timeout=20) == REVOKED  # B received access.revoked
        with connect(f"{b_ws}/ws/rooms/{site['room']}?token={site['display']}", open_timeout=10) as again:
            assert closed_with(again, timeout=20) == INVALID


def _published(event_id: int, rooms: set[int]) -> Published:
    return Published({"id": event_id, "type": "endpoint.status", "at": "x", "data": {}}, frozenset(rooms))


def test_recent_events_by_room_are_exactly_the_rooms_in_id_order_after_trimming() -> None:
    hub = Hub(recent_events=8)
    hub.load_recent([_published(1, {1}), _published(2, {2})], floor=0)
    wide = set(range(1, NARROW_ROOMS + 2))  # routed to more rooms than the per-room index takes
    for event_id, rooms in [(3, {1, 2}), (4, wide), (6, {2}), (5, {1}), (7, {3}), (8, wide)]:  # 6 before 5: late
        hub.deliver([_published(event_id, rooms)])
    assert [p.message["id"] for p in hub.recent_for_room(0, 1) or []] == [1, 3, 4, 5, 8]
    assert [p.message["id"] for p in hub.recent_for_room(3, 2) or []] == [4, 6, 8]
    assert [p.message["id"] for p in hub.recent_for_room(0, 3) or []] == [4, 7, 8]
    assert hub.recent_for_room(9, 1) is None  # ahead of the hub: read the outbox
    for event_id in range(9, 20):  # the window keeps the last 8 (trimmed in steps)
        hub.deliver([_published(event_id, {1})])
    floor = hub.recent_floor or 0
    assert floor >= 8 and hub.recent_for_room(floor - 1, 1) is None
    assert [p.message["id"] for p in hub.recent_for_room(floor, 2) or []] == []
    assert [p.message["id"] for p in hub.recent_for_room(floor, 1) or []] == list(range(floor + 1, 20))


def test_an_event_in_the_window_is_encoded_once_for_every_resume_and_forgotten_with_it() -> None:
    hub = Hub(recent_events=2)
    hub.load_recent([], floor=0)
    first = Published({"id": 1, "type": "meeting.scheduled", "at": "2026-12-07T01:00:00Z",
                       "data": {"meeting_id": 7, "title": "Giao ban Ủy ban"}}, room_ids=frozenset({1}))
    hub.deliver([first])
    text = hub.text_of(first.message)
    assert text == ('{"id":1,"type":"meeting.scheduled","at":"2026-12-07T01:00:00Z",'
                    '"data":{"meeting_id":7,"title":"Giao ban Ủy ban"}}')
    assert hub.text_of(first.message) is text  # the same string, not encoded again
    for event_id in range(2, 6):  # the window moves past event 1
        hub.deliver([_published(event_id, {1})])
    assert (hub.recent_floor or 0) >= 1
    assert hub.text_of(first.message) == text and hub.text_of(first.message) is not hub.text_of(first.message)


def test_hub_delivers_to_room_channels_by_room_and_to_connections_still_opening() -> None:
    async def scenario() -> tuple[Connection, Connection, Connection]:
        hub = Hub()
        five, six = Connection(Scope("room", 5, frozenset({5})), 8), Connection(Scope("room", 6, frozenset({6})), 8)
        opening = Connection(None, 8)
        for connection in (five, six, opening):
            hub.register(connection)
        hub.deliver([_published(1, {5}), _published(2, {6})])
        hub.opened(opening, Scope("room", 5, frozenset({5})))  # what arrived meanwhile and concerns it
        hub.deliver([_published(3, {5, 6})])
        hub.unregister(six)
        hub.deliver([_published(4, {6})])
        return five, six, opening

    five, six, opening = asyncio.run(scenario())
    assert [five.queue.get_nowait()[0] for _ in range(five.queue.qsize())] == [1, 3]
    assert [six.queue.get_nowait()[0] for _ in range(six.queue.qsize())] == [2, 3]
    assert [opening.queue.get_nowait()[0] for _ in range(opening.queue.qsize())] == [1, 3]
