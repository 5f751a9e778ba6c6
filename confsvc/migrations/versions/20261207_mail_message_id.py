"""mail deliveries keep their Message-ID from the first attempt (issue 16 defect 12)

A delivery's ``Message-ID`` is generated when it is queued and reused on every retry, so a copy sent
again after a crash between SMTP and the ``sent`` mark is recognisable. Copies queued before this
revision keep ``NULL`` and the former deterministic form. ``status`` gains the value ``sending``
(a plain string column: no schema change).

Revision ID: 20261207_mail_message_id
Revises: 20261207_officework
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "20261207_mail_message_id"
down_revision = "20261207_officework"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mail_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rfc_message_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE mail_deliveries SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table("mail_deliveries", schema=None) as batch_op:
        batch_op.drop_column("rfc_message_id")
