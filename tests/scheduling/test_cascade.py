"""Issue 14: cascaded meetings and relays, on both backends. Two provinces (Phú Thọ "25", Hà Nội "01"),
each with its own bridge (MCU) and communes; a national secretariat (Văn phòng Chính phủ) books across
them. A bridge's ports = its sites + its legs to children + its leg to its parent (SPEC rule 2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.live.snapshot import join_for_occurrence
from confsvc.scheduling.models import Booking, Meeting, MeetingBridge, Occurrence, ResourceKind
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local
from tests.web_support import PASSWORD, csrf_of, login

H = timedelta(hours=1)


def _province(session: Session, code: str, name: str, mcu: str, *, communes: int, ports: int,
              base: int) -> dict[str, Any]:
    province = make_unit(session, code=code, name=name, division_type="tỉnh", level=UnitLevel.province)
    rooms = []
    for n in range(communes):
        commune = make_unit(session, code=f"{code}{n:03d}", name=f"Xã {name[5:]} {n + 1}", parent_id=province.id)
        room = make_room(session, commune, name=f"Điểm cầu {name[5:]} {n + 1}")
        make_endpoint(session, room, dial_address=f"sip:{code}{n:03d}@vc.example.vn")
        rooms.append(room.id)
    bridge = make_bridge(session, name=mcu, unit_id=province.id, port_capacity=ports, sip_domain=f"mcu.{code}.gov.vn",
                         h323_prefix=f"9{code}", conference_number_min=base, conference_number_max=base + 99)
    return {"id": province.id, "rooms": rooms, "bridge": bridge.id}


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    with make_session(engine) as session:
        pt = _province(session, "25", "Tỉnh Phú Thọ", "MCU Phú Thọ", communes=4, ports=10, base=2500)
        hn = _province(session, "01", "Thành phố Hà Nội", "MCU Hà Nội", communes=4, ports=10, base=100)
        national = make_user(session, Role.secretariat, username="vanphongchinhphu", password=PASSWORD)
        assert national.province_id is None
        province_secretariat = make_user(session, Role.secretariat, province_id=pt["id"], username="vanphong.phutho",
                                         password=PASSWORD)
        world = {"pt": pt, "hn": hn, "national": bearer(session, national),
                 "pt_secretariat": bearer(session, province_secretariat)}
        session.commit()
    return world


def _body(chair: int, rooms: list[int], start, **extra: Any) -> dict[str, Any]:
    return {"title": extra.pop("title", "Hội nghị trực tuyến Chính phủ với địa phương"), "chair_room_id": chair,
            "participant_room_ids": rooms, "start": start.isoformat(), "end": (start + 2 * H).isoformat(),
            "check_lead_minutes": 30, **extra}


def _ports(engine: Engine, meeting_id: int) -> dict[int, list[tuple[int, int | None]]]:
    """Bridge id → [(ports, conference number)] of the meeting's bridge bookings, by window start."""
    with make_session(engine, write=False) as session:
        rows = session.exec(select(Booking.resource_id, Booking.ports, Booking.conference_number).where(
            Booking.meeting_id == meeting_id, Booking.resource_kind == ResourceKind.bridge)
            .order_by(Booking.window_start, Booking.resource_id)).all()
    out: dict[int, list[tuple[int, int | None]]] = {}
    for bridge_id, ports, number in rows:
        out.setdefault(bridge_id, []).append((ports, number))
    return out


def test_a_two_province_meeting_books_both_bridges_with_their_legs(client: TestClient, engine: Engine,
                                                                  world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    start = next_monday_local(hour=8)
    body = _body(pt["rooms"][0], pt["rooms"][1:3] + hn["rooms"][:3], start)

    check = client.post("/api/v1/meetings/check", json=body, headers=world["national"])
    booked = client.post("/api/v1/meetings", json=body, headers=world["national"])

    assert (check.status_code, check.json()["ok"]) == (200, True)
    assert booked.status_code == 201, booked.text
    meeting = booked.json()
    assert (meeting["bridge_id"], meeting["conference_number"]) == (pt["bridge"], 2500)
    assert meeting["cascade_bridges"] == [{"bridge_id": hn["bridge"], "bridge_name": "MCU Hà Nội",
                                           "province_id": hn["id"], "parent_bridge_id": pt["bridge"],
                                           "conference_number": 100}]
    # Phú Thọ: 3 sites + 1 leg to Hà Nội; Hà Nội: 3 sites + 1 leg to Phú Thọ.
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(4, 2500)], hn["bridge"]: [(4, 100)]}
    grid = client.get("/api/v1/availability/grid", headers=world["national"],
                      params={"day": start.date().isoformat(), "room_ids": [pt["rooms"][0]]}).json()
    assert {b["name"]: b["peak"] for b in grid["bridges"]} == {"MCU Phú Thọ": 4, "MCU Hà Nội": 4}


def test_a_meeting_inside_one_province_books_one_bridge_as_before(client: TestClient, engine: Engine,
                                                                 world: dict[str, Any]):
    pt = world["pt"]
    booked = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], pt["rooms"][1:], next_monday_local()),
                         headers=world["national"])
    assert booked.status_code == 201, booked.text
    assert booked.json()["cascade_bridges"] == []
    assert _ports(engine, booked.json()["id"]) == {pt["bridge"]: [(4, 2500)]}


def test_a_shortage_on_one_bridge_is_explained_for_that_bridge(client: TestClient, engine: Engine,
                                                               world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    start = next_monday_local(hour=8)
    with make_session(engine) as session:  # Hà Nội's bridge: 10 ports, 7 of them taken by one room's meeting
        busy_room = make_room(session, make_unit(session, code="01900", name="Phường Ba Đình", parent_id=hn["id"]))
        for _ in range(7):
            make_endpoint(session, busy_room)
        session.commit()
        busy_room_id = busy_room.id
    other = client.post("/api/v1/meetings", json=_body(busy_room_id, [], start - H, title="Giao ban Hà Nội",
                                                       bridge_id=hn["bridge"]), headers=world["national"])
    assert other.status_code == 201, other.text
    body = _body(pt["rooms"][0], pt["rooms"][1:3] + hn["rooms"][:3], start)

    refused = client.post("/api/v1/meetings", json=body, headers=world["national"])

    assert refused.status_code == 409, refused.text
    [conflict] = refused.json()["conflicts"]
    assert {k: conflict[k] for k in ("resource_kind", "resource_id", "resource_name", "province_name",
                                      "port_capacity", "ports_in_use", "ports_free", "ports_requested",
                                      "meeting_id", "meeting_title")} == {
        "resource_kind": "bridge", "resource_id": hn["bridge"], "resource_name": "MCU Hà Nội",
        "province_name": "Thành phố Hà Nội", "port_capacity": 10, "ports_in_use": 7, "ports_free": 3,
        "ports_requested": 4, "meeting_id": other.json()["id"], "meeting_title": "Giao ban Hà Nội"}
    # The overlap: the other meeting's window (07:00–09:00 with its 30 min check) meets ours (07:30–10:00).
    assert (conflict["window_start_local"], conflict["window_end_local"]) == (
        (start - 30 * timedelta(minutes=1)).replace(tzinfo=None).isoformat(),
        (start + H).replace(tzinfo=None).isoformat())
    [group] = refused.json()["groups"]
    assert (group["kind"], group["bridge_name"], group["province_name"], group["ports_free"],
            group["ports_requested"]) == ("ports", "MCU Hà Nội", "Thành phố Hà Nội", 3, 4)
    check = client.post("/api/v1/meetings/check", json=body, headers=world["national"]).json()
    assert [c["resource_name"] for c in check["conflicts"]] == ["MCU Hà Nội"]
    # Two Hà Nội sites need 3 ports there: it fits.
    fits = client.post("/api/v1/meetings", json={**body, "participant_room_ids": pt["rooms"][1:3] + hn["rooms"][:2]},
                       headers=world["national"])
    assert fits.status_code == 201, fits.text
    assert _ports(engine, fits.json()["id"]) == {pt["bridge"]: [(4, 2500)], hn["bridge"]: [(3, 101)]}


def test_free_slot_search_counts_each_provinces_bridge_of_a_cascade(client: TestClient, engine: Engine,
                                                                    world: dict[str, Any]):
    """Regression: the free-slot search put every site of a cascaded meeting on one bridge, so it
    proposed a time when Phú Thọ's bridge had room for all 8 sites but Hà Nội's had too few ports for
    its own 4 sites + its leg (the booking then refused it)."""
    pt, hn = world["pt"], world["hn"]
    monday = next_monday_local(hour=8)
    rooms = pt["rooms"][1:] + hn["rooms"]
    search = {"room_ids": [pt["rooms"][0], *rooms], "duration_minutes": 120, "check_lead_minutes": 30,
              "teardown_minutes": 0, "from_date": monday.date().isoformat(), "to_date": monday.date().isoformat()}
    first = client.get("/api/v1/availability", params={**search, "count": 1}, headers=world["national"])
    assert first.status_code == 200, first.text
    [free] = first.json()
    assert free["bridge_id"] == pt["bridge"]
    start = datetime.fromisoformat(free["start_local"]).replace(tzinfo=monday.tzinfo)
    with make_session(engine) as session:  # Hà Nội's bridge: 10 ports, 6 taken over that slot: 4 free < 4 + 1
        busy_room = make_room(session, make_unit(session, code="01900", name="Phường Ba Đình", parent_id=hn["id"]))
        for _ in range(6):
            make_endpoint(session, busy_room)
        session.commit()
        busy_room_id = busy_room.id
    other = client.post("/api/v1/meetings", json=_body(busy_room_id, [], start, title="Giao ban Hà Nội",
                                                       bridge_id=hn["bridge"]), headers=world["national"])
    assert other.status_code == 201, other.text

    after = client.get("/api/v1/availability", params={**search, "count": 1}, headers=world["national"])

    [proposed] = after.json()
    # 07:30 is taken on Hà Nội's bridge until 09:30; with the 30 min check the next start would be 10:00,
    # whose 2 h straddle the lunch break (11:30–13:30): the afternoon's opening.
    assert (start.time().isoformat(), proposed["start_local"]) == (
        "07:30:00", start.replace(hour=13, minute=30, tzinfo=None).isoformat())
    body = _body(pt["rooms"][0], rooms, start)
    refused = client.post("/api/v1/meetings/check", json=body, headers=world["national"]).json()
    assert [c["resource_name"] for c in refused["conflicts"]] == ["MCU Hà Nội"]
    fits = client.post("/api/v1/meetings/check", json={**body, "start": proposed["start"], "end": proposed["end"]},
                       headers=world["national"]).json()
    assert (fits["ok"], fits["conflicts"]) == (True, [])


def test_join_instructions_give_each_site_its_own_bridges_dial_string(client: TestClient, engine: Engine,
                                                                      world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    booked = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], [hn["rooms"][0]], next_monday_local()),
                         headers=world["national"]).json()

    items = {i["room_id"]: i for i in client.get(f"/api/v1/meetings/{booked['id']}/join-instructions",
                                                 headers=world["national"]).json()["items"]}

    chair, hanoi = items[pt["rooms"][0]], items[hn["rooms"][0]]
    assert (chair["sip_uri"], chair["h323_number"], chair["conference_number"]) == (
        "sip:2500@mcu.25.gov.vn", "9252500", 2500)
    assert (hanoi["sip_uri"], hanoi["h323_number"], hanoi["conference_number"]) == (
        "sip:100@mcu.01.gov.vn", "901100", 100)
    assert hanoi["pin"] == chair["pin"] == booked["pin"]
    assert "quay số sip:100@mcu.01.gov.vn (SIP)" in hanoi["text"]
    with make_session(engine, write=False) as session:
        meeting = session.get(Meeting, booked["id"])
        occ = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)).one()
        live = {i["room_id"]: i["sip_uri"] for i in join_for_occurrence(session, meeting, occ)}
    assert live == {pt["rooms"][0]: "sip:2500@mcu.25.gov.vn", hn["rooms"][0]: "sip:100@mcu.01.gov.vn"}


def test_a_relay_reserves_the_leg_to_the_upstream_chair(client: TestClient, engine: Engine, world: dict[str, Any]):
    pt = world["pt"]
    body = _body(pt["rooms"][0], pt["rooms"][1:], next_monday_local(),
                 upstream_dial="sip:hoinghi@vpcp.gov.vn")

    booked = client.post("/api/v1/meetings", json=body, headers=world["pt_secretariat"])

    assert booked.status_code == 201, booked.text
    assert booked.json()["upstream_dial"] == "sip:hoinghi@vpcp.gov.vn"
    assert _ports(engine, booked.json()["id"]) == {pt["bridge"]: [(5, 2500)]}  # 4 communes + the upstream leg
    items = client.get(f"/api/v1/meetings/{booked.json()['id']}/join-instructions",
                       headers=world["pt_secretariat"]).json()["items"]
    assert all(i["upstream_dial"] == "sip:hoinghi@vpcp.gov.vn" for i in items)
    assert "Tiếp sóng hội nghị từ điểm cầu chủ trì: sip:hoinghi@vpcp.gov.vn" in items[0]["text"]
    bad = client.post("/api/v1/meetings", json={**body, "upstream_dial": "không phải địa chỉ"},
                      headers=world["pt_secretariat"])
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")
    long = client.post("/api/v1/meetings", json={**body, "upstream_dial": "sip:" + "a" * 300 + "@vpcp.gov.vn"},
                       headers=world["pt_secretariat"])
    assert long.status_code == 422


def test_editing_and_moving_a_cascaded_meeting_keep_the_accounting(client: TestClient, engine: Engine,
                                                                   world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    start = next_monday_local(hour=8)
    body = _body(pt["rooms"][0], [pt["rooms"][1], *hn["rooms"][:2]], start, rrule="FREQ=WEEKLY;COUNT=2")
    meeting = client.post("/api/v1/meetings", json=body, headers=world["national"]).json()
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(3, 2500), (3, 2500)], hn["bridge"]: [(3, 100), (3, 100)]}

    edited = client.patch(f"/api/v1/meetings/{meeting['id']}", headers=world["national"], json={
        "start": (start + H).isoformat(), "end": (start + 3 * H).isoformat(),
        "participant_room_ids": [pt["rooms"][1], *hn["rooms"][:3]]})
    assert edited.status_code == 200, edited.text
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(3, 2500), (3, 2500)], hn["bridge"]: [(4, 100), (4, 100)]}

    occs = client.get(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=world["national"]).json()
    moved = client.patch(f"/api/v1/meetings/{meeting['id']}/occurrences/{occs[0]['id']}", headers=world["national"],
                         json={"start": (start + 4 * H).isoformat(), "end": (start + 5 * H).isoformat()})
    assert moved.status_code == 200, moved.text
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(3, 2500), (3, 2500)], hn["bridge"]: [(4, 100), (4, 100)]}
    with make_session(engine, write=False) as session:
        legs = session.exec(select(MeetingBridge.bridge_id, MeetingBridge.parent_bridge_id)).all()
    assert legs == [(hn["bridge"], pt["bridge"])]

    # Back to one province: the leg and Hà Nội's bookings go.
    single = client.patch(f"/api/v1/meetings/{meeting['id']}", headers=world["national"],
                          json={"participant_room_ids": [pt["rooms"][1]]})
    assert single.status_code == 200, single.text
    assert single.json()["cascade_bridges"] == []
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(2, 2500), (2, 2500)]}


def test_capacity_cannot_be_lowered_below_sites_and_legs(client: TestClient, engine: Engine, world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    with make_session(engine) as session:
        admin = bearer(session, make_user(session, Role.admin))
        session.commit()
    meeting = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], hn["rooms"][:3], next_monday_local()),
                          headers=world["national"]).json()

    refused = client.patch(f"/api/v1/bridges/{hn['bridge']}", json={"port_capacity": 3}, headers=admin)
    lowered = client.patch(f"/api/v1/bridges/{hn['bridge']}", json={"port_capacity": 4}, headers=admin)

    assert refused.status_code == 409, refused.text
    [conflict] = refused.json()["conflicts"]
    assert (conflict["meeting_id"], conflict["ports_in_use"], conflict["port_capacity"]) == (meeting["id"], 4, 3)
    assert lowered.status_code == 200, lowered.text


def test_the_invite_the_feed_and_the_letter_list_each_provinces_bridge(client: TestClient, engine: Engine,
                                                                      world: dict[str, Any]):
    from confsvc.scheduling import invitation

    pt, hn = world["pt"], world["hn"]
    booked = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], [hn["rooms"][0]], next_monday_local(),
                                                        upstream_dial="sip:hoinghi@vpcp.gov.vn"),
                         headers=world["national"]).json()

    invite = client.get(f"/api/v1/meetings/{booked['id']}/invite.ics", headers=world["national"])

    import icalendar

    [event] = icalendar.Calendar.from_ical(invite.content).walk("VEVENT")
    description = str(event["DESCRIPTION"])
    assert "- Chuỗi quay số (SIP): sip:2500@mcu.25.gov.vn" in description
    assert ("- Điểm cầu thuộc MCU Hà Nội (Thành phố Hà Nội) quay số: SIP sip:100@mcu.01.gov.vn; H.323 901100 "
            "(Số hội nghị: 100)") in description
    assert "- Tiếp sóng hội nghị từ điểm cầu chủ trì: sip:hoinghi@vpcp.gov.vn" in description
    with make_session(engine, write=False) as session:
        letter = invitation.build(session, session.get(Meeting, booked["id"]), dial_mode="dial_in")
    assert letter.join_lines[:4] == ["Số hội nghị: 2500", "Thiết bị SIP quay số: sip:2500@mcu.25.gov.vn",
                                     "Thiết bị H.323 quay số: 9252500",
                                     "Điểm cầu thuộc MCU Hà Nội quay số: sip:100@mcu.01.gov.vn, 901100 "
                                     "(số hội nghị 100)"]
    assert letter.join_lines[-1] == "Tiếp sóng hội nghị từ điểm cầu chủ trì: sip:hoinghi@vpcp.gov.vn"


def test_the_web_form_books_a_relay_and_the_meeting_page_shows_it(client: TestClient, engine: Engine,
                                                                  world: dict[str, Any]):
    pt = world["pt"]
    login(client, "vanphong.phutho")
    page = client.get("/meetings/new")
    assert 'name="upstream_dial"' in page.text and "Tiếp sóng hội nghị do nơi khác chủ trì" in page.text
    start = next_monday_local(hour=14)
    form = {"csrf": csrf_of(page.text), "title": "Tiếp sóng hội nghị Chính phủ", "date": start.strftime("%d/%m/%Y"),
            "start_time": "14:00", "end_time": "16:00", "check_lead_minutes": "30", "chair_room_id": str(pt["rooms"][0]),
            "participant_room_ids": [str(r) for r in pt["rooms"][1:]], "upstream_dial": "sip:hoinghi@vpcp.gov.vn"}

    bad = client.post("/meetings/new", data={**form, "upstream_dial": "không hợp lệ"})
    booked = client.post("/meetings/new", data=form, follow_redirects=False)

    assert bad.status_code == 422 and "Tiếp sóng hội nghị do nơi khác chủ trì (địa chỉ kết nối)" in bad.text
    assert booked.status_code == 303, booked.text
    meeting_page = client.get(booked.headers["location"])
    assert "Tiếp sóng từ điểm cầu chủ trì" in meeting_page.text
    assert "<code>sip:hoinghi@vpcp.gov.vn</code>" in meeting_page.text
    meeting_id = int(booked.headers["location"].rsplit("/", 1)[1])
    assert _ports(engine, meeting_id) == {pt["bridge"]: [(5, 2500)]}


def test_the_meeting_page_lists_each_provinces_bridge(client: TestClient, world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    booked = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], [hn["rooms"][0]], next_monday_local()),
                         headers=world["national"]).json()
    login(client, "vanphongchinhphu")

    page = client.get(f"/meetings/{booked['id']}").text

    assert "Điểm cầu các tỉnh khác quay số MCU của tỉnh mình" in page
    assert ("<tr><td>MCU Hà Nội</td><td><code>sip:100@mcu.01.gov.vn</code></td><td><code>901100</code></td>"
            "<td>100</td></tr>") in page


def test_changing_the_roots_number_keeps_the_other_bridges_numbers(client: TestClient, engine: Engine,
                                                                   world: dict[str, Any]):
    """The number change rewrote every bridge booking of the meeting, Hà Nội's too, with the root's number."""
    pt, hn = world["pt"], world["hn"]
    booked = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], [hn["rooms"][0]], next_monday_local()),
                         headers=world["national"]).json()

    changed = client.post(f"/api/v1/meetings/{booked['id']}/conference-number", json={"conference_number": 2510},
                          headers=world["national"])

    assert changed.status_code == 200, changed.text
    assert _ports(engine, booked["id"]) == {pt["bridge"]: [(2, 2510)], hn["bridge"]: [(2, 100)]}


def test_a_bridge_named_for_a_province_is_used_and_must_be_of_that_province(client: TestClient, engine: Engine,
                                                                          world: dict[str, Any]):
    pt, hn = world["pt"], world["hn"]
    with make_session(engine) as session:
        second = make_bridge(session, name="MCU Hà Nội 2", unit_id=hn["id"], port_capacity=50,
                             sip_domain="mcu2.01.gov.vn", conference_number_min=300, conference_number_max=399).id
        session.commit()
    body = _body(pt["rooms"][0], hn["rooms"][:2], next_monday_local())

    wrong = client.post("/api/v1/meetings", json={**body, "province_bridges": {str(hn["id"]): pt["bridge"]}},
                        headers=world["national"])
    named = client.post("/api/v1/meetings", json={**body, "province_bridges": {str(hn["id"]): second}},
                        headers=world["national"])

    assert (wrong.status_code, wrong.json()["code"]) == (422, "bridge_not_of_province")
    assert named.status_code == 201, named.text
    assert _ports(engine, named.json()["id"]) == {pt["bridge"]: [(2, 2500)], second: [(3, 300)]}


def test_a_relay_becomes_a_meeting_chaired_here_and_frees_the_leg(client: TestClient, engine: Engine,
                                                                 world: dict[str, Any]):
    pt = world["pt"]
    meeting = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], pt["rooms"][1:2], next_monday_local(),
                                                         upstream_dial="+84243000111"),
                          headers=world["pt_secretariat"]).json()
    assert (meeting["upstream_dial"], _ports(engine, meeting["id"])) == ("+84243000111", {pt["bridge"]: [(3, 2500)]})

    edited = client.patch(f"/api/v1/meetings/{meeting['id']}", json={"upstream_dial": ""},
                          headers=world["pt_secretariat"])

    assert edited.status_code == 200, edited.text
    assert (edited.json()["upstream_dial"], edited.json()["sequence"]) == (None, meeting["sequence"] + 1)
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(2, 2500)]}


def test_racing_cascaded_bookings_for_the_last_ports_of_one_bridge_one_wins(settings, engine: Engine,
                                                                          world: dict[str, Any]):
    """SPEC rule 7 with cascades: four national meetings at once, each needing 4 of Hà Nội's 6 ports."""
    import threading
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from confsvc.endpoints.models import Bridge
    from tests.scheduling.test_scheduling_race import _serve

    pt, hn = world["pt"], world["hn"]
    with make_session(engine) as session:
        session.get(Bridge, hn["bridge"]).port_capacity = 6
        sites = []
        for n in range(4):  # a Hà Nội room with 3 endpoints per racer: 3 sites + 1 leg on Hà Nội's bridge
            room = make_room(session, make_unit(session, code=f"0180{n}", name=f"Phường Thử {n}", parent_id=hn["id"]))
            for _ in range(3):
                make_endpoint(session, room)
            sites.append(room.id)
        session.commit()
    start = next_monday_local(hour=9)
    bodies = [_body(pt["rooms"][n], [sites[n]], start, title=f"Họp liên tỉnh {n}") for n in range(4)]
    server, thread, base, sock = _serve(settings, engine)
    try:
        barrier = threading.Barrier(4)
        with httpx.Client(base_url=base, headers=world["national"], timeout=120) as http:
            def post(body: dict[str, Any]) -> httpx.Response:
                barrier.wait()
                return http.post("/api/v1/meetings", json=body)

            with ThreadPoolExecutor(4) as pool:
                responses = list(pool.map(post, bodies))
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 3}, [r.text for r in responses][:2]
    refused = [r.json()["conflicts"] for r in responses if r.status_code == 409]
    assert all(c[0]["resource_name"] == "MCU Hà Nội" and c[0]["ports_free"] == 2 for c in refused)
    with make_session(engine, write=False) as session:
        held = session.exec(select(Booking.ports).where(Booking.resource_id == hn["bridge"],
                                                        Booking.resource_kind == ResourceKind.bridge)).all()
    assert held == [4]


def test_the_web_edit_screen_sets_and_ends_a_relay(client: TestClient, engine: Engine, world: dict[str, Any]):
    """Regression: the meeting's edit screen had no relay field, so a relay booked on the web could not be
    ended or changed there (only through the API)."""
    pt = world["pt"]
    start = next_monday_local(hour=14)
    meeting = client.post("/api/v1/meetings", json=_body(pt["rooms"][0], pt["rooms"][1:2], start,
                                                         upstream_dial="sip:hoinghi@vpcp.gov.vn"),
                          headers=world["pt_secretariat"]).json()
    login(client, "vanphong.phutho")
    page = client.get(f"/meetings/{meeting['id']}/edit")
    assert page.status_code == 200, page.text
    assert 'name="upstream_dial" value="sip:hoinghi@vpcp.gov.vn"' in page.text
    form = {"csrf": csrf_of(page.text), "date": start.strftime("%d/%m/%Y"), "start_time": "14:00", "end_time": "16:00"}

    bad = client.post(f"/meetings/{meeting['id']}/edit", data={**form, "upstream_dial": "không hợp lệ"})
    ended = client.post(f"/meetings/{meeting['id']}/edit", data={**form, "upstream_dial": " "},
                        follow_redirects=False)

    assert bad.status_code == 422 and "Tiếp sóng hội nghị do nơi khác chủ trì (địa chỉ kết nối)" in bad.text
    assert ended.status_code == 303, ended.text
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(2, 2500)]}
    again = client.post(f"/meetings/{meeting['id']}/edit", data={**form, "upstream_dial": "+84243000111"},
                        follow_redirects=False)
    assert again.status_code == 303, again.text
    with make_session(engine, write=False) as session:
        assert session.get(Meeting, meeting["id"]).upstream_dial == "+84243000111"
    assert _ports(engine, meeting["id"]) == {pt["bridge"]: [(3, 2500)]}
