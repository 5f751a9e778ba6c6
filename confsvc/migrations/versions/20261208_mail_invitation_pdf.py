"""The giấy mời PDF of an e-mailed invitation (issue 15: "E-mailed invitations may attach the PDF"):
``mail_messages.invitation_pdf`` holds it as rendered when the message was queued, so every attempt
at a delivery (a retry, a re-send after a crash with the same Message-ID) carries the same bytes.
NULL: no PDF (the setting off, a CANCEL, or a message queued before).

Revision ID: 20261208_mail_invitation_pdf
Revises: 20261207_requests
"""

import sqlalchemy as sa
from alembic import op

revision = "20261208_mail_invitation_pdf"
down_revision = "20261207_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mail_messages", sa.Column("invitation_pdf", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE mail_messages DROP COLUMN invitation_pdf")
