"""The outbox: events written with the change, published only after commit, replayable in id order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc import events
from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from tests.factories import make_room, make_unit


@pytest.fixture
def published() -> Iterator[list[events.Published]]:
    received: list[events.Published] = []

    def collect(batch: list[events.Published]) -> None:
        received.extend(batch)

    events.subscribe(collect)
    yield received
    events.unsubscribe(collect)


def test_published_after_commit_with_units_and_ancestors(engine: Engine, published: list) -> None:
    with make_session(engine) as session:
        province = make_unit(session, code="25", name="Phú Thọ", level=UnitLevel.province)
        commune = make_unit(session, code="07900", name="Phường Việt Trì", parent_id=province.id)
        room = make_room(session, commune)
        event = events.record(session, "meeting.scheduled", {"meeting_id": 7, "title": "Giao ban tuần"},
                              room_ids=[room.id])
        assert published == []
        session.commit()
    assert len(published) == 1
    message = published[0].message
    assert message["id"] == event.id and message["type"] == "meeting.scheduled"
    assert message["data"] == {"meeting_id": 7, "title": "Giao ban tuần"}
    assert message["at"].endswith("Z")
    assert published[0].room_ids == {room.id}
    assert published[0].unit_ids == {province.id, commune.id}


def test_rolled_back_transaction_publishes_nothing(engine: Engine, published: list) -> None:
    with make_session(engine) as session:
        events.record(session, "endpoint.status", {"endpoint_id": 1, "status": "online"})
        session.rollback()
        session.commit()
    assert published == []
    with make_session(engine, write=False) as session:
        assert events.latest_id(session) == 0


def test_replay_returns_missed_events_in_order(session: Session) -> None:
    ids = [events.record(session, "endpoint.status", {"n": n}).id for n in range(5)]
    session.commit()
    assert [p.message["data"]["n"] for p in events.replay(session, ids[1])] == [2, 3, 4]
    assert events.replay(session, ids[-1]) == []
    assert [p.message["id"] for p in events.replay(session, 0, limit=2)] == ids[:2]


def test_unknown_type_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="unknown event type 'meeting.exploded'"):
        events.record(session, "meeting.exploded", {})


def test_a_failing_subscriber_does_not_break_the_commit(engine: Engine, published: list) -> None:
    def broken(_: list) -> None:
        raise RuntimeError("boom")

    events.subscribe(broken)
    try:
        with make_session(engine) as session:
            events.record(session, "meeting.updated", {"meeting_id": 1})
            session.commit()
    finally:
        events.unsubscribe(broken)
    assert [p.message["type"] for p in published] == ["meeting.updated"]
