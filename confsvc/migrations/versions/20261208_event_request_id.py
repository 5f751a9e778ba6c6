"""events.request_id: the X-Request-ID of the request that recorded an event (issue 16 "Operations")

Nullable: events recorded outside a request (scheduler, CLI) and every older event have none.

Revision ID: 20261208_event_request_id
Revises: 20261208_mail_invitation_pdf
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "20261208_event_request_id"
down_revision = "20261208_mail_invitation_pdf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("request_id")
