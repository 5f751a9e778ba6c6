"""call legs (issue 12 defect 6): bridges report legs with their own ids; records are their union

Every existing call record becomes one leg with its times (no leg id), so the records recomputed
from legs after the upgrade are the records before it.

Revision ID: 20261207_call_legs
Revises: 20261207_series_operations
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import confsvc.db

revision = "20261207_call_legs"
down_revision = "20261207_series_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_legs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("leg_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("connected_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disconnected_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_presumed", sa.Boolean(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("disconnected_at IS NULL OR connected_at < disconnected_at",
                           name=op.f("ck_call_legs_leg_positive")),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], name=op.f("fk_call_legs_endpoint_id_endpoints"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"],
                                name=op.f("fk_call_legs_occurrence_id_occurrences"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_call_legs_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_legs")),
        sa.UniqueConstraint("endpoint_id", "occurrence_id", "leg_id",
                            name=op.f("uq_call_legs_endpoint_id_occurrence_id_leg_id")),
    )
    with op.batch_alter_table("call_legs", schema=None) as batch_op:
        batch_op.create_index("ix_call_legs_occurrence_id_endpoint_id_connected_at",
                              ["occurrence_id", "endpoint_id", "connected_at"], unique=False)
    op.execute("INSERT INTO call_legs (endpoint_id, occurrence_id, leg_id, connected_at, disconnected_at, "
               "end_presumed, source, created_by, updated_at) "
               "SELECT endpoint_id, occurrence_id, NULL, connected_at, disconnected_at, "
               f"{'false' if op.get_context().dialect.name == 'postgresql' else '0'}, source, created_by, updated_at "
               "FROM call_records")


def downgrade() -> None:
    with op.batch_alter_table("call_legs", schema=None) as batch_op:
        batch_op.drop_index("ix_call_legs_occurrence_id_endpoint_id_connected_at")
    op.drop_table("call_legs")
