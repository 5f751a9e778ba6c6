"""API shapes for users, tokens and login."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from confsvc.users.models import Role


class UserCreate(BaseModel):
    """``unit_codes``: official codes of an operator's units (required for operators only)."""

    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=2, max_length=80, pattern=r"^[A-Za-z0-9._@-]+$")]
    password: Annotated[str, Field(min_length=8, max_length=200)]
    role: Role
    full_name: Annotated[str, Field(max_length=200)] = ""
    email: EmailStr | None = None
    unit_codes: list[Annotated[str, Field(max_length=10)]] = []
    province_code: Annotated[str, Field(max_length=10)] | None = None


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    full_name: str
    email: str | None
    role: Role
    active: bool
    unit_ids: list[int] = []
    province_id: int | None = None


class UserUpdate(BaseModel):
    """An administrator's change of a user: role, ``active`` (false = disabled), a new password, the
    province (``province_code``: official code of a unit of level province; ``null``: national; absent:
    unchanged). Every change ends the user's web sessions."""

    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    active: bool | None = None
    password: Annotated[str, Field(min_length=8, max_length=200)] | None = None
    province_code: Annotated[str, Field(max_length=10)] | None = None


class PasswordChange(BaseModel):
    """The caller's own password change; ends every web session of the caller."""

    model_config = ConfigDict(extra="forbid")
    current_password: Annotated[str, Field(max_length=200)]
    new_password: Annotated[str, Field(min_length=8, max_length=200)]


class LoginRequest(BaseModel):
    username: Annotated[str, Field(max_length=80)]
    password: Annotated[str, Field(max_length=200)]
    token_name: Annotated[str, Field(max_length=100)] = "api"


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    ttl_days: Annotated[int, Field(gt=0, le=3650)] | None = None


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenIssued(TokenPublic):
    """Returned once, at creation: ``token`` is the secret to send as ``Authorization: Bearer``."""

    token: str
