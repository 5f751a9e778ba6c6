"""live status: agent tokens, endpoint status history, probe state, readiness, scheduler marks

Written by hand after 0004 (issue 4: endpoint status, reachability probe, readiness, scheduler).

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-30 09:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import confsvc.db

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

_STATUSES = ("online", "offline", "in_call", "fault", "unknown")


def upgrade() -> None:
    op.create_table(
        "agent_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("bridge_id", sa.Integer(), nullable=True),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("bridge_id IS NULL OR endpoint_id IS NULL", name=op.f("ck_agent_tokens_one_binding")),
        sa.ForeignKeyConstraint(["bridge_id"], ["bridges.id"], name=op.f("fk_agent_tokens_bridge_id_bridges"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_agent_tokens_endpoint_id_endpoints"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_agent_tokens_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agent_tokens_token_hash")),
    )
    with op.batch_alter_table("agent_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_tokens_bridge_id"), ["bridge_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_tokens_endpoint_id"), ["endpoint_id"], unique=False)

    op.create_table(
        "endpoint_status_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum(*_STATUSES, name="endpointstatus", native_enum=False, create_constraint=True,
                                    length=20), server_default="unknown", nullable=False),
        sa.Column("previous", sa.Enum(*_STATUSES, name="previous_status", native_enum=False,
                                      create_constraint=True, length=20), nullable=False),
        sa.Column("at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("agent_token_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_endpoint_status_history_endpoint_id_endpoints"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agent_token_id"], ["agent_tokens.id"],
                                name=op.f("fk_endpoint_status_history_agent_token_id_agent_tokens"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_endpoint_status_history_user_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_status_history")),
    )
    with op.batch_alter_table("endpoint_status_history", schema=None) as batch_op:
        batch_op.create_index("ix_endpoint_status_history_endpoint_id_at", ["endpoint_id", "at"], unique=False)

    op.create_table(
        "endpoint_probes",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("last_probe_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], name=op.f("fk_endpoint_probes_endpoint_id_endpoints"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_id", name=op.f("pk_endpoint_probes")),
    )

    op.create_table(
        "readiness",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.Enum("not_checked", "ready", "problem", "connected", name="readinessstate",
                                   native_enum=False, create_constraint=True, length=20),
                  server_default="not_checked", nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"], name=op.f("fk_readiness_occurrence_id_occurrences"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_readiness_room_id_rooms"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], name=op.f("fk_readiness_updated_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("occurrence_id", "room_id", name=op.f("pk_readiness")),
    )
    with op.batch_alter_table("readiness", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_readiness_room_id"), ["room_id"], unique=False)

    op.create_table(
        "scheduler_marks",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("due_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"],
                                name=op.f("fk_scheduler_marks_occurrence_id_occurrences"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("occurrence_id", "kind", "due_at", name=op.f("pk_scheduler_marks")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_marks")
    with op.batch_alter_table("readiness", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_readiness_room_id"))
    op.drop_table("readiness")
    op.drop_table("endpoint_probes")
    with op.batch_alter_table("endpoint_status_history", schema=None) as batch_op:
        batch_op.drop_index("ix_endpoint_status_history_endpoint_id_at")
    op.drop_table("endpoint_status_history")
    with op.batch_alter_table("agent_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_tokens_endpoint_id"))
        batch_op.drop_index(batch_op.f("ix_agent_tokens_bridge_id"))
    op.drop_table("agent_tokens")
