"""Load a province and its communes/wards from the ``vietnam-provinces`` package.

The package (2025 data) follows the two-level administration in force since 1 July 2025:
province → commune/ward/special zone (xã, phường, đặc khu); it has no districts, so none are
created. Re-running an import changes nothing (units are matched by official code).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session
from vietnam_provinces import Province, ProvinceCode, VietNamDivisionType, Ward

from confsvc.endpoints.models import UnitLevel
from confsvc.endpoints.service import upsert_unit, upsert_units
from confsvc.errors import NotFound
from confsvc.text import fold

_PROVINCE_TYPES = {VietNamDivisionType.TINH, VietNamDivisionType.THANH_PHO_TRUNG_UONG}


@dataclass
class ImportSummary:
    province_id: int
    province_name: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def find_province(name_or_code: str) -> Province:
    """Resolve ``"25"``, ``"Phú Thọ"``, ``"phu tho"`` or ``"Tỉnh Phú Thọ"`` to a province.

    Raises:
        NotFound: code ``unknown_province``, listing nothing sensitive.
    """
    text = name_or_code.strip()
    if text.isdigit():
        try:
            return Province.from_code(ProvinceCode(int(text)))
        except ValueError:
            raise NotFound(f"no province with code {text}", code="unknown_province") from None
    wanted = _bare(text)
    for province in Province.iter_all():
        if _bare(province.name) == wanted:
            return province
    raise NotFound(f"no province named {name_or_code!r}", code="unknown_province")


def _bare(name: str) -> str:
    """Folded name without its administrative prefix: "Thành phố Hà Nội" → "ha noi"."""
    folded = fold(name)
    for prefix in ("tinh ", "thanh pho "):
        folded = folded.removeprefix(prefix)
    return folded


def import_province(session: Session, name_or_code: str) -> ImportSummary:
    """Create or update the province and every commune/ward under it. Flushes, does not commit."""
    province = find_province(name_or_code)
    level = UnitLevel.province if province.division_type in _PROVINCE_TYPES else UnitLevel.commune
    unit, outcome = upsert_unit(session, code=f"{province.code.value:02d}", name=province.name,
                                division_type=province.division_type.value, level=level, parent_id=None)
    summary = ImportSummary(province_id=unit.id, province_name=province.name)
    setattr(summary, outcome, getattr(summary, outcome) + 1)
    wards = sorted(Ward.iter_by_province(province.code), key=lambda w: w.code.value)
    for outcome in upsert_units(session, [
            {"code": f"{ward.code.value:05d}", "name": ward.name, "division_type": ward.division_type.value,
             "level": UnitLevel.commune, "parent_id": unit.id} for ward in wards]):
        setattr(summary, outcome, getattr(summary, outcome) + 1)
    return summary
