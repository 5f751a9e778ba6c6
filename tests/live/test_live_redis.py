"""Cross-process fan-out: two uvicorn processes on one PostgreSQL database and the real Redis at
127.0.0.1:6379 (a channel of this run's own); a booking made through A reaches a client on B."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.engine import Engine
from websockets.sync.client import connect

from confsvc import events
from confsvc.db import make_session
from confsvc.live import display
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local
from tests.live_support import process_server, recv

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.postgresql_only  # several processes share one PostgreSQL database (SQLite is the one-process setup)
def test_booking_on_process_a_reaches_a_client_on_process_b(backend: str, db_url: str, engine: Engine) -> None:
    with make_session(engine) as session:
        make_bridge(session)
        unit = make_unit(session)
        room, other = make_room(session, unit), make_room(session, unit)
        make_endpoint(session, room)
        make_endpoint(session, other)
        secretariat = make_user(session, Role.secretariat)
        headers = bearer(session, secretariat)
        _, room_secret = display.create_display_token(session, users.principal_for(session, secretariat), room.id)
        session.commit()
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_REDIS_URL": REDIS_URL,
           "CONFSVC_REDIS_CHANNEL": f"confsvc-test-{secrets.token_hex(6)}:events",
           "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32)}
    with process_server(env) as a, process_server(env) as b:
        ws_b = b.replace("http://", "ws://")
        with connect(f"{ws_b}/ws/rooms/{room.id}?token={room_secret}", open_timeout=10) as ws:
            snapshot = recv(ws, timeout=10)
            assert snapshot["type"] == "snapshot"
            start = next_monday_local()
            r = httpx.post(f"{a}/api/v1/meetings", headers=headers, timeout=20, json={
                "title": "Hội nghị liên thông", "chair_room_id": room.id, "participant_room_ids": [other.id],
                "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
            assert r.status_code == 201, r.text
            got = [recv(ws, timeout=10), recv(ws, timeout=10)]
        with make_session(engine, write=False) as session:
            stored = [p.message for p in events.replay(session, snapshot["id"]) if room.id in p.room_ids]
        assert [m["type"] for m in got] == ["meeting.scheduled", "join.instructions"]
        assert got == stored
        assert got[0]["data"]["meeting_id"] == r.json()["id"] and got[1]["data"]["room_id"] == room.id


def test_redis_recovery_replay_larger_than_the_queue_does_not_drop_a_busy_client(
        backend: str, db_url: str, tmp_path, engine: Engine) -> None:
    """Issue 16 defect 13: after a lost Redis subscription, what other processes published meanwhile
    came back as one burst bigger than ``ws_queue_size`` and the secretariat was closed with 4429."""
    import redis as sync_redis
    import sqlalchemy as sa

    from confsvc.clock import utc_now
    from confsvc.config import Settings
    from confsvc.main import create_app
    from tests.live_support import ThreadServer

    with make_session(engine) as session:
        room = make_room(session, make_unit(session))
        viewer = bearer(session, make_user(session, Role.viewer))["Authorization"].split(" ", 1)[1]
        session.commit()
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32),
                        redis_url=REDIS_URL, redis_channel=f"confsvc-test-{secrets.token_hex(6)}:events",
                        ws_queue_size=4)
    app = create_app(settings, engine=engine)
    admin = sync_redis.Redis.from_url(REDIS_URL)
    with ThreadServer(app) as server, server.ws(f"/ws/secretariat?token={viewer}") as ws:
        assert recv(ws)["type"] == "snapshot"
        fanout = app.state.fanout
        # Twenty events of another process whose publications this one misses (recorded without publishing).
        with make_session(engine) as session:
            for n in range(20):
                session.execute(sa.insert(events.Event).values(type="endpoint.status", data={"n": n},
                                                               room_ids=[room.id], unit_ids=[], at=utc_now()))
            session.commit()
            missed = [p.message for p in events.replay(session, 0)]
        subscribers = [c for c in admin.client_list() if c["name"] == fanout.client_name and int(c["sub"]) > 0]
        assert len(subscribers) == 1
        admin.client_kill_filter(_id=subscribers[0]["id"])  # the subscription is lost, then restored
        got = [recv(ws, timeout=10) for _ in range(20)]
        assert got == missed
        assert app.state.hub.dropped == 0
    admin.close()
