"""bridge_port_guard: a bridge's ports are counted by the database at COMMIT (PostgreSQL)

Issue 16 "Throughput under contention": every booking held its bridge's row lock from the port count
to the commit, so bookings of different rooms queued behind each other on the one bridge (each held
it ~160 ms, its worker waiting for the CPU and the GIL between round trips). Now, on PostgreSQL:

- ``bookings_bridge_ports``, a constraint trigger ``DEFERRABLE INITIALLY DEFERRED`` on every bridge
  booking written or moved (ports > 0): at COMMIT (or at ``SET CONSTRAINTS … IMMEDIATE``,
  ``scheduling/port_guard.py`` runs it just before the events' final step) it takes the bridge's
  advisory lock (``pg_advisory_xact_lock(3088, bridge_id)``, held until the commit is visible) and
  computes the peak of ports held on the bridge over the booking's window (SPEC rule 2: at every
  instant the sum of ``ports`` of the overlapping bridge bookings, half-open windows). Above
  ``bridges.port_capacity`` it raises ``check_violation`` (23514) with the constraint name
  ``bookings_bridge_ports`` and a JSON ``DETAIL`` ``{"bridge_id", "start", "end", "in_use",
  "requested", "capacity"}`` naming the first overloaded interval (``in_use`` counts the new
  booking's ``requested`` ports too). The lock is held from there to the end of the
  commit only: no Python runs under it.
- ``ix_bookings_bridge_window`` (both databases): bridge bookings by bridge and window end, so that
  count scans the bridge's bookings not yet ended at the window's start (bounded by the booking
  horizon, not by history).

The application still counts ports before writing (the friendly 409 listing who holds them, SPEC
rule 8) but without a lock; this trigger is the guarantee under concurrency (SPEC rule 7), as the
exclusion constraints are for rooms, endpoints and conference numbers. SQLite: nothing (its writers
are serialised by ``BEGIN IMMEDIATE``).

Revision ID: 20261209_bridge_port_guard
Revises: 20261209_cascade
"""

import sqlalchemy as sa
from alembic import op

revision = "20261209_bridge_port_guard"
down_revision = "20261209_cascade"
branch_labels = None
depends_on = None

#: First key of the two-int advisory lock on a bridge (``scheduling.repository.BRIDGE_LOCK_SPACE``).
BRIDGE_LOCK_SPACE = 0x0C10

FUNCTION = f"""
CREATE OR REPLACE FUNCTION confsvc_bridge_ports_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    capacity integer;
    overload record;
BEGIN
    PERFORM pg_advisory_xact_lock({BRIDGE_LOCK_SPACE}, NEW.resource_id);
    SELECT port_capacity INTO capacity FROM bridges WHERE id = NEW.resource_id;
    IF capacity IS NULL THEN
        RETURN NULL;
    END IF;
    -- The load only changes where a booking starts: the instants to look at are NEW's start and
    -- every start of an overlapping booking inside NEW's window.
    SELECT t.at, least(NEW.window_end, min(b.window_end)) AS until, sum(b.ports) AS in_use INTO overload
    FROM (SELECT DISTINCT greatest(o.window_start, NEW.window_start) AS at
          FROM bookings o
          WHERE o.resource_kind = 'bridge' AND o.resource_id = NEW.resource_id AND o.ports > 0
            AND o.window_end > NEW.window_start AND o.window_start < NEW.window_end) AS t
    JOIN bookings b ON b.resource_kind = 'bridge' AND b.resource_id = NEW.resource_id AND b.ports > 0
        AND b.window_end > t.at AND b.window_start <= t.at
    GROUP BY t.at
    HAVING sum(b.ports) > capacity
    ORDER BY t.at
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'bridge % would hold % ports of %', NEW.resource_id, overload.in_use, capacity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_bridge_ports',
                  DETAIL = json_build_object('bridge_id', NEW.resource_id, 'start', overload.at,
                                             'end', overload.until, 'in_use', overload.in_use,
                                             'requested', NEW.ports, 'capacity', capacity)::text;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_index("ix_bookings_bridge_window", "bookings", ["resource_id", "window_end"], unique=False,
                    sqlite_where=sa.text("resource_kind = 'bridge'"), postgresql_where=sa.text("resource_kind = 'bridge'"))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute("CREATE CONSTRAINT TRIGGER bookings_bridge_ports AFTER INSERT OR UPDATE OF "
               "window_start, window_end, ports, resource_id, resource_kind ON bookings "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
               "WHEN (NEW.resource_kind = 'bridge' AND NEW.ports > 0) "
               "EXECUTE FUNCTION confsvc_bridge_ports_guard()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS bookings_bridge_ports ON bookings")
        op.execute("DROP FUNCTION IF EXISTS confsvc_bridge_ports_guard()")
    op.drop_index("ix_bookings_bridge_window", table_name="bookings")
