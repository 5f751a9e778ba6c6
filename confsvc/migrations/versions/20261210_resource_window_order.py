"""resource_window_order: the rooms' and endpoints' exclusion constraint keyed on the resource id first (PostgreSQL)

Issue 14 "national meeting ≤ 2 s": writing a national meeting inserts 6,710 room and endpoint bookings,
each checked by ``ex_bookings_resource_window`` (SPEC rule 1). Its GiST index began with
``resource_kind``, a text column holding two values: every insert compared text keys down the tree
and the index's pages barely separated resources. The same constraint with ``resource_id`` first
(then ``resource_kind``, then the window) forbids exactly the same rows (``=``, ``=``, ``&&``: the
order of the elements does not change what conflicts) and checks 6,710 inserts in ~170 ms instead of
~460 ms (``bench/cascade.py``). Dropped and added in the migration's one transaction: no instant
without the constraint. SQLite: nothing (its writers are serialised).

Revision ID: 20261210_resource_window_order
Revises: 20261210_sites_deadline
"""

from alembic import op

revision = "20261210_resource_window_order"
down_revision = "20261210_sites_deadline"
branch_labels = None
depends_on = None

_ADD = ("ALTER TABLE bookings ADD CONSTRAINT ex_bookings_resource_window EXCLUDE USING gist ({elements}) "
        "WHERE (resource_kind IN ('endpoint', 'room'))")
_WINDOW = "tstzrange(window_start, window_end, '[)') WITH &&"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE bookings DROP CONSTRAINT ex_bookings_resource_window")
    op.execute(_ADD.format(elements=f"resource_id WITH =, resource_kind WITH =, {_WINDOW}"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE bookings DROP CONSTRAINT ex_bookings_resource_window")
    op.execute(_ADD.format(elements=f"resource_kind WITH =, resource_id WITH =, {_WINDOW}"))
