"""events_order: the events' final step at COMMIT in one round trip (PostgreSQL)

Issue 16 "Throughput under contention": every transaction that records events takes the events'
advisory lock just before its COMMIT (``events._order_at_commit``), gives its events their final ids
in recording order and notifies ``confsvc_events``. That was two round trips (the lock, then the
renumbering) with Python between them, under a lock every event writer of the deployment queues
on. ``confsvc_order_events(ids, channel)`` does both in one call: the lock (held until the commit
is visible), the renumbering (fresh ids from the events' sequence, paired by rank with the
provisional ones; only rows still there: a rolled-back savepoint's are not) and the NOTIFY of the
last id. It returns ``(old_id, new_id)`` pairs in order. SQLite: nothing (writers are serialised).

Revision ID: 20261209_events_order
Revises: 20261209_bridge_port_guard
"""

from alembic import op

revision = "20261209_events_order"
down_revision = "20261209_bridge_port_guard"
branch_labels = None
depends_on = None

#: ``events.EVENTS_LOCK_KEY`` ("confsvc" in ASCII, truncated).
EVENTS_LOCK_KEY = 0x636F6E66737663

FUNCTION = f"""
CREATE OR REPLACE FUNCTION confsvc_order_events(ids integer[], channel text)
RETURNS TABLE (old_id integer, new_id integer) LANGUAGE plpgsql AS $$
DECLARE
    olds integer[];
    news integer[];
BEGIN
    PERFORM pg_advisory_xact_lock({EVENTS_LOCK_KEY});
    WITH old AS (SELECT u.o, row_number() OVER (ORDER BY u.o) AS k FROM unnest(ids) AS u(o)),
         fresh AS (SELECT s.n, row_number() OVER (ORDER BY s.n) AS k
                   FROM (SELECT CAST(nextval(pg_get_serial_sequence('events', 'id')) AS integer) AS n
                         FROM generate_series(1, cardinality(ids))) AS s),
         moved AS (UPDATE events SET id = fresh.n FROM old JOIN fresh USING (k)
                   WHERE events.id = old.o RETURNING old.o, fresh.n)
    SELECT array_agg(moved.o ORDER BY moved.n), array_agg(moved.n ORDER BY moved.n) INTO olds, news FROM moved;
    IF news IS NOT NULL THEN
        PERFORM pg_notify(channel, CAST(news[cardinality(news)] AS text));
        RETURN QUERY SELECT * FROM unnest(olds, news);
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS confsvc_order_events(integer[], text)")
