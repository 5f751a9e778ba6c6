"""The WebSocket live channel against a real uvicorn server (in a thread) and the ``websockets`` client:
snapshot, live messages, resume with ``since``, scoping, keep-alive, slow clients, Redis down."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.events import Published
from confsvc.main import create_app
from confsvc.live import display
from confsvc.live.hub import CLOSE_SLOW, Connection, Hub
from confsvc.live.snapshot import Scope
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import (bearer, make_bridge, make_endpoint, make_room, make_unit, make_user,
                             next_monday_local)
from tests.live_support import RawClient, ThreadServer, closed_with, free_port, recv


def _secret(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


@pytest.fixture
def site(engine: Engine) -> dict:
    with make_session(engine) as session:
        make_bridge(session, sip_domain="mcu.phutho.gov.vn", h323_prefix="0210")
        province = make_unit(session, name="Tỉnh Thử", level="province")
        commune, other_commune = make_unit(session, parent_id=province.id), make_unit(session, parent_id=province.id)
        room, other = make_room(session, commune, name="Phòng họp xã"), make_room(session, other_commune)
        ep = make_endpoint(session, room, name="Codec xã")
        make_endpoint(session, other)
        secretariat = make_user(session, Role.secretariat)
        token, display_secret = display.create_display_token(
            session, users.principal_for(session, secretariat), room.id)
        ids = {"province": province.id, "commune": commune.id, "other_commune": other_commune.id, "room": room.id,
               "other": other.id, "ep": ep.id, "display": display_secret,
               "secretariat": bearer(session, secretariat),
               "viewer": _secret(bearer(session, make_user(session, Role.viewer))),
               "operator": _secret(bearer(session, make_user(session, Role.operator, units=[commune])))}
        session.commit()
    return ids


def _settings(db_url: str, tmp_path: Path, **overrides) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32), **overrides)


@pytest.fixture
def server(db_url: str, tmp_path: Path, engine: Engine) -> Iterator[ThreadServer]:
    with ThreadServer(create_app(_settings(db_url, tmp_path), engine=engine)) as running:
        yield running


def _book(server: ThreadServer, site: dict, start, **extra) -> dict:
    import httpx

    body = {"title": "Giao ban trực tuyến", "chair_room_id": site["room"], "participant_room_ids": [site["other"]],
            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), **extra}
    r = httpx.post(f"{server.base}/api/v1/meetings", json=body, headers=site["secretariat"], timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def _stored(engine: Engine, after: int = 0) -> list[dict]:
    with make_session(engine, write=False) as session:
        return [p.message for p in events.replay(session, after)]


def test_snapshot_then_live_booking_exactly(server: ThreadServer, site: dict, engine: Engine) -> None:
    start = next_monday_local()
    first = _book(server, site, start)
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        snap = recv(ws)
        stored = _stored(engine)
        assert (snap["type"], snap["id"]) == ("snapshot", stored[-1]["id"])
        data = snap["data"]
        assert (data["scope"], data["current"]) == ({"kind": "room", "id": site["room"]}, [])
        [upcoming] = data["next"]
        room_join = next(m["data"] for m in stored if m["type"] == "join.instructions"
                         and m["data"]["room_id"] == site["room"])
        assert upcoming["meeting_id"] == first["id"] and upcoming["join_instructions"] == [room_join]
        assert upcoming["readiness"] == [{"room_id": site["room"], "state": "not_checked", "note": ""}]
        assert data["endpoints"] == [{"endpoint_id": site["ep"], "name": "Codec xã", "room_id": site["room"],
                                      "protocol": "sip", "status": "unknown", "last_seen_at": None}]
        second = _book(server, site, start + timedelta(days=1))
        new = [m for m in _stored(engine, snap["id"]) if m["type"] != "join.instructions"
               or m["data"]["room_id"] == site["room"]]
        assert [m["type"] for m in new] == ["meeting.scheduled", "join.instructions"]
        assert new[0]["data"]["meeting_id"] == second["id"]
        assert [recv(ws), recv(ws)] == new


def test_resume_with_since_gets_exactly_the_missed_messages(server: ThreadServer, site: dict, engine: Engine) -> None:
    start = next_monday_local()
    path = f"/ws/units/{site['province']}?token={site['viewer']}"
    with server.ws(path) as ws:
        snap = recv(ws)
        _book(server, site, start)
        seen = [recv(ws) for _ in range(3)]  # scheduled + join for each of the two rooms
        assert seen == _stored(engine, snap["id"])
    last = seen[-1]["id"]
    _book(server, site, start + timedelta(days=1))
    missed = _stored(engine, last)
    assert len(missed) == 3
    with server.ws(f"{path}&since={last}") as ws:
        assert [recv(ws) for _ in range(3)] == missed
        third = _book(server, site, start + timedelta(days=2))
        live = recv(ws)
        assert (live["type"], live["data"]["meeting_id"]) == ("meeting.scheduled", third["id"])
        assert live == _stored(engine, missed[-1]["id"])[0]


def test_events_carry_the_request_id_the_booking_client_sent_and_received(server: ThreadServer, site: dict,
                                                                          engine: Engine) -> None:
    """Issue 16 "Operations": request ids were on log and audit lines but not in the events the live
    clients receive, so a display's message could not be traced to the request that caused it."""
    import httpx

    start = next_monday_local()
    body = {"title": "Giao ban trực tuyến", "chair_room_id": site["room"], "participant_room_ids": [site["other"]],
            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as shown, \
            server.ws(f"/ws/secretariat?token={_secret(site['secretariat'])}") as board:
        snap = recv(shown)
        assert recv(board)["type"] == "snapshot"
        sent = httpx.post(f"{server.base}/api/v1/meetings", json=body, timeout=10,
                          headers={**site["secretariat"], "X-Request-ID": "req-dat-lich-42"})
        assert (sent.status_code, sent.headers["x-request-id"]) == (201, "req-dat-lich-42")
        room_messages = [recv(shown), recv(shown)]
        assert [(m["type"], m["request_id"]) for m in room_messages] == [
            ("meeting.scheduled", "req-dat-lich-42"), ("join.instructions", "req-dat-lich-42")]
        # Without X-Request-ID the server makes one, answers it, and the events carry that one.
        made = httpx.post(f"{server.base}/api/v1/meetings", timeout=10, headers=site["secretariat"],
                          json={**body, "start": (start + timedelta(days=1)).isoformat(),
                                "end": (start + timedelta(days=1, hours=1)).isoformat()})
        assert made.status_code == 201 and len(made.headers["x-request-id"]) == 32
        board_messages = [recv(board) for _ in range(6)]  # two bookings: scheduled + a join per room
        assert [m["request_id"] for m in board_messages] == ["req-dat-lich-42"] * 3 + [made.headers["x-request-id"]] * 3
    # Stored with the event: a client resuming with since gets the same field.
    assert [m["request_id"] for m in _stored(engine, snap["id"])] == [m["request_id"] for m in board_messages]
    # Events recorded outside a request (scheduler, CLI) carry null.
    with make_session(engine) as session:
        event = events.record(session, "endpoint.status", {"n": 1}, room_ids=[site["room"]])
        session.commit()
    assert events.to_published(event).message["request_id"] is None


def test_gap_older_than_retention_gets_a_fresh_snapshot(server: ThreadServer, site: dict, engine: Engine) -> None:
    _book(server, site, next_monday_local())
    with make_session(engine) as session:
        ids = [e.id for e in session.exec(select(events.Event).order_by(events.Event.id)).all()]
        events.prune(session, utc_now() + timedelta(seconds=1))
        session.commit()
    _book(server, site, next_monday_local() + timedelta(days=1))
    with server.ws(f"/ws/secretariat?token={site['viewer']}&since={ids[0]}") as ws:
        first = recv(ws)
    # pruned ids before the oldest kept one: the client cannot be brought up to date message by message
    assert first["type"] == "snapshot"
    assert [m["title"] for m in first["data"]["next"]] == ["Giao ban trực tuyến"] * 2


@pytest.mark.parametrize(("path", "who", "code", "reason"), [
    ("/ws/rooms/{other}", "display", 4403, "forbidden_scope: display token of room {room} cannot open room {other}"),
    ("/ws/units/{commune}", "display", 4403, "forbidden_scope: display token of room {room} opens only "
                                             "/ws/rooms/{room}"),
    ("/ws/secretariat", "display", 4403, "forbidden_scope: display token of room {room} opens only /ws/rooms/{room}"),
    ("/ws/rooms/{other}", "operator", 4403, "forbidden_scope: outside your units"),
    ("/ws/units/{province}", "operator", 4403, "forbidden_scope: outside your units"),
    ("/ws/secretariat", "operator", 4403, "forbidden_role: role 'operator' may not do this (needs admin, "
                                          "secretariat, viewer)"),
    ("/ws/rooms/{room}", "bad", 4401, "invalid_token: invalid token"),
    ("/ws/rooms/999999", "viewer", 4404, "room_not_found: room 999999 not found"),
])
def test_scoping_rejections(server: ThreadServer, site: dict, path: str, who: str, code: int, reason: str) -> None:
    secret = {"bad": "cfs_nope"}.get(who) or site[who]
    with server.ws(path.format(**site) + f"?token={secret}") as ws:
        assert closed_with(ws) == (code, reason.format(**site))


@pytest.mark.parametrize(("path", "code", "reason"), [
    ("/ws/rooms/abc", 4404, "room_not_found: room abc not found"),
    ("/ws/rooms/-1", 4404, "room_not_found: room -1 not found"),
    ("/ws/rooms/0", 4404, "room_not_found: room 0 not found"),
    ("/ws/rooms/99999999999999999999", 4404, "room_not_found: room 99999999999999999999 not found"),
    ("/ws/rooms/%C2%B2", 4404, "room_not_found: room ² not found"),
    ("/ws/units/%C2%B2", 4404, "unit_not_found: unit ² not found"),
    ("/ws/rooms/{room}?since=%C2%B2", 4400, "invalid_since: since must be a non-negative event id"),
    ("/ws/rooms/{room}?since=" + "9" * 5000, 4400, "invalid_since: since must be a non-negative event id"),
])
def test_bad_channel_id_or_since_closes_with_its_reason_not_a_server_error(server: ThreadServer, site: dict, path: str,
                                                                           code: int, reason: str) -> None:
    """Regression: ``?since=²`` (a digit to ``str.isdigit``, not to ``int``) and 5,000-digit numbers
    raised ValueError inside the channel (a 1011 close and a traceback) instead of a 4400."""
    with server.ws(path.format(**site) + ("&" if "?" in path else "?") + f"token={site['viewer']}") as ws:
        assert closed_with(ws) == (code, reason)


def test_allowed_scopes_and_token_in_first_message(server: ThreadServer, site: dict) -> None:
    for path, who in [("/ws/units/{commune}", "operator"), ("/ws/rooms/{room}", "operator"),
                      ("/ws/secretariat", "viewer"), ("/ws/units/{province}", "viewer")]:
        with server.ws(path.format(**site)) as ws:
            ws.send(json.dumps({"type": "auth", "token": site[who]}))
            assert recv(ws)["type"] == "snapshot"
    with make_session(server.config.app.state.engine) as session:
        token = session.exec(select(display.DisplayToken)).first()
        token.revoked_at = token.created_at
        session.add(token)
        session.commit()
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        assert closed_with(ws) == (4401, "invalid_token: invalid display token")


def test_keepalive_ping_pong_and_silent_client_closed(db_url: str, tmp_path: Path, engine: Engine,
                                                      site: dict) -> None:
    app = create_app(_settings(db_url, tmp_path, ws_ping_seconds=0.2), engine=engine)
    with ThreadServer(app) as server, server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
        ws.send(json.dumps({"type": "ping"}))
        kinds = set()
        while "pong" not in kinds or "ping" not in kinds:
            kinds.add(json.loads(ws.recv(timeout=5))["type"])
        assert closed_with(ws) == (4408, "ping timeout: im lặng hơn 0.6 giây")


def _is_utc_iso(value: str) -> bool:
    from datetime import datetime

    return value.endswith("Z") and datetime.fromisoformat(value).utcoffset() == timedelta(0)


def test_keepalive_ping_and_pong_break_no_message_envelope(db_url: str, tmp_path: Path, engine: Engine,
                                                           site: dict) -> None:
    """Issue 12 defect 9: ``{"type": "ping", "at"}`` had no ``id`` nor ``data``."""
    app = create_app(_settings(db_url, tmp_path, ws_ping_seconds=0.3), engine=engine)
    with ThreadServer(app) as server, server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        snap = json.loads(ws.recv(timeout=5))
        assert snap["type"] == "snapshot"
        ws.send(json.dumps({"type": "ping"}))
        got = {}
        while len(got) < 2:
            message = json.loads(ws.recv(timeout=5))
            got[message["type"]] = message
        for kind in ("ping", "pong"):
            assert sorted(got[kind]) == ["at", "data", "id", "type"] and _is_utc_iso(got[kind]["at"])
            assert (got[kind]["id"], got[kind]["type"], got[kind]["data"]) == (snap["id"], kind, {})
        with make_session(engine) as session:
            event = events.record(session, "endpoint.status", {"n": 1}, room_ids=[site["room"]])
            session.commit()
            event_id = event.id
        while (message := json.loads(ws.recv(timeout=5)))["type"] != "endpoint.status":
            ws.send(json.dumps({"type": "pong"}))
        assert message["id"] == event_id
        while (message := json.loads(ws.recv(timeout=5)))["type"] != "ping":
            pass
        # a keep-alive after an event carries that event's id: the client is current to it
        assert (message["id"], message["data"]) == (event_id, {})


def test_hub_drops_a_stalled_connection_without_stalling_others() -> None:
    async def scenario() -> tuple[Connection, Connection, Hub]:
        hub = Hub()
        slow, fast = Connection(Scope("secretariat", None, None), 2), Connection(Scope("room", 5, frozenset({5})), 2)
        hub.register(slow)
        hub.register(fast)
        for n in range(1, 4):
            hub.deliver([Published({"id": n, "type": "endpoint.status", "at": "x", "data": {}}, frozenset({5}))])
            await fast.queue.get()  # a reader that keeps up
        hub.deliver([Published({"id": 3, "type": "endpoint.status", "at": "x", "data": {}}, frozenset({5}))])
        return slow, fast, hub

    slow, fast, hub = asyncio.run(scenario())
    assert (slow.close_code, slow.close_reason) == (CLOSE_SLOW, "quá chậm: hơn 2 tin chưa nhận (client too slow)")
    assert slow.dropped.is_set() and not fast.dropped.is_set()
    assert (hub.dropped, hub.max_id, fast.queue.qsize()) == (1, 3, 0)  # id 3 twice: delivered once


def test_slow_client_is_dropped_with_reason_and_others_get_everything(
        db_url: str, tmp_path: Path, engine: Engine, site: dict) -> None:
    app = create_app(_settings(db_url, tmp_path, ws_queue_size=4), engine=engine)
    payload = "x" * 500_000
    with ThreadServer(app) as server, server.ws(f"/ws/secretariat?token={site['viewer']}", max_size=None) as fast:
        slow = RawClient(server.port, f"/ws/rooms/{site['room']}?token={site['display']}")
        try:
            recv(fast)
            received: list[int] = []
            for n in range(60):
                with make_session(engine) as session:
                    events.record(session, "endpoint.status", {"n": n, "pad": payload}, room_ids=[site["room"]])
                    session.commit()
                received.append(recv(fast)["data"]["n"])  # the fast client reads as it goes; the slow one never
            assert received == list(range(60))
            assert app.state.hub.dropped == 1
            assert slow.close_frame() == (CLOSE_SLOW, "quá chậm: hơn 4 tin chưa nhận (client too slow)")
        finally:
            slow.close()


def test_redis_down_degrades_to_local_delivery(db_url: str, tmp_path: Path, engine: Engine, site: dict,
                                               caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(db_url, tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                         redis_channel=f"confsvc-test-{secrets.token_hex(4)}")
    with ThreadServer(create_app(settings, engine=engine)) as server, \
            server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        assert recv(ws)["type"] == "snapshot"
        booked = _book(server, site, next_monday_local())
        message = recv(ws)
        assert (message["type"], message["data"]["meeting_id"]) == ("meeting.scheduled", booked["id"])
        assert recv(ws)["type"] == "join.instructions"
    assert any("redis" in r.getMessage() and "local" in r.getMessage() for r in caplog.records)


def test_hub_replay_overflow_leaves_the_connection_behind_instead_of_dropping_it() -> None:
    async def scenario() -> Connection:
        hub = Hub()
        busy = Connection(Scope("secretariat", None, None), 2)
        hub.register(busy)
        hub.deliver([Published({"id": n, "type": "endpoint.status", "at": "x", "data": {}}) for n in range(1, 6)],
                    replay=True)
        hub.deliver([Published({"id": 6, "type": "endpoint.status", "at": "x", "data": {}})])  # live, while behind
        busy.offer(None, "ping")  # a keep-alive that does not fit is skipped, not a reason to drop
        return busy

    busy = asyncio.run(scenario())
    assert (busy.dropped.is_set(), busy.behind, busy.close_code) == (False, True, None)
    assert [busy.queue.get_nowait()[0] for _ in range(busy.queue.qsize())] == [1, 2]
