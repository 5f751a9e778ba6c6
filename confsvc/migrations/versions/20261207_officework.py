"""officework: the invitation's number and signer on meetings; site groups

- ``meetings.document_number``, ``signer_name``, ``signer_title`` (giấy mời, NĐ 30/2020/NĐ-CP);
  added with plain ``ADD COLUMN`` (no batch rebuild on SQLite: a rebuild drops the feed-version
  triggers of 0012_feed_versions).
- ``site_groups`` and ``site_group_rooms``.

Revision ID: 20261207_officework
Revises: 20261207_merge_heads
"""

import sqlalchemy as sa
from alembic import op

import confsvc.db

revision = "20261207_officework"
down_revision = "20261207_merge_heads"
branch_labels = None
depends_on = None

MEETING_COLUMNS = (("document_number", 50), ("signer_name", 200), ("signer_title", 200))


def upgrade() -> None:
    for name, length in MEETING_COLUMNS:
        op.add_column("meetings", sa.Column(name, sa.String(length=length), nullable=False, server_default=""))
    op.create_table(
        "site_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=False),
        sa.Column("visibility", sa.Enum("private", "units", "province", name="sitegroupvisibility",
                                        native_enum=False, length=20, create_constraint=True),
                  server_default="private", nullable=False),
        sa.Column("created_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_user_id"], ["users.id"], name=op.f("fk_site_groups_owner_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_groups")),
        sa.UniqueConstraint("owner_user_id", "name", name=op.f("uq_site_groups_owner_user_id_name")),
    )
    op.create_index(op.f("ix_site_groups_owner_user_id"), "site_groups", ["owner_user_id"])
    op.create_table(
        "site_group_rooms",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["site_groups.id"], name=op.f("fk_site_group_rooms_group_id_site_groups"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_site_group_rooms_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "room_id", name=op.f("pk_site_group_rooms")),
    )
    op.create_index(op.f("ix_site_group_rooms_room_id"), "site_group_rooms", ["room_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_site_group_rooms_room_id"), table_name="site_group_rooms")
    op.drop_table("site_group_rooms")
    op.drop_index(op.f("ix_site_groups_owner_user_id"), table_name="site_groups")
    op.drop_table("site_groups")
    for name, _ in reversed(MEETING_COLUMNS):
        op.drop_column("meetings", name)
