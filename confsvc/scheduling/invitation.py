"""The official invitation (giấy mời) of a meeting: what it says, in the layout of Nghị định
30/2020/NĐ-CP, Phụ lục I (thể thức văn bản hành chính). The renderers (``invitation_docx``,
``invitation_pdf``) only lay out an :class:`Invitation`; this module decides its text.

Parts, top to bottom: issuing body (cơ quan chủ quản + cơ quan ban hành) and số/ký hiệu on the left,
quốc hiệu and tiêu ngữ and the place and date on the right; the title "GIẤY MỜI" and the trích
yếu; the body (time, chair room, participating sites grouped by unit, technical check, join
instructions); nơi nhận on the left and the signer on the right.

Dates follow NĐ 30 (Phụ lục I, mục 6): a day below 10 and the months 1 and 2 get a leading zero
("ngày 07 tháng 02 năm 2027", but "tháng 3"). Times are local to the meeting's zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.endpoints import unit_history
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit, UnitLevel
from confsvc.errors import NotFound
from confsvc.scheduling import cascade, join
from confsvc.scheduling.models import Meeting, MeetingParticipant, Occurrence, OccurrenceParticipant, OccurrenceStatus
from confsvc.text import fold
from confsvc.users.principal import Principal

NATIONAL_TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
ISSUER = "VĂN PHÒNG"
DOCUMENT_KIND = "GIẤY MỜI"
SYMBOL = "GM-VP"
DEFAULT_SIGNER_TITLE = "CHÁNH VĂN PHÒNG"
T = TypeVar("T")
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")


@dataclass(frozen=True)
class SiteLine:
    """The participating rooms of one unit."""

    unit_name: str
    room_names: list[str]


@dataclass(frozen=True)
class Invitation:
    """Everything a giấy mời shows; strings are final Vietnamese text (NFC)."""

    issuer_parent: str
    issuer: str
    number_line: str
    place_date_line: str
    kind: str
    summary: str
    greeting: str
    time_line: str
    chair_line: str
    sites: list[SiteLine]
    check_line: str
    join_lines: list[str]
    description: str
    closing: str
    recipients: list[str]
    signer_title: str
    signer_name: str
    national_title: str = NATIONAL_TITLE
    motto: str = MOTTO
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> list[str]:
        """The letter's body paragraphs, in order, as both renderers (DOCX, PDF) set them: greeting, time,
        chair, the participating sites, check, join instructions, content (when given), closing."""
        paragraphs = [self.greeting, self.time_line, self.chair_line, "3. Các điểm cầu tham dự:"]
        paragraphs += [f"- {site.unit_name}: {'; '.join(site.room_names)}." for site in self.sites]
        paragraphs += [self.check_line, "5. Hướng dẫn kết nối:", *(f"- {line}" for line in self.join_lines)]
        if self.description:
            paragraphs.append(f"Nội dung: {self.description}")
        return [*paragraphs, self.closing]

    def text(self) -> str:
        """The whole letter as plain text, one part per line (for tests and e-mail bodies)."""
        lines = [self.issuer_parent, self.issuer, self.number_line, self.national_title, self.motto,
                 self.place_date_line, self.kind, self.summary, self.greeting, self.time_line, self.chair_line,
                 "3. Các điểm cầu tham dự:"]
        lines += [f"- {s.unit_name}: {'; '.join(s.room_names)}." for s in self.sites]
        lines += [self.check_line, "5. Hướng dẫn kết nối:", *(f"- {j}" for j in self.join_lines)]
        if self.description:
            lines.append(self.description)
        lines += [self.closing, "Nơi nhận:", *self.recipients, self.signer_title, self.signer_name]
        return "\n".join(lines)


# ---------------------------------------------------------------- pure formatting

def date_line(place: str, day: date) -> str:
    """``"Phú Thọ, ngày 07 tháng 12 năm 2026"`` (NĐ 30: leading zero for days < 10 and months 1, 2)."""
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"{place}, ngày {day.day:02d} tháng {month} năm {day.year}"


def time_phrase(local: datetime) -> str:
    """``"08 giờ 00 phút, Thứ Hai, ngày 14/12/2026"`` for a local time."""
    return f"{local:%H} giờ {local:%M} phút, {WEEKDAYS[local.weekday()]}, ngày {local:%d/%m/%Y}"


def number_line(document_number: str) -> str:
    """``"Số: 123/GM-VP"``; a number already carrying its symbol (``"45/GM-UBND"``) is kept as is;
    without a number the office fills the blank by hand (``"Số:      /GM-VP"``)."""
    number = document_number.strip()
    if not number:
        return f"Số:{' ' * 6}/{SYMBOL}"
    return f"Số: {number}" if "/" in number else f"Số: {number}/{SYMBOL}"


def bare_name(unit: Unit) -> str:
    """``"Phú Thọ"`` for ``"Tỉnh Phú Thọ"`` (the division type removed from the front)."""
    prefix = unit.division_type.strip()
    if prefix and fold(unit.name).startswith(fold(prefix) + " "):
        return unit.name[len(prefix) + 1:].strip()
    return unit.name


def join_lines(details: join.JoinDetails | None, dial_mode: str, *,
               others: tuple[tuple[str, join.JoinDetails], ...] = (), upstream_dial: str | None = None) -> list[str]:
    """The join instructions of the letter (hướng dẫn kết nối), one line each. ``others``: a cascaded
    meeting's other bridges (label, details): each province's sites dial their own (issue 14);
    ``upstream_dial``: a relay's external chair."""
    if details is None or details.conference_number is None:
        return ["Thông tin kết nối sẽ được cán bộ kỹ thuật thông báo trước giờ kiểm tra kỹ thuật."]
    lines = [f"Số hội nghị: {details.conference_number}"]
    if dial_mode == "dial_out":
        lines.append("MCU sẽ gọi tới thiết bị của các điểm cầu; các điểm cầu không cần quay số.")
    else:
        if details.sip_uri:
            lines.append(f"Thiết bị SIP quay số: {details.sip_uri}")
        if details.h323_number:
            lines.append(f"Thiết bị H.323 quay số: {details.h323_number}")
        for label, other in others:
            dial = ", ".join(d for d in (other.sip_uri or "", other.h323_number or "") if d)
            lines.append(f"Điểm cầu thuộc {label} quay số: {dial} (số hội nghị {other.conference_number})")
        if details.pin:
            lines.append(f"Mã PIN: {details.pin}")
    if upstream_dial:
        lines.append(join.upstream_line(upstream_dial))
    return lines


# ---------------------------------------------------------------- from the database

def _province(session: Session, unit: Unit) -> Unit:
    """The province above ``unit`` (itself if it is one, or the top of its chain)."""
    for _ in range(10):
        parent = session.get(Unit, unit.parent_id) if unit.parent_id is not None else None
        if parent is None or unit.level is UnitLevel.province:
            break
        unit = parent
    return unit


def _row(session: Session, model: type[T], row_id: int | None) -> T:
    """A row the foreign keys guarantee exists."""
    row = session.get(model, row_id)
    assert row is not None, (model, row_id)
    return row


def pick_occurrence(session: Session, meeting: Meeting, occurrence_id: int | None, now: datetime) -> Occurrence:
    """The occurrence the letter invites to: ``occurrence_id`` if given, else the next scheduled one
    not yet ended at ``now``, else the last scheduled, else the first.

    Raises NotFound ``occurrence_not_found``.
    """
    occurrences = list(session.exec(select(Occurrence).where(col(Occurrence.meeting_id) == meeting.id)
                                    .order_by(col(Occurrence.start), col(Occurrence.id))).all())
    if occurrence_id is not None:
        chosen = [o for o in occurrences if o.id == occurrence_id]
        if not chosen:
            raise NotFound(f"occurrence {occurrence_id} of meeting {meeting.id} not found",
                           code="occurrence_not_found")
        return chosen[0]
    scheduled = [o for o in occurrences if o.status is OccurrenceStatus.scheduled]
    upcoming = [o for o in scheduled if o.end > now]
    if upcoming:
        return upcoming[0]
    if scheduled:
        return scheduled[-1]
    if occurrences:
        return occurrences[0]
    raise NotFound(f"meeting {meeting.id} has no occurrence", code="occurrence_not_found")


def _names_then(session: Session, history: unit_history.History, room_id: int, unit_id: int, room_name: str,
                unit_name: str, at: datetime) -> tuple[str, str]:
    """``(room name, unit name)`` in force at ``at`` (UTC) for the room ``room_id`` now in ``unit_id``."""
    then_unit_id, then_room = history.room_at(room_id, unit_id, room_name, at)
    if then_unit_id != unit_id:
        unit = session.get(Unit, then_unit_id)
        unit_name = unit.name if unit is not None else unit_name
    return then_room, history.unit_name_at(then_unit_id, unit_name, at)


def build(session: Session, meeting: Meeting, *, dial_mode: str, occurrence_id: int | None = None,
          now: datetime | None = None) -> Invitation:
    """The giấy mời of ``meeting`` for one occurrence (see :func:`pick_occurrence`), dated ``now``
    (local date in the meeting's zone). Read access is the caller's business (``reading.get_meeting``).
    Rooms and units show the names in force at the occurrence's start (issue 15: a later merge or rename
    does not rewrite a past meeting's letter; ``endpoints.unit_history``).

    Raises NotFound ``occurrence_not_found``.
    """
    now = now or utc_now()
    zone = ZoneInfo(meeting.timezone)
    occ = pick_occurrence(session, meeting, occurrence_id, now)
    chair = _row(session, Room, occ.chair_room_id or meeting.chair_room_id)
    chair_unit = _row(session, Unit, chair.unit_id)
    province = _province(session, chair_unit)
    if occ.participants_overridden:
        ids = select(col(OccurrenceParticipant.endpoint_id)).where(col(OccurrenceParticipant.occurrence_id) == occ.id)
    else:
        ids = select(col(MeetingParticipant.endpoint_id)).where(col(MeetingParticipant.meeting_id) == meeting.id)
    rows = session.exec(select(col(Room.id), col(Room.unit_id), col(Unit.name), col(Room.name)).select_from(Endpoint)
                        .join(Room, col(Room.id) == col(Endpoint.room_id)).join(Unit, col(Unit.id) == col(Room.unit_id))
                        .where(col(Endpoint.id).in_(ids), col(Room.id) != chair.id).distinct()).all()
    names = [(room_name, unit_name) for _, _, unit_name, room_name in rows]
    chair_name, chair_unit_name = chair.name, chair_unit.name
    history = unit_history.load_history(session)
    if history:  # a merge or rename since: the names in force at the occurrence's start
        chair_name, chair_unit_name = _names_then(session, history, chair.id or 0, chair_unit.id or 0, chair.name,
                                                  chair_unit.name, occ.start)
        names = [_names_then(session, history, room_id or 0, unit_id, room_name, unit_name, occ.start)
                 for room_id, unit_id, unit_name, room_name in rows]
    by_unit: dict[str, list[str]] = {}
    for room_name, unit_name in names:
        by_unit.setdefault(unit_name, []).append(room_name)
    sites = [SiteLine(u, sorted(by_unit[u], key=fold)) for u in sorted(by_unit, key=fold)]
    bridge = session.get(Bridge, meeting.bridge_id) if meeting.bridge_id else None
    details = join.JoinDetails(conference_number=meeting.conference_number, sip_domain=bridge.sip_domain,
                               h323_prefix=bridge.h323_prefix, pin=meeting.pin) if bridge else None
    start_local = occ.start.astimezone(zone)
    check_local = (occ.start - timedelta(minutes=meeting.check_lead_minutes)).astimezone(zone)
    office = f"Văn phòng UBND {province.name[:1].lower()}{province.name[1:]}"
    return Invitation(
        issuer_parent=f"UBND {province.name.upper()}", issuer=ISSUER, number_line=number_line(meeting.document_number),
        place_date_line=date_line(bare_name(province), now.astimezone(zone).date()), kind=DOCUMENT_KIND,
        summary=f"Dự hội nghị trực tuyến {meeting.title}",
        greeting=f"{office} trân trọng kính mời lãnh đạo các đơn vị có điểm cầu dưới đây "
                 f"dự hội nghị trực tuyến {meeting.title}, cụ thể như sau:",
        time_line=f"1. Thời gian: {time_phrase(start_local)} "
                  f"(kết thúc lúc {occ.end.astimezone(zone):%H} giờ {occ.end.astimezone(zone):%M} phút).",
        chair_line=f"2. Điểm cầu chủ trì: {chair_name} ({chair_unit_name}).",
        sites=sites,
        check_line=f"4. Kiểm tra kỹ thuật: {time_phrase(check_local)}; đề nghị cán bộ kỹ thuật các điểm cầu "
                   "kết nối và báo sẵn sàng trước giờ này.",
        join_lines=join_lines(details, dial_mode, others=tuple(
            (f"{b.name}", join.JoinDetails(conference_number=number, sip_domain=b.sip_domain,
                                           h323_prefix=b.h323_prefix, pin=meeting.pin))
            for b, number in cascade.tree_of(session, meeting).others.values()), upstream_dial=meeting.upstream_dial),
        description=meeting.description.strip(),
        closing=f"{office} trân trọng kính mời./.",
        recipients=["- Như thành phần mời;", "- Các điểm cầu tham dự;", "- Lưu: VT."],
        signer_title=(meeting.signer_title or DEFAULT_SIGNER_TITLE).upper(),  # lines: "KT. …\nPHÓ …"
        signer_name=meeting.signer_name,
        extra={"meeting_id": meeting.id, "occurrence_id": occ.id},
    )


FORMATS = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
           "pdf": "application/pdf"}


def render_for(session: Session, settings: Settings, principal: Principal, meeting_id: int, *, fmt: str,
               occurrence_id: int | None = None, now: datetime | None = None) -> bytes:
    """The giấy mời of meeting ``meeting_id`` as ``fmt`` (``docx`` or ``pdf``, see :data:`FORMATS`),
    for whoever may read the meeting (``reading.get_meeting``).

    Raises: NotFound (meeting, occurrence), Forbidden (meeting not readable), ValueError (unknown fmt).
    """
    from confsvc.scheduling import invitation_docx, invitation_pdf, reading

    if fmt not in FORMATS:
        raise ValueError(f"unknown invitation format {fmt!r}")
    meeting = reading.get_meeting(session, principal, meeting_id)
    letter = build(session, meeting, dial_mode=settings.join_dial_mode, occurrence_id=occurrence_id, now=now)
    return (invitation_docx if fmt == "docx" else invitation_pdf).render(letter)
