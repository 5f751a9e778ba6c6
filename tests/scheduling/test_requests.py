"""Meeting requests (issue 15) on both backends: a tentative request holds its resources (SPEC rule 10),
is approved, rejected or expires; approval races expiry; requester scope; feeds and mail."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint
from confsvc.errors import ConfsvcError
from confsvc.mail import outbox
from confsvc.mail.models import MailDelivery, MailMessage
from confsvc.scheduling import requests, scheduler
from confsvc.scheduling.models import AuditEntry, Booking, Meeting, MeetingStatus
from confsvc.scheduling.request_models import MeetingRequest, RequestState
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import service as users
from confsvc.users.models import Role, User
from tests.factories import (
    bearer,
    make_bridge,
    make_endpoint,
    make_room,
    make_unit,
    make_user,
    next_monday_local,
)


def _setup(engine: Engine) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    with make_session(engine) as session:
        make_bridge(session)
        commune, other_unit = make_unit(session), make_unit(session)
        room = make_room(session, commune, contact_email="xa@example.vn")
        other = make_room(session, other_unit, contact_email="khac@example.vn")
        third = make_room(session, other_unit)
        make_endpoint(session, third)
        ep, other_ep = make_endpoint(session, room), make_endpoint(session, other)
        requester = make_user(session, Role.requester, units=[commune], email="dangky@example.vn")
        h = {"requester": bearer(session, requester),
             "secretariat": bearer(session, make_user(session, Role.secretariat)),
             "viewer": bearer(session, make_user(session, Role.viewer)),
             "operator": bearer(session, make_user(session, Role.operator, units=[commune]))}
        ids = {"room": room.id, "other": other.id, "ep": ep.id, "other_ep": other_ep.id, "commune": commune.id, "third": third.id,
               "requester": requester.id}
        session.commit()
    return ids, h


def _body(ids: dict[str, int], start: datetime, **kw) -> dict:
    return {"title": "Hội nghị giao ban xã", "chair_room_id": ids["room"], "participant_room_ids": [ids["other"]],
            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), **kw}


def _submit(client: TestClient, ids, h, start: datetime, **kw) -> dict:
    r = client.post("/api/v1/requests", headers=h["requester"], json=_body(ids, start, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def _bookings(engine: Engine, meeting_id: int) -> int:
    with make_session(engine, write=False) as session:
        return session.exec(select(func.count()).select_from(Booking).where(Booking.meeting_id == meeting_id)).one()


def _feed(client: TestClient, h, room_id: int) -> str:
    r = client.post("/api/v1/feeds", headers=h["secretariat"], json={"scope": "room", "scope_id": room_id})
    assert r.status_code == 201, r.text
    feed = client.get(f"/ical/room/{room_id}.ics?token={r.json()['token']}")
    assert feed.status_code == 200
    return feed.text


def _mail_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_sender": "lich@example.vn"})


def test_request_holds_its_room_until_approved_then_confirmed_with_invitations(
        client: TestClient, engine: Engine, settings: Settings) -> None:
    ids, h = _setup(engine)
    t = next_monday_local()
    req = _submit(client, ids, h, t, status="confirmed")  # status is ignored: a request is tentative
    meeting_id = req["id"]
    assert (req["state"], req["meeting"]["status"], req["meeting"]["sequence"]) == ("pending", "tentative", 0)
    assert datetime.fromisoformat(req["expires_at"]) - datetime.fromisoformat(req["requested_at"]) == timedelta(hours=48)
    # chair room, participant room, both endpoints, the bridge
    assert _bookings(engine, meeting_id) == 5

    # Another booking of the same room is refused, naming the request's meeting (SPEC rule 10).
    other = client.post("/api/v1/meetings", headers=h["secretariat"],
                        json={"title": "Họp khác", "chair_room_id": ids["other"], "start": t.isoformat(),
                              "end": (t + timedelta(minutes=30)).isoformat()})
    assert other.status_code == 409
    assert other.json()["code"] == "booking_conflict"
    assert {c["meeting_id"] for c in other.json()["conflicts"]} == {meeting_id}
    assert "«Hội nghị giao ban xã»" in other.json()["detail"]

    # Pending: the feed shows it tentative; nothing is mailed.
    assert "STATUS:TENTATIVE" in _feed(client, h, ids["room"])
    mail = _mail_settings(settings)
    assert outbox.queue_pending(engine, mail, now=datetime.now(UTC)) == (0, 0)

    # The queue: oldest first, with its (empty) conflicts.
    queue = client.get("/api/v1/requests", headers=h["secretariat"]).json()
    assert [(i["id"], i["state"], i["conflicts"]) for i in queue["items"]] == [(meeting_id, "pending", [])]
    assert queue["total"] == 1

    approved = client.post(f"/api/v1/requests/{meeting_id}/approve", headers=h["secretariat"])
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["state"], body["meeting"]["status"], body["meeting"]["sequence"]) == ("approved", "confirmed", 1)
    assert body["decided_at"] is not None
    assert _bookings(engine, meeting_id) == 5
    feed = _feed(client, h, ids["room"])
    assert "STATUS:CONFIRMED" in feed and "STATUS:TENTATIVE" not in feed and "SEQUENCE:1" in feed

    # The invitations go out now: one REQUEST to both rooms' contacts and the requester (organizer).
    assert outbox.queue_pending(engine, mail, now=datetime.now(UTC)) == (1, 3)
    with make_session(engine, write=False) as session:
        message = session.exec(select(MailMessage)).one()
        assert (message.meeting_id, message.method) == (meeting_id, "REQUEST")
        assert message.subject.startswith("Mời họp: Hội nghị giao ban xã")
        actions = session.exec(select(AuditEntry.action).where(AuditEntry.meeting_id == meeting_id)
                               .order_by(AuditEntry.id)).all()
        assert actions == ["meeting.created", "request.submitted", "request.approved"]

    with make_session(engine, write=False) as session:
        steps = [(e.type, e.data["status"], e.data["request"]["state"], e.data["sequence"])
                 for e in session.exec(select(events.Event).order_by(events.Event.id)).all()
                 if e.data.get("meeting_id") == meeting_id and "request" in e.data]
    assert steps == [("meeting.scheduled", "tentative", "pending", 0), ("meeting.updated", "confirmed", "approved", 1)]

    again = client.post(f"/api/v1/requests/{meeting_id}/approve", headers=h["secretariat"])
    assert (again.status_code, again.json()["code"], again.json()["state"]) == (409, "request_not_pending", "approved")
    mine = client.get("/api/v1/requests", headers=h["requester"], params={"all_states": True}).json()
    assert [(i["id"], i["state"]) for i in mine["items"]] == [(meeting_id, "approved")]


def test_rejection_with_a_reason_frees_the_room(client: TestClient, engine: Engine, settings: Settings) -> None:
    ids, h = _setup(engine)
    t = next_monday_local()
    meeting_id = _submit(client, ids, h, t)["id"]
    no_reason = client.post(f"/api/v1/requests/{meeting_id}/reject", headers=h["secretariat"], json={"reason": " "})
    assert no_reason.status_code == 422
    by_requester = client.post(f"/api/v1/requests/{meeting_id}/reject", headers=h["requester"],
                               json={"reason": "tự hủy"})
    assert (by_requester.status_code, by_requester.json()["code"]) == (403, "forbidden_role")

    r = client.post(f"/api/v1/requests/{meeting_id}/reject", headers=h["secretariat"],
                    json={"reason": "Trùng lịch họp của Tỉnh ủy"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["reason"], body["meeting"]["status"]) == (
        "rejected", "Trùng lịch họp của Tỉnh ủy", "cancelled")
    assert _bookings(engine, meeting_id) == 0
    freed = client.post("/api/v1/meetings", headers=h["secretariat"],
                        json={"title": "Họp khác", "chair_room_id": ids["room"], "start": t.isoformat(),
                              "end": (t + timedelta(hours=1)).isoformat()})
    assert freed.status_code == 201, freed.text
    # The rooms were never invited: only the requester is told, with the reason.
    mail = _mail_settings(settings)
    with make_session(engine, write=False) as session:
        details = session.exec(select(AuditEntry.details).where(AuditEntry.action == "request.rejected")).one()
    # The audit line also carries the HTTP request's id (X-Request-ID, issue 16 operations).
    assert {k: v for k, v in details.items() if k != "request_id"} == {"reason": "Trùng lịch họp của Tỉnh ủy"}
    assert len(details["request_id"]) >= 16
    outbox.queue_pending(engine, mail, now=datetime.now(UTC))
    with make_session(engine, write=False) as session:
        sent = session.exec(select(MailMessage.meeting_id, MailMessage.method, MailDelivery.recipient)
                            .join(MailDelivery, MailDelivery.message_id == MailMessage.id)
                            .order_by(MailMessage.id, MailDelivery.recipient)).all()
        assert sent == [(meeting_id, "CANCEL", "dangky@example.vn"), (freed.json()["id"], "REQUEST", "xa@example.vn")]
        notice = session.exec(select(MailMessage).where(MailMessage.meeting_id == meeting_id)).one()
        assert notice.subject.startswith("Yêu cầu đặt lịch bị từ chối: Hội nghị giao ban xã")
        assert "Lý do: Trùng lịch họp của Tỉnh ủy" in notice.body_text


def test_scheduler_expires_a_pending_request_and_frees_the_room(client: TestClient, engine: Engine,
                                                                 settings: Settings) -> None:
    ids, h = _setup(engine)
    t = next_monday_local()
    meeting_id = _submit(client, ids, h, t)["id"]
    with make_session(engine, write=False) as session:
        expires_at = session.get(MeetingRequest, meeting_id).expires_at
    assert scheduler.expire_requests_due(engine, settings, now=expires_at - timedelta(seconds=1)) == []
    assert _bookings(engine, meeting_id) == 5
    assert scheduler.expire_requests_due(engine, settings, now=expires_at) == [meeting_id]
    assert scheduler.expire_requests_due(engine, settings, now=expires_at) == []
    assert _bookings(engine, meeting_id) == 0
    with make_session(engine, write=False) as session:
        req, meeting = session.get(MeetingRequest, meeting_id), session.get(Meeting, meeting_id)
        assert (req.state, req.decided_by, meeting.status, meeting.sequence) == (
            RequestState.expired, None, MeetingStatus.cancelled, 1)
        assert session.exec(select(AuditEntry.user_id).where(AuditEntry.action == "request.expired")).all() == [None]
    late = client.post(f"/api/v1/requests/{meeting_id}/approve", headers=h["secretariat"])
    assert (late.status_code, late.json()["code"]) == (409, "request_not_pending")
    assert "STATUS:CANCELLED" in _feed(client, h, ids["room"])
    assert outbox.queue_pending(engine, _mail_settings(settings), now=datetime.now(UTC)) == (1, 1)
    with make_session(engine, write=False) as session:
        notice = session.exec(select(MailMessage)).one()
        assert notice.subject.startswith("Yêu cầu đặt lịch hết hạn: Hội nghị giao ban xã")


def test_approval_racing_expiry_exactly_one_wins(engine: Engine, settings: Settings) -> None:
    ids, _ = _setup(engine)
    with make_session(engine) as session:
        requester = users.principal_for(session, session.get(User, ids["requester"]))
        secretariat = users.principal_for(session, make_user(session, Role.secretariat))
        view = requests.submit(session, settings, requester, MeetingCreate(**_body(ids, next_monday_local())))
        meeting_id, expires_at = view.request.meeting_id, view.request.expires_at
        session.commit()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def run(name: str, step) -> None:
        with make_session(engine) as session:
            barrier.wait()
            try:
                step(session)
                session.commit()
                outcomes[name] = "won"
            except ConfsvcError as exc:
                session.rollback()
                outcomes[name] = f"{exc.status_code} {exc.code}"

    threads = [threading.Thread(target=run, args=("approve", lambda s: requests.approve(
                   s, secretariat, meeting_id, now=expires_at))),
               threading.Thread(target=run, args=("expire", lambda s: requests.expire(
                   s, meeting_id, now=expires_at)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes.values()) == ["409 request_not_pending", "won"], outcomes
    winner = "approve" if outcomes["approve"] == "won" else "expire"
    with make_session(engine, write=False) as session:
        req, meeting = session.get(MeetingRequest, meeting_id), session.get(Meeting, meeting_id)
        expected = ((RequestState.approved, MeetingStatus.confirmed, 5) if winner == "approve"
                    else (RequestState.expired, MeetingStatus.cancelled, 0))
        assert (req.state, meeting.status, _bookings(engine, meeting_id)) == expected
        assert meeting.sequence == 1
        decisions = session.exec(select(AuditEntry.action).where(
            AuditEntry.action.in_(["request.approved", "request.expired"]))).all()
        assert decisions == [f"request.{'approved' if winner == 'approve' else 'expired'}"]


def test_requester_may_only_request_for_their_own_units(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    t = next_monday_local()
    outside = client.post("/api/v1/requests", headers=h["requester"],
                          json={**_body(ids, t), "chair_room_id": ids["other"], "participant_room_ids": []})
    assert (outside.status_code, outside.json()["code"]) == (403, "forbidden_scope")
    for role in ("viewer", "operator"):
        r = client.post("/api/v1/requests", headers=h[role], json=_body(ids, t))
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_role")
    booked = client.post("/api/v1/meetings", headers=h["requester"], json=_body(ids, t))
    assert (booked.status_code, booked.json()["code"]) == (403, "forbidden_role")
    queue = client.get("/api/v1/requests", headers=h["viewer"])
    assert queue.status_code == 403
    # The secretariat may request on a unit's behalf, anywhere; the requester never sees it.
    on_behalf = client.post("/api/v1/requests", headers=h["secretariat"],
                            json={**_body(ids, t), "chair_room_id": ids["other"], "participant_room_ids": []})
    assert on_behalf.status_code == 201, on_behalf.text
    assert client.get("/api/v1/requests", headers=h["requester"]).json()["items"] == []
    hidden = client.get(f"/api/v1/requests/{on_behalf.json()['id']}", headers=h["requester"])
    assert (hidden.status_code, hidden.json()["code"]) == (404, "request_not_found")
    assert client.get(f"/api/v1/requests/{on_behalf.json()['id']}", headers=h["secretariat"]).status_code == 200


def test_queue_is_oldest_first_with_current_conflicts(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    t = next_monday_local()
    first = _submit(client, ids, h, t)["id"]
    second = _submit(client, ids, h, t + timedelta(days=1))["id"]
    queue = client.get("/api/v1/requests", headers=h["secretariat"]).json()
    assert [i["id"] for i in queue["items"]] == [first, second]
    # A conflict that appears after submission: the participant room's endpoint is moved into a room
    # another meeting holds then. The dry run sees the request's participants as they are now.
    busy = client.post("/api/v1/meetings", headers=h["secretariat"],
                       json={"title": "Họp Tỉnh ủy", "chair_room_id": ids["third"], "start": t.isoformat(),
                             "end": (t + timedelta(hours=1)).isoformat()})
    assert busy.status_code == 201, busy.text
    with make_session(engine) as session:
        endpoint = session.get(Endpoint, ids["other_ep"])
        endpoint.room_id = ids["third"]
        session.add(endpoint)
        session.commit()
    queue = client.get("/api/v1/requests", headers=h["secretariat"]).json()
    conflicts = {i["id"]: [(c["resource_kind"], c["resource_id"], c["meeting_id"]) for c in i["conflicts"]]
                 for i in queue["items"]}
    assert conflicts == {first: [("room", ids["third"], busy.json()["id"])], second: []}


def test_request_cancelled_through_the_meetings_api_leaves_the_queue_and_is_not_expired(
        client: TestClient, engine: Engine, settings: Settings) -> None:
    ids, h = _setup(engine)
    meeting_id = _submit(client, ids, h, next_monday_local())["id"]
    cancelled = client.post(f"/api/v1/meetings/{meeting_id}/cancel", headers=h["secretariat"])
    assert cancelled.status_code == 200, cancelled.text
    assert client.get("/api/v1/requests", headers=h["secretariat"]).json()["items"] == []
    with make_session(engine, write=False) as session:
        expires_at = session.get(MeetingRequest, meeting_id).expires_at
    assert scheduler.expire_requests_due(engine, settings, now=expires_at + timedelta(hours=1)) == []
    r = client.post(f"/api/v1/requests/{meeting_id}/approve", headers=h["secretariat"])
    assert (r.status_code, r.json()["code"]) == (409, "request_not_pending")
