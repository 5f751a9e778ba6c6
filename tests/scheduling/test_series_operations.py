"""Series operations over HTTP on both backends (issue 12): restore a cancelled occurrence, add an extra
occurrence (RDATE). Both conflict-checked like a booking, published to feeds (read back with
icalendar, recurring-ical-events and Mozilla ical.js: each instance exactly once) and to displays
(a ``meeting.updated`` event naming the occurrence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import recurring_ical_events
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.calendar import feed_ical, ical
from confsvc.db import make_session
from tests.calendar.test_ical_feeds import _feed_url, _setup
from tests.calendar.test_ical_js import _expand, _ical_js_installed, needs_ical_js, parse_with_ical_js  # noqa: F401
from tests.factories import next_monday_local

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _weekly(client: TestClient, ids, h) -> tuple[dict, list[dict], datetime]:
    """Mondays 08:00–10:00 local, 3 times, chair room A with room B."""
    start = next_monday_local(weeks_ahead=2)
    r = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Giao ban tuần", "chair_room_id": ids["room_a"], "participant_room_ids": [ids["room_b"]],
        "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(),
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=3"})
    assert r.status_code == 201, r.text
    occs = client.get(f"/api/v1/meetings/{r.json()['id']}/occurrences", headers=h["secretariat"]).json()
    return r.json(), occs, start


def _instances(body: bytes, start: datetime) -> list[tuple[datetime, str]]:
    cal = Calendar.from_ical(body)
    return sorted((e["DTSTART"].dt, str(e["STATUS"])) for e in
            recurring_ical_events.of(cal).between(start - timedelta(days=1), start + timedelta(weeks=10)))


def _meeting_events(engine: Engine, meeting_id: int) -> list[tuple[str, str, int | None, list[int]]]:
    with make_session(engine) as session:
        rows = session.exec(select(events.Event).order_by(events.Event.id)).all()
        return [(e.type, e.data["scope"], e.data["occurrence_id"], e.data["occurrence_ids"]) for e in rows
                if e.type.startswith("meeting.") and e.data.get("meeting_id") == meeting_id]


def _seq(client: TestClient, h, meeting_id: int) -> int:
    return client.get(f"/api/v1/meetings/{meeting_id}", headers=h["secretariat"]).json()["sequence"]


def test_restored_occurrence_is_booked_and_leaves_the_feed_cancelled(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, occs, start = _weekly(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_b"])
    path = f"/api/v1/meetings/{meeting['id']}/occurrences/{occs[1]['id']}"
    assert client.post(f"{path}/cancel", headers=h["secretariat"]).status_code == 200
    assert _instances(client.get(url).content, start)[1] == (start + timedelta(weeks=1), "CANCELLED")
    sequence = _seq(client, h, meeting["id"])

    restored = client.post(f"{path}/restore", headers=h["secretariat"])
    assert restored.status_code == 200, restored.text
    assert (restored.json()["id"], restored.json()["status"], restored.json()["is_exception"]) == (
        occs[1]["id"], "scheduled", False)
    assert _seq(client, h, meeting["id"]) == sequence + 1
    body = client.get(url).content
    assert _instances(body, start) == [(start + timedelta(weeks=i), "CONFIRMED") for i in range(3)]
    assert b"STATUS:CANCELLED" not in body and b"RECURRENCE-ID" not in body
    invite = client.get(f"/api/v1/meetings/{meeting['id']}/invite.ics", headers=h["secretariat"]).content
    assert b"EXDATE" not in invite and len(_instances(invite, start)) == 3
    assert _meeting_events(engine, meeting["id"])[-1] == ("meeting.updated", "meeting", occs[1]["id"],
                                                          [occs[1]["id"]])
    # The slot is booked again: the same rooms cannot be booked then.
    other = client.post("/api/v1/meetings/check", headers=h["secretariat"], json={
        "title": "Khác", "chair_room_id": ids["room_b"], "start": (start + timedelta(weeks=1)).isoformat(),
        "end": (start + timedelta(weeks=1, hours=1)).isoformat()})
    assert other.json()["ok"] is False
    again = client.post(f"{path}/restore", headers=h["secretariat"])
    assert (again.status_code, again.json()["code"]) == (422, "occurrence_not_cancelled")


def test_restoring_into_a_taken_slot_is_409_naming_the_other_meeting(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, occs, start = _weekly(client, ids, h)
    path = f"/api/v1/meetings/{meeting['id']}/occurrences/{occs[2]['id']}"
    assert client.post(f"{path}/cancel", headers=h["secretariat"]).status_code == 200
    taker = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Họp xã Thanh Sơn", "chair_room_id": ids["room_b"], "start": (start + timedelta(weeks=2)).isoformat(),
        "end": (start + timedelta(weeks=2, hours=1)).isoformat()}).json()
    sequence = _seq(client, h, meeting["id"])
    refused = client.post(f"{path}/restore", headers=h["secretariat"])
    assert (refused.status_code, refused.json()["code"]) == (409, "booking_conflict")
    # (The bridge's item, "conference number in use", is issue 12 defect 1, fixed with the per-occurrence
    # conference number on the booking branch.)
    assert {(c["resource_kind"], c["meeting_id"], c["meeting_title"]) for c in refused.json()["conflicts"]
            if c["resource_kind"] != "bridge"} == {
        ("room", taker["id"], "Họp xã Thanh Sơn"), ("endpoint", taker["id"], "Họp xã Thanh Sơn")}
    listed = client.get(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=h["secretariat"]).json()
    assert listed[2]["status"] == "cancelled" and _seq(client, h, meeting["id"]) == sequence


def test_extra_occurrence_is_booked_with_a_stable_id_and_seen_once(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, occs, start = _weekly(client, ids, h)
    extra_start = start + timedelta(days=9, hours=6)  # Wednesday of the 2nd week, 14:00–15:30
    r = client.post(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=h["secretariat"], json={
        "start": extra_start.replace(tzinfo=None).isoformat(),
        "end": (extra_start + timedelta(minutes=90)).replace(tzinfo=None).isoformat()})
    assert r.status_code == 201, r.text
    extra = r.json()
    assert (extra["is_extra"], extra["is_exception"], extra["status"]) == (True, True, "scheduled")
    assert datetime.fromisoformat(extra["start"]) == extra_start.astimezone(UTC)
    assert datetime.fromisoformat(extra["recurrence_id"]) == extra_start.astimezone(UTC)
    assert sorted(extra["participant_endpoint_ids"]) == sorted([ids["ep_a"], ids["ep_b"]])
    assert _seq(client, h, meeting["id"]) == 1
    assert _meeting_events(engine, meeting["id"])[-1] == ("meeting.updated", "meeting", extra["id"], [extra["id"]])

    # A series edit keeps it, with its id and time.
    edited = client.patch(f"/api/v1/meetings/{meeting['id']}", headers=h["secretariat"],
                          json={"start": (start + timedelta(hours=1)).isoformat(),
                                "end": (start + timedelta(hours=3)).isoformat()})
    assert edited.status_code == 200, edited.text
    listed = client.get(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=h["secretariat"]).json()
    assert [(o["id"], datetime.fromisoformat(o["start"])) for o in listed] == [
        (occs[0]["id"], (start + timedelta(hours=1)).astimezone(UTC)),
        (occs[1]["id"], (start + timedelta(weeks=1, hours=1)).astimezone(UTC)),
        (extra["id"], extra_start.astimezone(UTC)),
        (occs[2]["id"], (start + timedelta(weeks=2, hours=1)).astimezone(UTC))]

    _, url = _feed_url(client, h["secretariat"], "room", ids["room_b"])
    body = client.get(url).content
    text = body.decode()
    assert f"RDATE;TZID=Asia/Ho_Chi_Minh:{extra_start:%Y%m%dT%H%M%S}\r\n" in text
    assert f"RECURRENCE-ID;TZID=Asia/Ho_Chi_Minh:{extra_start:%Y%m%dT%H%M%S}\r\n" in text
    later = start + timedelta(hours=1)
    expected = [(later, "CONFIRMED"), (later + timedelta(weeks=1), "CONFIRMED"), (extra_start, "CONFIRMED"),
                (later + timedelta(weeks=2), "CONFIRMED")]
    assert _instances(body, start) == expected
    invite = client.get(f"/api/v1/meetings/{meeting['id']}/invite.ics", headers=h["secretariat"]).content
    assert _instances(invite, start) == expected
    # A feed whose scope the extra does not involve lists neither its RDATE nor an EXDATE for it.
    _, url_c = _feed_url(client, h["secretariat"], "room", ids["room_c"])
    assert b"RDATE" not in client.get(url_c).content


@needs_ical_js
def test_ical_js_sees_an_extra_occurrence_once(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, occs, start = _weekly(client, ids, h)
    extra_start = start + timedelta(days=2)
    r = client.post(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=h["secretariat"], json={
        "start": extra_start.isoformat(), "end": (extra_start + timedelta(hours=2)).isoformat()})
    assert r.status_code == 201, r.text
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    invite = client.get(f"/api/v1/meetings/{meeting['id']}/invite.ics", headers=h["secretariat"]).content
    fmt = "%Y-%m-%dT%H:%M:%S"
    for body in (client.get(url).content, invite):
        assert _expand(parse_with_ical_js(body)) == {meeting["uid"]: [
            (start.strftime(fmt), "CONFIRMED"), (extra_start.strftime(fmt), "CONFIRMED"),
            ((start + timedelta(weeks=1)).strftime(fmt), "CONFIRMED"),
            ((start + timedelta(weeks=2)).strftime(fmt), "CONFIRMED")]}


def test_extra_occurrence_is_refused_when_taken_duplicate_or_not_a_series(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, occs, start = _weekly(client, ids, h)
    url = f"/api/v1/meetings/{meeting['id']}/occurrences"

    def add(at: datetime, meeting_url: str = url):
        return client.post(meeting_url, headers=h["secretariat"], json={
            "start": at.isoformat(), "end": (at + timedelta(hours=1)).isoformat()})

    thursday = start + timedelta(days=3)
    taker = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Họp tỉnh", "chair_room_id": ids["room_a"], "start": thursday.isoformat(),
        "end": (thursday + timedelta(hours=1)).isoformat()}).json()
    taken = add(thursday)
    assert (taken.status_code, taken.json()["code"]) == (409, "booking_conflict")
    assert {c["meeting_id"] for c in taken.json()["conflicts"] if c["resource_kind"] != "bridge"} == {taker["id"]}
    duplicate = add(start + timedelta(weeks=1))
    assert (duplicate.status_code, duplicate.json()["code"]) == (422, "occurrence_exists")
    overlapping = add(start + timedelta(weeks=1, hours=1))
    assert (overlapping.status_code, overlapping.json()["code"]) == (422, "occurrences_overlap")
    single = add(thursday + timedelta(hours=3), f"/api/v1/meetings/{taker['id']}/occurrences")
    assert (single.status_code, single.json()["code"]) == (422, "not_a_series")
    assert len(client.get(url, headers=h["secretariat"]).json()) == 3 and _seq(client, h, meeting["id"]) == 0


def test_feed_with_rdates_is_the_icalendar_reference_byte_for_byte() -> None:
    from tests.calendar.test_ical_pure import _series

    series = _series()
    extra = series.master.start + timedelta(days=2)
    added = ical.Instance(extra, extra, extra + timedelta(hours=1), series.master.chair, series.master.rooms)
    with_rdate = ical.MeetingCal(**{**series.__dict__, "rdates": (extra,), "exceptions": (*series.exceptions, added)})
    refresh = timedelta(hours=1)
    assert feed_ical.feed("Lịch", [with_rdate], refresh=refresh) == ical.feed_reference("Lịch", [with_rdate],
                                                                                   refresh=refresh)
