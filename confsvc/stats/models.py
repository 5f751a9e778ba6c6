"""Call records (SPEC "Call record"): the actual connection periods of an endpoint in an occurrence.

Times are UTC at rest; a period is half-open ``[connected_at, disconnected_at)``; ``disconnected_at``
is ``None`` while the call is open. Invariants kept by ``calls.py`` (and, for the last one, by a
partial unique index): the periods of one endpoint never overlap, a period lies inside its
occurrence's window ``[start − check_lead, end)``, and an endpoint has at most one open period.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime


class CallRecord(SQLModel, table=True):
    """One connection period of an endpoint in an occurrence, merged from every report about it.

    ``source`` is the kind of the report that opened it (``bridge``, ``agent``, ``manual``, …);
    ``created_by`` is the user behind a manual attendance mark.
    """

    __tablename__ = "call_records"
    __table_args__ = (
        sa.CheckConstraint("disconnected_at IS NULL OR connected_at < disconnected_at", name="period_positive"),
        sa.Index("ix_call_records_endpoint_id_connected_at", "endpoint_id", "connected_at"),
        # A site's records (statistics, merging): migration 0010.
        sa.Index("ix_call_records_occurrence_id_endpoint_id_connected_at", "occurrence_id", "endpoint_id",
                 "connected_at"),
        sa.Index("ix_call_records_one_open", "endpoint_id", unique=True,
                 sqlite_where=sa.text("disconnected_at IS NULL"),
                 postgresql_where=sa.text("disconnected_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="endpoints.id", ondelete="RESTRICT")
    occurrence_id: int = Field(foreign_key="occurrences.id", ondelete="CASCADE")
    connected_at: datetime = Field(sa_type=UTCDateTime, index=True)
    disconnected_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    source: str = Field(max_length=40)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
