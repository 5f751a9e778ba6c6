"""Inventory tables: administrative units, rooms (điểm cầu), endpoints and bridges (MCU)."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime, enum_column


class UnitLevel(str, enum.Enum):
    """Level in the administrative hierarchy. Districts exist only in pre-2025 data."""

    province = "province"
    district = "district"
    commune = "commune"


class Protocol(str, enum.Enum):
    sip = "sip"
    h323 = "h323"


class LifecycleState(str, enum.Enum):
    """SPEC rule 4: only ``active`` endpoints can be booked."""

    active = "active"
    maintenance = "maintenance"
    retired = "retired"


class EndpointStatus(str, enum.Enum):
    online = "online"
    offline = "offline"
    in_call = "in_call"
    fault = "fault"
    unknown = "unknown"



class Unit(SQLModel, table=True):
    """An administrative unit (đơn vị hành chính): province, district or commune/ward.

    ``code`` is the official GSO code as printed (2 digits for a province, 3 for a district,
    5 for a commune), so codes of different levels never collide.
    """

    __tablename__ = "units"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=10, unique=True)
    name: str = Field(max_length=200)
    division_type: str = Field(max_length=40, description="Vietnamese type as in the source: tỉnh, xã, phường, …")
    level: UnitLevel = Field(sa_column=enum_column(UnitLevel, UnitLevel.commune))
    parent_id: int | None = Field(default=None, foreign_key="units.id", index=True, ondelete="RESTRICT")
    search_text: str = Field(default="", max_length=500)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utc_now},
                                 description="Last change of the row (UTC), stamped on every UPDATE; part of calendar feeds' ETag.")


class Room(SQLModel, table=True):
    """A meeting room (điểm cầu / phòng họp) in a unit. Hosts at most one meeting at a time."""

    __tablename__ = "rooms"
    __table_args__ = (sa.UniqueConstraint("unit_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="units.id", index=True, ondelete="RESTRICT")
    name: str = Field(max_length=200)
    seats: int | None = Field(default=None, ge=0)
    location: str | None = Field(default=None, max_length=300)
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=40)
    contact_email: str | None = Field(default=None, max_length=254)
    search_text: str = Field(default="", max_length=800)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utc_now},
                                 description="Last change of the row (UTC), stamped on every UPDATE; part of calendar feeds' ETag.")


class Endpoint(SQLModel, table=True):
    """A hardware conference codec (thiết bị đầu cuối) installed in a room."""

    __tablename__ = "endpoints"

    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="rooms.id", index=True, ondelete="RESTRICT")
    name: str = Field(max_length=200)
    vendor: str = Field(max_length=60)
    model: str = Field(max_length=100)
    serial: str = Field(max_length=100, unique=True)
    protocol: Protocol = Field(sa_column=enum_column(Protocol, Protocol.sip))
    dial_address: str = Field(max_length=255)
    management_ip: str | None = Field(default=None, max_length=45)
    firmware: str | None = Field(default=None, max_length=100)
    lifecycle_state: LifecycleState = Field(sa_column=enum_column(LifecycleState, LifecycleState.active))
    status: EndpointStatus = Field(sa_column=enum_column(EndpointStatus, EndpointStatus.unknown))
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    search_text: str = Field(default="", max_length=800)


class Bridge(SQLModel, table=True):
    """An MCU (thiết bị điều khiển đa điểm). Each participating endpoint takes one port."""

    __tablename__ = "bridges"
    __table_args__ = (
        sa.CheckConstraint("port_capacity > 0", name="port_capacity_positive"),
        sa.CheckConstraint("conference_number_min <= conference_number_max", name="conference_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    vendor: str | None = Field(default=None, max_length=60)
    model: str | None = Field(default=None, max_length=100)
    port_capacity: int
    sip_domain: str = Field(max_length=255, description="Host part of dial strings: sip:<conference>@<sip_domain>.")
    h323_prefix: str = Field(default="", max_length=20, description="E.164 prefix H.323 endpoints dial before the conference number.")
    conference_number_min: int
    conference_number_max: int
    management_address: str | None = Field(default=None, max_length=255)
    active: bool = Field(default=True)
    unit_id: int | None = Field(default=None, foreign_key="units.id", index=True, ondelete="RESTRICT",
                                description="The province that owns the bridge (issue 14); none: shared by all.")
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utc_now},
                                 description="Last change of the row (UTC), stamped on every UPDATE; part of calendar feeds' ETag.")


# ---------------------------------------------------------------- live status (issue 4)

class AgentToken(SQLModel, table=True):
    """A token for device agents and bridge webhooks reporting endpoint status (not a user's token).

    Only the SHA-256 of the secret is stored. Bound to at most one of a bridge or an endpoint:
    an endpoint-bound token reports only that endpoint; a bridge-bound or unbound one any endpoint.
    """

    __tablename__ = "agent_tokens"
    __table_args__ = (
        sa.CheckConstraint("bridge_id IS NULL OR endpoint_id IS NULL", name="one_binding"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=12)
    token_hash: str = Field(max_length=64, unique=True)
    bridge_id: int | None = Field(default=None, foreign_key="bridges.id", index=True, ondelete="CASCADE")
    endpoint_id: int | None = Field(default=None, foreign_key="endpoints.id", index=True, ondelete="CASCADE")
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EndpointStatusChange(SQLModel, table=True):
    """One change of an endpoint's live status (never a repeat), newest last by ``id``.

    ``source``: ``agent`` (device agent token), ``bridge`` (bridge-bound token), ``user`` (admin or
    operator bearer token) or ``probe`` (the reachability probe). ``at`` is UTC.
    """

    __tablename__ = "endpoint_status_history"
    __table_args__ = (sa.Index("ix_endpoint_status_history_endpoint_id_at", "endpoint_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="endpoints.id", ondelete="CASCADE")
    status: EndpointStatus = Field(sa_column=enum_column(EndpointStatus, EndpointStatus.unknown))
    previous: EndpointStatus = Field(sa_column=sa.Column(
        sa.Enum(EndpointStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                create_constraint=True, name="previous_status"), nullable=False))
    at: datetime = Field(sa_type=UTCDateTime)
    source: str = Field(max_length=20)
    detail: str = Field(default="", max_length=500)
    agent_token_id: int | None = Field(default=None, foreign_key="agent_tokens.id", ondelete="SET NULL")
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")


class EndpointProbe(SQLModel, table=True):
    """Reachability probe state per endpoint: consecutive misses survive restarts and are shared."""

    __tablename__ = "endpoint_probes"

    endpoint_id: int = Field(foreign_key="endpoints.id", primary_key=True, ondelete="CASCADE")
    misses: int = 0
    last_probe_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_ok_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# ---------------------------------------------------------------- unit mergers and renames (issue 15)

class UnitLifetime(SQLModel, table=True):
    """A unit's validity period and successor; a unit without a row has always been and still is valid.

    Local dates (``Settings.timezone``), ``[valid_from, valid_to)``: a unit merged on 2027-01-01 has
    ``valid_to`` 2027-01-01 and ``successor_id`` the unit it was merged into; ``valid_to_at`` is that
    date's local midnight in UTC (what occurrence starts are compared with).
    """

    __tablename__ = "unit_lifetimes"

    unit_id: int = Field(foreign_key="units.id", primary_key=True, ondelete="CASCADE")
    valid_from: date | None = Field(default=None)
    valid_to: date | None = Field(default=None)
    valid_to_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    successor_id: int | None = Field(default=None, foreign_key="units.id", index=True, ondelete="RESTRICT")


class UnitName(SQLModel, table=True):
    """A name a unit had before a rename: ``name`` (and ``code``, ``division_type``) were in force until the
    local date ``valid_until`` (exclusive; ``valid_until_at`` its local midnight in UTC). The name in force
    at an instant is the row with the earliest ``valid_until_at`` after it, else the unit's current name."""

    __tablename__ = "unit_names"
    __table_args__ = (sa.Index("ix_unit_names_unit_id_valid_until_at", "unit_id", "valid_until_at"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="units.id", ondelete="CASCADE")
    code: str = Field(max_length=10)
    name: str = Field(max_length=200)
    division_type: str = Field(max_length=40)
    valid_until: date
    valid_until_at: datetime = Field(sa_type=UTCDateTime)


class RoomUnit(SQLModel, table=True):
    """A unit a room belonged to before a merge moved it (and the room's name then): ``unit_id`` until the local date ``valid_until``
    (exclusive; ``valid_until_at`` in UTC). The unit of a room at an instant is the row with the earliest
    ``valid_until_at`` after it, else ``rooms.unit_id``."""

    __tablename__ = "room_units"
    __table_args__ = (sa.Index("ix_room_units_room_id_valid_until_at", "room_id", "valid_until_at"),)

    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="rooms.id", ondelete="CASCADE")
    unit_id: int = Field(foreign_key="units.id", index=True, ondelete="RESTRICT")
    name: str = Field(max_length=200, description="The room's name while it was in that unit (a merge may rename "
                                                  "it: the successor has a room of the same name).")
    valid_until: date
    valid_until_at: datetime = Field(sa_type=UTCDateTime)
