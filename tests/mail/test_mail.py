"""E-mailed invitations through the outbox, against a real SMTP server on loopback (aiosmtpd), on SQLite
and PostgreSQL: MIME structure (RFC 6047 iMIP), method parameter, recipients, Vietnamese headers and
body, the attached invite; an outage keeps deliveries pending and loses nothing."""

from __future__ import annotations

import email
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Unit
from confsvc.main import create_app
from confsvc.mail import outbox as mail
from confsvc.mail.models import MailCursor, MailDelivery, MailMessage
from confsvc.scheduling import cancellation, editing, province_sites, reading
from confsvc.scheduling.models import Meeting
from confsvc.scheduling.schemas import MeetingUpdate
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_meeting, make_room, make_unit, make_user, \
    next_monday_local

H = timedelta(hours=1)
TITLE = "Giao ban trực tuyến tháng 12, quý IV; năm 2025"
SENDER = "lich-hop@phutho.gov.vn"
CHAIR, PARTICIPANT, ORGANIZER = "hoitruong@phutho.gov.vn", "xa-thanh-son@phutho.gov.vn", "vanphong@phutho.gov.vn"
ADDED = "xa-thanh-thuy@phutho.gov.vn"


# ---------------------------------------------------------------- a real SMTP server

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class Inbox:
    """aiosmtpd handler keeping every message; ``refuse`` recipients get a permanent 550."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list) -> str:
        if address in self.refuse:
            return "550 5.1.1 Không có hộp thư này"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      email.message_from_bytes(raw, policy=policy.default), raw))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(port: int, inbox: Inbox) -> Iterator[Controller]:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def port() -> int:
    return _free_port()


@pytest.fixture
def mail_settings(settings: Settings, port: int) -> Settings:
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_sender": SENDER,
                                       "smtp_timeout_seconds": 5, "mail_interval_seconds": 0,
                                       "public_base_url": "https://lichhop.phutho.gov.vn"})


# ---------------------------------------------------------------- data

@dataclass
class World:
    chair: Any
    participant: Any
    silent: Any
    secretariat: Any


def _world(session: Session) -> World:
    make_bridge(session, sip_domain="mcu.phutho.gov.vn")
    unit = make_unit(session, name="Xã Thanh Sơn")
    chair = make_room(session, unit, name="Hội trường UBND tỉnh", contact_email=CHAIR)
    participant = make_room(session, unit, name="Phòng họp xã Thanh Sơn", contact_email=PARTICIPANT)
    silent = make_room(session, unit, name="Phòng họp không có e-mail")
    for room in (chair, participant, silent):
        make_endpoint(session, room)
    secretariat = make_user(session, Role.secretariat, email=ORGANIZER, full_name="Văn phòng UBND tỉnh")
    return World(chair, participant, silent, secretariat)


def _book(session: Session, world: World, settings: Settings, **overrides: Any) -> Meeting:
    start = overrides.pop("start", next_monday_local())
    values = {"title": TITLE, "rooms": [world.participant, world.silent], "start": start, "end": start + 2 * H,
              **overrides}
    return make_meeting(session, chair_room=world.chair, user=world.secretariat, settings=settings,
                        **values).meeting


def _principal(session: Session, world: World):
    return users.principal_for(session, world.secretariat)


def _parts(message: EmailMessage) -> tuple[EmailMessage, EmailMessage, EmailMessage]:
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, calendar = alternative.iter_parts()
    return plain, calendar, attachment


def _deliveries(engine: Engine) -> list[MailDelivery]:
    """Read in a session of its own: the test's session must not hold SQLite's write lock."""
    with make_session(engine, write=False) as session:
        return list(session.exec(select(MailDelivery).order_by(MailDelivery.id)).all())


# ---------------------------------------------------------------- tests

def test_invitation_reaches_each_room_contact_and_the_organizer(session: Session, engine: Engine,
                                                               mail_settings: Settings, port: int) -> None:
    world = _world(session)
    meeting = _book(session, world, mail_settings)
    session.commit()
    inbox = Inbox()
    with smtp_server(port, inbox):
        report = mail.dispatch_once(engine, mail_settings, utc_now())
    assert report == mail.DispatchReport(messages=1, queued=3, sent=3, retrying=0, failed=0)
    assert sorted(r.rcpt_tos[0] for r in inbox.received) == sorted([CHAIR, PARTICIPANT, ORGANIZER])
    assert all(len(r.rcpt_tos) == 1 and r.mail_from == SENDER for r in inbox.received)

    start = next_monday_local()
    for received in inbox.received:
        message = received.message
        assert message["To"] == received.rcpt_tos[0]
        assert b"Subject: =?utf-8?" in received.raw  # RFC 2047 encoded-word
        assert message["Subject"] == f"Mời họp: {TITLE} – Thứ Hai, {start:%d/%m/%Y} 08:00"
        assert message["From"].addresses[0].display_name == "Lịch họp trực tuyến"
        assert message["From"].addresses[0].addr_spec == SENDER
        assert message["Auto-Submitted"] == "auto-generated"
        plain, calendar_part, attachment = _parts(message)
        assert (plain.get_content_type(), plain.get_content_charset()) == ("text/plain", "utf-8")
        body = plain.get_content()
        assert "Trân trọng kính mời quý đơn vị tham dự hội nghị trực tuyến:" in body
        assert f"«{TITLE}»" in body
        assert f"Thời gian: Thứ Hai, {start:%d/%m/%Y} 08:00 – 10:00" in body
        assert "Hướng dẫn kết nối:" in body and f"Mã PIN: {meeting.pin}" in body
        assert f"sip:{meeting.conference_number}@mcu.phutho.gov.vn" in body
        assert f"Kiểm tra kỹ thuật: {start - H:%d/%m/%Y %H:%M}" in body
        assert calendar_part.get_content_type() == "text/calendar"
        assert calendar_part.get_param("method") == "REQUEST"
        assert calendar_part.get_content_charset() == "utf-8"
        assert attachment.get_content_type() == "application/ics"
        assert attachment.get_content_disposition() == "attachment"
        assert attachment.get_filename() == "invite.ics"
        attached = Calendar.from_ical(attachment.get_content())
        inline = Calendar.from_ical(calendar_part.get_content())
        assert attached.to_ical() == inline.to_ical()
        assert str(attached["METHOD"]) == calendar_part.get_param("method")
        (event,) = attached.walk("VEVENT")
        assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["SUMMARY"])) == (meeting.uid, 0, TITLE)
        assert {str(a) for a in event["ATTENDEE"]} == {f"mailto:{CHAIR}", f"mailto:{PARTICIPANT}",
                                                        f"urn:x-confsvc:room:{world.silent.id}"}
        assert str(event["ORGANIZER"]) == f"mailto:{ORGANIZER}"
    assert len({r.message["Message-ID"] for r in inbox.received}) == 3

    with smtp_server(port, inbox):  # caught up: nothing queued or sent twice
        assert mail.dispatch_once(engine, mail_settings, utc_now() + H) == mail.DispatchReport()
    assert len(inbox.received) == 3
    cursor = session.get(MailCursor, mail.CURSOR_ID)
    assert cursor is not None and cursor.last_event_id > 0


def test_outage_keeps_deliveries_pending_then_every_mail_arrives_once(session: Session, engine: Engine,
                                                                      mail_settings: Settings, port: int) -> None:
    world = _world(session)
    inbox = Inbox()
    with smtp_server(port, inbox):
        pass  # the server ran, and is down when the meetings are booked
    single = _book(session, world, mail_settings)
    series = _book(session, world, mail_settings, title="Giao ban tuần", start=next_monday_local(hour=14),
                   rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3")
    occurrence = reading.get_occurrence(session, series, reading.list_occurrences(session, series)[1]["id"])
    cancellation.cancel_occurrence(session, _principal(session, world), series, occurrence)
    session.commit()  # booking and cancelling never touched SMTP

    now = utc_now()
    report = mail.dispatch_once(engine, mail_settings, now)
    assert report == mail.DispatchReport(messages=3, queued=9, sent=0, retrying=9, failed=0)
    pending = _deliveries(engine)
    assert {(d.status, d.attempts, d.sent_at, d.next_attempt_at) for d in pending} == {
        ("pending", 1, None, now + timedelta(seconds=30))}
    assert all(d.last_error.startswith("ConnectionRefusedError") for d in pending)
    assert mail.dispatch_once(engine, mail_settings, now + timedelta(seconds=10)) == mail.DispatchReport()

    later = now + timedelta(seconds=40)
    with smtp_server(port, inbox):
        assert mail.dispatch_once(engine, mail_settings, later).sent == 9
        assert mail.dispatch_once(engine, mail_settings, later + H) == mail.DispatchReport()
    assert {(d.status, d.attempts, d.sent_at, d.last_error) for d in _deliveries(engine)} == {
        ("sent", 2, later, "")}
    seen = [(r.rcpt_tos[0], r.message["Subject"], _parts(r.message)[1].get_param("method")) for r in inbox.received]
    assert len(seen) == len(set(seen)) == 9  # every copy exactly once
    assert len({r.message["Message-ID"] for r in inbox.received}) == 9
    assert sorted({(s[1].split(":")[0], s[2]) for s in seen}) == [("Hủy buổi họp", "CANCEL"), ("Mời họp", "REQUEST")]
    cancels = [r for r in inbox.received if _parts(r.message)[1].get_param("method") == "CANCEL"]
    for received in cancels:
        (event,) = Calendar.from_ical(_parts(received.message)[2].get_content()).walk("VEVENT")
        assert str(event["UID"]) == series.uid and int(event["SEQUENCE"]) == 1
        assert event.decoded("RECURRENCE-ID") == occurrence.recurrence_id
    assert {str(Calendar.from_ical(_parts(r.message)[2].get_content()).walk("VEVENT")[0]["UID"])
            for r in inbox.received} == {single.uid, series.uid}


def test_cancelled_before_dispatch_mails_only_the_cancel(session: Session, engine: Engine,
                                                         mail_settings: Settings, port: int) -> None:
    world = _world(session)
    meeting = _book(session, world, mail_settings)
    cancellation.cancel_meeting(session, _principal(session, world), meeting)
    session.commit()
    inbox = Inbox()
    with smtp_server(port, inbox):
        assert mail.dispatch_once(engine, mail_settings, utc_now()).sent == 3
    assert {(r.message["Subject"].split(":")[0], _parts(r.message)[1].get_param("method"))
            for r in inbox.received} == {("Hủy lịch họp", "CANCEL")}
    body = _parts(inbox.received[0].message)[0].get_content()
    assert "Cuộc họp trực tuyến sau đã bị hủy:" in body and "Mã PIN" not in body
    (event,) = Calendar.from_ical(_parts(inbox.received[0].message)[2].get_content()).walk("VEVENT")
    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CANCELLED", 1)


def test_a_removed_room_gets_a_cancel_the_others_the_update(session: Session, engine: Engine,
                                                            mail_settings: Settings, port: int) -> None:
    world = _world(session)
    meeting = _book(session, world, mail_settings)
    session.commit()
    inbox = Inbox()
    with smtp_server(port, inbox):
        mail.dispatch_once(engine, mail_settings, utc_now())
        inbox.received.clear()
        editing.edit_meeting(session, mail_settings, _principal(session, world), meeting,
                             MeetingUpdate(participant_room_ids=[world.silent.id]))
        session.commit()
        assert mail.dispatch_once(engine, mail_settings, utc_now()).sent == 3
    got = {r.rcpt_tos[0]: (r.message["Subject"].split(":")[0], _parts(r.message)[1].get_param("method"))
           for r in inbox.received}
    assert got == {CHAIR: ("Cập nhật lịch họp", "REQUEST"), ORGANIZER: ("Cập nhật lịch họp", "REQUEST"),
                   PARTICIPANT: ("Hủy mời họp", "CANCEL")}
    removed = next(r for r in inbox.received if r.rcpt_tos[0] == PARTICIPANT)
    assert "không còn tham dự" in _parts(removed.message)[0].get_content()


def test_a_site_added_or_removed_mails_only_that_room_and_the_organizer(session: Session, engine: Engine,
                                                                        mail_settings: Settings, port: int) -> None:
    """Issue 14: a site added to (removed from) a national meeting is invited (cancelled); the other
    sites get no mail for it (``site_changes``: the event names the changed rooms only)."""
    world = _world(session)
    added_room = make_room(session, session.get(Unit, world.chair.unit_id), name="Phòng họp xã Thanh Thủy",
                           contact_email=ADDED)
    make_endpoint(session, added_room)
    meeting = _book(session, world, mail_settings, rooms=[world.participant])
    session.commit()
    inbox = Inbox()
    with smtp_server(port, inbox):
        mail.dispatch_once(engine, mail_settings, utc_now())
        inbox.received.clear()
        province_sites.add_sites(session, mail_settings, _principal(session, world), meeting, [added_room.id])
        session.commit()
        assert mail.dispatch_once(engine, mail_settings, utc_now()).sent == 2
        added = {r.rcpt_tos[0]: _parts(r.message)[1].get_param("method") for r in inbox.received}
        inbox.received.clear()
        province_sites.remove_site(session, mail_settings, _principal(session, world), meeting, added_room.id)
        session.commit()
        assert mail.dispatch_once(engine, mail_settings, utc_now()).sent == 2
    removed = {r.rcpt_tos[0]: _parts(r.message)[1].get_param("method") for r in inbox.received}
    assert added == {ADDED: "REQUEST", ORGANIZER: "REQUEST"}
    assert removed == {ADDED: "CANCEL", ORGANIZER: "REQUEST"}


def test_a_permanent_refusal_fails_that_copy_only(session: Session, engine: Engine, mail_settings: Settings,
                                                  port: int) -> None:
    world = _world(session)
    _book(session, world, mail_settings)
    session.commit()
    inbox = Inbox(refuse={PARTICIPANT})
    with smtp_server(port, inbox):
        report = mail.dispatch_once(engine, mail_settings, utc_now())
    assert (report.sent, report.failed, report.retrying) == (2, 1, 0)
    failed = next(d for d in _deliveries(engine) if d.status == "failed")
    assert failed.recipient == PARTICIPANT and failed.attempts == 1
    assert failed.last_error.startswith("SMTPRecipientsRefused") and "550" in failed.last_error


def test_mail_off_queues_nothing(session: Session, engine: Engine, settings: Settings) -> None:
    world = _world(session)
    _book(session, world, settings)
    session.commit()
    assert settings.smtp_host is None
    assert mail.dispatch_once(engine, settings, utc_now()) == mail.DispatchReport()
    assert session.exec(select(MailMessage)).all() == [] and _deliveries(engine) == []


def test_status_endpoint_says_whether_mail_is_on(engine: Engine, settings: Settings,
                                                 mail_settings: Settings) -> None:
    with make_session(engine) as session:
        admin = bearer(session, make_user(session, Role.admin))
        operator = bearer(session, make_user(session, Role.operator, units=[make_unit(session)]))
        session.commit()
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.get("/api/v1/mail/status").status_code == 401
        assert client.get("/api/v1/mail/status", headers=operator).json() == {
            "enabled": False,
            "message": "Chức năng gửi thư mời họp qua e-mail đang tắt (chưa cấu hình CONFSVC_SMTP_HOST)."}
    with TestClient(create_app(mail_settings, engine=engine)) as client:
        assert client.get("/api/v1/mail/status", headers=admin).json() == {
            "enabled": True, "message": f"Thư mời họp được gửi qua máy chủ thư 127.0.0.1:{mail_settings.smtp_port}.",
            "pending": 0, "sent": 0, "failed": 0, "last_error": None}


def test_the_app_loop_mails_a_booking_made_through_the_api(engine: Engine, mail_settings: Settings,
                                                           port: int) -> None:
    with make_session(engine) as session:
        world = _world(session)
        headers = bearer(session, world.secretariat)
        session.commit()
    inbox = Inbox()
    looping = mail_settings.model_copy(update={"mail_interval_seconds": 0.2})
    start = next_monday_local()
    with smtp_server(port, inbox), TestClient(create_app(looping, engine=engine)) as client:
        created = client.post("/api/v1/meetings", headers=headers, json={
            "title": TITLE, "chair_room_id": world.chair.id, "participant_room_ids": [world.participant.id],
            "start": start.isoformat(), "end": (start + H).isoformat()})
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 20
        while len(inbox.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sorted(r.rcpt_tos[0] for r in inbox.received) == sorted([CHAIR, PARTICIPANT, ORGANIZER])


def test_ssl_and_starttls_together_are_refused(settings: Settings) -> None:
    bad = settings.model_copy(update={"smtp_host": "mail.example.vn", "smtp_ssl": True, "smtp_starttls": True})
    with pytest.raises(ValueError, match="exclude each other"):
        mail.check_settings(bad)
    assert mail.smtp_port(settings.model_copy(update={"smtp_ssl": True})) == 465
    assert mail.smtp_port(settings.model_copy(update={"smtp_starttls": True})) == 587
    assert mail.smtp_port(settings) == 25


class _Crash(BaseException):
    """The dispatcher's process dying right after the SMTP server accepted a copy."""


def test_resend_after_a_crash_between_smtp_and_the_sent_mark_keeps_the_message_id(
        session: Session, engine: Engine, mail_settings: Settings, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 defect 12: a copy sent, then lost before it was marked sent, used to go out again after the
    lease as an unrecognisable duplicate. It is now marked ``sending`` (committed) before SMTP, and the
    retry after the lease carries the Message-ID stored when the copy was queued."""
    world = _world(session)
    _book(session, world, mail_settings, rooms=[world.silent])  # recipients: the chair and the organizer
    session.commit()
    now = utc_now()
    mail.queue_pending(engine, mail_settings, now=now)
    queued = {d.recipient: d.rfc_message_id for d in _deliveries(engine)}
    assert sorted(queued) == sorted([CHAIR, ORGANIZER])
    assert all(v and v.startswith("<") and v.endswith("@phutho.gov.vn>") for v in queued.values())
    assert len(set(queued.values())) == 2

    real_record = mail._record

    def crash_after_first_send(*args: Any, **kwargs: Any) -> str:
        raise _Crash()

    inbox = Inbox()
    monkeypatch.setattr(mail, "_record", crash_after_first_send)
    with smtp_server(port, inbox), pytest.raises(_Crash):
        mail.send_due(engine, mail_settings, now=now)
    first = _deliveries(engine)[0]
    assert [(r.rcpt_tos[0], r.message["Message-ID"]) for r in inbox.received] == [
        (first.recipient, queued[first.recipient])]
    assert [(d.status, d.attempts, d.next_attempt_at) for d in _deliveries(engine)] == [
        ("sending", 0, now + mail.CLAIM_LEASE), ("sending", 0, now + mail.CLAIM_LEASE)]

    monkeypatch.setattr(mail, "_record", real_record)
    with smtp_server(port, inbox):
        assert mail.send_due(engine, mail_settings, now=now + timedelta(minutes=1)) == (0, 0, 0)  # leased
        after_lease = now + mail.CLAIM_LEASE
        assert mail.send_due(engine, mail_settings, now=after_lease) == (2, 0, 0)
    assert [(d.status, d.attempts, d.sent_at) for d in _deliveries(engine)] == [
        ("sent", 1, after_lease), ("sent", 1, after_lease)]
    ids = [(r.rcpt_tos[0], r.message["Message-ID"]) for r in inbox.received]
    assert ids[0] == ids[1] == (first.recipient, queued[first.recipient])  # the duplicate is recognisable
    assert sorted(ids[1:]) == sorted(queued.items())


def test_failed_attempt_goes_back_to_pending_with_its_message_id(
        session: Session, engine: Engine, mail_settings: Settings, port: int) -> None:
    world = _world(session)
    _book(session, world, mail_settings, rooms=[world.silent])
    session.commit()
    now = utc_now()
    assert mail.dispatch_once(engine, mail_settings, now).retrying == 2  # no server
    before = {d.id: d.rfc_message_id for d in _deliveries(engine)}
    assert {d.status for d in _deliveries(engine)} == {"pending"}
    inbox = Inbox()
    with smtp_server(port, inbox):
        assert mail.dispatch_once(engine, mail_settings, now + timedelta(seconds=30)).sent == 2
    assert sorted(r.message["Message-ID"] for r in inbox.received) == sorted(before.values())


def _pdf_text(data: bytes) -> list[str]:
    """The lines of every page of a PDF (pdfium's text extraction, as tests/test_invitation.py)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        text = "\n".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n")]


def test_invitation_attaches_the_giay_moi_pdf_with_a_vietnamese_file_name_on_every_attempt(
        session: Session, engine: Engine, mail_settings: Settings, port: int) -> None:
    """Issue 15: with ``mail_attach_invitation_pdf`` the invitation carries the giấy mời as
    ``application/pdf`` named ``giấy-mời-<id>.pdf`` (RFC 2231 ``filename*``); the PDF is rendered once
    when queued, so a retry sends the same bytes under the same Message-ID; a cancellation has none."""
    from confsvc.endpoints.models import UnitLevel

    settings = mail_settings.model_copy(update={"mail_attach_invitation_pdf": True})
    make_bridge(session, sip_domain="mcu.phutho.gov.vn")
    province = make_unit(session, name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
    doan_hung = make_unit(session, name="Xã Đoan Hùng", parent_id=province.id)
    viet_tri = make_unit(session, name="Phường Việt Trì", division_type="phường", parent_id=province.id)
    chair = make_room(session, province, name="Hội trường UBND tỉnh", contact_email=CHAIR)
    rooms = [make_room(session, viet_tri, name="Hội trường phường Việt Trì", contact_email=PARTICIPANT),
             make_room(session, doan_hung, name="Phòng họp xã Đoan Hùng")]
    for room in (chair, *rooms):
        make_endpoint(session, room)
    organizer = make_user(session, Role.secretariat, email=ORGANIZER, full_name="Văn phòng UBND tỉnh")
    start = next_monday_local()
    meeting = make_meeting(session, chair_room=chair, rooms=rooms, user=organizer, settings=settings, title=TITLE,
                           start=start, end=start + 2 * H).meeting
    session.commit()

    now = utc_now()
    assert mail.dispatch_once(engine, settings, now).retrying == 3  # no server yet: the first attempt fails
    stored = {d.recipient: d.rfc_message_id for d in _deliveries(engine)}
    with make_session(engine, write=False) as s:
        (queued,) = s.exec(select(MailMessage)).all()
    assert queued.invitation_pdf is not None and queued.invitation_pdf.startswith(b"%PDF-")
    inbox = Inbox()
    with smtp_server(port, inbox):
        assert mail.dispatch_once(engine, settings, now + timedelta(seconds=30)).sent == 3

    name = f"giấy-mời-{meeting.id}.pdf"
    assert sorted(r.rcpt_tos[0] for r in inbox.received) == sorted([CHAIR, PARTICIPANT, ORGANIZER])
    for received in inbox.received:
        message = received.message
        assert message["Message-ID"] == stored[received.rcpt_tos[0]]
        alternative, ics, pdf = message.iter_parts()
        assert [p.get_content_type() for p in (alternative, ics, pdf)] == [
            "multipart/alternative", "application/ics", "application/pdf"]
        assert pdf.get_content_disposition() == "attachment"
        assert pdf.get_filename() == name
        assert b"filename*=utf-8''gi%E1%BA%A5y-m%E1%BB%9Di-" in received.raw  # RFC 2231, not RFC 2047
        assert pdf.get_content() == queued.invitation_pdf  # the bytes rendered when queued
        plain = next(alternative.iter_parts()).get_content()
        assert f"Giấy mời (tệp {name}) được đính kèm." in plain
        lines = _pdf_text(pdf.get_content())
        for expected in ("UBND TỈNH PHÚ THỌ", "GIẤY MỜI", "Độc lập - Tự do - Hạnh phúc",
                         "2. Điểm cầu chủ trì: Hội trường UBND tỉnh (Tỉnh Phú Thọ).", "3. Các điểm cầu tham dự:",
                         "- Phường Việt Trì: Hội trường phường Việt Trì.", "- Xã Đoan Hùng: Phòng họp xã Đoan Hùng."):
            assert expected in lines, expected
        words = " ".join(lines)  # long lines wrap (the quốc hiệu too, in DejaVu Serif)
        assert f"Dự hội nghị trực tuyến {TITLE}" in words and "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in words

    cancellation.cancel_meeting(session, users.principal_for(session, organizer), session.get(Meeting, meeting.id))
    session.commit()
    cancels = Inbox()
    with smtp_server(port, cancels):
        assert mail.dispatch_once(engine, settings, now + H).sent == 3
    assert [[p.get_content_type() for p in r.message.iter_parts()] for r in cancels.received] == [
        ["multipart/alternative", "application/ics"]] * 3
