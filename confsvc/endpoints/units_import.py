"""Load a province and its communes/wards from the ``vietnam-provinces`` package.

The package (2025 data) follows the two-level administration in force since 1 July 2025:
province → commune/ward/special zone (xã, phường, đặc khu); it has no districts, so none are
created. Re-running an import changes nothing (units are matched by official code).

A newer official list (the package's, or a CSV file) is compared first (:func:`diff_list`: added,
renamed, merged/removed) and written only when confirmed (:func:`apply_list`): renames keep the old
names (``unit_history``), so past meetings keep theirs.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select
from vietnam_provinces import Province, ProvinceCode, VietNamDivisionType, Ward

from confsvc.endpoints.models import Room, Unit, UnitLevel, UnitLifetime
from confsvc.endpoints.service import upsert_unit, upsert_units
from confsvc.endpoints.unit_history import midnight_utc, rename_unit
from confsvc.errors import Invalid, NotFound
from confsvc.text import ascii_digits, fold
from confsvc.users.principal import MANAGE_INVENTORY, Principal

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
    if ascii_digits(text):
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


# ---------------------------------------------------------------- a newer official list (issue 15)

@dataclass
class ListDiff:
    """How an official list differs from the stored units of a province: ``added`` (``{"code", "name",
    "division_type"}``), ``renamed`` (``{"code", "name", "new_name", "division_type"}``: same code, another name
    or type) and ``removed`` (``{"code", "name", "rooms"}``: current units the list no longer has; one with rooms
    must be merged into a successor first, ``confsvc units merge``)."""

    province_code: str
    province_name: str
    added: list[dict[str, Any]] = field(default_factory=list)
    renamed: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.renamed or self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {"province_code": self.province_code, "province_name": self.province_name, "added": self.added,
                "renamed": self.renamed, "removed": self.removed}

    def lines(self) -> list[str]:
        """The difference in Vietnamese, one change a line."""
        out = [f"{self.province_name}: {len(self.added)} thêm mới, {len(self.renamed)} đổi tên, "
               f"{len(self.removed)} sáp nhập/bãi bỏ"]
        out += [f"  + {a['code']} {a['name']}" for a in self.added]
        out += [f"  ~ {r['code']} {r['name']} → {r['new_name']}" for r in self.renamed]
        out += [f"  - {r['code']} {r['name']}" + (f" ({r['rooms']} điểm cầu: cần sáp nhập vào đơn vị kế thừa trước)"
                                                  if r["rooms"] else "") for r in self.removed]
        return out


def official_entries(province: Province) -> list[tuple[str, str, str]]:
    """``(code, name, division_type)`` of every commune/ward of ``province`` in the installed package."""
    return [(f"{w.code.value:05d}", w.name, w.division_type.value)
            for w in sorted(Ward.iter_by_province(province.code), key=lambda w: w.code.value)]


def entries_from_file(data: bytes) -> list[tuple[str, str, str]]:
    """Read an official list from CSV (UTF-8, BOM allowed): header ``code,name,division_type`` (ma, ten, loai
    also accepted), one commune/ward a line. Raises Invalid (``bad_unit_list``) naming the first bad line."""
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    aliases = {"ma": "code", "mã": "code", "ten": "name", "tên": "name", "loai": "division_type",
               "loại": "division_type"}
    out = []
    for line, row in enumerate(reader, start=2):
        row = {aliases.get((k or "").strip().lower(), (k or "").strip().lower()): (v or "").strip()
               for k, v in row.items()}
        if not row.get("code") or not row.get("name"):
            raise Invalid(f"line {line}: code and name are required", code="bad_unit_list")
        out.append((row["code"], unicodedata.normalize("NFC", row["name"]),
                    unicodedata.normalize("NFC", row.get("division_type") or "xã")))
    return out


def diff_list(session: Session, name_or_code: str, entries: list[tuple[str, str, str]] | None = None) -> ListDiff:
    """Compare ``entries`` (default: the installed package's list) with the province's stored current units
    (a listed code of a unit that has ended here is skipped: the list is older than the merge). Writes nothing.
    Raises NotFound (``unknown_province``; the province must have been imported)."""
    province = find_province(name_or_code)
    code = f"{province.code.value:02d}"
    stored = session.exec(select(Unit).where(Unit.code == code)).first()
    if stored is None:
        raise NotFound(f"province {province.name} is not imported yet (confsvc units import {code})",
                       code="unknown_province")
    entries = official_entries(province) if entries is None else entries
    ended = set(session.exec(select(UnitLifetime.unit_id).where(col(UnitLifetime.valid_to).is_not(None))).all())
    every = {u.code: u for u in session.exec(select(Unit).where(Unit.parent_id == stored.id))}
    units = {c: u for c, u in every.items() if u.id not in ended}
    diff = ListDiff(code, province.name)
    listed = set()
    for c, name, dtype in entries:
        listed.add(c)
        unit = units.get(c)
        if unit is None and c in every:  # ended here (merged) yet listed: a list older than our records
            continue
        if unit is None:
            diff.added.append({"code": c, "name": name, "division_type": dtype})
        elif unit.name != name or unit.division_type != dtype:
            diff.renamed.append({"code": c, "name": unit.name, "new_name": name, "division_type": dtype})
    for c, unit in sorted(units.items()):
        if c not in listed:
            rooms = session.exec(select(sa.func.count(col(Room.id))).where(Room.unit_id == unit.id)).one()
            diff.removed.append({"code": c, "name": unit.name, "rooms": int(rooms)})
    return diff


def apply_list(session: Session, principal: Principal, zone: ZoneInfo, diff: ListDiff, *, effective: date) -> None:
    """Write ``diff`` (confirmed): create the added units, rename (with history, from ``effective``) the renamed
    ones, end on ``effective`` the removed ones that have no rooms (ones with rooms are left: merge them into a
    successor, :func:`confsvc.endpoints.unit_history.merge_units`). Admin only; flushes, does not commit."""
    principal.require(MANAGE_INVENTORY)
    stored = session.exec(select(Unit).where(Unit.code == diff.province_code)).one()
    for a in diff.added:
        upsert_unit(session, code=a["code"], name=a["name"], division_type=a["division_type"],
                    level=UnitLevel.commune, parent_id=stored.id)
    for r in diff.renamed:
        rename_unit(session, principal, zone, r["code"], name=r["new_name"], division_type=r["division_type"],
                    effective=effective)
    for r in diff.removed:
        if r["rooms"]:
            continue
        unit = session.exec(select(Unit).where(Unit.code == r["code"])).one()
        lifetime = session.get(UnitLifetime, unit.id) or UnitLifetime(unit_id=unit.id)
        lifetime.valid_to, lifetime.valid_to_at = effective, midnight_utc(effective, zone)
        session.add(lifetime)
    session.flush()
