"""Scheduling's domain errors."""

from __future__ import annotations

from typing import Any

from confsvc.errors import Conflict


class BookingConflict(Conflict):
    """SPEC rule 8: a refusal lists every conflict.

    ``conflicts`` items: ``{resource_kind, resource_id, resource_name, meeting_id, meeting_title,
    occurrence_id, maintenance_id, window_start, window_end (the overlap, UTC),
    window_start_local, window_end_local, requested_start}``; bridge items add
    ``port_capacity``, ``ports_in_use`` (peak over the window) and ``ports_requested``.
    """

    status_code = 409
    code = "booking_conflict"

    def __init__(self, detail: str, conflicts: list[dict[str, Any]]) -> None:
        super().__init__(detail, conflicts=conflicts)
        self.conflicts = conflicts

    def to_body(self) -> dict[str, Any]:
        # Same JSON rendering as the dry run's answer (pydantic: UTC as "…Z").
        from confsvc.scheduling.schemas import ConflictPublic

        return {"detail": self.detail, "code": self.code,
                "conflicts": [ConflictPublic.model_validate(c).model_dump(mode="json") for c in self.conflicts]}
