"""Unit mergers and renames over HTTP (issue 15): ``POST /api/v1/units/merge`` and
``POST /api/v1/units/{code}/rename``, admin only, audited (``scheduling.unit_changes``); ``dry_run``
answers what would change and writes nothing."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from confsvc.db import SessionDep
from confsvc.deps import SettingsDep
from confsvc.scheduling import unit_changes
from confsvc.text import nfc
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1/units", tags=["units"])

Name = Annotated[str, AfterValidator(nfc), Field(min_length=1, max_length=200)]


class UnitMergeRequest(BaseModel):
    """Merge ``units`` (official codes) into ``successor_code`` from the local date ``effective``; a successor
    code not yet known creates that unit, named ``successor_name``."""

    model_config = ConfigDict(extra="forbid")
    units: list[Annotated[str, Field(min_length=1, max_length=10)]] = Field(min_length=1, max_length=100)
    successor_code: Annotated[str, Field(min_length=1, max_length=10)]
    successor_name: Name | None = None
    division_type: Annotated[str | None, Field(max_length=40)] = None
    effective: date
    dry_run: bool = False


class UnitRenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    new_code: Annotated[str | None, Field(min_length=1, max_length=10)] = None
    division_type: Annotated[str | None, Field(max_length=40)] = None
    effective: date
    dry_run: bool = False


@router.post("/merge")
def merge_units(data: UnitMergeRequest, session: SessionDep, principal: CurrentPrincipal,
                settings: SettingsDep) -> dict[str, Any]:
    """Answers ``{"dry_run", "sources": [{"id", "code", "name"}], "successor": {"id", "code", "name", "new"},
    "effective", "rooms": [{"id", "name", "new_name", "from_unit", "from_unit_id"}], "endpoints": [{"id",
    "name", "serial", "room"}], "users": [username], "changes": [Vietnamese lines]}``.
    403 ``forbidden_role`` (admin only); 404 ``unit_not_found``; 409 ``unit_merged`` (a unit has ended);
    422 ``merge_into_itself``, ``unit_has_subunits``, ``successor_needs_name``, ``sources_in_different_parents``."""
    plan = unit_changes.merge(session, settings, principal, data.units, data.successor_code,
                              effective=data.effective, successor_name=data.successor_name,
                              division_type=data.division_type, dry_run=data.dry_run)
    return {"dry_run": data.dry_run, **plan.as_dict(), "changes": plan.lines()}


@router.post("/{code}/rename")
def rename_unit(code: str, data: UnitRenameRequest, session: SessionDep, principal: CurrentPrincipal,
                settings: SettingsDep) -> dict[str, Any]:
    """Answers ``{"dry_run", "id", "code", "name", "new_code", "new_name", "effective"}``; occurrences before
    ``effective`` keep the old name. 403, 404 ``unit_not_found``, 409 ``unit_merged`` / ``duplicate_unit_code``,
    422 ``same_name``."""
    out = unit_changes.rename(session, settings, principal, code, name=data.name, effective=data.effective,
                              new_code=data.new_code, division_type=data.division_type, dry_run=data.dry_run)
    return {"dry_run": data.dry_run, **out}
