"""SPEC rule 7 against a real server: 50 concurrent bookings of one endpoint → one 201, 49 × 409."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.main import create_app
from confsvc.scheduling.models import Booking, Meeting, MeetingParticipant, Occurrence
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_user, next_monday_local

RACERS = 50


def _serve(settings: Settings, engine: Engine) -> tuple[uvicorn.Server, threading.Thread, str, socket.socket]:
    """A real uvicorn server on a free port in a thread, sharing the test engine."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings, engine=engine), log_level="warning", ws="none",
                            lifespan="on", limit_concurrency=200)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}", sock


def test_fifty_racing_bookings_one_wins(settings: Settings, engine: Engine):
    with make_session(engine) as session:
        make_bridge(session)
        endpoint = make_endpoint(session, make_room(session))
        rooms = [make_room(session) for _ in range(RACERS)]
        headers = bearer(session, make_user(session))
        endpoint_id, room_ids = endpoint.id, [r.id for r in rooms]
        session.commit()
    t = next_monday_local()
    bodies = [{"title": f"Họp {i}", "chair_room_id": room_ids[i], "participant_endpoint_ids": [endpoint_id],
               "start": (t + timedelta(minutes=i)).isoformat(), "end": (t + timedelta(minutes=60 + i)).isoformat()}
              for i in range(RACERS)]
    server, thread, base, sock = _serve(settings, engine)
    try:
        barrier = threading.Barrier(RACERS)
        with httpx.Client(base_url=base, headers=headers, timeout=120,
                          limits=httpx.Limits(max_connections=RACERS)) as client:
            def post(body: dict) -> httpx.Response:
                barrier.wait()
                return client.post("/api/v1/meetings", json=body)

            with ThreadPoolExecutor(RACERS) as pool:
                responses = list(pool.map(post, bodies))
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert Counter(r.status_code for r in responses) == {201: 1, 409: RACERS - 1}, [
        r.text for r in responses if r.status_code not in (201, 409)][:3]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"booking_conflict"}
    winner = next(r.json() for r in responses if r.status_code == 201)
    with make_session(engine, write=False) as session:
        assert session.exec(select(Meeting.id)).all() == [winner["id"]]
        assert session.exec(select(func.count()).select_from(Occurrence)).one() == 1
        assert session.exec(select(func.count()).select_from(MeetingParticipant)).one() == 1
        # one endpoint, its room, the chair room, the bridge
        assert session.exec(select(func.count()).select_from(Booking)).one() == 4
        assert session.exec(select(func.count()).select_from(Booking).where(
            Booking.meeting_id != winner["id"])).one() == 0
