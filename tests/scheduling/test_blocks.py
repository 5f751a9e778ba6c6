"""Issue 12: a room or endpoint blocked for whole local days (repairs, an election, a holiday): refuses
bookings over it, is refused over booked meetings, shows in the room/endpoint feed as an all-day event
(DTSTART;VALUE=DATE with an exclusive DTEND;VALUE=DATE, RFC 5545 §3.6.1), and can be listed and lifted."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local


def _setup(engine: Engine):
    with make_session(engine) as session:
        make_bridge(session, port_capacity=10)
        unit = make_unit(session)
        room, other = make_room(session, unit, name="Hội trường xã"), make_room(session, unit)
        ep, other_ep = make_endpoint(session, room), make_endpoint(session, other)
        h = {"secretariat": bearer(session, make_user(session, Role.secretariat)),
             "viewer": bearer(session, make_user(session, Role.viewer))}
        ids = {"room": room.id, "other": other.id, "ep": ep.id, "other_ep": other_ep.id}
        session.commit()
    return ids, h


def _meeting(ids, day: date, hour: int = 8, **kw):
    start = datetime.combine(day, time(hour)).isoformat()
    end = datetime.combine(day, time(hour + 1)).isoformat()
    return {"title": "Họp", "chair_room_id": ids["other"], "participant_room_ids": [ids["room"]], "start": start,
            "end": end, "check_lead_minutes": 0, **kw}


def _feed(client: TestClient, h, scope: str, scope_id: int) -> str:
    r = client.post("/api/v1/feeds", headers=h["secretariat"], json={"scope": scope, "scope_id": scope_id})
    assert r.status_code == 201, r.text
    return "/" + r.json()["url"].split("://", 1)[1].split("/", 1)[1]


def test_room_block_refuses_bookings_and_shows_as_all_day_event_in_the_room_feed(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    first = next_monday_local().date()
    feed_path = _feed(client, h, "room", ids["room"])
    etag_before = client.get(feed_path).headers["etag"]
    r = client.post(f"/api/v1/rooms/{ids['room']}/blocks", headers=h["secretariat"],
                    json={"first_day": first.isoformat(), "last_day": (first + timedelta(days=1)).isoformat(),
                          "reason": "Bầu cử đại biểu HĐND"})
    assert r.status_code == 201, r.text
    block = r.json()
    assert (block["resource_kind"], block["resource_id"], block["first_day"], block["last_day"], block["reason"]) == (
        "room", ids["room"], first.isoformat(), (first + timedelta(days=1)).isoformat(), "Bầu cử đại biểu HĐND")

    refused = client.post("/api/v1/meetings", headers=h["secretariat"], json=_meeting(ids, first + timedelta(days=1),
                                                                                        hour=16))
    assert (refused.status_code, refused.json()["code"]) == (409, "booking_conflict")
    assert [(c["resource_kind"], c["resource_id"], c["block_id"], c["meeting_id"])
            for c in refused.json()["conflicts"]] == [("room", ids["room"], block["id"], None)]
    after = client.post("/api/v1/meetings", headers=h["secretariat"],
                        json=_meeting(ids, first + timedelta(days=2), hour=0))
    assert after.status_code == 201, after.text  # the block ends at local midnight (exclusive)

    feed = client.get(feed_path)
    assert feed.headers["etag"] != etag_before
    text = feed.text
    assert f"DTSTART;VALUE=DATE:{first:%Y%m%d}\r\n" in text
    assert f"DTEND;VALUE=DATE:{first + timedelta(days=2):%Y%m%d}\r\n" in text
    events = {str(e["UID"]): e for e in Calendar.from_ical(feed.content).walk("VEVENT")}
    all_day = events[f"block-{block['id']}@confsvc"]
    assert (all_day.decoded("DTSTART"), all_day.decoded("DTEND")) == (first, first + timedelta(days=2))
    assert str(all_day["SUMMARY"]) == "Tạm dừng sử dụng: Bầu cử đại biểu HĐND"

    listed = client.get(f"/api/v1/rooms/{ids['room']}/blocks", headers=h["viewer"])
    assert [b["id"] for b in listed.json()] == [block["id"]]
    assert client.delete(f"/api/v1/rooms/{ids['room']}/blocks/{block['id']}",
                         headers=h["viewer"]).status_code == 403
    assert client.delete(f"/api/v1/rooms/{ids['room']}/blocks/{block['id']}",
                         headers=h["secretariat"]).status_code == 204
    assert client.get(f"/api/v1/rooms/{ids['room']}/blocks", headers=h["viewer"]).json() == []
    again = client.post("/api/v1/meetings", headers=h["secretariat"],
                        json=_meeting(ids, first + timedelta(days=1), hour=16))
    assert again.status_code == 201, again.text
    assert f"block-{block['id']}@confsvc" not in client.get(feed_path).text


def test_block_over_a_booked_meeting_is_refused_naming_it(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = next_monday_local().date()
    meeting = client.post("/api/v1/meetings", headers=h["secretariat"], json=_meeting(ids, day)).json()
    r = client.post(f"/api/v1/endpoints/{ids['ep']}/blocks", headers=h["secretariat"],
                    json={"first_day": day.isoformat(), "last_day": day.isoformat(), "reason": "Sửa chữa"})
    assert (r.status_code, r.json()["code"]) == (409, "booking_conflict")
    assert {(c["resource_kind"], c["meeting_id"]) for c in r.json()["conflicts"]} == {("endpoint", meeting["id"])}
    assert client.get(f"/api/v1/endpoints/{ids['ep']}/blocks", headers=h["viewer"]).json() == []


def test_endpoint_block_shows_in_the_endpoint_feed_and_refuses_its_bookings(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = next_monday_local().date()
    block = client.post(f"/api/v1/endpoints/{ids['other_ep']}/blocks", headers=h["secretariat"],
                        json={"first_day": day.isoformat(), "last_day": day.isoformat()}).json()
    refused = client.post("/api/v1/meetings", headers=h["secretariat"], json=_meeting(ids, day))
    assert [(c["resource_kind"], c.get("block_id")) for c in refused.json()["conflicts"]] == [
        ("endpoint", block["id"])]
    text = client.get(_feed(client, h, "endpoint", ids["other_ep"])).text
    assert f"DTSTART;VALUE=DATE:{day:%Y%m%d}\r\nDTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}\r\n" in text
    assert "SUMMARY:Tạm dừng sử dụng\r\n" in text


def test_block_input_is_bounded(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = next_monday_local().date()
    path = f"/api/v1/rooms/{ids['room']}/blocks"
    cases = [({"first_day": day.isoformat(), "last_day": (day - timedelta(days=1)).isoformat()},
              "last_day_before_first_day"),
             ({"first_day": day.isoformat(), "last_day": (day + timedelta(days=92)).isoformat()}, "window_too_long"),
             ({"first_day": "1900-01-01", "last_day": "1900-01-02"}, "window_starts_too_early")]
    for body, code in cases:
        r = client.post(path, headers=h["secretariat"], json=body)
        assert (r.status_code, r.json()["code"]) == (422, code), body
    assert client.post(path, headers=h["viewer"], json=cases[0][0]).status_code == 403
    assert client.get(path, headers=h["viewer"]).json() == []
