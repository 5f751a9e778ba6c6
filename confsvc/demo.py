"""Demo data on the real Phú Thọ units: a chair room, a room and an endpoint per commune,
two 200-port bridges and one user per role. Deterministic (seeded) and safe to re-run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sqlmodel import Session, select

from confsvc.endpoints.models import Bridge, Endpoint, LifecycleState, Protocol, Room, Unit, UnitLevel
from confsvc.endpoints.service import endpoint_search_text
from confsvc.endpoints.units_import import import_province
from confsvc.text import fold, search_key
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import Role, User

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
    passwords: dict[str, tuple[str, str]] = field(default_factory=dict)  # username -> (role, password)


def _slug(name: str) -> str:
    return fold(name).replace(" ", "")


def _endpoint(rng: random.Random, room: Room, unit: Unit, index: int, vendor: str, model: str) -> Endpoint:
    protocol = Protocol.h323 if rng.random() < 0.25 else Protocol.sip
    slug = _slug(unit.name.split(" ", 1)[-1])
    if protocol is Protocol.sip:
        dial = f"sip:{slug}{'' if index == 0 else index + 1}@{DIAL_DOMAIN}"
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
            room = _room(unit, f"Điểm cầu UBND {unit.name}", rng.choice([20, 30, 40, 50]),
                         f"Cán bộ kỹ thuật {unit.name}")
            session.add(room)
            session.flush()
            vendor, models, _ = rng.choices(VENDORS, weights)[0]
            session.add(_endpoint(rng, room, unit, 0, vendor, rng.choice(models)))
        session.add(Bridge(name="MCU Trung tâm tỉnh", vendor="Poly", model="RealPresence Collaboration Server 2000",
                           port_capacity=200, sip_domain="mcu1.phutho.gov.vn", h323_prefix="8801",
                           conference_number_min=1000, conference_number_max=1999, management_address="10.25.0.5"))
        session.add(Bridge(name="MCU Dự phòng", vendor="Huawei", model="CloudMCU",
                           port_capacity=200, sip_domain="mcu2.phutho.gov.vn", h323_prefix="8802",
                           conference_number_min=2000, conference_number_max=2999, management_address="10.25.0.6"))
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


def seed(session: Session) -> DemoSummary:
    summary = seed_inventory(session)
    seed_users(session, summary)
    return summary
