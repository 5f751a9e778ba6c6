"""Room display tokens' table (màn hình điểm cầu)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime


class DisplayToken(SQLModel, table=True):
    """A room display's secret (màn hình điểm cầu): it opens ``/ws/rooms/{room_id}`` and nothing else.

    Only the SHA-256 hex of the secret is stored (``token_hash``), compared with
    ``hmac.compare_digest``. A revoked token (``revoked_at`` set) is refused like an unknown one.
    """

    __tablename__ = "display_tokens"

    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="rooms.id", index=True, ondelete="CASCADE")
    name: str = Field(default="", max_length=100)
    prefix: str = Field(max_length=12)
    token_hash: str = Field(max_length=64, unique=True)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
