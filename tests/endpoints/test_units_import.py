"""Loading the real Phú Thọ units from the vietnam-provinces package, on both databases."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from confsvc.endpoints.models import Unit, UnitLevel
from confsvc.endpoints.units_import import find_province, import_province
from confsvc.errors import NotFound


def test_phu_tho_has_148_communes_and_wards(session: Session) -> None:
    summary = import_province(session, "25")
    assert (summary.province_name, summary.created, summary.updated, summary.unchanged) == ("Phú Thọ", 149, 0, 0)
    province = session.exec(select(Unit).where(Unit.code == "25")).one()
    assert (province.level, province.division_type, province.parent_id) == (UnitLevel.province, "tỉnh", None)
    children = session.exec(select(Unit).where(Unit.parent_id == province.id)).all()
    assert len(children) == 148
    kinds = {}
    for unit in children:
        kinds[unit.division_type] = kinds.get(unit.division_type, 0) + 1
    assert kinds == {"xã": 133, "phường": 15}
    viet_tri = session.exec(select(Unit).where(Unit.code == "07900")).one()
    assert (viet_tri.name, viet_tri.level) == ("Phường Việt Trì", UnitLevel.commune)


def test_reimport_changes_nothing(session: Session) -> None:
    import_province(session, "Phú Thọ")
    before = session.exec(select(Unit.id, Unit.code, Unit.name, Unit.parent_id).order_by(Unit.id)).all()
    summary = import_province(session, "phu tho")
    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 149)
    assert session.exec(select(Unit.id, Unit.code, Unit.name, Unit.parent_id).order_by(Unit.id)).all() == before


def test_two_provinces_side_by_side(session: Session) -> None:
    import_province(session, "25")
    import_province(session, "Thành phố Hà Nội")
    assert session.exec(select(func.count()).select_from(Unit).where(Unit.level == UnitLevel.province)).one() == 2


@pytest.mark.parametrize("name", ["Tỉnh Phú Thọ", "PHÚ THỌ", "phu tho", "25"])
def test_find_province_accepts_names_and_codes(name: str) -> None:
    assert find_province(name).name == "Phú Thọ"


@pytest.mark.parametrize("name", ["Atlantis", "99", "0"])
def test_unknown_province(name: str) -> None:
    with pytest.raises(NotFound) as info:
        find_province(name)
    assert info.value.code == "unknown_province"
