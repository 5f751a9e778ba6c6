"""What a booking and a refusal read and write, by statement (issue 16, "Throughput under
contention": a booking made ~30 statements, a refusal 11): the bridge is chosen before anything is
written, so every row goes in one savepoint and the meeting is inserted with its bridge; the meeting's
bridge tree and its rooms' units are not read back; a refusal finds its resources' provinces in one
statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_):
        seen.append(" ".join(statement.split()).lower())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _setup(engine: Engine):
    with make_session(engine) as session:
        province = make_unit(session, level=UnitLevel.province, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh")
        commune = make_unit(session, parent_id=province.id)
        rooms = [make_room(session, commune) for _ in range(3)]
        endpoints = [make_endpoint(session, room) for room in rooms]
        bridge = make_bridge(session, unit_id=province.id)
        headers = bearer(session, make_user(session, Role.secretariat))
        ids = {"province": province.id, "rooms": [r.id for r in rooms], "endpoints": [e.id for e in endpoints],
               "bridge": bridge.id}
        session.commit()
    return ids, headers


def _body(ids, chair: int, others: list[int], start):
    return {"title": "Giao ban", "chair_room_id": chair, "participant_room_ids": others, "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat()}


def test_a_booking_writes_in_one_savepoint_and_reads_back_neither_its_tree_nor_its_rooms_units(
        client: TestClient, engine: Engine) -> None:
    ids, headers = _setup(engine)
    with _statements(engine) as seen:
        booked = client.post("/api/v1/meetings", headers=headers,
                             json=_body(ids, ids["rooms"][0], ids["rooms"][1:], next_monday_local()))
    assert booked.status_code == 201, booked.text
    assert (booked.json()["bridge_id"], booked.json()["conference_number"]) == (ids["bridge"], 1000)
    assert sum(s.startswith("savepoint") for s in seen) == 1
    assert sum(s.startswith("insert into bookings") for s in seen) == 1  # the rooms', endpoints' and bridge's
    assert not [s for s in seen if s.startswith("update meetings")]
    assert not [s for s in seen if "from meeting_bridges" in s]
    # The units of the rooms, once: for the meeting.scheduled event and its join.instructions.
    assert len([s for s in seen if s.startswith("with recursive up(room_id")]) == 1


def test_a_refusal_finds_the_provinces_of_its_conflicts_in_one_statement(client: TestClient, engine: Engine) -> None:
    ids, headers = _setup(engine)
    start = next_monday_local()
    assert client.post("/api/v1/meetings", headers=headers,
                       json=_body(ids, ids["rooms"][0], [ids["rooms"][1]], start)).status_code == 201
    with _statements(engine) as seen:
        refused = client.post("/api/v1/meetings", headers=headers,
                              json=_body(ids, ids["rooms"][2], [ids["rooms"][1]], start + timedelta(minutes=30)))
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert {(c["resource_kind"], c["resource_id"]) for c in body["conflicts"]} == {
        ("room", ids["rooms"][1]), ("endpoint", ids["endpoints"][1])}
    assert [(p["province_id"], p["province_code"], p["province_name"], p["count"]) for p in body["by_province"]] == [
        (ids["province"], "25", "Tỉnh Phú Thọ", 2)]
    named = [s for s in seen if "units.code" in s or "named.code" in s]
    assert len(named) == 1 and all(table in named[0] for table in ("rooms", "endpoints", "bridges"))
