"""Free-slot search over HTTP on both backends (issue 12 defect 8, issue 16 defect 10): every start at
the slot step where the dry run succeeds, earliest first, inside working periods (never across the
lunch break), on to the following working days when the asked day is full; scoped like every read."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _setup(engine: Engine):
    with make_session(engine) as session:
        make_bridge(session, port_capacity=10)
        unit, other_unit = make_unit(session), make_unit(session)
        room, other = make_room(session, unit), make_room(session, other_unit)
        ep, other_ep = make_endpoint(session, room), make_endpoint(session, other)
        h = {"secretariat": bearer(session, make_user(session, Role.secretariat)),
             "operator": bearer(session, make_user(session, Role.operator, units=[other_unit]))}
        ids = {"room": room.id, "other": other.id, "ep": ep.id, "other_ep": other_ep.id}
        session.commit()
    return ids, h


def _weekday(weekday: int, weeks_ahead: int = 2) -> date:
    today = datetime.now(ZONE).date()
    return today + timedelta(days=7 * weeks_ahead + weekday - today.weekday())


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), ZONE)


def _slots(client: TestClient, h, day: date, to: date | None = None, **params) -> list[str]:
    r = client.get("/api/v1/availability", headers=h, params={
        "duration_minutes": 60, "from_date": day.isoformat(), "to_date": (to or day).isoformat(), **params})
    assert r.status_code == 200, r.text
    return [s["start_local"] for s in r.json()]


def _local(day: date, hh: int, mm: int = 0) -> str:
    return datetime.combine(day, time(hh, mm)).isoformat()


def test_free_monday_is_offered_when_the_asked_friday_is_full(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    friday = _weekday(4)
    monday = friday + timedelta(days=3)
    r = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Hội nghị cả ngày", "chair_room_id": ids["room"], "start": _at(friday, 7, 30).isoformat(),
        "end": _at(friday, 17).isoformat()})
    assert r.status_code == 201, r.text
    assert _slots(client, h["secretariat"], friday, room_ids=[ids["room"]], count=3) == [
        _local(monday, 7, 30), _local(monday, 7, 45), _local(monday, 8)]
    # Asked for a free Monday directly: its first slots.
    assert _slots(client, h["secretariat"], monday, room_ids=[ids["room"]], count=2) == [
        _local(monday, 7, 30), _local(monday, 7, 45)]


def test_slot_straddling_lunch_is_not_offered(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = _weekday(1)
    starts = _slots(client, h["secretariat"], day, room_ids=[ids["room"]], count=50)
    morning = [_local(day, 7, 30) if i == 0 else (datetime.combine(day, time(7, 30)) + timedelta(minutes=15 * i))
               .isoformat() for i in range(13)]  # 07:30 … 10:30 (ends 11:30)
    afternoon = [(datetime.combine(day, time(13, 30)) + timedelta(minutes=15 * i)).isoformat()
                 for i in range(11)]  # 13:30 … 16:00 (ends 17:00)
    assert starts == morning + afternoon
    assert morning[-1] == _local(day, 10, 30) and afternoon[-1] == _local(day, 16)


def test_every_start_where_the_dry_run_succeeds_is_offered(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = _weekday(2)
    r = client.post("/api/v1/meetings", headers=h["secretariat"], json={  # room busy [08:00, 10:00) (lead 60)
        "title": "Giao ban", "chair_room_id": ids["room"], "start": _at(day, 9).isoformat(),
        "end": _at(day, 10).isoformat()})
    assert r.status_code == 201, r.text
    starts = _slots(client, h["secretariat"], day, room_ids=[ids["room"]], count=50, check_lead_minutes=15)
    assert starts == [_local(day, 10, 15), _local(day, 10, 30)] + [
        (datetime.combine(day, time(13, 30)) + timedelta(minutes=15 * i)).isoformat() for i in range(11)]

    def dry_run(hh: int, mm: int) -> bool:
        start = _at(day, hh, mm)
        check = client.post("/api/v1/meetings/check", headers=h["secretariat"], json={
            "title": "Thử", "chair_room_id": ids["room"], "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), "check_lead_minutes": 15})
        assert check.status_code == 200, check.text
        return check.json()["ok"]

    assert [dry_run(int(s[11:13]), int(s[14:16])) for s in starts] == [True] * 13
    assert (dry_run(10, 0), dry_run(8, 0)) == (False, False)


def test_operator_cannot_read_free_busy_outside_their_units(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = _weekday(1)
    params = {"duration_minutes": 60, "from_date": day.isoformat(), "to_date": day.isoformat()}
    for extra in ({"room_ids": [ids["room"]]}, {"endpoint_ids": [ids["ep"]]},
                  {"room_ids": [ids["other"]], "endpoint_ids": [ids["ep"]]}):
        r = client.get("/api/v1/availability", headers=h["operator"], params={**params, **extra})
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_scope"), r.text
    own = client.get("/api/v1/availability", headers=h["operator"],
                     params={**params, "room_ids": [ids["other"]], "count": 1})
    assert own.status_code == 200 and [s["start_local"] for s in own.json()] == [_local(day, 7, 30)]
