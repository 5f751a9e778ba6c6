"""feed_versions: one counter of everything calendar feeds show, raised by triggers

Written by hand (issue 5 benchmark: a feed's 304 in under 5 ms). A feed's ETag was a fingerprint
of SQL aggregates over its meetings, occurrences and the inventory (~3 ms a request); it is now
the counter's value, which the database raises in the same transaction as any change a feed can
show, whatever code or SQL made it:

- ``meetings``, ``occurrences``, ``meeting_participants``, ``occurrence_participants``: every
  INSERT, UPDATE and DELETE (of any column, present or added later);
- ``units``, ``rooms``, ``endpoints``, ``bridges``, ``users``: an UPDATE of a column a feed shows
  (``FEED_COLUMNS``: names, the room ↔ unit ↔ parent and endpoint ↔ room links, a bridge's dial
  domain and H.323 prefix, an organizer's name and address), and a DELETE. An INSERT shows in no
  feed until a meeting refers to the row (and that write is a meeting's); an endpoint's live
  status, a new user or a login change nothing.

The row is upserted (``id`` 1), so a table emptied by TRUNCATE (tests) starts again.

PostgreSQL: DEFERRABLE INITIALLY DEFERRED constraint triggers, so the counter's row lock is
taken at COMMIT, after every other lock of the transaction: it cannot close a deadlock cycle
with a bridge row lock, an exclusion-constraint wait or the events' advisory lock. One bump per
transaction (a transaction-local setting remembers it). ``changed_at`` is ``clock_timestamp()``.
SQLite: plain AFTER triggers (writers are serialised by ``BEGIN IMMEDIATE`` already).

**SQLite batch mode drops a table's triggers** when it rebuilds the table: a later migration
that uses ``batch_alter_table`` on one of these tables must create its triggers again
(as ``upgrade`` does here). ``tests/calendar/test_feed_versions.py`` checks, on the migrated database,
that every watched column still raises the counter.

Revision ID: 0012_feed_versions
Revises: 0009 (the calendar's branch: the tables it watches are 0001's and 0002's)
Create Date: 2026-11-30 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import confsvc.db
from confsvc.clock import utc_now

revision = "0012_feed_versions"
down_revision = "0009"
branch_labels = None
depends_on = None

#: Tables whose every change a feed may show.
ALL_COLUMNS = ("meetings", "occurrences", "meeting_participants", "occurrence_participants")
#: Inventory tables: the columns a feed shows (an UPDATE of any other column changes no feed).
FEED_COLUMNS = {
    "units": ("name", "parent_id"),
    "rooms": ("name", "unit_id"),
    "endpoints": ("name", "room_id"),
    "bridges": ("sip_domain", "h323_prefix"),
    "users": ("full_name", "email"),
}
FUNCTION = "confsvc_bump_feed_version"


def _tables() -> list[tuple[str, tuple[str, ...] | None]]:
    return [(t, None) for t in ALL_COLUMNS] + list(FEED_COLUMNS.items())


def _writes(columns: tuple[str, ...] | None) -> tuple[str, ...]:
    """The row events besides UPDATE that raise the version: inventory rows only when deleted."""
    return ("INSERT", "DELETE") if columns is None else ("DELETE",)


def _when(columns: tuple[str, ...] | None, *, postgresql: bool) -> str:
    """The UPDATE trigger's condition: one of ``columns`` changed value (none: every UPDATE)."""
    if not columns:
        return ""
    differs = "IS DISTINCT FROM" if postgresql else "IS NOT"
    condition = " OR ".join(f'OLD."{c}" {differs} NEW."{c}"' for c in columns)
    return f" WHEN ({condition})"


_SQLITE_BUMP = ("INSERT INTO feed_versions (id, version, changed_at) "
                "VALUES (1, 1, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000') "
                "ON CONFLICT (id) DO UPDATE SET version = feed_versions.version + 1, changed_at = excluded.changed_at;")


def upgrade() -> None:
    op.create_table(
        "feed_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_versions")),
    )
    bind = op.get_bind()
    table = sa.table("feed_versions", sa.column("id", sa.Integer), sa.column("version", sa.BigInteger),
                     sa.column("changed_at", confsvc.db.UTCDateTime(timezone=True)))
    op.execute(table.insert().values(id=1, version=1, changed_at=utc_now()))
    if bind.dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF current_setting('confsvc.feed_version_bumped', true) IS DISTINCT FROM txid_current()::text THEN
                    PERFORM set_config('confsvc.feed_version_bumped', txid_current()::text, true);
                    INSERT INTO feed_versions (id, version, changed_at) VALUES (1, 1, clock_timestamp())
                    ON CONFLICT (id) DO UPDATE
                        SET version = feed_versions.version + 1, changed_at = clock_timestamp();
                END IF;
                RETURN NULL;
            END $$""")
        for name, columns in _tables():
            of = f" OF {', '.join(columns)}" if columns else ""
            op.execute(f"CREATE CONSTRAINT TRIGGER feed_version_{name}_write AFTER {' OR '.join(_writes(columns))} ON {name} "
                       f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()")
            op.execute(f"CREATE CONSTRAINT TRIGGER feed_version_{name}_update AFTER UPDATE{of} ON {name} "
                       f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW{_when(columns, postgresql=True)} "
                       f"EXECUTE FUNCTION {FUNCTION}()")
    else:
        for name, columns in _tables():
            of = f" OF {', '.join(columns)}" if columns else ""
            for event in _writes(columns):
                op.execute(f"CREATE TRIGGER feed_version_{name}_{event.lower()} AFTER {event} ON {name} "
                           f"BEGIN {_SQLITE_BUMP} END")
            op.execute(f"CREATE TRIGGER feed_version_{name}_update AFTER UPDATE{of} ON {name} "
                       f"{_when(columns, postgresql=False)} BEGIN {_SQLITE_BUMP} END")


def downgrade() -> None:
    bind = op.get_bind()
    for name, columns in reversed(_tables()):
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER feed_version_{name}_update ON {name}")
            op.execute(f"DROP TRIGGER feed_version_{name}_write ON {name}")
        else:
            for event in ("UPDATE", *_writes(columns)):
                op.execute(f"DROP TRIGGER feed_version_{name}_{event.lower()}")
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {FUNCTION}()")
    op.drop_table("feed_versions")
