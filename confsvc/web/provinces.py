"""Sites grouped by province on the pages of a meeting spanning provinces (issue 14: the national meeting's
3,355 sites): one collapsible group per province with its counts, instead of one row per site.

Values only: which province a unit lies in is ``scheduling.cascade.unit_provinces``'s; readiness states are
``scheduling.readiness``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlmodel import Session, col, select

from confsvc.collation import sort_key
from confsvc.endpoints.models import Unit
from confsvc.scheduling import cascade

#: The readiness states a group counts, in the order shown.
COUNTED = ("ready", "connected", "problem", "not_checked")


def of_units(session: Session, unit_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """``{unit id: (province id, province name)}`` (two queries); a unit under no province is left out."""
    provinces = cascade.unit_provinces(session, set(unit_ids))
    names = dict(session.exec(select(Unit.id, Unit.name).where(col(Unit.id).in_(sorted(set(provinces.values())))))
                 .all()) if provinces else {}
    return {unit: (province, names.get(province, "")) for unit, province in provinces.items()}


def group(items: list[dict[str, Any]], province_of: Callable[[dict[str, Any]], tuple[int, str] | None],
          state_of: Callable[[dict[str, Any]], str], *, first: int | None = None) -> list[dict[str, Any]]:
    """``items`` (in their order) by province: ``[{"id", "name", "items", "total", "ready", "connected",
    "problem", "not_checked"}]``, the group of province ``first`` (the chair's) first, then by name
    (Vietnamese order); items of no province in a last group with ``id`` 0 and an empty name."""
    groups: dict[int, dict[str, Any]] = {}
    for item in items:
        province = province_of(item) or (0, "")
        found = groups.get(province[0])
        if found is None:
            found = groups[province[0]] = {"id": province[0], "name": province[1], "items": [], "total": 0,
                                           **{state: 0 for state in COUNTED}}
        found["items"].append(item)
        found["total"] += 1
        state = state_of(item)
        if state in COUNTED:
            found[state] += 1
    return sorted(groups.values(), key=lambda g: (g["id"] == 0, g["id"] != first, sort_key(g["name"])))
