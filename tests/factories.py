"""Small test-data builders: one function per thing, overrides by keyword. They flush, never commit."""

from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import Session

from confsvc.endpoints.models import Bridge, Endpoint, Protocol, Room, Unit, UnitLevel
from confsvc.text import search_key
from confsvc.users import service as users
from confsvc.users.models import Role, User

_seq = itertools.count(1)


def make_unit(session: Session, **overrides: Any) -> Unit:
    n = next(_seq)
    values = {"code": f"{90000 + n:05d}", "name": f"Xã Thử Nghiệm {n}", "division_type": "xã",
              "level": UnitLevel.commune, "parent_id": None, **overrides}
    unit = Unit(**values, search_text=search_key(values["name"], values["division_type"]))
    session.add(unit)
    session.flush()
    return unit


def make_room(session: Session, unit: Unit | None = None, **overrides: Any) -> Room:
    unit = unit or make_unit(session)
    values = {"name": f"Điểm cầu {next(_seq)}", "seats": 30, **overrides}
    room = Room(unit_id=unit.id, **values, search_text=search_key(values["name"], unit.name))
    session.add(room)
    session.flush()
    return room


def make_endpoint(session: Session, room: Room | None = None, **overrides: Any) -> Endpoint:
    room = room or make_room(session)
    n = next(_seq)
    values = {"name": f"Thiết bị {n}", "vendor": "Poly", "model": "Group 500", "serial": f"SN{n:08d}",
              "protocol": Protocol.sip, "dial_address": f"sip:ep{n}@vc.example.vn", **overrides}
    endpoint = Endpoint(room_id=room.id, **values, search_text=search_key(values["name"], values["serial"]))
    session.add(endpoint)
    session.flush()
    return endpoint


def make_bridge(session: Session, **overrides: Any) -> Bridge:
    n = next(_seq)
    values = {"name": f"MCU {n}", "port_capacity": 200, "sip_domain": f"mcu{n}.example.vn", "h323_prefix": "88",
              "conference_number_min": 1000, "conference_number_max": 1999, **overrides}
    bridge = Bridge(**values)
    session.add(bridge)
    session.flush()
    return bridge


def make_user(session: Session, role: Role = Role.admin, units: list[Unit] | None = None, **overrides: Any) -> User:
    values = {"username": f"user{next(_seq)}", "password": "mật-khẩu-dài-1", "full_name": "Người Dùng", **overrides}
    return users.create_user(session, role=role, unit_ids=[u.id for u in units or []], **values)


def bearer(session: Session, user: User) -> dict[str, str]:
    """Authorization header for ``user`` (issues a token)."""
    _, secret = users.issue_token(session, user, "test")
    return {"Authorization": f"Bearer {secret}"}


# ---------------------------------------------------------------- scheduling

def next_monday_local(weeks_ahead: int = 2, hour: int = 8, minute: int = 0):
    """A Monday ``weeks_ahead`` weeks from now at ``hour:minute`` in Asia/Ho_Chi_Minh (aware)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    today = datetime.now(zone).date()
    monday = today + timedelta(days=7 * weeks_ahead - today.weekday())
    return datetime(monday.year, monday.month, monday.day, hour, minute, tzinfo=zone)


def make_meeting(session: Session, *, chair_room: Room, start: Any, end: Any, endpoints: Any = (),
                 rooms: Any = (), user: User | None = None, settings: Any = None, **overrides: Any) -> Any:
    """Book a meeting through the service (as a secretariat user) and return the ``BookResult``."""
    from confsvc.config import Settings
    from confsvc.scheduling import creation
    from confsvc.scheduling.schemas import MeetingCreate

    settings = settings or Settings(secret_key="x" * 40)
    user = user or make_user(session, Role.secretariat)
    values = {"title": f"Hội nghị {next(_seq)}", "chair_room_id": chair_room.id,
              "participant_endpoint_ids": [e.id for e in endpoints], "participant_room_ids": [r.id for r in rooms],
              "start": start, "end": end, **overrides}
    return creation.book_meeting(session, settings, users.principal_for(session, user), MeetingCreate(**values))
