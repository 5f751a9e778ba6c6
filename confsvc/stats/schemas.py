"""API shapes of usage statistics. Datetimes without an offset are local time
(``Settings.timezone``, SPEC rule 9); answers are UTC."""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GroupBy(str, enum.Enum):
    endpoint = "endpoint"
    room = "room"
    unit = "unit"
    bridge = "bridge"


class Period(str, enum.Enum):
    day = "day"
    week = "week"
    month = "month"


class UsageGroup(BaseModel):
    """What a row is about: ``kind`` (= ``group_by``), ``id`` (internal), ``name``; ``code`` for a unit;
    ``room_name``, and for units, rooms and endpoints the unit's official code ``unit_code``, its
    ``unit_name`` and its parent unit's ``parent_name`` (none for the province)."""

    kind: GroupBy
    id: int
    name: str
    code: str | None = None
    room_name: str | None = None
    unit_code: str | None = None
    unit_name: str | None = None
    parent_name: str | None = None


class UsageFigures(BaseModel):
    meetings: int
    cancelled: int
    booked_hours: float
    connected_hours: float
    sites_invited: int
    sites_connected: int
    attendance_rate: float | None
    late_joins: int
    faults: int | None
    room_utilisation: float | None
    port_peak: int | None
    port_hours: float | None
    port_utilisation: float | None


class UsageRow(UsageFigures):
    group: UsageGroup
    period_start: date = Field(description="first local date of the bucket")
    period_end: date = Field(description="local date after the bucket (exclusive)")


class UsageReport(BaseModel):
    group_by: GroupBy
    period: Period
    from_: date = Field(alias="from")
    to: date
    timezone: str
    rows: list[UsageRow]
    totals: UsageFigures
    notes: list[str] = []

    model_config = ConfigDict(populate_by_name=True)

    def json_ready(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
