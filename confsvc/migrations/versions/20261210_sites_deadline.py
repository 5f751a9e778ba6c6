"""sites_deadline: until when a province's secretariat may change its own sites of a national meeting

Issue 14 "National meetings": ``meetings.sites_deadline`` (UTC, nullable). Set by the national office
when it books; until then each province's secretariat may add or remove its own province's sites
(``users.principal.Principal.require_sites_change``). Plain ADD COLUMN on both backends (no batch
rebuild, so the triggers on ``meetings`` of ``0012_feed_versions`` and ``20261208_usage_triggers`` stay).

Revision ID: 20261210_sites_deadline
Revises: 20261209_events_order
"""

import sqlalchemy as sa
from alembic import op

from confsvc.db import UTCDateTime

revision = "20261210_sites_deadline"
down_revision = "20261209_events_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("meetings", sa.Column("sites_deadline", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("meetings", "sites_deadline")
