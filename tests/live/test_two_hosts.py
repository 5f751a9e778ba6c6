"""Two application hosts (issue 14, "Live channel at this scale"): two confsvc server processes bound
to different loopback addresses (127.0.0.2 and 127.0.0.3; Linux routes all of 127.0.0.0/8 to ``lo``,
no setup) share one PostgreSQL database and the real Redis at 127.0.0.1:6379 (a channel of this run's
own).

- A booking made through host A reaches a room display connected to host B.
- Host A killed with SIGKILL while it books the 149-site weekly briefing leaves nothing half-written,
  and host B, still serving, books the same request retried with the same ``Idempotency-Key`` once.
  The kill lands at a known point of A's transaction, not by timing: the test itself holds the lock
  A's transaction waits for (the bridge's lock, taken at COMMIT to count its ports with every row
  written; or the events' commit lock, taken in the commit's last step) and finds A's
  database connection blocked behind it (``pg_blocking_pids``) before killing A.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from websockets.sync.client import connect

from confsvc import events
from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.live import display
from confsvc.scheduling import repository
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local
from tests.live_support import booking_invariants, host_server, recv

REDIS_URL = "redis://127.0.0.1:6379/0"
HOST_A, HOST_B = "127.0.0.2", "127.0.0.3"
#: Tables a booking writes, counted before and after.
FOOTPRINT = ("meetings", "occurrences", "meeting_participants", "occurrence_participants", "bookings", "events",
             "audit_log", "idempotency_keys", "mail_messages", "mail_deliveries")
BRIEFING_TITLE = "Giao ban trực tuyến UBND tỉnh Phú Thọ với các xã, phường"


def _env(db_url: str, name: str, channel: str, secret_key: str) -> dict[str, str]:
    """Host ``name``'s environment: its PostgreSQL connections carry ``application_name`` = confsvc-<name>."""
    return {"CONFSVC_DATABASE_URL": f"{db_url}?application_name=confsvc-{name}", "CONFSVC_REDIS_URL": REDIS_URL,
            "CONFSVC_REDIS_CHANNEL": channel, "CONFSVC_SECRET_KEY": secret_key}


def _shared_env(db_url: str) -> tuple[dict[str, str], dict[str, str]]:
    channel, key = f"confsvc-test-{secrets.token_hex(6)}:events", secrets.token_urlsafe(32)
    return _env(db_url, "a", channel, key), _env(db_url, "b", channel, key)


def _province(engine: Engine, communes: int) -> dict[str, Any]:
    """A province with its chair room and ``communes`` communes, a room and an endpoint each, one bridge of
    200 ports, a secretariat user (bearer headers) and a display token of the chair room."""
    with make_session(engine) as session:
        bridge = make_bridge(session)
        province = make_unit(session, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
        chair = make_room(session, province, name="Hội trường UBND tỉnh")
        make_endpoint(session, chair)
        rooms = []
        for n in range(communes):
            room = make_room(session, make_unit(session, parent_id=province.id, name=f"Xã Thử {n + 1}"))
            make_endpoint(session, room)
            rooms.append(room.id)
        secretariat = make_user(session, Role.secretariat)
        headers = bearer(session, secretariat)
        _, chair_secret = display.create_display_token(session, users.principal_for(session, secretariat), chair.id)
        session.commit()
        return {"bridge": bridge.id, "chair": chair.id, "rooms": rooms, "headers": headers,
                "chair_secret": chair_secret}


def _footprint(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in FOOTPRINT}


def _invariants(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return booking_invariants(conn)


def _wait_until(condition: Any, what: str, seconds: float = 120) -> Any:
    """Poll ``condition()`` until it is truthy (a wait, not a timed assertion: ``seconds`` only bounds a hang)."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)
    return value


@pytest.mark.postgresql_only
def test_a_booking_through_host_a_reaches_a_room_display_on_host_b(backend: str, db_url: str,
                                                                     engine: Engine) -> None:
    place = _province(engine, 1)
    env_a, env_b = _shared_env(db_url)
    with host_server(env_a, HOST_A) as a, host_server(env_b, HOST_B) as b:
        port_a = int(a.base.rsplit(":", 1)[1])
        with pytest.raises(httpx.ConnectError):  # each host listens on its own address only
            httpx.get(f"http://{HOST_B}:{port_a}/healthz", timeout=2)
        with connect(f"{b.ws_base}/ws/rooms/{place['chair']}?token={place['chair_secret']}", open_timeout=10) as ws:
            snapshot = recv(ws, timeout=10)
            assert snapshot["type"] == "snapshot"
            start = next_monday_local()
            r = httpx.post(f"{a.base}/api/v1/meetings", headers=place["headers"], timeout=30, json={
                "title": "Hội nghị liên thông hai máy chủ", "chair_room_id": place["chair"],
                "participant_room_ids": place["rooms"], "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat()})
            assert r.status_code == 201, r.text
            got = recv(ws, timeout=15)
    assert (got["type"], got["data"]["meeting_id"], got["data"]["title"]) == (
        "meeting.scheduled", r.json()["id"], "Hội nghị liên thông hai máy chủ")
    assert got["id"] > snapshot["id"]


def _hold(conn: sa.Connection, point: str, bridge_id: int) -> None:
    """In ``conn``'s open transaction, take the lock a booking waits for at ``point``."""
    if point == "bridge":  # what a committing booking of the bridge holds (the ports counted at COMMIT)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :id)"),
                     {"space": repository.BRIDGE_LOCK_SPACE, "id": bridge_id})
    else:  # the last step of an event-writing commit (events._order_at_commit)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": events.EVENTS_LOCK_KEY})


@pytest.mark.postgresql_only
@pytest.mark.parametrize("point", ["bridge", "commit"])
def test_host_a_killed_during_the_149_site_booking_leaves_nothing_and_host_b_books_the_retry_once(
        backend: str, db_url: str, engine: Engine, point: str) -> None:
    place = _province(engine, 148)
    start = next_monday_local()
    body = {"title": BRIEFING_TITLE, "chair_room_id": place["chair"], "participant_room_ids": place["rooms"],
            "start": start.isoformat(), "end": (start + timedelta(hours=2, minutes=30)).isoformat(),
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4"}
    headers = {**place["headers"], "Idempotency-Key": secrets.token_hex(16)}
    before = _footprint(engine)
    env_a, env_b = _shared_env(db_url)
    with host_server(env_a, HOST_A) as a, host_server(env_b, HOST_B) as b, \
            connect(f"{b.ws_base}/ws/rooms/{place['chair']}?token={place['chair_secret']}", open_timeout=10) as ws:
        assert recv(ws, timeout=10)["type"] == "snapshot"
        outcome: dict[str, Any] = {}

        def book_on_a() -> None:
            try:
                outcome["response"] = httpx.post(f"{a.base}/api/v1/meetings", headers=headers, json=body, timeout=300)
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        with engine.connect() as holder:
            holder.begin()
            _hold(holder, point, place["bridge"])
            me = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            request = threading.Thread(target=book_on_a)
            request.start()
            # A's transaction has written (it has a transaction id) and waits for the lock this test holds.
            # (Read outside the holder's transaction: pg_stat_activity is a snapshot within one.)
            waiting = _wait_until(lambda: _rows(engine, (
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'confsvc-a' "
                f"AND {int(me)} = ANY(pg_blocking_pids(pid)) AND backend_xid IS NOT NULL")),
                "host A's booking to wait for the held lock")
            assert len(waiting) == 1
            a.kill()
            request.join(60)
            holder.rollback()  # A's backend now runs on, finds its client gone and rolls back
        assert "response" not in outcome and isinstance(outcome["error"], httpx.HTTPError)
        _wait_until(lambda: _count(engine, "SELECT count(*) FROM pg_stat_activity "
                                           "WHERE application_name = 'confsvc-a'") == 0,
                    "host A's database connections to end")

        assert _footprint(engine) == before  # nothing of the booking, not even the Idempotency-Key
        assert _invariants(engine) == {"overlapping endpoint/room pairs": 0, "conference numbers twice": 0,
                                       "bridge instants over capacity": 0}

        assert httpx.get(f"{b.base}/healthz", timeout=10).status_code == 200
        retried = httpx.post(f"{b.base}/api/v1/meetings", headers=headers, json=body, timeout=300)
        assert retried.status_code == 201, retried.text
        again = httpx.post(f"{b.base}/api/v1/meetings", headers=headers, json=body, timeout=300)
        message = recv(ws, timeout=30)
    assert (again.status_code, again.content) == (201, retried.content)
    meeting = retried.json()
    assert (meeting["title"], meeting["occurrence_count"]) == (BRIEFING_TITLE, 4)
    assert (message["type"], message["data"]["meeting_id"], message["data"]["title"]) == (
        "meeting.scheduled", meeting["id"], BRIEFING_TITLE)
    after = _footprint(engine)
    grown = {t: after[t] - before[t] for t in FOOTPRINT}
    # One meeting, 4 occurrences, 149 participating endpoints; each occurrence holds 149 rooms,
    # 149 endpoints and the bridge: 4 × 299 bookings; its events (meeting.scheduled and one
    # join.instructions per room), its audit entry, its key.
    assert grown == {"meetings": 1, "occurrences": 4, "meeting_participants": 149, "occurrence_participants": 0,
                     "bookings": 4 * 299, "events": 1 + 149, "audit_log": 1, "idempotency_keys": 1,
                     "mail_messages": 0, "mail_deliveries": 0}
    assert grown["events"] == _count(engine, "SELECT count(*) FROM events WHERE "
                                             f"CAST(data->>'meeting_id' AS int) = {int(meeting['id'])}")
    assert _count(engine, f"SELECT count(*) FROM bookings b JOIN occurrences o ON o.id = b.occurrence_id "
                          f"WHERE o.meeting_id = {int(meeting['id'])}") == 4 * 299
    assert _invariants(engine) == {"overlapping endpoint/room pairs": 0, "conference numbers twice": 0,
                                   "bridge instants over capacity": 0}


def _rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.exec_driver_sql(sql).scalars())


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(sql).scalar_one())
