"""unit_history: units' validity and successors, former names, rooms' former units (issue 15, "Unit mergers")

Three new tables, no change to ``units`` or ``rooms`` (a SQLite rebuild of ``units`` would drop its
feed-version triggers and fire its foreign keys' actions):

- ``unit_lifetimes``: ``[valid_from, valid_to)`` (local dates) and ``successor_id`` of a merged unit;
- ``unit_names``: the names (and codes) a unit had before a rename, each until a local date;
- ``room_units``: the unit a room belonged to before a merge moved it (and its name then), until a local date.

Revision ID: 20261208_unit_history
Revises: 20261208_event_request_id
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import confsvc.db

revision = "20261208_unit_history"
down_revision = "20261208_event_request_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_lifetimes",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("valid_to_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("successor_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_unit_lifetimes_unit_id_units"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["successor_id"], ["units.id"], name=op.f("fk_unit_lifetimes_successor_id_units"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_unit_lifetimes")),
    )
    op.create_index(op.f("ix_unit_lifetimes_successor_id"), "unit_lifetimes", ["successor_id"], unique=False)
    op.create_table(
        "unit_names",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("division_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("valid_until_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_unit_names_unit_id_units"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_names")),
    )
    op.create_index("ix_unit_names_unit_id_valid_until_at", "unit_names", ["unit_id", "valid_until_at"], unique=False)
    op.create_table(
        "room_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("valid_until_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_room_units_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_room_units_unit_id_units"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_units")),
    )
    op.create_index("ix_room_units_room_id_valid_until_at", "room_units", ["room_id", "valid_until_at"], unique=False)
    op.create_index(op.f("ix_room_units_unit_id"), "room_units", ["unit_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_room_units_unit_id"), table_name="room_units")
    op.drop_index("ix_room_units_room_id_valid_until_at", table_name="room_units")
    op.drop_table("room_units")
    op.drop_index("ix_unit_names_unit_id_valid_until_at", table_name="unit_names")
    op.drop_table("unit_names")
    op.drop_index(op.f("ix_unit_lifetimes_successor_id"), table_name="unit_lifetimes")
    op.drop_table("unit_lifetimes")
