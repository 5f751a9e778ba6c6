"""Booking engine regressions (issues 11, 12, 16) on both backends: conference numbers per occurrence,
refusals naming the meeting and occurrence they collide with, port shortages where they happen,
grouped conflicts, a bridge's capacity, a meeting's PIN and number."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.calendar import feeds
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.live.snapshot import join_for_occurrence
from confsvc.scheduling.models import Booking, Meeting, Occurrence, ResourceKind
from confsvc.users.models import Role
from tests.factories import (
    bearer,
    make_bridge,
    make_endpoint,
    make_room,
    make_user,
    next_monday_local,
)

H, M = timedelta(hours=1), timedelta(minutes=1)


def _rooms(engine: Engine, n: int, **bridge):
    with make_session(engine) as session:
        b = make_bridge(session, **bridge)
        rooms = [make_room(session) for _ in range(n)]
        for r in rooms:
            make_endpoint(session, r)
        headers = bearer(session, make_user(session, Role.secretariat))
        ids = [r.id for r in rooms]
        bridge_id, bridge_name = b.id, b.name
        session.commit()
    return ids, headers, bridge_id, bridge_name


def _book(client: TestClient, headers, room_id: int, start, end, **kw):
    body = {"title": kw.pop("title", f"Họp phòng {room_id}"), "chair_room_id": room_id, "start": start.isoformat(),
            "end": end.isoformat(), "check_lead_minutes": kw.pop("check_lead_minutes", 0), **kw}
    return client.post("/api/v1/meetings", headers=headers, json=body)


def test_moving_occurrence_does_not_fail_on_shared_conference_number(client: TestClient, engine: Engine,
                                                                      settings: Settings):
    """Issue 12 defect 1: A (10:00–11:00) and the weekly series B (08:00–09:00) both hold number 1000;
    moving B's first occurrence to 10:00 used to be refused ("conference number in use", no meeting)."""
    (room_a, room_b), headers, _bridge_id, _name = _rooms(engine, 2)
    t = next_monday_local(hour=10)
    a = _book(client, headers, room_a, t, t + H).json()
    b = _book(client, headers, room_b, t - 2 * H, t - H, rrule="FREQ=WEEKLY;COUNT=3").json()
    assert (a["conference_number"], b["conference_number"]) == (1000, 1000)
    occs = client.get(f"/api/v1/meetings/{b['id']}/occurrences", headers=headers).json()

    moved = client.patch(f"/api/v1/meetings/{b['id']}/occurrences/{occs[0]['id']}", headers=headers,
                         json={"start": t.isoformat(), "end": (t + H).isoformat()})

    assert moved.status_code == 200, moved.text
    assert (moved.json()["start"], moved.json()["conference_number"]) == (
        t.astimezone(UTC).isoformat().replace("+00:00", "Z"), 1001)
    after = client.get(f"/api/v1/meetings/{b['id']}/occurrences", headers=headers).json()
    assert [o["conference_number"] for o in after] == [1001, 1000, 1000]
    with make_session(engine, write=False) as session:
        numbers = session.exec(select(Booking.occurrence_id, Booking.conference_number).where(
            Booking.meeting_id == b["id"], Booking.resource_kind == ResourceKind.bridge)
            .order_by(Booking.window_start)).all()
        assert numbers == [(occs[0]["id"], 1001), (occs[1]["id"], 1000), (occs[2]["id"], 1000)]
        meeting = session.get(Meeting, b["id"])
        occ = session.get(Occurrence, occs[0]["id"])
        assert meeting.conference_number == 1000 and occ.conference_number == 1001
        # Join instructions (live displays), the invite and the feed show the occurrence's own number.
        [instructions] = join_for_occurrence(session, meeting, occ)
        assert (instructions["conference_number"], instructions["sip_uri"]) == (1001, instructions["sip_uri"])
        assert instructions["sip_uri"].startswith("sip:1001@")
        one = feeds.invite(session, settings, meeting, base_url="http://x", occurrence_id=occ.id).body.decode()
        assert "Số hội nghị: 1001" in one.replace("\r\n ", "") and "Số hội nghị: 1000" not in one.replace("\r\n ", "")
        series = feeds.invite(session, settings, meeting, base_url="http://x").body.decode().replace("\r\n ", "")
        assert series.count("Số hội nghị: 1001") == 1 and series.count("Số hội nghị: 1000") == 1


def test_no_free_conference_number_refusal_names_the_meetings_holding_them(client: TestClient, engine: Engine):
    """SPEC rule 8: "no free conference number" used to name no meeting and no occurrence."""
    rooms, headers, bridge_id, bridge_name = _rooms(engine, 3, conference_number_min=500, conference_number_max=501)
    t = next_monday_local()
    first = _book(client, headers, rooms[0], t, t + H, title="Giao ban A").json()
    second = _book(client, headers, rooms[1], t + 30 * M, t + 2 * H, title="Giao ban B").json()

    refused = _book(client, headers, rooms[2], t + 45 * M, t + 90 * M, title="Họp C")

    assert refused.status_code == 409
    body = refused.json()
    occ = {m["id"]: client.get(f"/api/v1/meetings/{m['id']}/occurrences", headers=headers).json()[0]["id"]
           for m in (first, second)}
    assert [(c["resource_kind"], c["resource_id"], c["reason"], c["meeting_id"], c["occurrence_id"],
             c["meeting_title"]) for c in body["conflicts"]] == [
        ("bridge", bridge_id, "no free conference number", first["id"], occ[first["id"]], "Giao ban A"),
        ("bridge", bridge_id, "no free conference number", second["id"], occ[second["id"]], "Giao ban B")]
    assert [(g["kind"], g["bridge_name"], [h["meeting_id"] for h in g["holders"]]) for g in body["groups"]] == [
        ("number", bridge_name, [first["id"], second["id"]])]


def test_conflict_groups_name_the_other_meetings_own_times_and_check(client: TestClient, engine: Engine):
    """Issue 13 via issue 11: the 409 groups conflicts by the other occurrence, with the count of rooms,
    its own start–end (not the overlap) and the start of its technical check, local times."""
    rooms, headers, _bridge_id, _name = _rooms(engine, 4)
    t = next_monday_local()  # 08:00 local
    other = _book(client, headers, rooms[0], t, t + 150 * M, title="Giao ban tháng 12", check_lead_minutes=60,
                  participant_room_ids=rooms[1:3]).json()
    occ_id = client.get(f"/api/v1/meetings/{other['id']}/occurrences", headers=headers).json()[0]["id"]

    refused = _book(client, headers, rooms[3], t + 2 * H, t + 3 * H, participant_room_ids=rooms[:3])

    assert refused.status_code == 409
    [group] = refused.json()["groups"]
    day = t.date().isoformat()
    assert {k: group[k] for k in ("kind", "meeting_id", "meeting_title", "occurrence_id", "room_count",
                                  "start_local", "end_local", "check_start_local")} == {
        "kind": "meeting", "meeting_id": other["id"], "meeting_title": "Giao ban tháng 12", "occurrence_id": occ_id,
        "room_count": 3, "start_local": f"{day}T08:00:00", "end_local": f"{day}T10:30:00",
        "check_start_local": f"{day}T07:00:00"}
    assert [r["id"] for r in group["rooms"]] == rooms[:3]
    assert (group["window_start_local"], group["window_end_local"]) == (f"{day}T10:00:00", f"{day}T10:30:00")
    # The per-resource list keeps its fields: one room and one endpoint per site.
    assert sorted((c["resource_kind"], c["resource_id"]) for c in refused.json()["conflicts"]
                  if c["resource_kind"] == "room") == [("room", r) for r in rooms[:3]]


def test_bridge_conflict_names_only_the_interval_where_ports_run_out(client: TestClient, engine: Engine):
    """Issue 12 defect 5: 4 ports; M1, M2 08:00–12:00, M3 08:00–09:00, M4 09:00–10:00 (1 port each, lead 15);
    N 08:30–09:30 (lead 15) used to list four overlap windows; the answer is 08:45–09:00, peak 4 of 4."""
    rooms, headers, bridge_id, _name = _rooms(engine, 5, port_capacity=4)
    t = next_monday_local()
    spans = [(t, t + 4 * H), (t, t + 4 * H), (t, t + H), (t + H, t + 2 * H)]
    held = [_book(client, headers, rooms[i], s, e, title=f"M{i + 1}", check_lead_minutes=15).json()
            for i, (s, e) in enumerate(spans)]

    refused = _book(client, headers, rooms[4], t + 30 * M, t + 90 * M, title="N", check_lead_minutes=15)

    assert refused.status_code == 409, refused.text
    body = refused.json()
    day = t.date().isoformat()
    assert {(c["resource_kind"], c["resource_id"], c["window_start_local"], c["window_end_local"],
             c["ports_in_use"], c["port_capacity"], c["ports_requested"]) for c in body["conflicts"]} == {
        ("bridge", bridge_id, f"{day}T08:45:00", f"{day}T09:00:00", 4, 4, 1)}
    assert sorted(c["meeting_id"] for c in body["conflicts"]) == sorted(m["id"] for m in held)
    [group] = body["groups"]
    assert (group["kind"], group["ports_in_use"], group["port_capacity"], group["ports_requested"],
            sorted(h["meeting_title"] for h in group["holders"])) == ("ports", 4, 4, 1, ["M1", "M2", "M3", "M4"])


EDITORS = 8


def test_concurrent_edits_of_one_meeting_do_not_conflict_with_itself(settings: Settings, engine: Engine):
    """Issue 12 defect 2: concurrent PATCHes of one meeting got 409 naming the meeting's own room on
    PostgreSQL. Edits of one meeting are serialised: 8 threads over HTTP, all 200, nothing lost."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.scheduling.test_scheduling_race import _serve

    rooms, headers, _bridge_id, _name = _rooms(engine, 3)
    t = next_monday_local()
    with make_session(engine) as session:
        from confsvc.users.models import User
        from tests.factories import make_meeting
        user = session.exec(select(User).where(User.role == Role.secretariat)).first()
        from confsvc.endpoints.models import Room
        booked = make_meeting(session, chair_room=session.get(Room, rooms[0]), rooms=[session.get(Room, rooms[1])],
                              start=t, end=t + H, user=user, settings=settings, rrule="FREQ=WEEKLY;COUNT=4")
        meeting_id = booked.meeting.id
        session.commit()
    server, thread, base, sock = _serve(settings, engine)
    try:
        barrier = threading.Barrier(EDITORS)
        with httpx.Client(base_url=base, headers=headers, timeout=120,
                          limits=httpx.Limits(max_connections=EDITORS)) as client:
            def patch(i: int) -> httpx.Response:
                barrier.wait()
                return client.patch(f"/api/v1/meetings/{meeting_id}", json={"title": f"Giao ban lần {i}"})

            with ThreadPoolExecutor(EDITORS) as pool:
                responses = list(pool.map(patch, range(EDITORS)))
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert [r.status_code for r in responses] == [200] * EDITORS, [r.text for r in responses if r.status_code != 200]
    with make_session(engine, write=False) as session:
        meeting = session.get(Meeting, meeting_id)
        assert meeting.title in {f"Giao ban lần {i}" for i in range(EDITORS)}
        # 4 occurrences × (1 endpoint of each of the 2 rooms + 2 rooms + the bridge)
        assert len(session.exec(select(Booking.id).where(Booking.meeting_id == meeting_id)).all()) == 4 * 5


def test_bridge_capacity_cannot_be_lowered_below_what_is_booked(client: TestClient, engine: Engine):
    """Issue 16 defect 8: PATCH port_capacity below the booked peak answered 200. Now 409 listing the
    interval where the peak exceeds the new capacity and the occurrences holding ports there."""
    rooms, headers, bridge_id, bridge_name = _rooms(engine, 4, port_capacity=10)
    with make_session(engine) as session:
        admin = bearer(session, make_user(session, Role.admin))
        session.commit()
    t = next_monday_local()
    a = _book(client, headers, rooms[0], t, t + 2 * H, title="A", participant_room_ids=[rooms[1]]).json()  # 2 ports
    b = _book(client, headers, rooms[2], t + H, t + 3 * H, title="B").json()  # 1 port
    _book(client, headers, rooms[3], t + 4 * H, t + 5 * H, title="C")  # 1 port, alone

    refused = client.patch(f"/api/v1/bridges/{bridge_id}", headers=admin, json={"port_capacity": 2})

    assert refused.status_code == 409, refused.text
    body = refused.json()
    day = t.date().isoformat()
    assert (body["code"], sorted((c["meeting_id"], c["window_start_local"], c["window_end_local"], c["ports_in_use"],
                                  c["port_capacity"]) for c in body["conflicts"])) == (
        "booking_conflict", sorted([(a["id"], f"{day}T09:00:00", f"{day}T10:00:00", 3, 2),
                                    (b["id"], f"{day}T09:00:00", f"{day}T10:00:00", 3, 2)]))
    assert client.get(f"/api/v1/bridges/{bridge_id}", headers=admin).json()["port_capacity"] == 10
    # Down to the peak is fine; a secretariat may not edit bridges at all.
    assert client.patch(f"/api/v1/bridges/{bridge_id}", headers=headers, json={"port_capacity": 3}).status_code == 403
    ok = client.patch(f"/api/v1/bridges/{bridge_id}", headers=admin, json={"port_capacity": 3, "name": bridge_name})
    assert (ok.status_code, ok.json()["port_capacity"]) == (200, 3)


def test_pin_can_be_set_and_regenerated_and_invites_follow(client: TestClient, engine: Engine, settings: Settings):
    """Issue 12 operation: there was no way to set or regenerate a meeting's PIN."""
    rooms, headers, _bridge_id, _name = _rooms(engine, 1)
    t = next_monday_local()
    m = _book(client, headers, rooms[0], t, t + H).json()

    set_ = client.post(f"/api/v1/meetings/{m['id']}/pin", headers=headers, json={"pin": "246810"})
    assert (set_.status_code, set_.json()["pin"], set_.json()["sequence"]) == (200, "246810", m["sequence"] + 1)
    new = client.post(f"/api/v1/meetings/{m['id']}/pin", headers=headers)
    assert new.status_code == 200 and new.json()["pin"] != "246810" and len(new.json()["pin"]) == settings.pin_digits
    assert client.post(f"/api/v1/meetings/{m['id']}/pin", headers=headers, json={"pin": "12a4"}).status_code == 422
    with make_session(engine, write=False) as session:
        from confsvc.events import Event
        joins = session.exec(select(Event).where(Event.type == "join.instructions").order_by(Event.id)).all()
        assert [e.data["pin"] for e in joins][-2:] == ["246810", new.json()["pin"]]
    invite = client.get(f"/api/v1/meetings/{m['id']}/invite.ics", headers=headers).text.replace("\r\n ", "")
    assert f"Mã PIN: {new.json()['pin']}" in invite and f"SEQUENCE:{m['sequence'] + 2}" in invite


def test_conference_number_set_is_checked_against_overlapping_occurrences(client: TestClient, engine: Engine):
    """Issue 12 operation: set or regenerate a meeting's conference number, checked on the bridge."""
    rooms, headers, _bridge_id, _name = _rooms(engine, 3)
    t = next_monday_local()
    a = _book(client, headers, rooms[0], t, t + H, title="A").json()
    b = _book(client, headers, rooms[1], t + 30 * M, t + 2 * H, title="B", rrule="FREQ=WEEKLY;COUNT=2").json()
    assert (a["conference_number"], b["conference_number"]) == (1000, 1001)
    a_occ = client.get(f"/api/v1/meetings/{a['id']}/occurrences", headers=headers).json()[0]["id"]

    taken = client.post(f"/api/v1/meetings/{b['id']}/conference-number", headers=headers,
                        json={"conference_number": 1000})
    assert taken.status_code == 409
    assert [(c["meeting_id"], c["occurrence_id"], c["reason"]) for c in taken.json()["conflicts"]] == [
        (a["id"], a_occ, "conference number in use")]
    out = client.post(f"/api/v1/meetings/{b['id']}/conference-number", headers=headers,
                      json={"conference_number": 5})
    assert (out.status_code, out.json()["code"]) == (422, "number_out_of_range")

    chosen = client.post(f"/api/v1/meetings/{b['id']}/conference-number", headers=headers,
                         json={"conference_number": 1500})
    assert (chosen.status_code, chosen.json()["conference_number"], chosen.json()["sequence"]) == (200, 1500, 1)
    regenerated = client.post(f"/api/v1/meetings/{b['id']}/conference-number", headers=headers)
    assert (regenerated.status_code, regenerated.json()["conference_number"]) == (200, 1001)  # lowest free ≠ 1500
    with make_session(engine, write=False) as session:
        assert session.exec(select(Booking.conference_number).where(
            Booking.meeting_id == b["id"], Booking.resource_kind == ResourceKind.bridge)).all() == [1001, 1001]
    invite = client.get(f"/api/v1/meetings/{b['id']}/invite.ics", headers=headers).text.replace("\r\n ", "")
    assert "Số hội nghị: 1001" in invite and "sip:1001@" in invite


@pytest.mark.postgresql_only
def test_refusal_and_other_rooms_booking_do_not_wait_for_a_held_lock(engine: Engine, settings: Settings,
                                                                     backend: str):
    """Issue 16 "Throughput under contention": every booking took its bridge's row lock first, even a
    refusal, and held it to the commit. Now a refusal takes no lock, and a booking takes the bridge
    last: while another transaction holds room A's lock, booking room B goes through; while another
    holds the bridge, a refused booking answers at once. ``lock_timeout`` turns a wait into an error."""
    import sqlalchemy as sa

    from confsvc.scheduling import repository
    from confsvc.scheduling.errors import BookingConflict
    from tests.factories import make_meeting

    with make_session(engine) as session:
        bridge = make_bridge(session)
        room_a, room_b, room_c = (make_room(session) for _ in range(3))
        for r in (room_a, room_b, room_c):
            make_endpoint(session, r)
        t = next_monday_local()
        make_meeting(session, chair_room=room_a, start=t, end=t + H, settings=settings)
        ids = (bridge.id, room_a.id, room_b.id, room_c.id)
        session.commit()
    bridge_id, a_id, b_id, c_id = ids
    from confsvc.endpoints.models import Room

    with make_session(engine) as holder, make_session(engine) as booker:
        repository.lock_rooms(holder, [a_id])  # someone is booking room A
        booker.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        booked = make_meeting(booker, chair_room=booker.get(Room, b_id), start=t, end=t + H, settings=settings)
        assert (booked.meeting.bridge_id, booked.meeting.conference_number) == (bridge_id, 1001)
        booker.rollback()
        holder.rollback()

    with make_session(engine) as holder, make_session(engine) as booker:
        repository.lock_bridge(holder, bridge_id)  # someone is counting the bridge's ports
        booker.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        with pytest.raises(BookingConflict) as refused:
            make_meeting(booker, chair_room=booker.get(Room, c_id), rooms=[booker.get(Room, a_id)], start=t,
                         end=t + H, settings=settings)
        assert {(c.resource_kind, c.resource_id) for c in refused.value.conflicts} == {
            ("room", a_id), ("endpoint", next(c.resource_id for c in refused.value.conflicts
                                              if c.resource_kind == "endpoint"))}
        booker.rollback()
        holder.rollback()
