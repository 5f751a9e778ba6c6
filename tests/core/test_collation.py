"""One Vietnamese order for units, rooms and endpoints on both databases and in Python (issue 13:
"Phường Âu Cơ" sorted after "Phường Xuân Hòa" by code point)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc import collation
from confsvc.db import make_session
from confsvc.endpoints import service as inventory
from confsvc.endpoints.models import UnitLevel
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_endpoint, make_room, make_unit, make_user
from tests.web_support import PASSWORD, login

#: Real Phú Thọ units, in the expected (UCA root) order: "Âu" with A, "Vân" < "Việt" < "Vĩnh", and "Đ" with D
#: ("Đà" < "Dân" < "Đoan": the letter decides only where the rest is equal).
ORDERED = ["Phường Âu Cơ", "Phường Vân Phú", "Phường Việt Trì", "Phường Vĩnh Yên", "Phường Xuân Hòa",
           "Xã Chí Đám", "Xã Đà Bắc", "Xã Dân Chủ", "Xã Đoan Hùng"]
#: Inserted in code-point-hostile order (the order "ORDER BY name" would keep wrong).
INSERTED = ["Xã Đoan Hùng", "Phường Xuân Hòa", "Phường Âu Cơ", "Xã Dân Chủ", "Phường Vĩnh Yên", "Xã Đà Bắc",
            "Phường Việt Trì", "Xã Chí Đám", "Phường Vân Phú"]


def _seed(session: Session) -> None:
    province = make_unit(session, code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
    make_room(session, province, name="Phòng họp trực tuyến UBND tỉnh")
    for i, name in enumerate(INSERTED):
        unit = make_unit(session, code=f"{7000 + i:05d}", name=name, parent_id=province.id,
                         division_type=name.split(" ")[0].lower())
        room = make_room(session, unit, name=f"Điểm cầu {name}")
        make_endpoint(session, room)
    make_user(session, Role.admin, username="quantri", password=PASSWORD)


def test_python_sort_key_puts_au_co_with_a_not_after_xuan_hoa() -> None:
    assert sorted(INSERTED, key=collation.sort_key) == ORDERED
    assert sorted(INSERTED) != ORDERED  # code-point order is the bug


def test_units_rooms_and_endpoints_are_listed_in_vietnamese_order_on_both_databases(session: Session) -> None:
    _seed(session)
    session.flush()
    admin = users.principal_for(session, make_user(session, Role.admin))
    units, _ = inventory.list_units(session, admin, limit=100)
    assert [u.name for u in units] == ["Tỉnh Phú Thọ", *ORDERED]
    rooms, _ = inventory.list_rooms(session, admin, limit=100)
    assert [r.name for r in rooms] == ["Phòng họp trực tuyến UBND tỉnh", *[f"Điểm cầu {n}" for n in ORDERED]]
    endpoints, _ = inventory.list_endpoints(session, admin, limit=100)
    assert [room.name for _, room in endpoints] == [f"Điểm cầu {n}" for n in ORDERED]


def test_web_selects_list_units_in_the_same_order(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        _seed(session)
        session.commit()
    login(client, "quantri")
    inventory_page = client.get("/inventory").text
    select = inventory_page[inventory_page.index('<select id="unit_id"'):]
    select = select[:select.index("</select>")]
    assert re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', select) == ["Tỉnh Phú Thọ", *ORDERED]
    booking = client.get("/meetings/new").text
    assert re.findall(r'<optgroup label="([^"]+)">', booking) == ["Tỉnh Phú Thọ", *ORDERED]
