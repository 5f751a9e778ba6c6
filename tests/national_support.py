"""A small country for the national meetings' tests (issue 14): three provinces (Hà Nội "01", Lào Cai
"15", Phú Thọ "25"), each with a provincial hall and its communes' rooms (one endpoint each), its own
bridge (MCU, 20 ports) and its secretariat; a national secretariat (no province) and a Hà Nội operator.
Usernames: ``vanphong01``, ``vanphong15``, ``vanphong25``, ``vanphongchinhphu``, ``kythuat01``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user
from tests.web_support import PASSWORD

H = timedelta(hours=1)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _province(session: Session, code: str, name: str, short: str, *, communes: int, base: int) -> dict[str, Any]:
    province = make_unit(session, code=code, name=name, division_type="tỉnh", level=UnitLevel.province)
    hq = make_room(session, province, name=f"Hội trường UBND {short}")
    make_endpoint(session, hq, dial_address=f"sip:{code}hq@vc.example.vn")
    rooms = [hq.id]
    for n in range(communes):
        commune = make_unit(session, code=f"{code}{n:03d}", name=f"Xã {short} {n + 1}", parent_id=province.id)
        room = make_room(session, commune, name=f"Điểm cầu {short} {n + 1}")
        make_endpoint(session, room, dial_address=f"sip:{code}{n:03d}@vc.example.vn")
        rooms.append(room.id)
    bridge = make_bridge(session, name=f"MCU {short}", unit_id=province.id, port_capacity=20,
                         sip_domain=f"mcu.{code}.gov.vn", h323_prefix=f"9{code}", conference_number_min=base,
                         conference_number_max=base + 99)
    secretariat = make_user(session, Role.secretariat, province_id=province.id, username=f"vanphong{code}",
                            password=PASSWORD)
    return {"unit": province, "id": province.id, "code": code, "name": name, "rooms": rooms, "bridge": bridge.id,
            "secretariat": bearer(session, secretariat)}


@pytest.fixture
def country(engine: Engine) -> dict[str, Any]:
    with make_session(engine) as session:
        out = {"hn": _province(session, "01", "Thành phố Hà Nội", "Hà Nội", communes=3, base=100),
               "lc": _province(session, "15", "Tỉnh Lào Cai", "Lào Cai", communes=2, base=1500),
               "pt": _province(session, "25", "Tỉnh Phú Thọ", "Phú Thọ", communes=3, base=2500)}
        national = make_user(session, Role.secretariat, username="vanphongchinhphu", password=PASSWORD)
        operator = make_user(session, Role.operator, [out["hn"]["unit"]], username="kythuat01", password=PASSWORD)
        out["national"] = bearer(session, national)
        out["operator"] = bearer(session, operator)
        session.commit()
    return out


def meeting_body(chair: int, rooms: list[int], start, **extra: Any) -> dict[str, Any]:
    return {"title": extra.pop("title", "Hội nghị trực tuyến Chính phủ với địa phương"), "chair_room_id": chair,
            "participant_room_ids": rooms, "start": start.isoformat(), "end": (start + 2 * H).isoformat(),
            "check_lead_minutes": 30, **extra}


def book(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    booked = client.post("/api/v1/meetings", json=body, headers=headers)
    assert booked.status_code == 201, booked.text
    return booked.json()


def busy_locals(client: TestClient, country: dict[str, Any], start) -> tuple[dict[str, Any], dict[str, Any]]:
    """Phú Thọ's commune 1 and Hà Nội's communes 1 and 2 taken by each province's own meeting then."""
    pt, hn = country["pt"], country["hn"]
    pt_local = book(client, pt["secretariat"], meeting_body(pt["rooms"][1], [], start - H, title="Giao ban Phú Thọ"))
    hn_local = book(client, hn["secretariat"], meeting_body(hn["rooms"][1], [hn["rooms"][2]], start,
                                                      title="Giao ban Hà Nội"))
    return pt_local, hn_local


def whole_country(country: dict[str, Any]) -> dict[str, Any]:
    """The whole country: the chair in Hà Nội, every other room as a site."""
    rooms = [r for key in ("hn", "lc", "pt") for r in country[key]["rooms"]]
    return {"chair": rooms[0], "sites": rooms[1:]}
