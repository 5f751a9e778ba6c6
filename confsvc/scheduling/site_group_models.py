"""Site groups (nhóm điểm cầu): saved lists of rooms invited together week after week.

A group is expanded into room ids when a meeting is booked; meetings keep their own participant
rows, so changing or deleting a group never rewrites a booked meeting.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime, enum_column


class SiteGroupVisibility(str, enum.Enum):
    """Who sees a group: its owner only, users sharing a unit with the owner, or everyone."""

    private = "private"
    units = "units"
    province = "province"


class SiteGroup(SQLModel, table=True):
    """A named group of rooms owned by a user. A ``units`` group is visible to whoever shares a unit
    with its owner at the time of reading (``scheduling.site_groups``)."""

    __tablename__ = "site_groups"
    __table_args__ = (sa.UniqueConstraint("owner_user_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    owner_user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    visibility: SiteGroupVisibility = Field(sa_column=enum_column(SiteGroupVisibility, SiteGroupVisibility.private))
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class SiteGroupRoom(SQLModel, table=True):
    """A room of a site group."""

    __tablename__ = "site_group_rooms"

    group_id: int = Field(foreign_key="site_groups.id", primary_key=True, ondelete="CASCADE")
    room_id: int = Field(foreign_key="rooms.id", primary_key=True, index=True, ondelete="CASCADE")
