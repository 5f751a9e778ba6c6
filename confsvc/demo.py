"""Demo data on the real Phú Thọ units: a chair room, a room and an endpoint per commune,
two 200-port bridges, one user per role, and a month of meetings booked through the real
scheduling service. Deterministic (seeded) and safe to re-run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, func, select

from confsvc.clock import utc_now
from confsvc.config import Settings, get_settings
from confsvc.endpoints.models import Bridge, Endpoint, LifecycleState, Protocol, Room, Unit, UnitLevel
from confsvc.endpoints.service import endpoint_search_text
from confsvc.endpoints.units_import import import_province
from confsvc.scheduling import cancellation, creation, editing
from confsvc.scheduling.models import Meeting, MeetingBridge, MeetingParticipant, Occurrence
from confsvc.scheduling.schemas import MeetingCreate, OccurrenceUpdate
from confsvc.text import fold, search_key
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import Role, User
from confsvc.users.principal import Principal

PROVINCE_CODE = "25"
DIAL_DOMAIN = "vc.phutho.gov.vn"
CHAIR_ROOM_NAME = "Phòng họp trực tuyến UBND tỉnh Phú Thọ"

#: (vendor, models, share of the fleet) as found in Vietnamese provincial networks.
VENDORS = [
    ("Poly", ["Group 500", "G7500", "Studio X50"], 0.35),
    ("Cisco", ["Room Kit", "Webex Codec Plus", "SX20"], 0.2),
    ("Huawei", ["TE30", "TE40", "Box 600"], 0.3),
    ("Yealink", ["VC800", "MeetingEye 600"], 0.15),
]
SERIAL_PREFIX = {"Poly": "82", "Cisco": "FTT", "Huawei": "21023", "Yealink": "8030"}


@dataclass
class DemoSummary:
    communes: int = 0
    rooms: int = 0
    endpoints: int = 0
    bridges: int = 0
    meetings: int = 0
    occurrences: int = 0
    passwords: dict[str, tuple[str, str]] = field(default_factory=dict)  # username -> (role, password)


def _slug(name: str) -> str:
    return fold(name).replace(" ", "")


def _bare_name(unit: Unit) -> str:
    """The unit's name without its type: "Xã Tân Lạc" → "Tân Lạc" (the package spells the type in)."""
    kind = unit.division_type
    return unit.name[len(kind):].strip() if unit.name.lower().startswith(kind.lower() + " ") else unit.name


def _ubnd(unit: Unit) -> str:
    """"UBND xã Tân Lạc", as GLOSSARY writes People's Committees (type in lower case)."""
    return f"UBND {unit.division_type} {_bare_name(unit)}"


def _endpoint(rng: random.Random, room: Room, unit: Unit, index: int, vendor: str, model: str,
              domain: str = DIAL_DOMAIN) -> Endpoint:
    protocol = Protocol.h323 if rng.random() < 0.25 else Protocol.sip
    # The province's chair room gets "ubndtinh…": a ward may carry the province's name (Phường Phú Thọ).
    slug = _slug(_bare_name(unit)) if unit.level is not UnitLevel.province else "ubndtinh" + _slug(_bare_name(unit))
    if protocol is Protocol.sip:
        dial = f"sip:{slug}{'' if index == 0 else index + 1}@{domain}"
    else:
        dial = f"0210{int(unit.code):05d}{index}"
    serial = f"{SERIAL_PREFIX[vendor]}{rng.randrange(10**7, 10**8)}{unit.code}{index}"
    endpoint = Endpoint(
        room_id=room.id, name=f"{room.name} – {vendor} {model}", vendor=vendor, model=model, serial=serial,
        protocol=protocol, dial_address=dial,
        management_ip=f"10.25.{int(unit.code) % 250}.{10 + index}",
        firmware={"Poly": "10.1.2", "Cisco": "RoomOS 11.14", "Huawei": "V600R019", "Yealink": "63.345.0.10"}[vendor],
        lifecycle_state=LifecycleState.maintenance if rng.random() < 0.02 else LifecycleState.active,
    )
    endpoint.search_text = endpoint_search_text(endpoint, room, unit)
    return endpoint


def _room(unit: Unit, name: str, seats: int, contact: str) -> Room:
    slug = _slug(unit.name)
    room = Room(unit_id=unit.id, name=name, seats=seats, location=f"Trụ sở {unit.name}",
                contact_name=contact, contact_phone=f"0210 3{int(unit.code) % 1000:03d} {int(unit.code) % 997:03d}",
                contact_email=f"ktdc.{slug}@phutho.gov.vn")
    room.search_text = search_key(room.name, unit.name, room.location, room.contact_name)
    return room


def seed_inventory(session: Session) -> DemoSummary:
    """Import Phú Thọ and build rooms, endpoints and bridges once (skipped when rooms exist)."""
    summary = DemoSummary()
    import_province(session, PROVINCE_CODE)
    province = session.exec(select(Unit).where(Unit.code == PROVINCE_CODE)).one()
    communes = list(session.exec(select(Unit).where(Unit.parent_id == province.id).order_by(Unit.code)).all())
    summary.communes = len(communes)
    if session.exec(select(Room.id)).first() is None:
        rng = random.Random(25)
        chair = _room(province, CHAIR_ROOM_NAME, 80, "Trung tâm Công nghệ thông tin tỉnh")
        session.add(chair)
        session.flush()
        session.add(_endpoint(rng, chair, province, 0, "Poly", "G7500"))
        session.add(_endpoint(rng, chair, province, 1, "Cisco", "Room Kit Pro"))
        weights = [w for _, _, w in VENDORS]
        for unit in communes:
            room = _room(unit, f"Điểm cầu {_ubnd(unit)}", rng.choice([20, 30, 40, 50]),
                         f"Cán bộ kỹ thuật {unit.name}")
            session.add(room)
            session.flush()
            vendor, models, _ = rng.choices(VENDORS, weights)[0]
            session.add(_endpoint(rng, room, unit, 0, vendor, rng.choice(models)))
        session.add(Bridge(name="MCU Trung tâm tỉnh", vendor="Poly", model="RealPresence Collaboration Server 2000",
                           port_capacity=200, sip_domain="mcu1.phutho.gov.vn", h323_prefix="8801",
                           conference_number_min=1000, conference_number_max=1999, management_address="10.25.0.5",
                           unit_id=province.id))
        session.add(Bridge(name="MCU Dự phòng", vendor="Huawei", model="CloudMCU",
                           port_capacity=200, sip_domain="mcu2.phutho.gov.vn", h323_prefix="8802",
                           conference_number_min=2000, conference_number_max=2999, management_address="10.25.0.6",
                           unit_id=province.id))
        session.flush()
    summary.rooms = len(session.exec(select(Room.id)).all())
    summary.endpoints = len(session.exec(select(Endpoint.id)).all())
    summary.bridges = len(session.exec(select(Bridge.id)).all())
    return summary


def seed_users(session: Session, summary: DemoSummary) -> None:
    """One user per role; passwords are new on every run and returned for printing."""
    province = session.exec(select(Unit).where(Unit.code == PROVINCE_CODE)).one()
    first_ward = session.exec(select(Unit).where(Unit.parent_id == province.id, Unit.level == UnitLevel.commune)
                              .order_by(Unit.code)).first()
    people = [
        ("admin", Role.admin, "Quản trị hệ thống", []),
        ("vanphong", Role.secretariat, "Văn phòng UBND tỉnh", []),
        ("kythuat", Role.operator, f"Cán bộ kỹ thuật {first_ward.name}", [first_ward.id]),
        ("lanhdao", Role.viewer, "Lãnh đạo UBND tỉnh", []),
        ("dangky", Role.requester, f"UBND {first_ward.name}", [first_ward.id]),
    ]
    for username, role, full_name, unit_ids in people:
        password = security.generate_password()
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            users.create_user(session, username=username, password=password, role=role, full_name=full_name,
                              unit_ids=unit_ids)
        else:
            user.password_hash = security.hash_password(password)
            session.add(user)
        summary.passwords[username] = (role.value, password)
    session.flush()


BRIEFING_TITLE = "Giao ban trực tuyến UBND tỉnh Phú Thọ với các xã, phường"
BRIEFING_WEEKS = 4
#: (title, which communes, weekday after the week's Monday, local start, local end, week index).
GROUP_MEETINGS = [
    ("Tập huấn vận hành chính quyền địa phương hai cấp cho các phường", "phuong", 3, time(8, 0), time(11, 0), 0),
    ("Hội nghị trực tuyến triển khai phương án phòng, chống thiên tai và tìm kiếm cứu nạn các xã khu vực phía Tây",
     "west", 2, time(14, 0), time(16, 30), 1),
    ("Họp trực tuyến sơ kết xây dựng nông thôn mới và giảm nghèo bền vững các xã khu vực phía Đông", "east", 4,
     time(14, 0), time(16, 30), 2),
]


def _group(communes: list[Unit], name: str) -> list[Unit]:
    """Communes invited to a group meeting: the wards, or the communes (xã) west or east of the province
    (by official code: the former Hòa Bình area has the lowest codes, the former Vĩnh Phúc the highest)."""
    if name == "phuong":
        return [u for u in communes if u.division_type == "phường"]
    if name == "west":
        return [u for u in communes if u.division_type == "xã" and int(u.code) < 7000]
    return [u for u in communes if u.division_type == "xã" and int(u.code) >= 8860]


def first_briefing_day(now: datetime, settings: Settings) -> date:
    """The first Monday (local) strictly after ``now``'s local date, so no demo meeting is in the past."""
    today = now.astimezone(settings.zone).date()
    return today + timedelta(days=7 - today.weekday())


def seed_meetings(session: Session, settings: Settings, summary: DemoSummary, *, now: datetime | None = None) -> None:
    """Book the next four weeks through the scheduling service, as the secretariat user (skipped when
    any meeting exists): a weekly Monday 08:00 briefing chaired from the province with every commune
    (endpoints in maintenance are left out by the service), three meetings of groups of communes,
    the third briefing cancelled and the second moved to Tuesday afternoon."""
    if session.exec(select(Meeting.id)).first() is None:
        now = now or utc_now()
        zone = settings.zone
        secretary = session.exec(select(User).where(User.username == "vanphong")).one()
        principal = Principal(user_id=secretary.id, username=secretary.username, role=secretary.role, unit_ids=None)
        province = session.exec(select(Unit).where(Unit.code == PROVINCE_CODE)).one()
        chair = session.exec(select(Room).where(Room.name == CHAIR_ROOM_NAME)).one()
        communes = list(session.exec(select(Unit).where(Unit.parent_id == province.id).order_by(Unit.code)).all())
        room_of = {r.unit_id: r.id for r in session.exec(select(Room).where(Room.id != chair.id)).all()}
        monday = first_briefing_day(now, settings)

        def at(day: date, clock: time) -> datetime:
            return datetime.combine(day, clock, zone)

        briefing = creation.book_meeting(session, settings, principal, MeetingCreate(
            title=BRIEFING_TITLE,
            description="Giao ban định kỳ sáng thứ Hai: Chủ tịch UBND tỉnh chủ trì tại điểm cầu tỉnh; "
                        "lãnh đạo UBND các xã, phường dự tại điểm cầu cấp xã.",
            chair_room_id=chair.id, participant_room_ids=[room_of[u.id] for u in communes if u.id in room_of],
            start=at(monday, time(8, 0)), end=at(monday, time(10, 30)),
            rrule=f"FREQ=WEEKLY;BYDAY=MO;COUNT={BRIEFING_WEEKS}"), now=now).meeting
        for title, group, weekday, start, end, week in GROUP_MEETINGS:
            day = monday + timedelta(days=7 * week + weekday)
            creation.book_meeting(session, settings, principal, MeetingCreate(
                title=title, chair_room_id=chair.id,
                participant_room_ids=[room_of[u.id] for u in _group(communes, group) if u.id in room_of],
                start=at(day, start), end=at(day, end)), now=now)
        occurrences = list(session.exec(select(Occurrence).where(Occurrence.meeting_id == briefing.id)
                                        .order_by(Occurrence.start)).all())
        moved = occurrences[1]
        tuesday = moved.start.astimezone(zone).date() + timedelta(days=1)
        editing.edit_occurrence(session, settings, principal, briefing, moved,
                                   OccurrenceUpdate(start=at(tuesday, time(14, 0)), end=at(tuesday, time(16, 30))),
                                   now=now)
        cancellation.cancel_occurrence(session, principal, briefing, occurrences[2], now=now)
    summary.meetings = session.exec(select(func.count()).select_from(Meeting)).one()
    summary.occurrences = session.exec(select(func.count()).select_from(Occurrence)).one()


def seed(session: Session, settings: Settings | None = None, *, now: datetime | None = None) -> DemoSummary:
    """Inventory, users and a month of meetings; ``now`` (UTC) places the meetings (default: the clock).

    Installs the hooks ``create_app`` installs (``main.install_hooks``) first: the meetings' events and
    usage marks are written as the running app would write them."""
    from confsvc.main import install_hooks

    install_hooks()
    summary = seed_inventory(session)
    seed_users(session, summary)
    seed_meetings(session, settings or get_settings(), summary, now=now)
    return summary


# ---------------------------------------------------------------- the whole country (issue 14)

#: The national user (Văn phòng Chính phủ): a secretariat of no province, who sees and books everywhere.
NATIONAL_USERNAME = "vanphongchinhphu"
#: Roles each province gets a user of, as ``<prefix>.<province code>`` (Phú Thọ keeps the demo's names).
#: The third item: the user is scoped to the province's first commune (operators and requesters).
PROVINCE_PEOPLE = [("quantri", Role.admin, False, "Quản trị hệ thống"),
                   ("vanphong", Role.secretariat, False, "Văn phòng UBND"),
                   ("kythuat", Role.operator, True, "Cán bộ kỹ thuật"), ("lanhdao", Role.viewer, False, "Lãnh đạo UBND"),
                   ("dangky", Role.requester, True, "UBND")]
#: Bridge ports beyond one per site (the chair room's two endpoints and every commune's): 25 %, in steps of 50.
PORT_HEADROOM = 1.25


def bridge_ports(sites: int) -> int:
    """Ports of a province's bridge for ``sites`` endpoints: ``sites × 1.25`` rounded up to 50."""
    return -(-int(sites * PORT_HEADROOM + 0.999) // 50) * 50


@dataclass
class NationalSummary:
    provinces: int = 0
    communes: int = 0
    rooms: int = 0
    endpoints: int = 0
    bridges: int = 0
    users: int = 0
    passwords: dict[str, tuple[str, str]] = field(default_factory=dict)


def seed_national(session: Session, codes: list[str] | None = None) -> NationalSummary:
    """All 34 provinces and their communes (``vietnam-provinces``), a chair room with an endpoint per
    province, one room and endpoint per commune, one bridge per province sized by
    :func:`bridge_ports`, one user per role per province and the national user. Deterministic
    (seeded per province) and re-runnable: existing rooms, bridges and users are kept (users get
    new passwords). Rows are added per province and flushed once per province.

    ``codes``: only these provinces (official codes; tests), default all.

    The national meeting is booked by :func:`book_national` (``confsvc demo --national`` calls both)."""
    from vietnam_provinces import Province

    summary = NationalSummary()
    with_room = set(session.exec(select(Room.unit_id)).all())
    owners = set(session.exec(select(Bridge.unit_id)).all())
    people = {u.username: u for u in session.exec(select(User)).all()}
    for province_data in sorted(Province.iter_all(), key=lambda p: p.code.value):
        code = f"{province_data.code.value:02d}"
        if codes is not None and code not in codes:
            continue
        import_province(session, code)
        province = session.exec(select(Unit).where(Unit.code == code)).one()
        communes = list(session.exec(select(Unit).where(Unit.parent_id == province.id).order_by(Unit.code)).all())
        summary.provinces += 1
        summary.communes += len(communes)
        rng = random.Random(int(code))
        slug = _slug(_bare_name(province))
        domain = f"vc.{slug}.gov.vn"
        new_rooms: list[tuple[Room, Unit, int]] = []
        if province.id not in with_room:
            chair = _room(province, f"Phòng họp trực tuyến UBND {province.name}", 80,
                          f"Trung tâm Công nghệ thông tin {province.name}")
            new_rooms.append((chair, province, 0))
        for unit in communes:
            if unit.id not in with_room:
                new_rooms.append((_room(unit, f"Điểm cầu {_ubnd(unit)}", rng.choice([20, 30, 40, 50]),
                                        f"Cán bộ kỹ thuật {unit.name}"), unit, 0))
        session.add_all([room for room, _, _ in new_rooms])
        session.flush()  # room ids, one INSERT per room in one flush
        weights = [w for _, _, w in VENDORS]
        endpoints = []
        for room, unit, index in new_rooms:
            vendor, models, _ = rng.choices(VENDORS, weights)[0]
            endpoints.append(_endpoint(rng, room, unit, index, vendor, rng.choice(models), domain))
        session.add_all(endpoints)
        if province.id not in owners:  # Phú Thọ's demo has its two bridges already
            session.add(Bridge(name=f"MCU {province.name}", vendor="Poly", model="RealPresence Collaboration Server 4000",
                               port_capacity=bridge_ports(len(communes) + 1), sip_domain=f"mcu.{slug}.gov.vn",
                               h323_prefix=f"88{code}", conference_number_min=1000, conference_number_max=9999,
                               unit_id=province.id))
        first = communes[0]
        for prefix, role, in_commune, title in PROVINCE_PEOPLE:
            username = prefix if code == PROVINCE_CODE else f"{prefix}.{code}"
            if code == PROVINCE_CODE and prefix == "quantri":
                username = "admin"
            units = [first.id] if in_commune else []
            _person(session, people, summary, username, role, f"{title} {province.name}", units, province.id)
        session.flush()
    _person(session, people, summary, NATIONAL_USERNAME, Role.secretariat, "Văn phòng Chính phủ", [], None)
    session.flush()
    summary.rooms = session.exec(select(func.count()).select_from(Room)).one()
    summary.endpoints = session.exec(select(func.count()).select_from(Endpoint)).one()
    summary.bridges = session.exec(select(func.count()).select_from(Bridge)).one()
    summary.users = len(summary.passwords)
    return summary


#: The national meeting of ``confsvc demo --national`` (issue 14; the Government–local conference of
#: 3 July 2025 connected all 34 provinces and more than 3,300 commune-level sites).
NATIONAL_TITLE = "Hội nghị trực tuyến Chính phủ với các địa phương"
#: Its day: the Thursday of the demo's second week (``first_briefing_day`` + 10 days), 08:00–11:00 local:
#: none of the Phú Thọ demo's meetings is then.
NATIONAL_DAY_OFFSET, NATIONAL_START, NATIONAL_END = 10, time(8, 0), time(11, 0)


@dataclass
class NationalMeeting:
    """The national meeting: its id, its sites (rooms taking part, the chair's included), its bridges
    (the root and one per other province with sites) and whether this run booked it."""

    meeting_id: int
    sites: int
    bridges: int
    booked: bool


def book_national(session: Session, settings: Settings, *, now: datetime | None = None) -> NationalMeeting | None:
    """Book the national meeting as the national user, through the service ``POST /api/v1/meetings`` calls
    (``creation.book_meeting``): chaired from Phú Thọ's provincial room (else the first province's), every
    other room of every province taking part (the service leaves out endpoints in maintenance, SPEC rule 4),
    cascaded (issue 14): each province's sites on its own bridge, chosen automatically, linked to the
    chair's. Idempotent: a meeting titled :data:`NATIONAL_TITLE` already there is returned as is.

    ``now`` (UTC) places it (default: the clock). None when fewer than two provinces have rooms (no
    cascade to show) or the national user is missing (run :func:`seed_national` first).

    Raises BookingConflict (409) when the slot is taken (e.g. a meeting booked there by hand)."""
    existing = session.exec(select(Meeting).where(Meeting.title == NATIONAL_TITLE).order_by(Meeting.id)).first()
    if existing is not None:
        return _national(session, existing, booked=False)
    national = session.exec(select(User).where(User.username == NATIONAL_USERNAME)).first()
    provinces = list(session.exec(select(Unit).where(Unit.level == UnitLevel.province).order_by(Unit.code)).all())
    chair_unit = next((p for p in provinces if p.code == PROVINCE_CODE), provinces[0] if provinces else None)
    rooms = session.exec(select(Room.id, Room.unit_id).order_by(Room.id)).all()
    with_rooms = {p.id for p in provinces} & {u for _r, u in rooms}
    if national is None or chair_unit is None or chair_unit.id not in with_rooms or len(with_rooms) < 2:
        return None
    chair = next(r for r, u in rooms if u == chair_unit.id)  # the provincial room (created first)
    now = now or utc_now()
    day = first_briefing_day(now, settings) + timedelta(days=NATIONAL_DAY_OFFSET)
    result = creation.book_meeting(session, settings, users.principal_for(session, national), MeetingCreate(
        title=NATIONAL_TITLE,
        description="Thủ tướng Chính phủ chủ trì; điểm cầu các tỉnh, thành phố và toàn bộ các xã, phường, "
                    "đặc khu dự qua cầu truyền hình của tỉnh mình (hội nghị truyền hình phân tầng).",
        chair_room_id=chair, participant_room_ids=[r for r, _u in rooms if r != chair],
        start=datetime.combine(day, NATIONAL_START, settings.zone),
        end=datetime.combine(day, NATIONAL_END, settings.zone), priority=2), now=now)
    return _national(session, result.meeting, booked=True)


def _national(session: Session, meeting: Meeting, *, booked: bool) -> NationalMeeting:
    assert meeting.id is not None
    sites = session.exec(select(func.count(func.distinct(Endpoint.room_id))).join(
        MeetingParticipant, MeetingParticipant.endpoint_id == Endpoint.id).where(
        MeetingParticipant.meeting_id == meeting.id)).one()
    others = session.exec(select(func.count()).select_from(MeetingBridge)
                          .where(MeetingBridge.meeting_id == meeting.id)).one()
    return NationalMeeting(meeting.id, sites, others + (meeting.bridge_id is not None), booked)


def _person(session: Session, people: dict[str, User], summary: NationalSummary, username: str, role: Role,
            full_name: str, unit_ids: list[int], province_id: int | None) -> None:
    password = security.generate_password()
    user = people.get(username)
    if user is None:
        users.create_user(session, username=username, password=password, role=role, full_name=full_name,
                          unit_ids=unit_ids, province_id=province_id)
    else:
        user.password_hash = security.hash_password(password)
        session.add(user)
    summary.passwords[username] = (role.value, password)
