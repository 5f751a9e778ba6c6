"""Calendar feed tokens (lịch đăng ký iCal): who may read which scope's feed without logging in."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime


class FeedScope(str, enum.Enum):
    """What a feed shows; the URL is ``/ical/{scope}/{scope_id}.ics``."""

    unit = "unit"
    room = "room"
    endpoint = "endpoint"
    province = "province"


class FeedToken(SQLModel, table=True):
    """A secret in a feed URL. Only the SHA-256 hex of the secret is stored (``token_hash``).

    ``scope_id`` is a unit, room or endpoint id (the province's unit id for ``province``);
    ``include_sub_units`` applies to ``unit`` (a province feed always includes every sub-unit).
    A revoked token (``revoked_at`` set) answers 404 like an unknown one.
    """

    __tablename__ = "feed_tokens"
    __table_args__ = (sa.Index("ix_feed_tokens_scope_scope_id", "scope", "scope_id"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: FeedScope = Field(sa_column=sa.Column(
        sa.Enum(FeedScope, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                create_constraint=True, name="feedscope"),
        nullable=False))
    scope_id: int
    include_sub_units: bool = Field(default=True)
    name: str = Field(default="", max_length=100)
    prefix: str = Field(max_length=12)
    token_hash: str = Field(max_length=64, unique=True)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FeedVersion(SQLModel, table=True):
    """The version of everything calendar feeds show, deployment-wide: one row, ``id`` 1.

    Written only by the database: triggers (migration ``0012_feed_versions``) raise ``version``
    and stamp ``changed_at`` (UTC) in the same transaction as any change to meetings, occurrences,
    participants, or a shown column of units, rooms, endpoints, bridges and users. A feed's ETag
    names this version (``calendar.feeds.feed_state``), so a committed change is never answered 304.
    """

    __tablename__ = "feed_versions"

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(sa_type=sa.BigInteger)
    changed_at: datetime = Field(sa_type=UTCDateTime)
