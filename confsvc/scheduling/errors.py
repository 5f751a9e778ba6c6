"""Scheduling's domain errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confsvc.errors import Conflict as ConflictError
from confsvc.scheduling.conflicts import Conflict


class BookingConflict(ConflictError):
    """SPEC rule 8: a refusal lists every conflict.

    ``conflicts`` are :class:`~confsvc.scheduling.conflicts.Conflict` values (one per resource);
    the body adds ``groups``, the same conflicts grouped by the other meeting's occurrence
    (``schemas.ConflictGroupPublic``), which is what people read.
    """

    status_code = 409
    code = "booking_conflict"
    body_is_json = True  # conflicts_body dumps in pydantic's JSON mode; subclasses keep to JSON values

    def __init__(self, detail: str, conflicts: list[Conflict], *,
                 provinces: Mapping[tuple[str, int], Any] | None = None) -> None:
        super().__init__(detail, conflicts=conflicts)
        self.conflicts = conflicts
        #: ``(resource_kind, resource_id)`` → ``cascade.Province`` of the conflicts' resources, when the
        #: refusal knows them (a booking's or an edit's): the body then adds ``by_province`` (issue 14).
        self.provinces = provinces

    def to_body(self) -> dict[str, Any]:
        # Same JSON rendering as the dry run's answer (pydantic: UTC as "…Z").
        from confsvc.scheduling.schemas import conflicts_body

        return {"detail": self.detail, "code": self.code, **conflicts_body(self.conflicts, self.provinces)}
