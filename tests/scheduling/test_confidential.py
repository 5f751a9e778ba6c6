"""Confidential meetings (mật, issue 12): outside the participants' units and the secretariat, only
"Cuộc họp", the time and the rooms leave the service — over HTTP (list, detail, invite,
join-instructions), over WebSocket (snapshot, live events, replay, scheduler notices), in feeds
(parsed) and in the web pages; and ordinary feeds carry the PIN only for a single room or endpoint.
Both backends, a real uvicorn server."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.scheduling import scheduler, visibility
from confsvc.scheduling.models import Occurrence
from tests.factories import make_meeting, next_monday_local
from tests.live import test_live_ws
from tests.live.test_live_ws import _book
from tests.live_support import ThreadServer, delivered, recv
from tests.scheduling.test_scheduler import _book as book_for_scheduler
from tests.web_support import login, make_province

site, server = test_live_ws.site, test_live_ws.server  # the live-channel fixtures: a site and a uvicorn server

TITLE = "Họp bàn phương án nhân sự"
SECRET_TEXT = "Nội dung mật: danh sách cán bộ"


def _h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _confidential(server: ThreadServer, site: dict) -> dict:
    start = next_monday_local()
    return _book(server, site, start, title=TITLE, description=SECRET_TEXT, participant_room_ids=[],
                 confidential=True)


def _secrets_of(meeting: dict) -> list[str]:
    """What must not leak, as it would appear (a bare 6-digit PIN can occur inside any timestamp)."""
    pin = meeting["pin"]
    return [TITLE, SECRET_TEXT, f"Mã PIN: {pin}", f"'pin': '{pin}'", f'"pin":"{pin}"',
            f"sip:{meeting['conference_number']}@mcu.phutho.gov.vn"]


def test_confidential_meeting_shows_only_cuoc_hop_over_http(server: ThreadServer, site: dict, engine: Engine):
    meeting = _confidential(server, site)
    assert meeting["confidential"] is True and meeting["title"] == TITLE  # the secretariat sees it all
    base = f"{server.base}/api/v1/meetings"
    viewer, operator = _h(site["viewer"]), _h(site["operator"])

    detail = httpx.get(f"{base}/{meeting['id']}", headers=viewer).json()
    assert (detail["title"], detail["description"], detail["pin"], detail["conference_number"]) == (
        "Cuộc họp", "", "", None)
    assert (detail["start"], detail["end"], detail["chair_room_id"]) == (
        meeting["start"], meeting["end"], site["room"])
    listed = httpx.get(base, headers=viewer).json()["items"]
    assert [(m["id"], m["title"], m["pin"]) for m in listed] == [(meeting["id"], "Cuộc họp", "")]
    # An operator of the participating commune sees it as the secretariat does.
    assert httpx.get(f"{base}/{meeting['id']}", headers=operator).json()["title"] == TITLE

    joins = httpx.get(f"{base}/{meeting['id']}/join-instructions", headers=viewer).json()["items"]
    assert [(j["title"], j["pin"], j["sip_uri"], j["conference_number"], [e["dial_string"] for e in j["endpoints"]])
            for j in joins] == [("Cuộc họp", "", None, None, [None])]
    full = httpx.get(f"{base}/{meeting['id']}/join-instructions", headers=operator).json()["items"]
    assert full[0]["pin"] == meeting["pin"] and full[0]["title"] == TITLE

    invite = httpx.get(f"{base}/{meeting['id']}/invite.ics", headers=viewer)
    assert invite.status_code == 200
    (event,) = Calendar.from_ical(invite.content).walk("VEVENT")
    assert str(event["SUMMARY"]) == "Cuộc họp"
    for secret in _secrets_of(meeting):
        assert secret not in invite.text and secret not in str(listed) and secret not in str(joins)
    assert TITLE in httpx.get(f"{base}/{meeting['id']}/invite.ics", headers=operator).text


def test_confidential_meeting_shows_only_cuoc_hop_over_websocket(server: ThreadServer, site: dict, engine: Engine):
    meeting = _confidential(server, site)
    with server.ws(f"/ws/units/{site['province']}?token={site['viewer']}") as outsider, \
            server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as display, \
            server.ws(f"/ws/secretariat?token={site['secretariat']['Authorization'].split(' ', 1)[1]}") as office:
        snap = recv(outsider)
        [item] = snap["data"]["next"]
        assert (item["meeting_id"], item["title"], item["start"]) == (meeting["id"], "Cuộc họp",
                                                                     meeting["start"].replace("+00:00", "Z"))
        assert [(j["title"], j["pin"], j["sip_uri"]) for j in item["join_instructions"]] == [("Cuộc họp", "", None)]
        assert recv(display)["data"]["next"][0]["join_instructions"][0]["pin"] == meeting["pin"]
        assert recv(office)["data"]["next"][0]["title"] == TITLE

        r = httpx.patch(f"{server.base}/api/v1/meetings/{meeting['id']}", headers=site["secretariat"],
                        json={"description": SECRET_TEXT + " (sửa)"})
        assert r.status_code == 200, r.text
        seen = [recv(outsider), recv(outsider)]
        assert [(m["type"], m["data"]["title"], m["data"]["confidential"]) for m in seen] == [
            ("meeting.updated", "Cuộc họp", True), ("join.instructions", "Cuộc họp", True)]
        assert seen[1]["data"]["pin"] == "" and seen[1]["data"]["endpoints"][0]["dial_string"] is None
        raw = str(seen)
        for secret in _secrets_of(meeting):
            assert secret not in raw
        inside = [recv(display), recv(display)]
        assert [(m["type"], m["data"]["title"]) for m in inside] == [("meeting.updated", TITLE),
                                                                     ("join.instructions", TITLE)]
        assert inside[1]["data"]["pin"] == meeting["pin"]
        assert [recv(office)["data"]["title"] for _ in range(2)] == [TITLE, TITLE]
    # A resume (replay of missed events) is redacted the same way.
    with server.ws(f"/ws/units/{site['province']}?token={site['viewer']}&since={snap['id']}") as again:
        replayed = [recv(again), recv(again)]
        assert replayed == seen


def test_feeds_hide_confidential_details_and_pins_outside_single_rooms(server: ThreadServer, site: dict,
                                                                        engine: Engine):
    meeting = _confidential(server, site)
    plain = _book(server, site, next_monday_local() + timedelta(days=1), title="Giao ban thường kỳ")

    def feed(scope: str, scope_id: int, **extra) -> str:
        r = httpx.post(f"{server.base}/api/v1/feeds", headers=site["secretariat"],
                       json={"scope": scope, "scope_id": scope_id, **extra})
        assert r.status_code == 201, r.text
        body = httpx.get(f"{server.base}/ical/{scope}/{scope_id}.ics", params={"token": r.json()["token"]})
        assert body.status_code == 200
        return body.text

    def summaries(text: str) -> dict[str, str]:
        return {str(e["UID"]): str(e["SUMMARY"]) for e in Calendar.from_ical(text).walk("VEVENT")}

    def described(text: str, uid: str) -> str:
        return next(str(e["DESCRIPTION"]) for e in Calendar.from_ical(text).walk("VEVENT") if str(e["UID"]) == uid)

    province = feed("province", site["province"], include_sub_units=True)
    assert summaries(province) == {meeting["uid"]: "Cuộc họp", plain["uid"]: "Giao ban thường kỳ"}
    for secret in _secrets_of(meeting):
        assert secret not in province
    hidden = described(province, meeting["uid"])
    assert "Hướng dẫn kết nối" in hidden and "Mã PIN" not in hidden and "Chuỗi quay số" not in hidden
    # Ordinary (multi-room) feeds carry the dial string, never the PIN.
    shown = described(province, plain["uid"])
    assert f"sip:{plain['conference_number']}@mcu.phutho.gov.vn" in shown and "Mã PIN" not in province

    commune = feed("unit", site["commune"])
    assert summaries(commune)[meeting["uid"]] == TITLE
    assert SECRET_TEXT in described(commune, meeting["uid"]) and "Mã PIN" not in commune

    room = feed("room", site["room"])
    assert summaries(room)[meeting["uid"]] == TITLE
    assert f"Mã PIN: {meeting['pin']}" in described(room, meeting["uid"])


def test_scheduler_notices_of_a_confidential_meeting_reach_outsiders_as_cuoc_hop(engine: Engine,
                                                                                   settings: Settings) -> None:
    with make_session(engine) as session:
        meeting, occ, chair, site = book_for_scheduler(session, settings, confidential=True)
        units = sorted({chair.unit_id, site.unit_id})
        occ = session.exec(select(Occurrence).where(Occurrence.id == occ.id)).one()
    [sent] = scheduler.run_due(engine, settings, occ.start - timedelta(minutes=60))
    with make_session(engine, write=False) as session:
        [message] = [p.message for p in events.replay(session, 0) if p.message["id"] == sent.event_id]
    assert (message["data"]["title"], message["data"]["confidential"], message["data"]["participant_unit_ids"]) == (
        "Giao ban trực tuyến", True, units)
    outsider = visibility.visible_message(visibility.Audience(), message)["data"]
    assert (outsider["title"], "participant_unit_ids" in outsider) == ("Cuộc họp", False)
    inside = visibility.visible_message(visibility.Audience.of_units({units[0]}), message)
    assert inside is message


def test_web_meeting_and_calendar_pages_show_cuoc_hop_to_outsiders(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        start = next_monday_local(weeks_ahead=2)
        meeting = make_meeting(session, chair_room=province.rooms[0], start=start, end=start + timedelta(hours=1),
                               title=TITLE, description=SECRET_TEXT, confidential=True).meeting
        meeting_id, pin = meeting.id, meeting.pin
        session.commit()
    pages = (f"/meetings/{meeting_id}", f"/calendar?view=week&date={start.date().isoformat()}", "/")
    login(client, "lanhdao")  # viewer: outside the participants' units
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert TITLE not in page.text and SECRET_TEXT not in page.text and f">{pin}<" not in page.text, path
    hidden = visibility.CONFIDENTIAL_TITLE
    assert f"<h1>{hidden} <span" in client.get(pages[0]).text and hidden in client.get(pages[1]).text
    client.post("/logout", follow_redirects=False)
    client.cookies.clear()
    login(client, "kythuat")  # operator of the participating commune
    assert TITLE in client.get(pages[0]).text and TITLE in client.get(pages[1]).text


def test_since_resume_hides_the_title_of_a_meeting_made_confidential_after_its_events(
        server: ThreadServer, site: dict, engine: Engine) -> None:
    """Regression: events recorded before a meeting was made confidential kept its title in the event
    log, and a ``since`` resume replayed them to outsiders as they were."""
    with make_session(engine, write=False) as session:
        before = events.latest_id(session)
    meeting = _book(server, site, next_monday_local(), title=TITLE, participant_room_ids=[])
    r = httpx.patch(f"{server.base}/api/v1/meetings/{meeting['id']}", headers=site["secretariat"],
                    json={"confidential": True})
    assert r.status_code == 200, r.text
    with make_session(engine, write=False) as session:
        # The resume is what is tested: the events have reached the server's hub (the fan-out hands them
        # over a moment after the commit; one arriving after the connection is a live message).
        delivered(server.config.app.state.hub, events.latest_id(session))
    expected = [("meeting.scheduled", "Cuộc họp"), ("join.instructions", "Cuộc họp"), ("meeting.updated", "Cuộc họp"),
                ("join.instructions", "Cuộc họp")]
    with server.ws(f"/ws/units/{site['province']}?token={site['viewer']}&since={before}") as outsider:
        replayed = [recv(outsider) for _ in expected]
    assert [(m["type"], m["data"]["title"]) for m in replayed] == expected
    assert [m["data"]["confidential"] for m in replayed] == [True] * 4
    assert [(m["data"]["pin"], m["data"]["sip_uri"]) for m in replayed if m["type"] == "join.instructions"] == [
        ("", None), ("", None)]
    raw = str(replayed)
    for secret in _secrets_of(meeting):
        assert secret not in raw
    # Inside the meeting (the room's display) and the secretariat still read the title on resume.
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}&since={before}") as display:
        assert [recv(display)["data"]["title"] for _ in expected] == [TITLE] * 4
    office = site["secretariat"]["Authorization"].split(" ", 1)[1]
    with server.ws(f"/ws/secretariat?token={office}&since={before}") as secretariat:
        assert [recv(secretariat)["data"]["title"] for _ in expected] == [TITLE] * 4


@pytest.mark.pure
def test_mark_as_now_marks_only_titled_unmarked_messages_of_meetings_confidential_now() -> None:
    old = {"id": 5, "type": "meeting.scheduled", "at": "2026-12-07T01:00:00Z",
           "data": {"meeting_id": 7, "title": TITLE, "room_ids": [3]}}
    now = {7: {41}}
    marked = visibility.mark_as_now(old, now)
    assert marked["data"] == {"meeting_id": 7, "title": TITLE, "room_ids": [3], "confidential": True,
                              "participant_unit_ids": [41]}
    assert visibility.visible_message(visibility.Audience.of_units({9}), marked)["data"]["title"] == "Cuộc họp"
    assert visibility.visible_message(visibility.Audience.of_units({41}), marked)["data"]["title"] == TITLE
    assert visibility.mark_as_now(old, {8: {41}}) is old  # another meeting is confidential
    status = {"id": 6, "type": "endpoint.status", "at": "2026-12-07T01:00:00Z", "data": {"meeting_id": 7}}
    assert visibility.mark_as_now(status, now) is status  # no title to hide
