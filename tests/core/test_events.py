"""The outbox: events written with the change, published only after commit, replayable in id order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
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
    recorded = [events.record(session, "endpoint.status", {"n": n}) for n in range(5)]
    session.commit()
    ids = [e.id for e in recorded]  # final once committed (PostgreSQL numbers them at commit)
    assert ids == sorted(ids)
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


def test_an_open_event_writer_no_longer_blocks_other_event_writers_until_it_commits(engine: Engine) -> None:
    """Issue 16 "Throughput under contention": ``record`` took a global advisory lock held until commit,
    so every event-writing transaction (bookings, statuses, readiness) waited for every other one."""
    with make_session(engine) as first, make_session(engine) as second:
        early = events.record(first, "endpoint.status", {"n": "early"})
        if engine.dialect.name == "postgresql":
            second.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            late = events.record(second, "endpoint.status", {"n": "late"})
            second.commit()
            first.commit()
            # Recorded first, committed last: its id is the higher one, so a client that resumed
            # after the other's id still gets it.
            assert early.id > late.id
            with make_session(engine, write=False) as session:
                assert [p.message["data"]["n"] for p in events.replay(session, late.id)] == ["early"]
        else:  # SQLite: writers are serialised by the database lock; nothing to overtake
            first.commit()
            assert early.id is not None and early.id >= 1


def test_since_replay_misses_no_event_committed_by_concurrent_writers(engine: Engine) -> None:
    """Many threads record and commit at once; a reader polling with ``since`` (as a live client
    resuming, or the PostgreSQL fan-out) must end with every event, each once, in id order."""
    import threading

    writers, per_writer = 6, 8
    seen: list[int] = []
    done = threading.Event()

    def write(w: int) -> None:
        for n in range(per_writer):
            with make_session(engine) as session:
                events.record(session, "endpoint.status", {"w": w, "n": n})
                events.record(session, "endpoint.status", {"w": w, "n": n, "second": True})
                session.commit()

    def read() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            with make_session(engine, write=False) as session:
                page = events.replay(session, cursor)
            for published in page:
                seen.append(published.message["id"])
                cursor = published.message["id"]
            if finished and not page:
                return

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join(60)
    with make_session(engine, write=False) as session:
        committed = [p.message["id"] for p in events.replay(session, 0, limit=10_000)]
    assert len(committed) == writers * per_writer * 2
    assert seen == committed
