"""Several workers without Redis (issue 12 defect 7): on PostgreSQL they share the live stream through
LISTEN/NOTIFY and the events table; on SQLite ``confsvc serve --workers 2`` refuses to start."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner
from websockets.sync.client import connect

from confsvc import cli, events
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.live import display
from confsvc.live.fanout import PostgresFanout
from confsvc.main import create_app
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local
from tests.live_support import ThreadServer, free_port, process_server, recv


def _rooms_with_displays(engine: Engine, count: int) -> tuple[list[int], list[str], dict[str, str]]:
    with make_session(engine) as session:
        make_bridge(session)
        unit = make_unit(session)
        rooms = [make_room(session, unit) for _ in range(count)]
        for room in rooms:
            make_endpoint(session, room)
        secretariat = make_user(session, Role.secretariat)
        principal = users.principal_for(session, secretariat)
        secrets_ = [display.create_display_token(session, principal, room.id)[1] for room in rooms]
        headers = bearer(session, secretariat)
        session.commit()
        return [r.id for r in rooms], secrets_, headers


def _book(base: str, headers: dict[str, str], room_ids: list[int]) -> dict:
    start = next_monday_local()
    r = httpx.post(f"{base}/api/v1/meetings", headers=headers, timeout=30, json={
        "title": "Giao ban không Redis", "chair_room_id": room_ids[0], "participant_room_ids": room_ids[1:],
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    assert r.status_code == 201, r.text
    return r.json()


def _env(db_url: str) -> dict[str, str]:
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32)}
    return {k: v for k, v in {**os.environ, **env}.items() if k != "CONFSVC_REDIS_URL"}


@pytest.mark.postgresql_only
def test_booking_on_process_a_reaches_a_client_on_process_b_without_redis(db_url: str, engine: Engine) -> None:
    [room, other], [room_secret, _], headers = _rooms_with_displays(engine, 2)
    env = {"CONFSVC_DATABASE_URL": db_url, "CONFSVC_REDIS_URL": "", "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32)}
    with process_server(env) as a, process_server(env) as b:
        with connect(f"{b.replace('http://', 'ws://')}/ws/rooms/{room}?token={room_secret}", open_timeout=10) as ws:
            snapshot = recv(ws, timeout=10)
            assert snapshot["type"] == "snapshot"
            booked = _book(a, headers, [room, other])
            got = [recv(ws, timeout=10), recv(ws, timeout=10)]
    with make_session(engine, write=False) as session:
        stored = [p.message for p in events.replay(session, snapshot["id"]) if room in p.room_ids]
    assert [m["type"] for m in got] == ["meeting.scheduled", "join.instructions"]
    assert got == stored
    assert got[0]["data"]["meeting_id"] == booked["id"] and got[1]["data"]["room_id"] == room


@pytest.mark.postgresql_only
def test_two_workers_without_redis_lose_no_live_message_on_postgresql(db_url: str, engine: Engine) -> None:
    """The outside run: ``confsvc serve --workers 2``, 8 room displays, one booking: each display gets it."""
    room_ids, display_secrets, headers = _rooms_with_displays(engine, 8)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "confsvc.cli", "serve", "--port", str(port), "--workers", "2"],
                               env=_env(db_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    sockets = []
    stack = contextlib.ExitStack()
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stderr.read().decode(errors="replace")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not answer /healthz"
            time.sleep(0.2)
        for room, secret in zip(room_ids, display_secrets, strict=True):
            ws = stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws/rooms/{room}?token={secret}",
                                             open_timeout=10))
            sockets.append(ws)
            assert recv(ws, timeout=10)["type"] == "snapshot"
        booked = _book(base, headers, room_ids)
        got = [recv(ws, timeout=15) for ws in sockets]
    finally:
        stack.close()
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
    assert [(m["type"], m["data"]["meeting_id"]) for m in got] == [("meeting.scheduled", booked["id"])] * 8


def test_serve_two_workers_on_sqlite_without_redis_refuses_to_start(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    result = CliRunner().invoke(cli.app, ["serve", "--workers", "2"])
    assert result.exit_code == 1
    assert result.output.replace("\n", " ").startswith(
        "--workers 2 needs a shared event stream for the live channel: set CONFSVC_REDIS_URL, or use PostgreSQL")


@pytest.mark.postgresql_only
def test_postgresql_listener_replays_what_it_missed_after_losing_its_connection(
        db_url: str, tmp_path: Path, engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    [room], [room_secret], _ = _rooms_with_displays(engine, 1)
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    caplog.set_level(logging.WARNING, "confsvc.live.fanout")
    with ThreadServer(create_app(settings, engine=engine)) as server, \
            server.ws(f"/ws/rooms/{room}?token={room_secret}") as ws:
        assert recv(ws)["type"] == "snapshot"
        fanout = server.config.app.state.fanout
        assert isinstance(fanout, PostgresFanout) and fanout.listening
        # Another process's commit whose notification this process never gets (its listener is
        # about to lose its connection): only the read-back after reconnecting can bring it.
        with make_session(engine) as session:
            session.execute(sa.insert(events.Event).values(type="endpoint.status", data={"n": 1}, room_ids=[room],
                                                           unit_ids=[], at=utc_now()))
            session.commit()
            missed = events.replay(session, 0)[-1].message
            session.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                            {"pid": fanout.connection.info.backend_pid})
            session.commit()
        assert json.loads(json.dumps(recv(ws, timeout=10))) == missed
    assert any("postgresql listener lost" in r.getMessage() for r in caplog.records)
    assert any("postgresql listener restored; replaying events after id" in r.getMessage() for r in caplog.records)
