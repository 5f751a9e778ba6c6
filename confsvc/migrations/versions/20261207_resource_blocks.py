"""resource_blocks: rooms and endpoints blocked for whole local days; bookings may belong to a block (issue 12)

``bookings.block_id`` is a third kind of owner: the ``one_owner`` check becomes "exactly one of
occurrence_id, maintenance_id, block_id". A block changes the room's or endpoint's feed, so
``resource_blocks`` raises ``feed_versions`` like the tables of 0012 (SQLite: plain triggers;
PostgreSQL: the deferred constraint triggers calling ``confsvc_bump_feed_version``).

Revision ID: 20261207_resource_blocks
Revises: 20261207_idempotency_keys (chained on the hardening branch; the lead re-chains at merge)
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import confsvc.db

revision = "20261207_resource_blocks"
down_revision = "20261207_idempotency_keys"
branch_labels = None
depends_on = None

OLD_CHECK = "(occurrence_id IS NULL) <> (maintenance_id IS NULL)"
NEW_CHECK = ("(CASE WHEN occurrence_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN maintenance_id IS NULL THEN 0 ELSE 1 END)"
             " + (CASE WHEN block_id IS NULL THEN 0 ELSE 1 END) = 1")
_SQLITE_BUMP = ("INSERT INTO feed_versions (id, version, changed_at) "
                "VALUES (1, 1, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000') "
                "ON CONFLICT (id) DO UPDATE SET version = feed_versions.version + 1, changed_at = excluded.changed_at;")


def upgrade() -> None:
    op.create_table(
        "resource_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_kind", sa.Enum("endpoint", "room", "bridge", name="resourcekind", native_enum=False,
                                           length=20, create_constraint=True), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("first_day <= last_day", name=op.f("ck_resource_blocks_days_ordered")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_resource_blocks_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_blocks")),
    )
    with op.batch_alter_table("resource_blocks", schema=None) as batch_op:
        batch_op.create_index("ix_resource_blocks_resource", ["resource_kind", "resource_id", "last_day"],
                              unique=False)
    with op.batch_alter_table("bookings", schema=None, recreate="auto") as batch_op:
        batch_op.add_column(sa.Column("block_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_bookings_block_id_resource_blocks"), "resource_blocks",
                                    ["block_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index(batch_op.f("ix_bookings_block_id"), ["block_id"], unique=False)
        batch_op.drop_constraint(batch_op.f("ck_bookings_one_owner"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_bookings_one_owner"), sa.text(NEW_CHECK))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE CONSTRAINT TRIGGER feed_version_resource_blocks_write AFTER INSERT OR DELETE "
                   "ON resource_blocks DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                   "EXECUTE FUNCTION confsvc_bump_feed_version()")
        op.execute("CREATE CONSTRAINT TRIGGER feed_version_resource_blocks_update AFTER UPDATE ON resource_blocks "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION confsvc_bump_feed_version()")
    else:
        for event in ("INSERT", "DELETE", "UPDATE"):
            op.execute(f"CREATE TRIGGER feed_version_resource_blocks_{event.lower()} AFTER {event} "
                       f"ON resource_blocks BEGIN {_SQLITE_BUMP} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER feed_version_resource_blocks_update ON resource_blocks")
        op.execute("DROP TRIGGER feed_version_resource_blocks_write ON resource_blocks")
    else:
        for event in ("INSERT", "DELETE", "UPDATE"):
            op.execute(f"DROP TRIGGER feed_version_resource_blocks_{event.lower()}")
    op.execute("DELETE FROM bookings WHERE block_id IS NOT NULL")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_bookings_one_owner"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_bookings_one_owner"), sa.text(OLD_CHECK))
        batch_op.drop_index(batch_op.f("ix_bookings_block_id"))
        batch_op.drop_constraint(batch_op.f("fk_bookings_block_id_resource_blocks"), type_="foreignkey")
        batch_op.drop_column("block_id")
    with op.batch_alter_table("resource_blocks", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_blocks_resource")
    op.drop_table("resource_blocks")
