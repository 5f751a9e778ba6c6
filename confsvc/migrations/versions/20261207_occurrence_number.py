"""An occurrence's own conference number (issue 12: a moved occurrence gets a free number when the
meeting's is taken at its new time). NULL means the meeting's number.

Revision ID: 20261207_occurrence_number
Revises: 20261207_call_legs
"""

import sqlalchemy as sa
from alembic import op

revision = "20261207_occurrence_number"
down_revision = "20261207_call_legs"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both backends (SQLite ≥ 3.35 drops a column in place): a batch copy of
# ``occurrences`` would lose the feed-version triggers of 0012.


def upgrade() -> None:
    op.add_column("occurrences", sa.Column("conference_number", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE occurrences DROP COLUMN conference_number")
