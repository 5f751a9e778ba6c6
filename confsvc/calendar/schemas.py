"""API shapes for calendar feed tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from confsvc.db import IdField
from confsvc.calendar.models import FeedScope


class FeedTokenCreate(BaseModel):
    """``include_sub_units`` applies to a ``unit`` feed; a ``province`` feed always includes them."""

    model_config = ConfigDict(extra="forbid")
    scope: FeedScope
    scope_id: IdField
    include_sub_units: bool = True
    name: Annotated[str, Field(max_length=100)] = ""


class FeedTokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    scope: FeedScope
    scope_id: int
    include_sub_units: bool
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class FeedTokenIssued(FeedTokenPublic):
    """Returned once at creation: ``token`` and ``url`` are never shown again."""

    token: str
    url: str
