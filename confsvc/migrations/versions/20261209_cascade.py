"""cascade: meetings whose sites span bridges, and relays of meetings chaired outside confsvc (issue 14)

- ``meeting_bridges``: each bridge of a cascaded meeting besides its root (``meetings.bridge_id``), with
  its parent bridge (one cascade leg, one port on each end) and its own conference number. Meetings on
  one bridge have no row: nothing to fill.
- ``meetings.upstream_dial``: the external address a relay's root bridge dials (the chair outside
  confsvc); null for every existing meeting. Added and dropped with plain ``ALTER TABLE`` so SQLite
  keeps the triggers of ``meetings`` (a batch rebuild would drop them).

Revision ID: 20261209_cascade
Revises: 20261209_priority
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "20261209_cascade"
down_revision = "20261209_priority"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting_bridges",
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("bridge_id", sa.Integer(), nullable=False),
        sa.Column("parent_bridge_id", sa.Integer(), nullable=False),
        sa.Column("conference_number", sa.Integer(), nullable=True),
        sa.CheckConstraint("bridge_id <> parent_bridge_id", name=op.f("ck_meeting_bridges_leg_between_two_bridges")),
        sa.ForeignKeyConstraint(["bridge_id"], ["bridges.id"], name=op.f("fk_meeting_bridges_bridge_id_bridges"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["meeting_id"], ["meetings.id"], name=op.f("fk_meeting_bridges_meeting_id_meetings"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_bridge_id"], ["bridges.id"],
                                name=op.f("fk_meeting_bridges_parent_bridge_id_bridges"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("meeting_id", "bridge_id", name=op.f("pk_meeting_bridges")),
    )
    op.create_index(op.f("ix_meeting_bridges_bridge_id"), "meeting_bridges", ["bridge_id"], unique=False)
    op.add_column("meetings", sa.Column("upstream_dial", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE meetings DROP COLUMN upstream_dial")
    op.drop_index(op.f("ix_meeting_bridges_bridge_id"), table_name="meeting_bridges")
    op.drop_table("meeting_bridges")
