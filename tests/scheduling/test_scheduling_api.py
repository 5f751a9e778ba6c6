"""Scheduling HTTP API on both backends: shapes, status codes, permissions, dry run, free slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local


def _setup(engine: Engine):
    with make_session(engine) as session:
        make_bridge(session, port_capacity=10)
        unit, other_unit = make_unit(session), make_unit(session)
        room, other = make_room(session, unit), make_room(session, other_unit)
        ep, other_ep = make_endpoint(session, room), make_endpoint(session, other)
        h = {role: bearer(session, make_user(session, role)) for role in (Role.secretariat, Role.viewer)}
        h["operator"] = bearer(session, make_user(session, Role.operator, units=[other_unit]))
        ids = {"room": room.id, "other": other.id, "ep": ep.id, "other_ep": other_ep.id, "unit": unit.id,
               "other_unit": other_unit.id}
        session.commit()
    return ids, h


def _body(ids, start: datetime, **kw):
    return {"title": "Hội nghị trực tuyến", "chair_room_id": ids["room"], "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), **kw}


def test_book_check_conflict_and_read(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    t = next_monday_local()
    naive_local = t.replace(tzinfo=None).isoformat()
    r = client.post("/api/v1/meetings", headers=h[Role.secretariat],
                    json={**_body(ids, t), "start": naive_local,
                          "end": (t + timedelta(hours=1)).replace(tzinfo=None).isoformat()})
    assert r.status_code == 201, r.text
    meeting = r.json()
    assert datetime.fromisoformat(meeting["start"]) == t.astimezone(UTC)
    assert meeting["participant_endpoint_ids"] == [ids["ep"]]
    assert (meeting["check_lead_minutes"], meeting["occurrence_count"], meeting["sequence"]) == (60, 1, 0)

    check = client.post("/api/v1/meetings/check", headers=h[Role.secretariat], json=_body(ids, t))
    assert check.status_code == 200 and check.json()["ok"] is False
    assert {(c["resource_kind"], c["meeting_id"]) for c in check.json()["conflicts"]} == {
        ("endpoint", meeting["id"]), ("room", meeting["id"])}

    refused = client.post("/api/v1/meetings", headers=h[Role.secretariat], json=_body(ids, t))
    assert refused.status_code == 409
    assert refused.json()["code"] == "booking_conflict"
    assert refused.json()["conflicts"] == check.json()["conflicts"]

    free = client.post("/api/v1/meetings/check", headers=h[Role.secretariat],
                       json=_body(ids, t + timedelta(hours=2)))
    assert free.json() == {"ok": True, "conflicts": [], "groups": [], "by_province": [], "warnings": [],
                           "displaceable": [], "displacement_token": None}

    assert client.get(f"/api/v1/meetings/{meeting['id']}", headers=h[Role.viewer]).status_code == 200
    assert client.get(f"/api/v1/meetings/{meeting['id']}", headers=h["operator"]).status_code == 403
    listing = client.get("/api/v1/meetings", headers=h[Role.viewer],
                         params={"from": t.isoformat(), "to": (t + timedelta(days=1)).isoformat()})
    assert [m["id"] for m in listing.json()["items"]] == [meeting["id"]] and listing.json()["total"] == 1
    assert client.get("/api/v1/meetings", headers=h["operator"]).json()["total"] == 0
    assert client.get("/api/v1/meetings", headers=h[Role.viewer],
                      params={"unit_id": ids["other_unit"]}).json()["total"] == 0
    assert client.get("/api/v1/meetings", headers=h[Role.viewer],
                      params={"room_id": ids["room"]}).json()["total"] == 1


def test_permissions_and_bad_input(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    t = next_monday_local()
    for who in (Role.viewer, "operator"):
        r = client.post("/api/v1/meetings", headers=h[who], json=_body(ids, t))
        assert r.status_code == 403, r.text
    assert client.post("/api/v1/meetings", json=_body(ids, t)).status_code == 401
    bad = client.post("/api/v1/meetings", headers=h[Role.secretariat],
                      json={**_body(ids, t), "end": t.isoformat()})
    assert (bad.status_code, bad.json()["code"]) == (422, "end_not_after_start")
    unknown = client.post("/api/v1/meetings", headers=h[Role.secretariat],
                          json=_body(ids, t, participant_endpoint_ids=[999999]))
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_endpoint")
    past = client.post("/api/v1/meetings", headers=h[Role.secretariat], json=_body(ids, t - timedelta(days=60)))
    assert (past.status_code, past.json()["code"]) == (422, "start_in_past")
    assert client.get("/api/v1/meetings/999999", headers=h[Role.viewer]).status_code == 404


def test_occurrence_routes_and_cancel(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    t = next_monday_local()
    series = client.post("/api/v1/meetings", headers=h[Role.secretariat],
                         json=_body(ids, t, rrule="FREQ=WEEKLY;COUNT=3",
                                    participant_room_ids=[ids["other"]])).json()
    assert series["participant_endpoint_ids"] == sorted([ids["ep"], ids["other_ep"]])
    occ = client.get(f"/api/v1/meetings/{series['id']}/occurrences", headers=h["operator"]).json()
    assert len(occ) == 3
    moved = client.patch(f"/api/v1/meetings/{series['id']}/occurrences/{occ[1]['id']}", headers=h[Role.secretariat],
                         json={"start": (t + timedelta(weeks=1, hours=3)).isoformat()})
    assert moved.status_code == 200, moved.text
    assert moved.json()["is_exception"] is True
    assert datetime.fromisoformat(moved.json()["end"]) == (t + timedelta(weeks=1, hours=4)).astimezone(UTC)
    cancelled = client.post(f"/api/v1/meetings/{series['id']}/occurrences/{occ[2]['id']}/cancel",
                            headers=h[Role.secretariat])
    assert cancelled.json()["status"] == "cancelled"
    edited = client.patch(f"/api/v1/meetings/{series['id']}", headers=h[Role.secretariat], json={"title": "Mới"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["occurrence_count"] == 2
    whole = client.post(f"/api/v1/meetings/{series['id']}/cancel", headers=h[Role.secretariat])
    assert whole.json()["status"] == "cancelled" and whole.json()["cancelled_at"] is not None
    again = client.post("/api/v1/meetings", headers=h[Role.secretariat], json=_body(ids, t))
    assert again.status_code == 201


def test_maintenance_and_availability(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    t = next_monday_local()
    maint = client.post(f"/api/v1/endpoints/{ids['ep']}/maintenance", headers=h[Role.secretariat],
                        json={"start": t.replace(hour=7, minute=0).isoformat(),
                              "end": t.replace(hour=10, minute=0).isoformat(), "note": "nâng cấp firmware"})
    assert maint.status_code == 201, maint.text
    client.post("/api/v1/meetings", headers=h[Role.secretariat],
                json=_body(ids, t.replace(hour=13, minute=0), chair_room_id=ids["other"]))
    slots = client.get("/api/v1/availability", headers=h[Role.viewer], params={
        "endpoint_ids": [ids["ep"]], "room_ids": [ids["other"]], "duration_minutes": 120,
        "from_date": t.date().isoformat(), "to_date": t.date().isoformat(), "count": 3})
    assert slots.status_code == 200, slots.text
    # 10:00 maintenance end + 60 min check lead → 11:00; 11:00–13:00 ends where the 13:00 meeting's
    # lead starts (12:00)? No: 11:00–13:00 overlaps [12:00, 14:00), so the next is 14:00 + 60 min lead.
    assert [s["start_local"] for s in slots.json()] == [
        t.replace(hour=15, minute=0).replace(tzinfo=None).isoformat()]
