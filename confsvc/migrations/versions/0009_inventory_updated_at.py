"""updated_at on units, rooms, bridges and users

Written by hand after 0004 (issue 5: calendar feeds answer a 304 from a fingerprint of their
inputs, so a renamed room or unit, a bridge's new dial domain or an organizer's new name must
be visible to a few SQL aggregates). The models stamp the column on every UPDATE (``onupdate``);
existing rows get the time of the upgrade.

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-30 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import confsvc.db
from confsvc.clock import utc_now

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("units", "rooms", "bridges", "users")


def upgrade() -> None:
    # SQLite cannot ADD COLUMN ... NOT NULL with a non-constant default: a constant placeholder,
    # then every existing row gets the upgrade's time.
    placeholder = "'1970-01-01 00:00:00.000000'" if op.get_bind().dialect.name == "sqlite" \
        else "'1970-01-01 00:00:00+00'"
    now = utc_now()
    for name in TABLES:
        op.add_column(name, sa.Column("updated_at", confsvc.db.UTCDateTime(timezone=True), nullable=False,
                                      server_default=sa.text(placeholder)))
        table = sa.table(name, sa.column("updated_at", confsvc.db.UTCDateTime(timezone=True)))
        op.execute(table.update().values(updated_at=now))


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_column(name, "updated_at")
