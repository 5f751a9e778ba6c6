"""Live-channel events recorded by scheduling (meeting.*) and live (join.instructions), join
instructions (pure and over HTTP), and room display tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Protocol
from confsvc.scheduling import join
from confsvc.live.models import DisplayToken
from confsvc.scheduling import cancellation, editing, reading
from confsvc.scheduling.models import Occurrence
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.schemas import MeetingUpdate
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import (bearer, make_bridge, make_endpoint, make_meeting, make_room, make_unit, make_user,
                             next_monday_local)

SETTINGS = Settings(secret_key="x" * 40)


def z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- pure

@pytest.mark.pure
def test_dial_strings_by_protocol() -> None:
    details = join.JoinDetails(conference_number=1234, sip_domain="mcu.phutho.gov.vn", h323_prefix="0210", pin="4321")
    assert details.dial_string("sip") == "sip:1234@mcu.phutho.gov.vn"
    assert details.dial_string("h323") == "02101234"
    assert join.JoinDetails(conference_number=None, sip_domain="x").dial_string("sip") is None
    assert join.sip_uri(1234, None) is None
    with pytest.raises(ValueError, match="unknown protocol 'webrtc'"):
        details.dial_string("webrtc")


@pytest.mark.pure
@pytest.mark.parametrize("mode", ["dial_in", "dial_out"])
def test_instructions_shape_and_text(mode: str) -> None:
    start = datetime(2026, 12, 14, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
    got = join.instructions(
        meeting_id=7, occurrence_id=9, title="Giao ban tuần", start=start, end=start + timedelta(hours=2),
        check_lead_minutes=60, timezone="Asia/Ho_Chi_Minh", room_id=3, room_name="Phòng họp số 1",
        chair_room_id=3, details=join.JoinDetails(1234, "mcu.example.vn", "88", "654321"),
        endpoints=[join.EndpointRef(12, "Poly H.323", "h323", "10.0.0.12"),
                   join.EndpointRef(11, "Cisco", "sip", "sip:cisco@vc.example.vn")], dial_mode=mode)
    dial_in = mode == "dial_in"
    assert got == {
        "meeting_id": 7, "occurrence_id": 9, "room_id": 3, "room_name": "Phòng họp số 1", "is_chair": True,
        "title": "Giao ban tuần", "start": "2026-12-14T01:00:00Z", "end": "2026-12-14T03:00:00Z",
        "check_at": "2026-12-14T00:00:00Z", "start_local": "2026-12-14T08:00:00+07:00",
        "end_local": "2026-12-14T10:00:00+07:00", "check_at_local": "2026-12-14T07:00:00+07:00",
        "timezone": "Asia/Ho_Chi_Minh", "check_lead_minutes": 60, "conference_number": 1234, "pin": "654321",
        "sip_uri": "sip:1234@mcu.example.vn", "h323_number": "881234", "dial_mode": mode,
        "bridge_name": None, "upstream_dial": None,
        "endpoints": [
            {"endpoint_id": 11, "name": "Cisco", "protocol": "sip",
             "dial_string": "sip:1234@mcu.example.vn" if dial_in else None,
             "call_address": None if dial_in else "sip:cisco@vc.example.vn"},
            {"endpoint_id": 12, "name": "Poly H.323", "protocol": "h323", "dial_string": "881234" if dial_in else None,
             "call_address": None if dial_in else "10.0.0.12"}],
        "text": "\n".join([
            "Hướng dẫn kết nối – Giao ban tuần", "Điểm cầu: Phòng họp số 1 (điểm cầu chủ trì)",
            "Thời gian họp: 14/12/2026 08:00 – 14/12/2026 10:00",
            "Kiểm tra kỹ thuật: 14/12/2026 07:00 (60 phút trước giờ họp)", "Số hội nghị: 1234",
            *(["Cisco: quay số sip:1234@mcu.example.vn (SIP)", "Poly H.323: quay số 881234 (H.323)",
               "Mã PIN: 654321"] if dial_in else ["MCU sẽ gọi tới thiết bị của điểm cầu; không cần quay số."])]),
    }


# ---------------------------------------------------------------- events recorded by the use cases

def _site(session: Session):
    bridge = make_bridge(session, sip_domain="mcu.phutho.gov.vn", h323_prefix="0210")
    unit = make_unit(session)
    chair, other = make_room(session, unit, name="Phòng chủ trì"), make_room(session, unit, name="Phòng xã")
    chair_ep = make_endpoint(session, chair, name="Codec chủ trì")
    other_ep = make_endpoint(session, other, name="Codec xã", protocol=Protocol.h323, dial_address="0210555")
    return bridge, unit, chair, other, chair_ep, other_ep


def _events(session: Session) -> list[events.Event]:
    return list(session.exec(select(events.Event).order_by(events.Event.id)).all())


def test_booking_records_scheduled_and_join_instructions_per_room(session: Session) -> None:
    bridge, unit, chair, other, chair_ep, other_ep = _site(session)
    start = next_monday_local()
    result = make_meeting(session, chair_room=chair, rooms=[other], start=start, end=start + timedelta(hours=1),
                          title="Giao ban trực tuyến")
    meeting = result.meeting
    occ = reading.list_occurrences(session, meeting)[0]
    recorded = _events(session)
    assert [(e.type, e.room_ids) for e in recorded] == [
        ("meeting.scheduled", sorted([chair.id, other.id])), ("join.instructions", [chair.id]),
        ("join.instructions", [other.id])]
    assert recorded[0].data == {
        "meeting_id": meeting.id, "scope": "meeting", "occurrence_id": occ["id"], "occurrence_ids": [occ["id"]],
        "title": "Giao ban trực tuyến", "start": z(start), "end": z(start + timedelta(hours=1)),
        "chair_room_id": chair.id, "room_ids": sorted([chair.id, other.id]), "sequence": 0, "status": "confirmed"}
    assert recorded[0].unit_ids == [unit.id]
    number = meeting.conference_number
    other_join = recorded[2].data
    assert other_join["endpoints"] == [{"endpoint_id": other_ep.id, "name": "Codec xã", "protocol": "h323",
                                        "dial_string": f"0210{number}", "call_address": None}]
    assert (other_join["is_chair"], other_join["pin"], other_join["sip_uri"], other_join["check_at"]) == (
        False, meeting.pin, f"sip:{number}@mcu.phutho.gov.vn", z(start - timedelta(minutes=60)))
    assert recorded[1].data["endpoints"][0]["dial_string"] == f"sip:{number}@mcu.phutho.gov.vn"


def test_refused_booking_leaves_no_event(session: Session) -> None:
    _, _, chair, other, _, _ = _site(session)
    start = next_monday_local()
    make_meeting(session, chair_room=chair, start=start, end=start + timedelta(hours=1))
    before = len(_events(session))
    with pytest.raises(BookingConflict):
        make_meeting(session, chair_room=chair, start=start, end=start + timedelta(hours=1))
    assert len(_events(session)) == before
    assert len(session.info.get("confsvc_pending_events", [])) == before


def test_edit_and_cancel_record_updated_and_cancelled(session: Session) -> None:
    _, _, chair, other, _, _ = _site(session)
    start = next_monday_local()
    secretariat = users.principal_for(session, make_user(session, Role.secretariat))
    meeting = make_meeting(session, chair_room=chair, rooms=[other], start=start, end=start + timedelta(hours=1),
                           rrule="FREQ=WEEKLY;COUNT=2").meeting
    first, second = reading.list_occurrences(session, meeting)
    editing.edit_meeting(session, SETTINGS, secretariat, meeting,
                            MeetingUpdate(participant_room_ids=[]))
    cancellation.cancel_occurrence(session, secretariat, meeting, session.get(Occurrence, second["id"]))
    cancellation.cancel_meeting(session, secretariat, meeting)
    tail = [(e.type, e.room_ids, e.data["scope"], e.data["occurrence_ids"], e.data["room_ids"], e.data["status"])
            for e in _events(session)[3:] if e.type != "join.instructions"]
    both = sorted([chair.id, other.id])
    assert tail == [
        ("meeting.updated", both, "meeting", [first["id"], second["id"]], [chair.id], "confirmed"),
        ("meeting.cancelled", [chair.id], "occurrence", [second["id"]], [chair.id], "cancelled"),
        ("meeting.cancelled", [chair.id], "meeting", [first["id"]], [chair.id], "cancelled")]
    joins = [e.room_ids for e in _events(session)[3:] if e.type == "join.instructions"]
    assert joins == [[chair.id]]  # after the edit only; the removed room got meeting.updated


# ---------------------------------------------------------------- HTTP

def _http_setup(engine: Engine):
    with make_session(engine) as session:
        _, unit, chair, other, _, _ = _site(session)
        stranger_unit = make_unit(session)
        start = next_monday_local()
        meeting = make_meeting(session, chair_room=chair, rooms=[other], start=start,
                               end=start + timedelta(hours=1)).meeting
        h = {role: bearer(session, make_user(session, role)) for role in (Role.admin, Role.secretariat, Role.viewer)}
        h["operator"] = bearer(session, make_user(session, Role.operator, units=[unit]))
        h["stranger"] = bearer(session, make_user(session, Role.operator, units=[stranger_unit]))
        expected = [e.data for e in _events(session) if e.type == "join.instructions"]
        session.commit()
    return meeting, chair, other, h, expected


def test_join_instructions_endpoint_is_scoped_like_meetings(client: TestClient, engine: Engine) -> None:
    meeting, _, _, h, expected = _http_setup(engine)
    for who in (Role.viewer, "operator"):
        r = client.get(f"/api/v1/meetings/{meeting.id}/join-instructions", headers=h[who])
        assert r.status_code == 200, r.text
        assert r.json() == {"meeting_id": meeting.id, "occurrence_id": expected[0]["occurrence_id"],
                            "items": expected}
    assert client.get(f"/api/v1/meetings/{meeting.id}/join-instructions", headers=h["stranger"]).status_code == 403
    assert client.get("/api/v1/meetings/999999/join-instructions", headers=h[Role.viewer]).status_code == 404
    assert client.get(f"/api/v1/meetings/{meeting.id}/join-instructions").status_code == 401


def test_display_tokens_created_listed_revoked(client: TestClient, engine: Engine) -> None:
    _, chair, _, h, _ = _http_setup(engine)
    url = f"/api/v1/rooms/{chair.id}/display-tokens"
    for who in (Role.viewer, "operator"):
        assert client.post(url, headers=h[who], json={"name": "TV"}).status_code == 403
    created = client.post(url, headers=h[Role.secretariat], json={"name": "Màn hình phòng họp"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith("dsp_") and body["prefix"] == body["token"][:12]
    assert body["ws_path"] == f"/ws/rooms/{chair.id}?token={body['token']}"
    with make_session(engine, write=False) as session:
        row = session.get(DisplayToken, body["id"])
        assert row.token_hash != body["token"] and len(row.token_hash) == 64
    listing = client.get(url, headers=h[Role.admin]).json()
    assert [(t["id"], t["name"], t["revoked_at"]) for t in listing] == [(body["id"], "Màn hình phòng họp", None)]
    assert "token" not in listing[0]
    assert client.post("/api/v1/rooms/999999/display-tokens", headers=h[Role.admin]).status_code == 404
    assert client.delete(f"{url}/{body['id']}", headers=h[Role.admin]).status_code == 204
    assert client.get(url, headers=h[Role.admin]).json()[0]["revoked_at"] is not None
    assert client.delete(f"/api/v1/rooms/999999/display-tokens/{body['id']}",
                         headers=h[Role.admin]).status_code == 404
