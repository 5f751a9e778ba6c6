"""E-mailed invitations through a durable outbox (SPEC "Calendar", issue 5).

The ``events`` table is the outbox of record: a booking, edit or cancellation only writes its
``meeting.*`` event, so a mail server that is down never blocks or fails it. :func:`dispatch_once`
then works in two steps:

1. **Queue** (one transaction): read ``meeting.scheduled`` / ``meeting.updated`` /
   ``meeting.cancelled`` events after ``mail_cursor.last_event_id``, render each into a
   :class:`MailMessage` (the invite as ``calendar.feeds.invite`` gives it now), add one
   :class:`MailDelivery` per recipient — every participating room's ``contact_email`` and the
   organizer's e-mail — and move the cursor. Rooms a change removed get a CANCEL
   (RFC 5546 §3.2.5). An event whose invite no longer says what it did (a REQUEST for a meeting
   cancelled since) is skipped: the later event mails the current state. A pending meeting request
   mails nobody; its approval mails the invitations ("Mời họp"); its rejection or expiry mails only
   the requester, with the reason (``REQUEST_CLOSED_STATES``).
2. **Send**: deliveries due (``next_attempt_at <= now``) are claimed with a lease (so two
   dispatchers never send one copy at once): marked ``sending`` and committed before the SMTP
   session, each sent and marked ``sent`` in its own short transaction right after the server took
   it; a failure puts it back to ``pending`` with ``last_error`` and a backoff of 30 s doubling to
   30 min, until ``mail_max_attempts`` (then ``failed``). A 5xx refusal of the recipient is
   ``failed`` at once. A copy still ``sending`` when its lease ends (the dispatcher died between
   SMTP and the mark) is sent again with the same ``Message-ID``, generated when it was queued
   (issue 16 defect 12): at most one duplicate per crash, and a recognisable one.

The message (RFC 6047 iMIP §2.4, RFC 2046)::

    multipart/mixed
      multipart/alternative
        text/plain; charset=utf-8              Vietnamese summary with the join instructions
        text/calendar; charset=utf-8; method=REQUEST|CANCEL   (= the body's METHOD, RFC 6047 §2.4)
      application/ics; name=invite.ics        the same calendar, attached as invite.ics
      application/pdf; filename*=utf-8''giấy-mời-<id>.pdf   the giấy mời (optional, below)

With ``CONFSVC_MAIL_ATTACH_INVITATION_PDF`` an invitation or update (METHOD:REQUEST; not a CANCEL,
nor a request's rejection or expiry) also carries the giấy mời of the event's occurrence as PDF
(``scheduling.invitation``, NĐ 30/2020/NĐ-CP), its Vietnamese file name in RFC 2231 form. It is
rendered once, when the message is queued, and stored with it (``MailMessage.invitation_pdf``): every
attempt of every copy sends the same bytes under the same ``Message-ID``.

Headers are UTF-8, RFC 2047-encoded where needed (``email.policy.SMTP``). Without
``CONFSVC_SMTP_HOST`` mail is off: nothing is queued, and ``GET /api/v1/mail/status`` says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from icalendar import Calendar
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from confsvc import events
from confsvc.calendar import feeds
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Room
from confsvc.errors import NotFound
from confsvc.mail.models import MailCursor, MailDelivery, MailMessage
from confsvc.scheduling import invitation, invitation_pdf
from confsvc.scheduling.models import Meeting
from confsvc.users.models import User
from confsvc.users.principal import Principal

log = logging.getLogger(__name__)

MAIL_EVENT_TYPES = ("meeting.scheduled", "meeting.updated", "meeting.cancelled")
#: Steps of a meeting request (issue 15): a pending request mails nobody (no invitations before
#: approval); its rejection or expiry mails only the requester (the organizer), with the reason;
#: approval mails the invitations to every room as a booking does.
REQUEST_CLOSED_STATES = frozenset({"rejected", "expired"})
CURSOR_ID = 1
#: Events read, and deliveries sent, per round.
BATCH = 200
#: A claimed delivery is not claimed again before this, even if its sender died mid-way.
CLAIM_LEASE = timedelta(minutes=5)
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
#: Links in invites when ``public_base_url`` is not set (no request to take it from here).
FALLBACK_BASE_URL = "http://localhost:8000"
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
ATTACHMENT_NAME = "invite.ics"
#: File name of the attached giấy mời (as the download's, ``GET …/invitation.pdf``).
PDF_NAME = "giấy-mời-{meeting_id}.pdf"
#: The line the plain-text body gains when the giấy mời is attached.
PDF_LINE = "Giấy mời (tệp {name}) được đính kèm."
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


def gauges(engine: Engine) -> list[tuple[str, str, dict[str, str], float]]:
    """``/metrics`` reading (``Metrics.add_gauges``): deliveries still ``pending`` (the mail backlog)."""
    with make_session(engine, write=False) as session:
        pending = session.exec(select(func.count()).select_from(MailDelivery)
                               .where(MailDelivery.status == "pending")).one()
    return [("confsvc_mail_backlog", "E-mail deliveries still pending (database-wide).", {}, pending)]


def mail_enabled(settings: Settings) -> bool:
    """Mail is on when ``CONFSVC_SMTP_HOST`` is set."""
    return bool(settings.smtp_host)


def smtp_port(settings: Settings) -> int:
    """The configured port, else 465 (implicit TLS), 587 (STARTTLS) or 25."""
    if settings.smtp_port:
        return settings.smtp_port
    return 465 if settings.smtp_ssl else 587 if settings.smtp_starttls else 25


def sender(settings: Settings) -> str:
    return settings.smtp_sender or settings.calendar_organizer_email


def check_settings(settings: Settings) -> None:
    """Raises ValueError: ``smtp_ssl`` and ``smtp_starttls`` both set, or a password without a user."""
    if settings.smtp_ssl and settings.smtp_starttls:
        raise ValueError("CONFSVC_SMTP_SSL and CONFSVC_SMTP_STARTTLS exclude each other")
    if settings.smtp_password and not settings.smtp_username:
        raise ValueError("CONFSVC_SMTP_PASSWORD is set without CONFSVC_SMTP_USERNAME")


@dataclass
class DispatchReport:
    """What one :func:`dispatch_once` did: messages and deliveries queued, copies sent, copies that
    failed this time and stay pending (``retrying``), copies given up (``failed``)."""

    messages: int = 0
    queued: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0


# ---------------------------------------------------------------- queue

def _clean_line(text: str) -> str:
    return " ".join(text.split())


def _local(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{WEEKDAYS[local.weekday()]}, {local:%d/%m/%Y %H:%M}"


def _addresses(values: list[str | None]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        value = (value or "").strip()
        if value and _ADDRESS.match(value):
            seen.setdefault(value.lower(), value)
    return sorted(seen.values(), key=str.lower)


def _compose(event: events.Event, meeting: Meeting, method: str, ics: bytes, *, removed: bool,
             with_pdf: bool = False) -> tuple[str, str]:
    """Subject and Vietnamese plain-text body of one message (``with_pdf``: it says the giấy mời is attached)."""
    calendar = Calendar.from_ical(ics)
    vevent = calendar.walk("VEVENT")[0]
    zone = ZoneInfo(meeting.timezone)
    data = event.data
    occurrence = data.get("scope") == "occurrence"
    if data.get("start") and data.get("end"):
        start = datetime.fromisoformat(data["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(data["end"].replace("Z", "+00:00"))
    else:
        start, end = vevent.decoded("DTSTART"), vevent.decoded("DTEND")
    title = _clean_line(str(vevent.get("SUMMARY", meeting.title)))
    when = f"{_local(start, zone)} – {end.astimezone(zone):%H:%M}"
    request = data.get("request") or {}
    if request.get("state") == "rejected":
        prefix, intro = "Yêu cầu đặt lịch bị từ chối", "Yêu cầu đặt lịch họp sau không được duyệt:"
    elif request.get("state") == "expired":
        prefix, intro = "Yêu cầu đặt lịch hết hạn", "Yêu cầu đặt lịch họp sau đã hết hạn mà chưa được duyệt:"
    elif data.get("displaced") and not removed:  # scheduling.displacement: a higher priority took its place
        prefix = "Buổi họp tạm hoãn"
        intro = ("Buổi họp sau đã nhường điểm cầu cho một cuộc họp có mức ưu tiên cao hơn; buổi họp chuyển sang "
                 "trạng thái chờ xếp lịch lại và không còn giữ điểm cầu, thiết bị và cổng MCU:")
    elif removed:
        prefix, intro = "Hủy mời họp", "Điểm cầu của quý đơn vị không còn tham dự cuộc họp trực tuyến sau:"
    elif method == "CANCEL":
        prefix = "Hủy buổi họp" if occurrence and meeting.rrule else "Hủy lịch họp"
        intro = ("Buổi họp sau (trong chuỗi lịch họp lặp lại) đã bị hủy:" if occurrence and meeting.rrule
                 else "Cuộc họp trực tuyến sau đã bị hủy:")
    elif event.type == "meeting.scheduled" or (data.get("request") or {}).get("state") == "approved":
        prefix, intro = "Mời họp", "Trân trọng kính mời quý đơn vị tham dự hội nghị trực tuyến:"
    else:
        prefix = "Cập nhật lịch họp"
        intro = "Lịch họp sau đã được cập nhật; đề nghị xem lại thời gian và hướng dẫn kết nối:"
    subject = f"{prefix}: {title} – {_local(start, zone)}"
    lines = ["Kính gửi quý đơn vị,", "", intro, "", f"«{title}»", f"Thời gian: {when}",
             f"Điểm cầu chủ trì: {_clean_line(str(vevent.get('LOCATION', '')))}", ""]
    if request.get("reason"):
        lines += [f"Lý do: {_clean_line(request['reason'])}", ""]
    if data.get("displaced") and not removed:
        alt = data["displaced"]
        if alt.get("alternative_start") and alt.get("alternative_end"):
            alt_start = datetime.fromisoformat(alt["alternative_start"].replace("Z", "+00:00"))
            alt_end = datetime.fromisoformat(alt["alternative_end"].replace("Z", "+00:00"))
            lines += [f"Khung giờ trống gần nhất đề xuất: {_local(alt_start, zone)} – {alt_end.astimezone(zone):%H:%M}"
                      " (đề nghị dời buổi họp sang khung giờ này hoặc chọn giờ khác).", ""]
        else:
            lines += ["Chưa tìm được khung giờ trống thay thế trong 14 ngày; đề nghị chọn giờ khác.", ""]
    if method == "REQUEST":
        lines += [str(vevent.get("DESCRIPTION", "")).strip(), ""]
    lines += [f"Tệp lịch {ATTACHMENT_NAME} được đính kèm: mở tệp để cập nhật lịch (Outlook, Google, Apple, "
              "Thunderbird).", ""]
    if with_pdf:
        lines += [PDF_LINE.format(name=PDF_NAME.format(meeting_id=meeting.id)), ""]
    lines += ["Hệ thống lịch họp trực tuyến (thư gửi tự động, vui lòng không trả lời)."]
    return subject[:400], "\n".join(lines)


def _method(ics: bytes) -> str:
    return str(Calendar.from_ical(ics)["METHOD"])


def _queue_event(session: Session, settings: Settings, event: events.Event, *, base_url: str) -> tuple[int, int]:
    """Messages and deliveries for one event; returns how many of each were added."""
    data = event.data
    request_state = (data.get("request") or {}).get("state")
    if request_state == "pending":
        return 0, 0
    meeting = session.get(Meeting, data.get("meeting_id") or 0)
    if meeting is None:
        return 0, 0
    occurrence_id = data.get("occurrence_id") if data.get("scope") == "occurrence" else None
    expected = "CANCEL" if event.type == "meeting.cancelled" else "REQUEST"
    try:
        doc = feeds.invite(session, settings, meeting, base_url=base_url, occurrence_id=occurrence_id)
    except NotFound:  # the occurrence is gone since (a later series edit): its event says so
        return 0, 0
    if _method(doc.body) != expected:  # superseded by a later change, whose own event mails it
        return 0, 0
    room_ids = set(data.get("room_ids") or [])
    removed_ids = set(event.room_ids) - room_ids if expected == "REQUEST" else set()
    emails = dict(session.exec(select(Room.id, Room.contact_email)
                               .where(Room.id.in_(room_ids | removed_ids))).all()) if room_ids | removed_ids else {}
    organizer = session.get(User, meeting.organizer_user_id) if meeting.organizer_user_id else None
    recipients = _addresses([*(emails.get(r) for r in sorted(room_ids)), organizer.email if organizer else None])
    if request_state in REQUEST_CLOSED_STATES:  # the rooms were never invited: only the requester learns it
        recipients, removed_ids = _addresses([organizer.email if organizer else None]), set()
    removed = [a for a in _addresses([emails.get(r) for r in sorted(removed_ids)])
               if a.lower() not in {r.lower() for r in recipients}]
    plan = [(expected, doc.body, recipients, False)]
    if removed:
        cancel = feeds.invite(session, settings, meeting, base_url=base_url, occurrence_id=occurrence_id, cancel=True)
        plan.append(("CANCEL", cancel.body, removed, True))
    messages = deliveries = 0
    for method, ics, to, is_removal in plan:
        if not to:
            continue
        pdf = None
        if method == "REQUEST" and request_state not in REQUEST_CLOSED_STATES and settings.mail_attach_invitation_pdf:
            pdf = _invitation_pdf(session, settings, meeting, data.get("occurrence_id"), event.at)
        subject, body = _compose(event, meeting, method, ics, removed=is_removal, with_pdf=pdf is not None)
        message = MailMessage(event_id=event.id, meeting_id=meeting.id, occurrence_id=occurrence_id, method=method,
                              subject=subject, body_text=body, ics=ics.decode("utf-8"), invitation_pdf=pdf)
        session.add(message)
        session.flush()
        session.add_all(MailDelivery(message_id=message.id, recipient=r, next_attempt_at=event.at,
                                     rfc_message_id=new_message_id(settings)) for r in to)
        messages, deliveries = messages + 1, deliveries + len(to)
    return messages, deliveries


def _invitation_pdf(session: Session, settings: Settings, meeting: Meeting, occurrence_id: int | None,
                    at: datetime) -> bytes | None:
    """The giấy mời of ``occurrence_id`` (else the next occurrence) dated ``at``, as PDF; ``None``
    (logged) when no font with Vietnamese letters is installed: the invitation goes out without it."""
    try:
        letter = invitation.build(session, meeting, dial_mode=settings.join_dial_mode, occurrence_id=occurrence_id,
                                  now=at)
        return invitation_pdf.render(letter)
    except invitation_pdf.FontsMissing as exc:
        log.warning("invitation of meeting %s mailed without its PDF: %s", meeting.id, exc)
        return None


def _lock_cursor(session: Session, now: datetime) -> MailCursor:
    """The cursor row, locked for this transaction (PostgreSQL row lock; SQLite's write lock is held
    from BEGIN IMMEDIATE); created at 0 when missing, whoever of two dispatchers comes first."""
    cursor = session.exec(select(MailCursor).where(MailCursor.id == CURSOR_ID).with_for_update()).first()
    if cursor is None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(MailCursor).values(id=CURSOR_ID, last_event_id=0, updated_at=now)
                        .on_conflict_do_nothing())
        cursor = session.exec(select(MailCursor).where(MailCursor.id == CURSOR_ID).with_for_update()).one()
    return cursor


def queue_pending(engine: Engine, settings: Settings, *, now: datetime, base_url: str | None = None) -> tuple[int, int]:
    """Turn the events after the cursor into messages and deliveries, one transaction per batch of
    :data:`BATCH` events, until caught up. Returns (messages, deliveries) added.

    Events recorded more than ``mail_backlog_hours`` before ``now`` are passed over unmailed.
    """
    base_url = (base_url or settings.public_base_url or FALLBACK_BASE_URL).rstrip("/")
    oldest = now - timedelta(hours=settings.mail_backlog_hours)
    total = (0, 0)
    while True:
        with make_session(engine) as session:
            cursor = _lock_cursor(session, now)
            upper = events.latest_id(session)
            rows = list(session.exec(select(events.Event).where(
                events.Event.id > cursor.last_event_id, events.Event.id <= upper,
                events.Event.type.in_(MAIL_EVENT_TYPES)).order_by(events.Event.id).limit(BATCH)).all())
            for event in rows:
                if event.at >= oldest:
                    added = _queue_event(session, settings, event, base_url=base_url)
                    total = (total[0] + added[0], total[1] + added[1])
            done = len(rows) < BATCH
            cursor.last_event_id = upper if done else rows[-1].id
            cursor.updated_at = now
            session.add(cursor)
            session.commit()
        if done:
            return total


# ---------------------------------------------------------------- send

def new_message_id(settings: Settings) -> str:
    """A fresh, globally unique ``Message-ID`` (RFC 5322 §3.6.4) in the sender's domain."""
    return make_msgid(idstring="confsvc", domain=sender(settings).rpartition("@")[2] or "confsvc.invalid")


def build_email(settings: Settings, message: MailMessage, delivery: MailDelivery) -> EmailMessage:
    """The MIME message of one delivery (shape in the module docstring). ``Message-ID`` is the
    delivery's stored ``rfc_message_id``, the same on every attempt, so a copy re-sent after a crash
    or a lost acknowledgement can be recognised as a duplicate."""
    mail = EmailMessage(policy=policy.SMTP)
    from_address = sender(settings)
    mail["Subject"] = _clean_line(message.subject)
    mail["From"] = formataddr(("Lịch họp trực tuyến", from_address))
    mail["To"] = delivery.recipient
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = (delivery.rfc_message_id
                          or f"<confsvc.{message.id}.{delivery.id}@{from_address.rpartition('@')[2] or 'confsvc'}>")
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no vacation replies
    mail.set_content(message.body_text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mail.add_alternative(message.ics, subtype="calendar", charset="utf-8", cte="base64",
                         params={"method": message.method})  # RFC 6047 §2.4: method = the body's METHOD
    mail.add_attachment(message.ics.encode("utf-8"), maintype="application", subtype="ics",
                        filename=ATTACHMENT_NAME)
    if message.invitation_pdf:  # filename with Vietnamese letters: RFC 2231 filename*=utf-8''…
        mail.add_attachment(message.invitation_pdf, maintype="application", subtype="pdf",
                            filename=PDF_NAME.format(meeting_id=message.meeting_id))
    return mail


def _connect(settings: Settings) -> smtplib.SMTP:
    host, port, timeout = settings.smtp_host, smtp_port(settings), settings.smtp_timeout_seconds
    if settings.smtp_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())  # RFC 3207
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)


def _permanent(exc: Exception) -> bool:
    """A 5xx answer about this message or recipient; connection trouble and 4xx are worth a retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPDataError | smtplib.SMTPSenderRefused) and exc.smtp_code >= 500


def _record(engine: Engine, settings: Settings, delivery_id: int, now: datetime, error: Exception | None) -> str:
    with make_session(engine) as session:
        delivery = session.get(MailDelivery, delivery_id)
        delivery.attempts += 1
        if error is None:
            delivery.status, delivery.sent_at, delivery.last_error = "sent", now, ""
        else:
            delivery.last_error = f"{type(error).__name__}: {error}"[:1000]
            if _permanent(error) or delivery.attempts >= settings.mail_max_attempts:
                delivery.status = "failed"
            else:
                delivery.status, delivery.next_attempt_at = "pending", now + _backoff(delivery.attempts)
        session.add(delivery)
        session.commit()
        return delivery.status


def send_due(engine: Engine, settings: Settings, *, now: datetime) -> tuple[int, int, int]:
    """Send the deliveries due at ``now`` (at most :data:`BATCH`). Returns (sent, retrying, failed).

    Due: ``pending`` ones whose backoff has passed, and ``sending`` ones whose lease has ended (their
    dispatcher died; the server may have taken them: re-sent with the same ``Message-ID``). They are
    marked ``sending`` for :data:`CLAIM_LEASE` and committed before any SMTP traffic.
    """
    claimable = (MailDelivery.status.in_(("pending", "sending")), MailDelivery.next_attempt_at <= now)
    with make_session(engine) as session:
        due = select(MailDelivery.id).where(*claimable).order_by(MailDelivery.id).limit(BATCH).scalar_subquery()
        interrupted = list(session.exec(select(MailDelivery.id).where(
            MailDelivery.id.in_(due), MailDelivery.status == "sending")).all())
        claimed = sorted(session.execute(
            sa.update(MailDelivery).where(MailDelivery.id.in_(due), *claimable)
            .values(status="sending", next_attempt_at=now + CLAIM_LEASE).returning(MailDelivery.id)).scalars())
        session.commit()
    if interrupted:
        log.warning("re-sending %d mail deliveries whose previous attempt was interrupted (same Message-ID): %s",
                    len(interrupted), interrupted)
    if not claimed:
        return 0, 0, 0
    with make_session(engine, write=False) as session:
        rows = session.exec(select(MailDelivery, MailMessage).join(MailMessage, MailMessage.id == MailDelivery.message_id)
                            .where(MailDelivery.id.in_(claimed)).order_by(MailDelivery.id)).all()
    counts = {"sent": 0, "pending": 0, "failed": 0}
    smtp: smtplib.SMTP | None = None
    broken: Exception | None = None
    try:
        for delivery, message in rows:
            error: Exception | None = broken
            if error is None:
                try:
                    if smtp is None:
                        smtp = _connect(settings)
                    smtp.send_message(build_email(settings, message, delivery), from_addr=sender(settings),
                                      to_addrs=[delivery.recipient])
                except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, smtplib.SMTPAuthenticationError,
                        smtplib.SMTPHeloError, OSError) as exc:
                    error = broken = exc  # the session is unusable: the rest of the batch waits too
                except smtplib.SMTPException as exc:
                    error = exc
            counts[_record(engine, settings, delivery.id, now, error)] += 1
            if error is not None:
                log.warning("mail to %s (delivery %s) failed: %s", delivery.recipient, delivery.id, error)
    finally:
        if smtp is not None:
            _close(smtp)
    return counts["sent"], counts["pending"], counts["failed"]


def dispatch_once(engine: Engine, settings: Settings, now: datetime | None = None) -> DispatchReport:
    """Queue new events, then send what is due at ``now`` (UTC, default the clock). Mail off: no-op.

    Never raises for an SMTP problem (it is recorded on the deliveries); database errors propagate.
    """
    if not mail_enabled(settings):
        return DispatchReport()
    now = now or utc_now()
    messages, queued = queue_pending(engine, settings, now=now)
    sent, retrying, failed = send_due(engine, settings, now=now)
    return DispatchReport(messages, queued, sent, retrying, failed)


# ---------------------------------------------------------------- status and the loop

def status(session: Session, settings: Settings, principal: Principal) -> dict[str, Any]:
    """``{"enabled", "message" (Vietnamese)}`` for anyone signed in; admin and secretariat also get
    the outbox's ``pending`` / ``sent`` / ``failed`` delivery counts and the latest ``last_error``."""
    enabled = mail_enabled(settings)
    message = (f"Thư mời họp được gửi qua máy chủ thư {settings.smtp_host}:{smtp_port(settings)}." if enabled else
               "Chức năng gửi thư mời họp qua e-mail đang tắt (chưa cấu hình CONFSVC_SMTP_HOST).")
    if not principal.can_see_mail_deliveries:
        return {"enabled": enabled, "message": message}
    counts = dict(session.exec(select(MailDelivery.status, func.count()).group_by(MailDelivery.status)).all())
    last_error = session.exec(select(MailDelivery.last_error).where(MailDelivery.last_error != "")
                              .order_by(MailDelivery.id.desc()).limit(1)).first()
    return {"enabled": enabled, "message": message, "pending": counts.get("pending", 0) + counts.get("sending", 0),
            "sent": counts.get("sent", 0), "failed": counts.get("failed", 0), "last_error": last_error}


class MailDispatcher:
    """Runs :func:`dispatch_once` in a thread every ``mail_interval_seconds`` and right after a commit
    that recorded a ``meeting.*`` event (``events.subscribe``). SMTP never runs on the event loop."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="confsvc-mail", daemon=True)

    @classmethod
    def start_if_enabled(cls, engine: Engine, settings: Settings) -> MailDispatcher | None:
        """Started dispatcher, or None when mail is off or ``mail_interval_seconds`` is 0.

        Raises: ValueError from :func:`check_settings`.
        """
        if not mail_enabled(settings):
            return None
        check_settings(settings)
        if settings.mail_interval_seconds <= 0:
            return None
        dispatcher = cls(engine, settings)
        events.subscribe(dispatcher._on_events)
        dispatcher._thread.start()
        return dispatcher

    def _on_events(self, batch: list[events.Published]) -> None:
        if any(p.message["type"] in MAIL_EVENT_TYPES for p in batch):
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                dispatch_once(self.engine, self.settings)
            except Exception:  # the loop outlives a database hiccup; the outbox keeps the work
                log.exception("mail dispatch failed")
            self._wake.wait(self.settings.mail_interval_seconds)
            self._wake.clear()

    def stop(self, timeout: float | None = None) -> None:
        """Stop and join (waits at most one SMTP timeout for a send in flight)."""
        events.unsubscribe(self._on_events)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout if timeout is not None else self.settings.smtp_timeout_seconds * 2 + 5)


@asynccontextmanager
async def running(engine: Engine, settings: Settings) -> AsyncIterator[MailDispatcher | None]:
    """The app lifespan's mail loop: started when SMTP is configured, stopped (thread joined off the
    event loop) on shutdown. Raises ValueError from :func:`check_settings` at startup."""
    dispatcher = MailDispatcher.start_if_enabled(engine, settings)
    try:
        yield dispatcher
    finally:
        if dispatcher is not None:
            await asyncio.to_thread(dispatcher.stop)
