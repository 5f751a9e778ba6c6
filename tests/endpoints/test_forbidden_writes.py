"""Issue 16 defect 2: on SQLite a viewer could freeze the service. The path dependencies loaded the
object on the request's write session, which takes SQLite's write lock (BEGIN IMMEDIATE) in one
thread-pool hop before the role check ran in the next; 45 concurrent forbidden PATCHes starved the
pool (34 × 403, 11 × 500, /healthz after 28.5 s). Objects now load on a read session and the role
is checked before any write transaction; against a real server every forbidden write is a 403."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Room
from confsvc.main import create_app
from confsvc.scheduling.models import Occurrence
from confsvc.users.models import Role
from tests.factories import (
    bearer,
    make_bridge,
    make_endpoint,
    make_meeting,
    make_room,
    make_unit,
    make_user,
    next_monday_local,
)
from tests.live_support import ThreadServer

RACERS = 45


def _race(base: str, headers: dict[str, str], requests: list[tuple[str, str, dict | None]]) -> tuple[
        list[httpx.Response], httpx.Response]:
    """Send ``requests`` all at once (plus one GET /healthz among them); the answers and the health answer."""
    barrier = threading.Barrier(len(requests) + 1)
    with httpx.Client(base_url=base, timeout=120, limits=httpx.Limits(max_connections=len(requests) + 1)) as client:
        def send(item: tuple[str, str, dict | None]) -> httpx.Response:
            method, path, body = item
            barrier.wait()
            return client.request(method, path, json=body, headers=headers)

        def health() -> httpx.Response:
            barrier.wait()
            return client.get("/healthz")

        with ThreadPoolExecutor(len(requests) + 1) as pool:
            health_future = pool.submit(health)
            responses = list(pool.map(send, requests))
            return responses, health_future.result()


def test_concurrent_forbidden_room_patches_are_all_403_and_healthz_answers(settings: Settings, engine: Engine):
    with make_session(engine) as session:
        room = make_room(session, seats=20)
        viewer = bearer(session, make_user(session, Role.viewer))
        room_id = room.id
        session.commit()
    with ThreadServer(create_app(settings, engine=engine)) as server:
        responses, health = _race(server.base, viewer,
                                  [("PATCH", f"/api/v1/rooms/{room_id}", {"seats": 41})] * RACERS)
    assert Counter(r.status_code for r in responses) == {403: RACERS}
    assert {r.json()["code"] for r in responses} == {"forbidden_role"}
    assert health.status_code == 200 and health.json()["status"] == "ok"
    with make_session(engine, write=False) as session:
        assert session.get(Room, room_id).seats == 20


def _forbidden_writes(engine: Engine) -> tuple[dict[str, str], list[tuple[str, str, dict | None]]]:
    """A viewer's bearer header and one forbidden write per write route with a path object."""
    with make_session(engine) as session:
        unit = make_unit(session)
        room = make_room(session, unit)
        ep = make_endpoint(session, room)
        bridge = make_bridge(session)
        t = next_monday_local()
        meeting = make_meeting(session, chair_room=room, start=t, end=t + timedelta(hours=1), endpoints=[ep]).meeting
        occ_id = session.exec(select(Occurrence.id).where(Occurrence.meeting_id == meeting.id)).one()
        viewer = bearer(session, make_user(session, Role.viewer))
        ids = {"unit": unit.id, "room": room.id, "ep": ep.id, "bridge": bridge.id, "meeting": meeting.id}
        session.commit()
    writes: list[tuple[str, str, dict | None]] = [
        ("PATCH", f"/api/v1/units/{ids['unit']}", {"name": "Xã Mới"}),
        ("PATCH", f"/api/v1/rooms/{ids['room']}", {"seats": 41}),
        ("DELETE", f"/api/v1/rooms/{ids['room']}", None),
        ("PATCH", f"/api/v1/endpoints/{ids['ep']}", {"vendor": "Poly"}),
        ("DELETE", f"/api/v1/endpoints/{ids['ep']}", None),
        ("PATCH", f"/api/v1/bridges/{ids['bridge']}", {"port_capacity": 1}),
        ("PATCH", f"/api/v1/meetings/{ids['meeting']}", {"title": "Đổi tên"}),
        ("POST", f"/api/v1/meetings/{ids['meeting']}/cancel", None),
        ("POST", f"/api/v1/endpoints/{ids['ep']}/maintenance",
         {"start": (t + timedelta(days=1)).isoformat(), "end": (t + timedelta(days=1, hours=1)).isoformat()}),
        ("POST", f"/api/v1/rooms/{ids['room']}/display-tokens", {"name": "Màn hình"}),
        ("POST", f"/api/v1/rooms/{ids['room']}/blocks", {"first_day": (t + timedelta(days=3)).date().isoformat(),
                                                         "last_day": (t + timedelta(days=3)).date().isoformat()}),
        ("POST", f"/api/v1/endpoints/{ids['ep']}/blocks", {"first_day": (t + timedelta(days=3)).date().isoformat(),
                                                           "last_day": (t + timedelta(days=3)).date().isoformat()}),
        ("POST", "/api/v1/meetings", {"title": "Họp", "chair_room_id": ids["room"],
                                      "start": (t + timedelta(days=4)).isoformat(),
                                      "end": (t + timedelta(days=4, hours=1)).isoformat()}),
        ("POST", f"/api/v1/meetings/{ids['meeting']}/occurrences/{occ_id}/cancel", None),
        ("PATCH", f"/api/v1/meetings/{ids['meeting']}/occurrences/{occ_id}", {"start": (t + timedelta(hours=2)).isoformat()}),
    ]
    return viewer, writes


def test_concurrent_forbidden_writes_on_every_router_are_all_403(settings: Settings, engine: Engine):
    viewer, writes = _forbidden_writes(engine)
    batch = (writes * (RACERS // len(writes) + 1))[:RACERS]
    with ThreadServer(create_app(settings, engine=engine)) as server:
        responses, health = _race(server.base, viewer, batch)
    assert [(m, p, r.status_code) for (m, p, _), r in zip(batch, responses, strict=True) if r.status_code != 403] == []
    assert health.status_code == 200


def test_forbidden_write_does_not_wait_for_the_sqlite_write_lock(settings: Settings, engine: Engine):
    """While another connection holds SQLite's write lock, a viewer's write is refused at once (403):
    before, the path dependency queued for the lock (BEGIN IMMEDIATE) before the role check."""
    if engine.dialect.name != "sqlite":
        return
    viewer, writes = _forbidden_writes(engine)
    with ThreadServer(create_app(settings, engine=engine)) as server, \
            httpx.Client(base_url=server.base, timeout=15, headers=viewer) as client:
        holder = engine.raw_connection()
        try:
            holder.execute("BEGIN IMMEDIATE")
            answers = [(m, p, client.request(m, p, json=b).status_code) for m, p, b in writes]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert [a for a in answers if a[2] != 403] == []
