"""Priority and displacement (issue 14, SPEC rule 10) on both backends: equal priority is never
displaced, a higher one displaces a lower one only with the confirmation token, a wrong or stale
token is refused, the displaced occurrence is tentative with an alternative slot, and its organizer,
sites and displays are told (event, mail, audit), with no double booking left in SQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.calendar import feeds
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Bridge
from confsvc.mail import outbox as mail
from confsvc.mail.models import MailDelivery, MailMessage
from confsvc.scheduling import scheduler
from confsvc.scheduling.models import AuditEntry, Booking, Meeting, Occurrence
from confsvc.users.models import Role
from confsvc.users.principal import DISPLACE, Principal
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local

H = timedelta(hours=1)
ORGANIZER = "van-thu@phutho.gov.vn"
ROOM_MAIL = "hoi-truong@phutho.gov.vn"


def _z(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def world(engine: Engine):
    with make_session(engine) as session:
        bridge = make_bridge(session)
        unit = make_unit(session)
        rooms = [make_room(session, unit, name=f"Phòng họp {i}", contact_email=ROOM_MAIL if i == 0 else None)
                 for i in range(3)]
        endpoints = [make_endpoint(session, r) for r in rooms]
        organizer = make_user(session, Role.secretariat, email=ORGANIZER, full_name="Văn phòng Sở Nội vụ")
        chief = make_user(session, Role.secretariat, full_name="Văn phòng UBND tỉnh")
        out = {"rooms": [r.id for r in rooms], "room_names": [r.name for r in rooms],
               "endpoints": [(e.id, e.name) for e in endpoints], "bridge": (bridge.id, bridge.name),
               "organizer": organizer.id, "chief": chief.id,
               "organizer_headers": bearer(session, organizer), "headers": bearer(session, chief),
               "admin": bearer(session, make_user(session, Role.admin)),
               "operator": bearer(session, make_user(session, Role.operator, units=[unit])),
               "viewer": bearer(session, make_user(session, Role.viewer)),
               "requester": bearer(session, make_user(session, Role.requester, units=[unit]))}
        session.commit()
    return out


def _body(room_id: int, start, end, **kw):
    return {"title": kw.pop("title", "Họp"), "chair_room_id": room_id, "start": start.isoformat(),
            "end": end.isoformat(), "check_lead_minutes": 0, **kw}


def _routine(client: TestClient, world, t) -> tuple[int, int]:
    booked = client.post("/api/v1/meetings", headers=world["organizer_headers"],
                         json=_body(world["rooms"][0], t, t + H, title="Giao ban Sở Nội vụ"))
    assert booked.status_code == 201, booked.text
    occ = client.get(f"/api/v1/meetings/{booked.json()['id']}/occurrences", headers=world["headers"]).json()[0]
    return booked.json()["id"], occ["id"]


def _double_bookings(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.resource_kind = b.resource_kind "
            "AND a.resource_id = b.resource_id AND a.id < b.id AND a.resource_kind IN ('endpoint', 'room') "
            "AND a.window_start < b.window_end AND b.window_start < a.window_end").scalar_one()


def test_equal_priority_is_never_displaced(client: TestClient, world):
    t = next_monday_local(hour=8)
    client.post("/api/v1/meetings", headers=world["organizer_headers"],
                json=_body(world["rooms"][0], t, t + H, title="Họp cấp tỉnh", priority=1))

    refused = client.post("/api/v1/meetings", headers=world["headers"],
                          json=_body(world["rooms"][0], t, t + H, title="Họp khác", priority=1))
    dry = client.post("/api/v1/meetings/check", headers=world["headers"],
                      json=_body(world["rooms"][0], t, t + H, priority=1)).json()

    assert (refused.status_code, refused.json()["code"]) == (409, "booking_conflict")
    assert "displaceable" not in refused.json()
    assert (dry["ok"], dry["displaceable"], dry["displacement_token"]) == (False, [], None)


def test_higher_priority_asks_for_confirmation_listing_who_is_displaced(client: TestClient, world):
    t = next_monday_local(hour=8)
    meeting_id, occ_id = _routine(client, world, t)
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2)

    asked = client.post("/api/v1/meetings", headers=world["headers"], json=body)
    dry = client.post("/api/v1/meetings/check", headers=world["headers"], json=body).json()

    assert asked.status_code == 409
    answer = asked.json()
    assert answer["code"] == "displacement_required"
    assert answer["displaceable"] == [{
        "meeting_id": meeting_id, "occurrence_id": occ_id, "title": "Giao ban Sở Nội vụ", "priority": 0,
        "priority_label": "Thường xuyên", "start": _z(t), "end": _z(t + H),
        "organizer_user_id": world["organizer"], "organizer_name": "Văn phòng Sở Nội vụ",
        "rooms": [{"id": world["rooms"][0], "name": world["room_names"][0]}],
        "endpoints": [{"id": world["endpoints"][0][0], "name": world["endpoints"][0][1]}]}]
    assert len(answer["displacement_token"]) == 64
    # The dry run reports the same list and token; nothing was written.
    assert (dry["ok"], dry["displaceable"], dry["displacement_token"]) == (
        False, answer["displaceable"], answer["displacement_token"])
    assert len(client.get("/api/v1/meetings", headers=world["headers"]).json()["items"]) == 1


def test_wrong_missing_or_stale_token_is_refused(client: TestClient, world, engine: Engine):
    t = next_monday_local(hour=8)
    meeting_id, occ_id = _routine(client, world, t)
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2)
    token = client.post("/api/v1/meetings", headers=world["headers"], json=body).json()["displacement_token"]

    wrong = client.post("/api/v1/meetings", headers=world["headers"],
                        json={**body, "displace": True, "displacement_token": "0" * 64})
    missing = client.post("/api/v1/meetings", headers=world["headers"], json={**body, "displace": True})
    other_user = client.post("/api/v1/meetings", headers=world["admin"],
                             json={**body, "displace": True, "displacement_token": token})
    # The routine meeting moves by 15 minutes (still in the way): the list changed, the token is stale.
    moved = client.patch(f"/api/v1/meetings/{meeting_id}/occurrences/{occ_id}", headers=world["headers"],
                         json={"start": (t + timedelta(minutes=15)).isoformat(),
                               "end": (t + timedelta(minutes=75)).isoformat()})
    assert moved.status_code == 200, moved.text
    stale = client.post("/api/v1/meetings", headers=world["headers"],
                        json={**body, "displace": True, "displacement_token": token})

    for refused in (wrong, missing, other_user, stale):
        assert (refused.status_code, refused.json()["code"]) == (409, "displacement_token_mismatch")
    assert stale.json()["displaceable"][0]["start"] == _z(t + timedelta(minutes=15))
    assert stale.json()["displacement_token"] != token
    with make_session(engine, write=False) as session:
        assert session.get(Occurrence, occ_id).tentative is False
        assert len(session.exec(select(Meeting)).all()) == 1


def test_displaced_occurrence_is_tentative_with_alternative_event_mail_and_audit(
        client: TestClient, world, engine: Engine, settings: Settings):
    t = next_monday_local(hour=8)
    meeting_id, occ_id = _routine(client, world, t)
    with make_session(engine, write=False) as session:
        last_event = events.latest_id(session)
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2,
                 participant_room_ids=[world["rooms"][1]])
    token = client.post("/api/v1/meetings", headers=world["headers"], json=body).json()["displacement_token"]

    booked = client.post("/api/v1/meetings", headers=world["headers"],
                         json={**body, "displace": True, "displacement_token": token})

    assert booked.status_code == 201, booked.text
    new_id = booked.json()["id"]
    assert (booked.json()["priority"], booked.json()["priority_label"]) == (2, "Phiên họp Chính phủ/Đảng")
    # Nearest free slot: same hour, same room, from 08:00 on a 15-minute grid: 09:00 (the new meeting ends then).
    occ = client.get(f"/api/v1/meetings/{meeting_id}/occurrences", headers=world["headers"]).json()[0]
    assert (occ["status"], occ["tentative"], occ["displaced_by_meeting_id"], occ["alternative_start"],
            occ["alternative_end"]) == ("scheduled", True, new_id, _z(t + H), _z(t + 2 * H))
    with make_session(engine, write=False) as session:
        assert session.exec(select(Booking).where(Booking.occurrence_id == occ_id)).all() == []
        assert session.get(Meeting, meeting_id).sequence == 1
        [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "occurrence.displaced")).all()
        assert (entry.user_id, entry.meeting_id, entry.occurrence_id) == (world["chief"], meeting_id, occ_id)
        assert entry.details == {
            "by_meeting_id": new_id, "by_priority": 2, "priority": 0, "start": t.astimezone(UTC).isoformat(),
            "end": (t + H).astimezone(UTC).isoformat(), "alternative_start": (t + H).astimezone(UTC).isoformat(),
            "alternative_end": (t + 2 * H).astimezone(UTC).isoformat(), "rooms": [world["room_names"][0]],
            "request_id": entry.details["request_id"]}
        [event] = session.exec(select(events.Event).where(events.Event.id > last_event,
                                                          events.Event.type == "meeting.updated")).all()
        assert event.data == {
            "meeting_id": meeting_id, "scope": "occurrence", "occurrence_id": occ_id, "occurrence_ids": [occ_id],
            "title": "Giao ban Sở Nội vụ", "start": _z(t), "end": _z(t + H), "chair_room_id": world["rooms"][0],
            "room_ids": [world["rooms"][0]], "sequence": 1, "status": "tentative",
            "displaced": {"by_meeting_id": new_id, "by_priority": 2, "alternative_start": _z(t + H),
                          "alternative_end": _z(t + 2 * H)}}
        assert event.room_ids == [world["rooms"][0]]
        invite = feeds.invite(session, settings, session.get(Meeting, meeting_id), base_url="http://x",
                              occurrence_id=occ_id).body.decode()
        assert "STATUS:TENTATIVE" in invite and "SEQUENCE:1" in invite
    assert _double_bookings(engine) == 0

    mail_settings = settings.model_copy(update={"smtp_host": "127.0.0.1"})
    mail.queue_pending(engine, mail_settings, now=utc_now())
    with make_session(engine, write=False) as session:
        [message] = session.exec(select(MailMessage).where(MailMessage.meeting_id == meeting_id,
                                                           MailMessage.method == "REQUEST")
                                 .order_by(MailMessage.id.desc()).limit(1)).all()
        recipients = sorted(d.recipient for d in session.exec(
            select(MailDelivery).where(MailDelivery.message_id == message.id)).all())
    local = t.strftime("%d/%m/%Y")
    assert message.subject == f"Buổi họp tạm hoãn: Giao ban Sở Nội vụ – Thứ Hai, {local} 08:00"
    assert ("Khung giờ trống gần nhất đề xuất: Thứ Hai, " + local + " 09:00 – 10:00") in message.body_text
    assert "STATUS:TENTATIVE" in message.ics
    assert recipients == [ROOM_MAIL, ORGANIZER]


def test_moving_a_displaced_occurrence_books_it_again(client: TestClient, world, engine: Engine):
    t = next_monday_local(hour=8)
    meeting_id, occ_id = _routine(client, world, t)
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2)
    token = client.post("/api/v1/meetings", headers=world["headers"], json=body).json()["displacement_token"]
    client.post("/api/v1/meetings", headers=world["headers"], json={**body, "displace": True,
                                                                     "displacement_token": token})
    occ = client.get(f"/api/v1/meetings/{meeting_id}/occurrences", headers=world["headers"]).json()[0]

    moved = client.patch(f"/api/v1/meetings/{meeting_id}/occurrences/{occ_id}", headers=world["headers"],
                         json={"start": occ["alternative_start"], "end": occ["alternative_end"]})

    assert moved.status_code == 200, moved.text
    assert (moved.json()["tentative"], moved.json()["alternative_start"]) == (False, None)
    with make_session(engine, write=False) as session:
        kinds = sorted(b.resource_kind.value for b in session.exec(
            select(Booking).where(Booking.occurrence_id == occ_id)).all())
    assert kinds == ["bridge", "endpoint", "room"]
    assert _double_bookings(engine) == 0


def test_series_edit_leaves_a_displaced_occurrence_unbooked(client: TestClient, world, engine: Engine):
    t = next_monday_local(hour=8)
    series = client.post("/api/v1/meetings", headers=world["organizer_headers"],
                         json=_body(world["rooms"][0], t, t + H, title="Giao ban tuần", rrule="FREQ=WEEKLY;COUNT=3"))
    first = client.get(f"/api/v1/meetings/{series.json()['id']}/occurrences", headers=world["headers"]).json()[0]
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2)
    token = client.post("/api/v1/meetings", headers=world["headers"], json=body).json()["displacement_token"]
    assert client.post("/api/v1/meetings", headers=world["headers"],
                       json={**body, "displace": True, "displacement_token": token}).status_code == 201

    edited = client.patch(f"/api/v1/meetings/{series.json()['id']}", headers=world["headers"],
                          json={"title": "Giao ban tuần (sửa)", "priority": 1})

    assert edited.status_code == 200, edited.text
    assert edited.json()["priority"] == 1
    with make_session(engine, write=False) as session:
        assert session.exec(select(Booking).where(Booking.occurrence_id == first["id"])).all() == []
        assert session.get(Occurrence, first["id"]).tentative is True
    assert _double_bookings(engine) == 0


def test_only_admin_and_secretariat_may_displace(client: TestClient, world):
    assert [r.value for r in DISPLACE.roles] == ["admin", "secretariat"]
    for role in Role:
        assert Principal(1, "u", role, None).can_displace is (role in (Role.admin, Role.secretariat))
    t = next_monday_local(hour=8)
    _routine(client, world, t)
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2)

    by_operator = client.post("/api/v1/meetings", headers=world["operator"], json=body)
    by_viewer = client.post("/api/v1/meetings", headers=world["viewer"], json=body)
    requested = client.post("/api/v1/requests", headers=world["requester"], json=body)
    dry_by_requester = client.post("/api/v1/meetings/check", headers=world["requester"], json=body).json()

    assert (by_operator.status_code, by_operator.json()["code"]) == (403, "forbidden_role")
    assert (by_viewer.status_code, by_viewer.json()["code"]) == (403, "forbidden_role")
    assert (requested.status_code, requested.json()["code"]) == (409, "booking_conflict")
    assert (dry_by_requester["displaceable"], dry_by_requester["displacement_token"]) == ([], None)


def test_displaced_occurrence_gets_no_reminder_while_its_replacement_does(client: TestClient, world,
                                                                         engine: Engine, settings: Settings):
    t = next_monday_local(hour=8)
    _meeting_id, occ_id = _routine(client, world, t)
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2)
    token = client.post("/api/v1/meetings", headers=world["headers"], json=body).json()["displacement_token"]
    new_id = client.post("/api/v1/meetings", headers=world["headers"],
                         json={**body, "displace": True, "displacement_token": token}).json()["id"]
    new_occ = client.get(f"/api/v1/meetings/{new_id}/occurrences", headers=world["headers"]).json()[0]["id"]

    sent = scheduler.run_due(engine, settings, now=t.astimezone(UTC) - timedelta(minutes=5))

    assert {s.occurrence_id for s in sent} == {new_occ}
    assert occ_id not in {s.occurrence_id for s in sent}


def test_bridge_still_short_after_displacement_refuses_and_displaces_nothing(client: TestClient, world,
                                                                             engine: Engine):
    """Only rooms and endpoints displace: a 2-port MCU still full (an equal-priority meeting holds a port)
    once the routine meeting is freed refuses as usual, and the routine meeting keeps its bookings."""
    with make_session(engine) as session:
        session.get(Bridge, world["bridge"][0]).port_capacity = 2
        session.commit()
    t = next_monday_local(hour=8)
    _meeting_id, occ_id = _routine(client, world, t)
    held = client.post("/api/v1/meetings", headers=world["headers"],
                       json=_body(world["rooms"][1], t, t + H, title="Họp Chính phủ khác", priority=2))
    assert held.status_code == 201, held.text
    body = _body(world["rooms"][0], t, t + H, title="Phiên họp Chính phủ", priority=2,
                 participant_room_ids=[world["rooms"][2]])
    asked = client.post("/api/v1/meetings", headers=world["headers"], json=body).json()
    assert (asked["code"], [d["occurrence_id"] for d in asked["displaceable"]]) == ("displacement_required", [occ_id])

    refused = client.post("/api/v1/meetings", headers=world["headers"],
                          json={**body, "displace": True, "displacement_token": asked["displacement_token"]})

    assert (refused.status_code, refused.json()["code"]) == (409, "booking_conflict")
    assert [(c["resource_kind"], c["ports_in_use"], c["port_capacity"]) for c in refused.json()["conflicts"]] == [
        ("bridge", 1, 2)]
    with make_session(engine, write=False) as session:
        assert session.get(Occurrence, occ_id).tentative is False
        assert len(session.exec(select(Booking).where(Booking.occurrence_id == occ_id)).all()) == 3
