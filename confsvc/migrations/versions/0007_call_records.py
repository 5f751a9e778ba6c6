"""call records (usage statistics, issue 6)

Written by hand after 0004.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30 10:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import confsvc.db

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("connected_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disconnected_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("disconnected_at IS NULL OR connected_at < disconnected_at",
                           name=op.f("ck_call_records_period_positive")),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], name=op.f("fk_call_records_endpoint_id_endpoints"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"],
                                name=op.f("fk_call_records_occurrence_id_occurrences"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_call_records_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
    )
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_records_occurrence_id"), ["occurrence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_records_connected_at"), ["connected_at"], unique=False)
        batch_op.create_index("ix_call_records_endpoint_id_connected_at", ["endpoint_id", "connected_at"],
                              unique=False)
        batch_op.create_index("ix_call_records_one_open", ["endpoint_id"], unique=True,
                              sqlite_where=sa.text("disconnected_at IS NULL"),
                              postgresql_where=sa.text("disconnected_at IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_index("ix_call_records_one_open")
        batch_op.drop_index("ix_call_records_endpoint_id_connected_at")
        batch_op.drop_index(batch_op.f("ix_call_records_connected_at"))
        batch_op.drop_index(batch_op.f("ix_call_records_occurrence_id"))
    op.drop_table("call_records")
