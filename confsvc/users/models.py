"""Users, their unit scopes, and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime, enum_column


class Role(str, enum.Enum):
    """SPEC "Who uses it". Operators and requesters act only within their units (and those units' sub-units).

    A requester (đơn vị đăng ký) submits meeting requests for its units and sees their status (issue 15).
    Provinces are tenants (issue 14): a user with a ``province_id`` acts only inside that province; a
    user without one is national (e.g. the secretariat of Văn phòng Chính phủ) and sees and books
    across provinces.
    """

    admin = "admin"
    secretariat = "secretariat"
    operator = "operator"
    viewer = "viewer"
    requester = "requester"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=80, unique=True)
    full_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=254)
    role: Role = Field(sa_column=enum_column(Role))
    province_id: int | None = Field(default=None, foreign_key="units.id", index=True, ondelete="RESTRICT",
                                    description="The province (tenant) the user acts in; none: the whole deployment "
                                                "(the national role, or a deployment-wide admin).")
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utc_now},
                                 description="Last change of the row (UTC), stamped on every UPDATE; part of calendar feeds' ETag.")


class UserUnit(SQLModel, table=True):
    """An operator's scope: the units whose rooms and endpoints they may see and act on."""

    __tablename__ = "user_units"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    unit_id: int = Field(foreign_key="units.id", primary_key=True, ondelete="CASCADE")


class ApiToken(SQLModel, table=True):
    """A bearer token. Only the SHA-256 of the secret is stored; ``prefix`` helps people tell tokens apart."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=12)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser (issue 16, defect 6): the cookie carries a random secret, this row its SHA-256.

    The cookie alone is not enough: a session is valid while its row exists and ``expires_at`` (UTC) is
    in the future. Logout deletes the row; a password change, role change or disabling the user deletes
    every row of the user (``users.service.revoke_web_sessions``).
    """

    __tablename__ = "web_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
