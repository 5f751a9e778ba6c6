"""usage summary: per-day unit figures (usage_days), their state, change marks and the epoch

Written by hand (issue 6 benchmark; ``confsvc.stats.summary``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:00:00
"""

import sqlalchemy as sa
from alembic import op

import confsvc.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("unit_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("meetings", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("booked_s", sa.BigInteger(), nullable=False),
        sa.Column("sites_invited", sa.Integer(), nullable=False),
        sa.Column("sites_connected", sa.Integer(), nullable=False),
        sa.Column("late_joins", sa.Integer(), nullable=False),
        sa.Column("faults", sa.Integer(), nullable=False),
        sa.Column("connected_s", sa.BigInteger(), nullable=False),
        sa.Column("busy_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "unit_id"),
    )
    op.create_table(
        "usage_day_state",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("computed_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "usage_dirty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_usage_dirty_day", "usage_dirty", ["day"], unique=False)
    epoch = op.create_table(
        "usage_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])


def downgrade() -> None:
    op.drop_table("usage_epoch")
    op.drop_index("ix_usage_dirty_day", table_name="usage_dirty")
    op.drop_table("usage_dirty")
    op.drop_table("usage_day_state")
    op.drop_table("usage_days")
