"""Invites and feeds over HTTP on both backends: what calendar clients expand equals the database,
scopes, tokens, conditional GETs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import recurring_ical_events
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling.models import Occurrence, OccurrenceStatus
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = "text/calendar; charset=utf-8"


def _setup(engine: Engine) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """A province with two communes; a room per unit; a series A+B and a single meeting in C."""
    with make_session(engine) as session:
        make_bridge(session, port_capacity=20, sip_domain="mcu.phutho.gov.vn", h323_prefix="88")
        province = make_unit(session, level=UnitLevel.province, division_type="tỉnh", name="Tỉnh Phú Thọ")
        commune_b = make_unit(session, parent_id=province.id, name="Xã Thanh Sơn")
        commune_c = make_unit(session, parent_id=province.id, name="Xã Tân Sơn")
        room_a = make_room(session, province, name="Hội trường UBND tỉnh", contact_email="vp@phutho.gov.vn")
        room_b, room_c = make_room(session, commune_b), make_room(session, commune_c)
        ep_a, ep_b, ep_c = make_endpoint(session, room_a), make_endpoint(session, room_b), make_endpoint(session, room_c)
        h = {"secretariat": bearer(session, make_user(session, Role.secretariat, email="vanphong@phutho.gov.vn")),
             "viewer": bearer(session, make_user(session, Role.viewer)),
             "operator_b": bearer(session, make_user(session, Role.operator, units=[commune_b]))}
        ids = dict(province=province.id, commune_b=commune_b.id, commune_c=commune_c.id, room_a=room_a.id,
                   room_b=room_b.id, room_c=room_c.id, ep_a=ep_a.id, ep_b=ep_b.id, ep_c=ep_c.id)
        session.commit()
    return ids, h


def _book(client: TestClient, h, **body) -> dict:
    r = client.post("/api/v1/meetings", headers=h["secretariat"], json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _series(client: TestClient, ids, h) -> dict:
    """Weekly on Mondays 08:00–10:00 local, 5 times, the 4th excluded; 2nd moved, 3rd cancelled."""
    start = next_monday_local(weeks_ahead=2)
    meeting = _book(client, h, title="Giao ban tuần, khối xã; \\ lần 1", chair_room_id=ids["room_a"],
                    participant_room_ids=[ids["room_b"]], start=start.isoformat(),
                    end=(start + timedelta(hours=2)).isoformat(), rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=5",
                    exdates=[(start + timedelta(weeks=3)).isoformat()])
    occs = client.get(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=h["secretariat"]).json()
    assert len(occs) == 4
    moved = start + timedelta(weeks=1, hours=1)
    r = client.patch(f"/api/v1/meetings/{meeting['id']}/occurrences/{occs[1]['id']}", headers=h["secretariat"],
                     json={"start": moved.isoformat(), "end": (moved + timedelta(hours=1)).isoformat()})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/meetings/{meeting['id']}/occurrences/{occs[2]['id']}/cancel", headers=h["secretariat"])
    assert r.status_code == 200, r.text
    return meeting


def _single_c(client: TestClient, ids, h) -> dict:
    start = next_monday_local(weeks_ahead=2, hour=14)
    return _book(client, h, title="Họp xã Tân Sơn", chair_room_id=ids["room_c"], start=start.isoformat(),
                 end=(start + timedelta(hours=1)).isoformat())


def _feed_url(client: TestClient, h, scope: str, scope_id: int, **extra) -> tuple[int, str]:
    r = client.post("/api/v1/feeds", headers=h, json={"scope": scope, "scope_id": scope_id, **extra})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["url"].endswith(f"/ical/{scope}/{scope_id}.ics?token={body['token']}")
    return body["id"], f"/ical/{scope}/{scope_id}.ics?token={body['token']}"


def _get_calendar(client: TestClient, url: str, **kw) -> Calendar:
    r = client.get(url, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CALENDAR
    return Calendar.from_ical(r.content)


def _expanded(calendar: Calendar) -> dict[str, list[tuple]]:
    """UID -> sorted (local start, local end, status) as a client expands the feed."""
    out: dict[str, list[tuple]] = {}
    far = datetime.now(UTC) + timedelta(days=400)
    for event in recurring_ical_events.of(calendar).between(datetime.now(UTC) - timedelta(days=1), far):
        start, end = event.decoded("DTSTART"), event.decoded("DTEND")
        assert start.tzinfo is not None and str(start.tzinfo) == "Asia/Ho_Chi_Minh"
        out.setdefault(str(event["UID"]), []).append(
            (start.replace(tzinfo=None), end.replace(tzinfo=None), str(event["STATUS"])))
    return {uid: sorted(rows) for uid, rows in out.items()}


def _database(engine: Engine, meeting_id: int) -> list[tuple]:
    with make_session(engine, write=False) as session:
        rows = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting_id)).all()
        return sorted((o.start.astimezone(ZONE).replace(tzinfo=None), o.end.astimezone(ZONE).replace(tzinfo=None),
                       "CANCELLED" if o.status is OccurrenceStatus.cancelled else "CONFIRMED") for o in rows)


def test_unit_feed_expands_to_the_database_occurrences(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series, single = _series(client, ids, h), _single_c(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "province", ids["province"])
    calendar = _get_calendar(client, url)
    assert "METHOD" not in calendar
    assert str(calendar["X-WR-CALNAME"]) == "Lịch họp – Tỉnh Phú Thọ"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Asia/Ho_Chi_Minh"]
    expanded = _expanded(calendar)
    assert expanded == {series["uid"]: _database(engine, series["id"]), single["uid"]: _database(engine, single["id"])}
    statuses = [s for *_, s in expanded[series["uid"]]]
    assert statuses.count("CANCELLED") == 1 and len(statuses) == 4
    start = next_monday_local(weeks_ahead=2).replace(tzinfo=None)
    assert (start + timedelta(weeks=1, hours=1), start + timedelta(weeks=1, hours=2), "CONFIRMED") \
        in expanded[series["uid"]]
    assert str(calendar.walk("VEVENT")[0]["SUMMARY"]) == "Giao ban tuần, khối xã; \\ lần 1"


def test_room_feed_shows_only_that_rooms_meetings(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series, single = _series(client, ids, h), _single_c(client, ids, h)
    _, url_c = _feed_url(client, h["secretariat"], "room", ids["room_c"])
    _, url_b = _feed_url(client, h["secretariat"], "room", ids["room_b"])
    _, url_ep = _feed_url(client, h["secretariat"], "endpoint", ids["ep_c"])
    _, url_unit_b = _feed_url(client, h["secretariat"], "unit", ids["commune_b"], include_sub_units=False)
    assert set(_expanded(_get_calendar(client, url_c))) == {single["uid"]}
    assert set(_expanded(_get_calendar(client, url_ep))) == {single["uid"]}
    for url in (url_b, url_unit_b):
        calendar = _get_calendar(client, url)
        assert set(_expanded(calendar)) == {series["uid"]}
        # Rooms' contact addresses stay out of token-readable feeds.
        assert b"vp@phutho.gov.vn" not in calendar.to_ical()


def test_unchanged_feed_answers_304_and_a_change_changes_the_etag(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series = _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    first, second = client.get(url), client.get(url)
    assert first.content == second.content
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/") and etag == second.headers["etag"]

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200

    r = client.patch(f"/api/v1/meetings/{series['id']}", headers=h["secretariat"], json={"title": "Giao ban mới"})
    assert r.status_code == 200, r.text
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert b"SUMMARY:Giao ban m" in changed.content


def test_bad_or_revoked_token_is_a_404_that_reveals_nothing(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    token_id, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    assert client.get(url).status_code == 200
    wrong = client.get(f"/ical/room/{ids['room_a']}.ics?token=cal_wrong")
    answers = [wrong, client.get(f"/ical/room/{ids['room_a']}.ics"),
               client.get(f"/ical/room/999999.ics?token={url.split('=')[1]}"),
               client.get(f"/ical/room/{ids['room_b']}.ics?token={url.split('=')[1]}"),
               client.get(f"/ical/nothing/{ids['room_a']}.ics?token=x"), client.get("/ical/room/abc.ics?token=x")]
    assert {a.status_code for a in answers} == {404}
    assert {a.content for a in answers} == {wrong.content}

    assert client.delete(f"/api/v1/feeds/{token_id}", headers=h["secretariat"]).status_code == 204
    revoked = client.get(url)
    assert revoked.status_code == 404 and revoked.content == wrong.content
    listed = client.get("/api/v1/feeds", headers=h["secretariat"]).json()
    assert listed[0]["id"] == token_id and listed[0]["revoked_at"] is not None
    assert "token" not in listed[0]


def test_feed_token_permissions(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    op = h["operator_b"]
    assert client.post("/api/v1/feeds", json={"scope": "room", "scope_id": ids["room_b"]}).status_code == 401
    # A viewer (a leader) may create a feed for what they see, and sees and revokes only their own.
    assert client.post("/api/v1/feeds", headers=h["viewer"],
                       json={"scope": "room", "scope_id": ids["room_c"]}).status_code == 201
    assert client.post("/api/v1/feeds", headers=op, json={"scope": "room", "scope_id": ids["room_b"]}).status_code == 201
    assert client.post("/api/v1/feeds", headers=op, json={"scope": "room", "scope_id": ids["room_c"]}).status_code == 403
    assert client.post("/api/v1/feeds", headers=op,
                       json={"scope": "province", "scope_id": ids["province"]}).status_code == 403
    assert client.post("/api/v1/feeds", headers=h["secretariat"],
                       json={"scope": "province", "scope_id": ids["commune_b"]}).status_code == 422
    assert client.post("/api/v1/feeds", headers=h["secretariat"],
                       json={"scope": "room", "scope_id": 999999}).status_code == 404
    other_id, _ = _feed_url(client, h["secretariat"], "room", ids["room_c"])
    assert [t["scope_id"] for t in client.get("/api/v1/feeds", headers=op).json()] == [ids["room_b"]]
    assert client.delete(f"/api/v1/feeds/{other_id}", headers=op).status_code == 403
    assert [t["scope_id"] for t in client.get("/api/v1/feeds", headers=h["viewer"]).json()] == [ids["room_c"]]
    assert client.delete(f"/api/v1/feeds/{other_id}", headers=h["viewer"]).status_code == 403


def test_invite_request_then_cancel(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series = _series(client, ids, h)
    url = f"/api/v1/meetings/{series['id']}/invite.ics"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=h["operator_b"]).status_code == 200
    calendar = _get_calendar(client, url, headers=h["secretariat"])
    assert str(calendar["METHOD"]) == "REQUEST"
    master, override = calendar.walk("VEVENT")
    assert str(master["UID"]) == series["uid"]
    assert str(master["ORGANIZER"]) == "mailto:vanphong@phutho.gov.vn"
    assert {a.params["CUTYPE"] for a in master["ATTENDEE"]} == {"ROOM"}
    assert str(master["LOCATION"]) == "Hội trường UBND tỉnh, Tỉnh Phú Thọ"
    description = str(master["DESCRIPTION"])
    assert f"sip:{series['conference_number']}@mcu.phutho.gov.vn" in description
    assert f"Mã PIN: {series['pin']}" in description
    check = next_monday_local(weeks_ahead=2) - timedelta(minutes=60)
    assert f"Kiểm tra kỹ thuật: {check:%d/%m/%Y %H:%M}" in description
    exdates = master["EXDATE"] if isinstance(master["EXDATE"], list) else [master["EXDATE"]]
    assert len([d for x in exdates for d in x.dts]) == 2  # the stored EXDATE and the cancelled occurrence
    sequence = int(master["SEQUENCE"])

    occs = client.get(f"/api/v1/meetings/{series['id']}/occurrences", headers=h["secretariat"]).json()
    cancelled = next(o for o in occs if o["status"] == "cancelled")
    one = _get_calendar(client, f"{url}?occurrence_id={cancelled['id']}", headers=h["secretariat"])
    assert str(one["METHOD"]) == "CANCEL"
    (event,) = one.walk("VEVENT")
    assert event.decoded("RECURRENCE-ID").astimezone(UTC) == datetime.fromisoformat(cancelled["recurrence_id"])

    assert client.post(f"/api/v1/meetings/{series['id']}/cancel", headers=h["secretariat"]).status_code == 200
    after = _get_calendar(client, url, headers=h["secretariat"])
    assert str(after["METHOD"]) == "CANCEL"
    (event,) = after.walk("VEVENT")
    assert str(event["UID"]) == series["uid"] and str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) > sequence
    assert client.get(f"{url}?occurrence_id=999999", headers=h["secretariat"]).status_code == 404
