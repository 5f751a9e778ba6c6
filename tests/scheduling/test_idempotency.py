"""Issue 12, idempotent booking: an ``Idempotency-Key`` on ``POST /api/v1/meetings`` (and the booking
form's hidden field) makes a double submit or a retried request book once and get the same answer."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.main import create_app
from confsvc.scheduling import idempotency
from confsvc.scheduling.models import IdempotencyKey, Meeting
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_user, next_monday_local
from tests.live_support import ThreadServer
from tests.web_support import csrf_of, login, make_province

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"


def _setup(engine: Engine):
    with make_session(engine) as session:
        make_bridge(session, port_capacity=10)
        room = make_room(session)
        make_endpoint(session, room)
        first, second = make_user(session, Role.secretariat), make_user(session, Role.secretariat)
        headers = [bearer(session, first), bearer(session, second)]
        room_id = room.id
        session.commit()
    t = next_monday_local()
    body = {"title": "Giao ban", "chair_room_id": room_id, "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat()}
    return headers, body


def _meetings(engine: Engine) -> int:
    with make_session(engine, write=False) as session:
        return session.exec(select(func.count()).select_from(Meeting)).one()


def test_concurrent_double_submit_with_one_key_books_once_and_both_get_the_same_answer(
        settings: Settings, engine: Engine):
    (headers, _), body = _setup(engine)
    barrier = threading.Barrier(2)
    with ThreadServer(create_app(settings, engine=engine)) as server, \
            httpx.Client(base_url=server.base, timeout=60, headers={**headers, "Idempotency-Key": KEY}) as client:
        def post(_: int) -> httpx.Response:
            barrier.wait()
            return client.post("/api/v1/meetings", json=body)

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(post, range(2))
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.content == second.content
    assert _meetings(engine) == 1
    assert first.json()["title"] == "Giao ban"


def test_retry_with_the_same_key_returns_the_stored_answer(client: TestClient, engine: Engine):
    (headers, _), body = _setup(engine)
    first = client.post("/api/v1/meetings", json=body, headers={**headers, "Idempotency-Key": f'"{KEY}"'})
    assert first.status_code == 201, first.text
    client.patch(f"/api/v1/meetings/{first.json()['id']}", json={"title": "Đổi tên"}, headers=headers)
    again = client.post("/api/v1/meetings", json=body, headers={**headers, "Idempotency-Key": KEY})
    assert (again.status_code, again.content) == (201, first.content)  # the first answer, not today's state
    assert _meetings(engine) == 1
    without = client.post("/api/v1/meetings", json=body, headers=headers)
    assert (without.status_code, without.json()["code"]) == (409, "booking_conflict")


def test_same_key_with_another_body_is_422(client: TestClient, engine: Engine):
    (headers, _), body = _setup(engine)
    assert client.post("/api/v1/meetings", json=body, headers={**headers, "Idempotency-Key": KEY}).status_code == 201
    other = client.post("/api/v1/meetings", json={**body, "title": "Khác"},
                        headers={**headers, "Idempotency-Key": KEY})
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert other.json()["detail"] == "this Idempotency-Key was used for a different request"
    assert _meetings(engine) == 1


def test_key_is_scoped_to_the_user(client: TestClient, engine: Engine):
    (first, second), body = _setup(engine)
    assert client.post("/api/v1/meetings", json=body, headers={**first, "Idempotency-Key": KEY}).status_code == 201
    theirs = client.post("/api/v1/meetings", json=body, headers={**second, "Idempotency-Key": KEY})
    assert (theirs.status_code, theirs.json()["code"]) == (409, "booking_conflict")  # evaluated, not replayed


def test_refused_request_is_not_remembered(client: TestClient, engine: Engine):
    (headers, _), body = _setup(engine)
    bad = client.post("/api/v1/meetings", json={**body, "end": body["start"]}, headers={**headers,
                                                                                         "Idempotency-Key": KEY})
    assert (bad.status_code, bad.json()["code"]) == (422, "end_not_after_start")
    good = client.post("/api/v1/meetings", json=body, headers={**headers, "Idempotency-Key": "other-key"})
    assert good.status_code == 201
    with make_session(engine, write=False) as session:
        assert session.exec(select(IdempotencyKey.key)).all() == ["other-key"]


def test_malformed_key_is_422(client: TestClient, engine: Engine):
    (headers, _), body = _setup(engine)
    r = client.post("/api/v1/meetings", json=body, headers={**headers, "Idempotency-Key": "two words"})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_idempotency_key")
    assert _meetings(engine) == 0


def test_key_expires_after_the_setting(session, settings: Settings, engine: Engine):
    user = make_user(session, Role.secretariat)
    principal = users.principal_for(session, user)
    calls = []

    def run() -> idempotency.Answer:
        calls.append(1)
        return idempotency.Answer(201, "application/json", f'{{"n": {len(calls)}}}')

    digest = idempotency.fingerprint("test", {"a": 1})
    t0 = next_monday_local()
    assert idempotency.once(session, settings, principal, KEY, digest, run, now=t0).body == '{"n": 1}'
    just_before = t0 + timedelta(hours=settings.idempotency_ttl_hours) - timedelta(seconds=1)
    assert idempotency.once(session, settings, principal, KEY, digest, run, now=just_before).body == '{"n": 1}'
    after = t0 + timedelta(hours=settings.idempotency_ttl_hours)
    assert idempotency.once(session, settings, principal, KEY, digest, run, now=after).body == '{"n": 2}'
    assert len(calls) == 2


def test_web_form_double_submit_books_once(client: TestClient, engine: Engine):
    with make_session(engine) as session:
        province = make_province(session)
        session.commit()
    login(client, "vanphong")
    page = client.get("/meetings/new").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    monday = next_monday_local(weeks_ahead=2)
    form = {"title": "Hội nghị giao ban", "date": monday.strftime("%d/%m/%Y"), "start_time": "08:00",
            "end_time": "10:00", "check_lead_minutes": "60", "chair_room_id": str(province.chair.id),
            "participant_room_ids": [str(province.rooms[0].id)], "bridge_id": "", "repeat": "none",
            "repeat_count": "", "repeat_until": "", "description": "", "csrf": csrf_of(page), "idempotency_key": key}
    first = client.post("/meetings/new", data=form, follow_redirects=False)
    second = client.post("/meetings/new", data=form, follow_redirects=False)
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["location"] == second.headers["location"]
    assert _meetings(engine) == 1
    assert client.get("/meetings/new").text.count(key) == 0  # a new form, a new key
