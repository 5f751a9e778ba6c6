"""``GET /api/v1/availability/grid``: the rooms × time grid of the booking planner (issue 13)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from confsvc.db import MAX_ID, QueryId, SessionDep
from confsvc.deps import SettingsDep
from confsvc.scheduling import grid
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1")


@router.get("/availability/grid", tags=["availability"])
def scheduling_grid(
        session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep, day: date,
        days: Annotated[int, Query(ge=1, le=grid.MAX_DAYS)] = 1, unit_id: QueryId = None,
        room_ids: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Query(max_length=grid.MAX_ROOMS)] = [],  # noqa: B006
        site_group_id: QueryId = None,
) -> dict:
    """Rooms × time from local date ``day`` over ``days`` days (1…7): every chosen room's busy
    blocks (a meeting's own time and, apart, the window its check lead and teardown hold;
    maintenance of the room's endpoints) and each active bridge's port load as steps.

    Rooms: ``room_ids``, else the rooms of site group ``site_group_id`` that the caller may see (in
    the group's order: unit, then room name; 404 ``site_group_not_found`` for a group unknown or not
    visible to the caller), else every room of ``unit_id`` and its sub-units, else every room the
    caller may see (at most 500; 422 ``too_many_rooms`` beyond). Times are UTC with ``*_local``
    twins in the configured zone. 403 for a named room outside the caller's units.
    """
    return grid.scheduling_grid(session, settings, principal,
                                grid.GridRequest(first_day=day, days=days, unit_id=unit_id, room_ids=tuple(room_ids),
                                                 site_group_id=site_group_id))
