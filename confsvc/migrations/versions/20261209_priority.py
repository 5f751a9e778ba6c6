"""priority: meetings' priority and displaced (tentative) occurrences (issue 14, SPEC rule 10)

``meetings.priority`` (0 routine, 1 provincial, 2 Government/Party session; default routine).
``occurrences.tentative`` with the displacing meeting and the proposed alternative slot (UTC).
Plain ADD COLUMN on both backends (no batch rebuild, so the triggers of ``0012_feed_versions`` and
``20261208_usage_triggers`` on ``occurrences`` and ``meetings`` stay).

Revision ID: 20261209_priority
Revises: 20261208_usage_triggers
"""

import sqlalchemy as sa
from alembic import op

from confsvc.db import UTCDateTime

revision = "20261209_priority"
down_revision = "20261208_usage_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("meetings", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("occurrences", sa.Column("tentative", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("occurrences", sa.Column("displaced_by_meeting_id", sa.Integer(), nullable=True))
    op.add_column("occurrences", sa.Column("alternative_start", UTCDateTime(timezone=True), nullable=True))
    op.add_column("occurrences", sa.Column("alternative_end", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("occurrences", "alternative_end")
    op.drop_column("occurrences", "alternative_start")
    op.drop_column("occurrences", "displaced_by_meeting_id")
    op.drop_column("occurrences", "tentative")
    op.drop_column("meetings", "priority")
