"""display tokens: hashed secrets of room displays (màn hình điểm cầu) on /ws/rooms/{id}

Written by hand after 0004 (issue 4: live channel).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import confsvc.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "display_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_display_tokens_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_display_tokens_created_by_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["revoked_by"], ["users.id"], name=op.f("fk_display_tokens_revoked_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_display_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_display_tokens_token_hash")),
    )
    with op.batch_alter_table("display_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_display_tokens_room_id"), ["room_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("display_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_display_tokens_room_id"))
    op.drop_table("display_tokens")
