"""call_records: one index (occurrence_id, endpoint_id, connected_at) for the statistics' per-site lookups

Written by hand (issue 6 benchmark). Usage statistics look up a site's call records by
(occurrence, endpoint); with the single-column occurrence index each lookup scanned every record
of the occurrence (~225 for a province's Monday briefing of 150 sites). The composite index
replaces ``ix_call_records_occurrence_id`` (its prefix).

Revision ID: 0010
Revises: 0007 (the table's own migration: with down_revision 0004 and ``depends_on`` 0007, Alembic
keeps reporting 0007 as a head that the database never records, and the "at head" check fails)
Create Date: 2026-11-30 11:00:00
"""

from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.create_index("ix_call_records_occurrence_id_endpoint_id_connected_at",
                              ["occurrence_id", "endpoint_id", "connected_at"], unique=False)
        batch_op.drop_index("ix_call_records_occurrence_id")


def downgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.create_index("ix_call_records_occurrence_id", ["occurrence_id"], unique=False)
        batch_op.drop_index("ix_call_records_occurrence_id_endpoint_id_connected_at")
