"""Merge the six per-domain heads into one line of history.

From here on every revision is named ``YYYYMMDD_slug`` and revises the single head, so
``confsvc db upgrade`` has one target and a new migration cannot silently start a branch
(``tests/core/test_migrations.py::test_one_head`` keeps it so).

Revision ID: 20261207_merge_heads
Revises: 0003, 0005, 0006, 0008, 0011, 0012_feed_versions
"""

revision = "20261207_merge_heads"
down_revision = ("0003", "0005", "0006", "0008", "0011", "0012_feed_versions")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
