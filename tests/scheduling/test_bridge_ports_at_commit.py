"""A bridge's ports are counted at COMMIT on PostgreSQL, not under a lock held from the count to the
commit (issue 16 "Throughput under contention"; migration 20261209_bridge_port_guard,
``scheduling/port_guard.py``); conference numbers are claimed without waiting
(``repository.claim_number``). Two real transactions on the real server: nothing mocked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Room
from confsvc.main import create_app, install_hooks
from confsvc.scheduling import creation, port_guard
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import service as users
from confsvc.users.models import Role, User
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_user, next_monday_local

H = timedelta(hours=1)
pytestmark = pytest.mark.postgresql_only


def _inventory(engine: Engine, *, rooms: int, capacity: int) -> tuple[int, list[int], int]:
    """A bridge of ``capacity`` ports, ``rooms`` rooms with one endpoint each, a secretariat user."""
    with make_session(engine) as session:
        bridge = make_bridge(session, port_capacity=capacity)
        room_ids = []
        for _ in range(rooms):
            room = make_room(session)
            make_endpoint(session, room)
            room_ids.append(room.id)
        user = make_user(session, Role.secretariat)
        ids = bridge.id, room_ids, user.id
        session.commit()
    return ids


def _book(session: Session, settings: Settings, user_id: int, title: str, chair: int, start, end):
    principal = users.principal_for(session, session.get(User, user_id))
    return creation.book_meeting(session, settings, principal, MeetingCreate(
        title=title, chair_room_id=chair, start=start, end=end))


def test_the_database_refuses_a_bridge_over_capacity_at_commit(engine: Engine, settings: Settings):
    """Bridge bookings written by plain SQL, past every check of the application: the second
    transaction's COMMIT is refused with the interval and the peak (SPEC rule 2 kept by PostgreSQL)."""
    install_hooks()
    bridge_id, rooms, user = _inventory(engine, rooms=2, capacity=3)
    t = next_monday_local().astimezone(UTC)
    with make_session(engine) as s:  # two occurrences to own the rows, a week later (1 port each)
        owners = [_book(s, settings, user, title, room, t + 7 * 24 * H, t + 7 * 24 * H + H).meeting.id
                  for title, room in zip(("A", "B"), rooms, strict=True)]
        s.commit()
        occurrences = [s.exec(select(Occurrence.id).where(Occurrence.meeting_id == m)).one() for m in owners]

    def hold(index: int, ports: int, start, end) -> None:
        with make_session(engine) as other:
            other.execute(sa.insert(Booking), [{
                "meeting_id": owners[index], "occurrence_id": occurrences[index], "resource_kind": ResourceKind.bridge,
                "resource_id": bridge_id, "ports": ports, "window_start": start, "window_end": end}])
            other.commit()

    hold(0, 2, t, t + 2 * H)
    with pytest.raises(IntegrityError, match="bookings_bridge_ports") as refused:
        hold(1, 2, t + H, t + 3 * H)
    diag = refused.value.orig.diag
    assert diag.constraint_name == "bookings_bridge_ports"
    assert port_guard.refused(refused.value)
    detail = json.loads(diag.message_detail)
    assert (detail["bridge_id"], detail["in_use"], detail["requested"], detail["capacity"]) == (bridge_id, 4, 2, 3)
    assert datetime.fromisoformat(detail["start"]) == t + H  # the overloaded interval: [t+1h, t+2h)
    assert datetime.fromisoformat(detail["end"]) == t + 2 * H
    hold(1, 2, t + 2 * H, t + 3 * H)  # back to back: never counted together
    hold(1, 1, t, t + 3 * H)  # 2 + 1, then 2 + 1: exactly the capacity
    with make_session(engine, write=False) as s:
        assert s.exec(select(func.sum(Booking.ports)).where(Booking.window_start < t + 3 * H)).one() == 5


def test_two_open_bookings_of_different_rooms_do_not_wait_and_the_second_gets_the_next_number(
        engine: Engine, settings: Settings):
    """Neither booking waits for the other (no bridge lock before the commit); the second one, open
    beside the first, is given the next conference number instead of colliding on it."""
    install_hooks()
    bridge_id, rooms, user = _inventory(engine, rooms=2, capacity=10)
    t = next_monday_local()
    with make_session(engine) as first, make_session(engine) as second:
        first.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        second.execute(sa.text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail the test, not hang it
        a = _book(first, settings, user, "Họp A", rooms[0], t, t + H)
        b = _book(second, settings, user, "Họp B", rooms[1], t, t + H)
        second.commit()
        first.commit()
    assert (a.meeting.bridge_id, b.meeting.bridge_id) == (bridge_id, bridge_id)
    assert (a.meeting.conference_number, b.meeting.conference_number) == (1000, 1001)
    with make_session(engine, write=False) as s:
        numbers = s.exec(select(Booking.conference_number).where(Booking.resource_kind == ResourceKind.bridge)
                         .order_by(Booking.conference_number)).all()
    assert numbers == [1000, 1001]


def test_ports_taken_by_a_concurrent_booking_are_refused_at_commit_with_the_bridge_named(
        engine: Engine, settings: Settings):
    """Both bookings pass the friendly count (each sees only what is committed); the one committing
    second is refused at COMMIT, and nothing of it is written."""
    install_hooks()
    bridge_id, rooms, user = _inventory(engine, rooms=2, capacity=3)  # each booking: chair endpoint = 1 port
    t = next_monday_local()
    with make_session(engine) as s:
        _book(s, settings, user, "Đã có", rooms[0], t - 2 * H, t + 3 * H)  # 1 port held around both
        s.commit()
    with make_session(engine) as s:
        (other,) = s.exec(select(func.count()).select_from(Booking)).all()
    with make_session(engine) as first, make_session(engine) as second:
        # Two more ports fit (1 + 2 = 3); a third concurrent booking of 2 ports would not.
        _book(first, settings, user, "Họp A", rooms[1], t, t + H)
        room = make_room(second)
        make_endpoint(second, room)
        make_endpoint(second, room)
        _book(second, settings, user, "Họp B", room.id, t, t + H)
        first.commit()
        with pytest.raises(IntegrityError) as refused:
            second.commit()
    assert port_guard.refused(refused.value)
    with make_session(engine, write=False) as s:
        conflict = port_guard.conflict_of(refused.value, s, settings.zone)
        assert s.exec(select(Meeting.title).order_by(Meeting.id)).all() == ["Đã có", "Họp A"]
        assert s.exec(select(func.count()).select_from(Booking)).one() == other + 3
    assert conflict.status_code == 409
    (c,) = conflict.conflicts
    assert (c.resource_kind, c.resource_id, c.port_capacity, c.ports_in_use, c.ports_requested, c.ports_free) == (
        "bridge", bridge_id, 3, 2, 2, 1)
    assert c.reason == "the MCU's ports were taken by a booking committed at the same time"


def test_the_api_answers_409_naming_the_bridge_when_its_ports_go_between_check_and_commit(
        engine: Engine, settings: Settings):
    """Over HTTP: another booking commits the bridge's last ports after this request counted them
    (a real second transaction, committed from the request's own before-commit step)."""
    bridge_id, rooms, user = _inventory(engine, rooms=2, capacity=2)
    t = next_monday_local()
    with make_session(engine) as s:
        make_endpoint(s, s.get(Room, rooms[1]))  # the concurrent booking takes both ports
        headers = bearer(s, s.get(User, user))
        s.commit()
    fired = []

    def concurrent_booking(session: Session) -> None:
        if fired or session.in_nested_transaction() or not session.info.get("test_booking_request"):
            return  # once, at the booking request's own COMMIT (not a savepoint's, not the token's)
        fired.append(True)
        with make_session(engine) as other:
            _book(other, settings, user, "Chen ngang", rooms[1], t, t + H)
            other.commit()

    def mark_listener(session: Session, _context: object, _instances: object) -> None:
        if any(isinstance(o, Meeting) and o.title == "Họp tỉnh" for o in session.new):
            session.info["test_booking_request"] = True

    with TestClient(create_app(settings, engine=engine)) as client:
        sa_event.listen(Session, "before_commit", concurrent_booking, insert=True)
        sa_event.listen(Session, "before_flush", mark_listener)
        try:
            response = client.post("/api/v1/meetings", headers=headers, json={
                "title": "Họp tỉnh", "chair_room_id": rooms[0], "start": t.isoformat(),
                "end": (t + H).isoformat()})
        finally:
            sa_event.remove(Session, "before_commit", concurrent_booking)
            sa_event.remove(Session, "before_flush", mark_listener)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "booking_conflict"
    (c,) = body["conflicts"]
    assert (c["resource_kind"], c["resource_id"], c["port_capacity"], c["ports_in_use"], c["ports_requested"],
            c["ports_free"]) == ("bridge", bridge_id, 2, 2, 1, 0)
    assert c["resource_name"].startswith("MCU ")
    with make_session(engine, write=False) as s:
        assert s.exec(select(Meeting.title)).all() == ["Chen ngang"]
