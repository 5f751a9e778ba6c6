"""Unit mergers, renames and official lists as audited use cases (issue 15), for the API and the CLI.

The rules are ``endpoints.unit_history`` and ``endpoints.units_import``; this module adds the audit
trail (``audit_log``: ``unit.merged``, ``unit.renamed``, ``units.list_applied``; a dry run writes no
entry). Admin only (``MANAGE_INVENTORY``). Flushes, never commits: the caller's unit of work does.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from confsvc.config import Settings
from confsvc.endpoints import unit_history, units_import
from confsvc.scheduling.audit_log import audit
from confsvc.users.principal import MANAGE_INVENTORY, Principal


def _who(principal: Principal) -> Principal | None:
    """The CLI's principal (user id 0) is no user row: its entries have no user."""
    return principal if principal.user_id else None


def merge(session: Session, settings: Settings, principal: Principal, source_codes: list[str], successor_code: str,
          *, effective: date, successor_name: str | None = None, division_type: str | None = None,
          dry_run: bool = False) -> unit_history.MergePlan:
    """``unit_history.merge_units`` and, unless ``dry_run``, an audit entry ``unit.merged`` with the plan."""
    plan = unit_history.merge_units(session, principal, settings.zone, source_codes, successor_code,
                                    effective=effective, successor_name=successor_name, division_type=division_type,
                                    dry_run=dry_run)
    if not dry_run:
        audit(session, _who(principal), "unit.merged", meeting_id=None, **plan.as_dict())
    return plan


def rename(session: Session, settings: Settings, principal: Principal, code: str, *, name: str, effective: date,
           new_code: str | None = None, division_type: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """``unit_history.rename_unit`` and, unless ``dry_run``, an audit entry ``unit.renamed``."""
    out = unit_history.rename_unit(session, principal, settings.zone, code, name=name, effective=effective,
                                   new_code=new_code, division_type=division_type, dry_run=dry_run)
    if not dry_run:
        audit(session, _who(principal), "unit.renamed", meeting_id=None, **out)
    return out


def apply_list(session: Session, settings: Settings, principal: Principal, diff: units_import.ListDiff, *,
               effective: date) -> None:
    """``units_import.apply_list`` and an audit entry ``units.list_applied`` with the difference."""
    principal.require(MANAGE_INVENTORY)
    units_import.apply_list(session, principal, settings.zone, diff, effective=effective)
    audit(session, _who(principal), "units.list_applied", meeting_id=None, effective=effective.isoformat(),
          **diff.as_dict())
