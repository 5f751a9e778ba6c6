"""Call legs and call records (SPEC "Call record"): what bridges and agents report, and the actual
connection periods of an endpoint in an occurrence that usage statistics count.

Times are UTC at rest; a leg or period is half-open ``[connected_at, disconnected_at)``;
``disconnected_at`` is ``None`` while it is open. A :class:`CallLeg` keeps the reported times (an
overrun past the occurrence's end included); the :class:`CallRecord` rows of an (endpoint,
occurrence) are the union of its legs clipped to the occurrence's window, recomputed by ``calls.intake``
on every change. Invariants kept by ``calls.intake`` (and, for the last one, by a partial unique index):
the periods of one endpoint never overlap, a period lies inside its occurrence's window
``[start − check_lead, end)``, and an endpoint has at most one open period.
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


class CallLeg(SQLModel, table=True):
    """One call leg of an endpoint in an occurrence, as reported (issue 12 defect 6).

    ``leg_id``: the bridge's own id of the leg (``None`` when the reporter gives none); one leg per
    (endpoint, occurrence, leg_id). ``end_presumed``: ``disconnected_at`` was not reported but
    presumed (the occurrence ended, or the endpoint connected to another occurrence); a reported
    disconnect replaces it. ``source``: ``bridge``, ``agent``, ``manual`` (an attendance mark), …
    """

    __tablename__ = "call_legs"
    __table_args__ = (
        sa.CheckConstraint("disconnected_at IS NULL OR connected_at < disconnected_at", name="leg_positive"),
        sa.UniqueConstraint("endpoint_id", "occurrence_id", "leg_id"),
        sa.Index("ix_call_legs_occurrence_id_endpoint_id_connected_at", "occurrence_id", "endpoint_id",
                 "connected_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="endpoints.id", ondelete="RESTRICT")
    occurrence_id: int = Field(foreign_key="occurrences.id", ondelete="CASCADE")
    leg_id: str | None = Field(default=None, max_length=100)
    connected_at: datetime = Field(sa_type=UTCDateTime)
    disconnected_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end_presumed: bool = Field(default=False)
    source: str = Field(max_length=40)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)

