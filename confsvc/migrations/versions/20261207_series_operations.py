"""occurrences.is_extra (an occurrence added to a series, RDATE) and meetings.confidential (mật)

Issue 12 operations: a secretariat adds an extra occurrence to a series (published as RDATE, kept by
series edits) and marks a meeting confidential (outside its participants' units and the secretariat,
only "Cuộc họp", its time and rooms are shown). Plain ADD COLUMN on both backends (no batch rebuild,
so the feed-version triggers of ``0012_feed_versions`` stay).

Revision ID: 20261207_series_operations
Revises: 20261207_web_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "20261207_series_operations"
down_revision = "20261207_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("occurrences", sa.Column("is_extra", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("meetings", sa.Column("confidential", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("meetings", "confidential")
    op.drop_column("occurrences", "is_extra")
