"""usage_triggers: the usage summary's marks written by database triggers, like the feed version

Issue 11: derived data had two freshness mechanisms. Feeds' version is raised by triggers
(``0012_feed_versions``); the usage summary's marks were appended by ORM listeners
(``stats.summary._after_flush`` and ``_on_bulk``), which missed plain SQL writes. Now the database
writes both, in the same transaction as the change, whatever code, process or SQL made it:

- ``usage_dirty`` becomes a list of UTC date *ranges* ``[first_day, last_day]`` (a trigger cannot
  loop over days on SQLite: no CTE in a trigger body). A mark covers the changed occurrence's window
  ``[start − check lead, end)`` widened by one day each side, so it holds for any zone
  (UTC−12…UTC+14); old single-day marks become one-day ranges (and back on downgrade).
- ``occurrences`` (every INSERT, UPDATE, DELETE): the old and the new window (a deleted meeting's
  occurrences go by ``ON DELETE CASCADE``, whose deletes fire these triggers too; a lead of one day
  when the meeting is gone).
- ``meetings``: an UPDATE of ``status`` or ``check_lead_minutes``: every occurrence of the meeting.
- ``meeting_participants``: any write: the span of the meeting's occurrences.
- ``occurrence_participants``, ``readiness``, ``call_records``: any write: the occurrence's window.
- ``endpoint_status_history``: any write: every occurrence not ended at the change whose window had
  opened by now (starting within a week): the days whose faults the change can alter. Not only the
  endpoint's occurrences: the participation rule stays in ``scheduling/participants.py``, and a mark
  of too many days only costs a recomputation.
- ``endpoints.room_id``, ``rooms.unit_id``, ``units.parent_id`` (UPDATE) and a DELETE of any of
  them: ``usage_epoch`` + 1 (every stored day is computed again), at once, as the ORM listener did
  (so the writing transaction's own reports see it; such moves are rare, their row lock is no
  bottleneck).

Only changes whose window opens before now + 4 days (the database's clock) are marked: a window
opening later holds no call, fault or started meeting and its days are far from settled, so no
stored day depends on it (new bookings and edits of future meetings write no mark). Marks are
appends (no row is updated), so bookings never wait on each other here.

**SQLite batch mode drops a table's triggers** when it rebuilds the table: a later migration
that uses ``batch_alter_table`` on one of these tables must create its triggers again.
``tests/core/test_derived_freshness.py`` checks the triggers on the migrated database.

Revision ID: 20261208_usage_triggers
Revises: 20261208_provinces
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "20261208_usage_triggers"
down_revision = "20261208_provinces"
branch_labels = None
depends_on = None


def _first(start: str, lead: str, *, pg: bool) -> str:
    """UTC date of ``start − lead`` minutes, minus one day."""
    if pg:
        return f"((({start}) AT TIME ZONE 'UTC') - make_interval(mins => {lead}))::date - 1"
    return f"date({start}, printf('-%d minutes', {lead}), '-1 day')"


def _last(end: str, *, pg: bool) -> str:
    """UTC date of ``end``, plus one day."""
    return f"((({end}) AT TIME ZONE 'UTC')::date + 1)" if pg else f"date({end}, '+1 day')"


def _opened_soon(start: str, lead: str, *, pg: bool) -> str:
    """The window ``[start − lead, …)`` opens before now + 4 days (database clock). A window opening
    later holds no call, fault or started meeting yet, and its days are far from settled, so no stored
    day depends on it: such changes (new bookings, edits of future meetings) are not marked."""
    if pg:
        return f"({start}) - make_interval(mins => {lead}) <= now() + interval '4 days'"
    return f"datetime({start}, printf('-%d minutes', {lead})) <= datetime('now', '+4 days')"


_INSERT = "INSERT INTO usage_dirty (first_day, last_day) "
END = '"end"'  # a reserved word in PostgreSQL


def _occurrence(row: str, *, pg: bool) -> str:
    lead = f"coalesce((SELECT check_lead_minutes FROM meetings WHERE id = {row}.meeting_id), 1440)"
    return (_INSERT + f'SELECT {_first(f"{row}.start", lead, pg=pg)}, {_last(f"{row}.{END}", pg=pg)} '
            f'WHERE {_opened_soon(f"{row}.start", lead, pg=pg)};')


def _of_occurrence(row: str, *, pg: bool) -> str:
    return (_INSERT + f'SELECT {_first("o.start", "m.check_lead_minutes", pg=pg)}, {_last(f"o.{END}", pg=pg)} '
            f"FROM occurrences o JOIN meetings m ON m.id = o.meeting_id WHERE o.id = {row}.occurrence_id "
            f'AND {_opened_soon("o.start", "m.check_lead_minutes", pg=pg)};')


def _of_meeting(row: str, *, pg: bool) -> str:
    return (_INSERT + f'SELECT {_first("min(o.start)", "m.check_lead_minutes", pg=pg)}, '
            f'{_last(f"max(o.{END})", pg=pg)} FROM occurrences o JOIN meetings m ON m.id = o.meeting_id '
            f"WHERE o.meeting_id = {row}.meeting_id GROUP BY m.check_lead_minutes "
            f'HAVING {_opened_soon("min(o.start)", "m.check_lead_minutes", pg=pg)};')


def _meeting(_row: str, *, pg: bool) -> str:
    lead = ("greatest" if pg else "max") + "(OLD.check_lead_minutes, NEW.check_lead_minutes)"
    return (_INSERT + f'SELECT DISTINCT {_first("o.start", lead, pg=pg)}, {_last(f"o.{END}", pg=pg)} '
            f'FROM occurrences o WHERE o.meeting_id = NEW.id AND {_opened_soon("o.start", lead, pg=pg)};')


def _sqlite_when(table: str, event: str) -> str:
    """SQLite: a WHEN that skips the participant tables' triggers (a booking writes a row per endpoint)
    when the occurrence or meeting is too far ahead to be marked, without running the trigger body."""
    if event == "UPDATE" or table not in ("meeting_participants", "occurrence_participants"):
        return ""
    row = "NEW" if event == "INSERT" else "OLD"
    key = "o.meeting_id = {row}.meeting_id" if table == "meeting_participants" else "o.id = {row}.occurrence_id"
    return (" WHEN EXISTS (SELECT 1 FROM occurrences o JOIN meetings m ON m.id = o.meeting_id WHERE "
            + key.format(row=row) + f' AND {_opened_soon("o.start", "m.check_lead_minutes", pg=False)})')


def _status(row: str, *, pg: bool) -> str:
    now, week = ("now()", "now() + interval '7 days'") if pg else ("datetime('now')", "datetime('now', '+7 days')")
    start = "o.start" if pg else "datetime(o.start)"
    opened = (f"o.start - make_interval(mins => m.check_lead_minutes) <= {now}" if pg
              else f"datetime(o.start, printf('-%d minutes', m.check_lead_minutes)) <= {now}")
    return (_INSERT + f'SELECT DISTINCT {_first("o.start", "m.check_lead_minutes", pg=pg)}, '
            f'{_last(f"o.{END}", pg=pg)} FROM occurrences o JOIN meetings m ON m.id = o.meeting_id '
            f'WHERE o."end" > {row}.at AND {start} <= {week} AND {opened};')


_EPOCH = ("INSERT INTO usage_epoch (id, epoch) VALUES (1, 1) "
          "ON CONFLICT (id) DO UPDATE SET epoch = usage_epoch.epoch + 1;")

#: table → (mark builder, UPDATE columns (None: any), WHEN of the UPDATE). Rows: NEW on INSERT, OLD on
#: DELETE, both on UPDATE (the meeting's builder reads both itself).
MARKS = {
    "occurrences": (_occurrence, None, None),
    "meetings": (_meeting, ("status", "check_lead_minutes"), ("status", "check_lead_minutes")),
    "meeting_participants": (_of_meeting, None, None),
    "occurrence_participants": (_of_occurrence, None, None),
    "readiness": (_of_occurrence, None, None),
    "call_records": (_of_occurrence, None, None),
    "endpoint_status_history": (_status, None, None),
}
#: Inventory links under past sites: an UPDATE of the column or a DELETE bumps the epoch.
EPOCH = {"endpoints": "room_id", "rooms": "unit_id", "units": "parent_id"}
FUNCTION = "confsvc_usage_{table}_{event}"


def _body(table: str, event: str, *, pg: bool) -> str:
    build, _, _ = MARKS[table]
    if table == "meetings":
        return build("NEW", pg=pg)
    rows = {"INSERT": ("NEW",), "DELETE": ("OLD",), "UPDATE": ("OLD", "NEW")}[event]
    return " ".join(build(row, pg=pg) for row in rows)


def _events(table: str) -> tuple[str, ...]:
    return ("UPDATE",) if table == "meetings" else ("INSERT", "UPDATE", "DELETE")


def _when(columns: tuple[str, ...] | None, *, pg: bool) -> str:
    if not columns:
        return ""
    differs = "IS DISTINCT FROM" if pg else "IS NOT"
    return " WHEN (" + " OR ".join(f'OLD."{c}" {differs} NEW."{c}"' for c in columns) + ")"


def _create_triggers(pg: bool) -> None:
    for table, (_, columns, when) in MARKS.items():
        for event in _events(table):
            of = f" OF {', '.join(columns)}" if event == "UPDATE" and columns else ""
            condition = _when(when, pg=pg) if event == "UPDATE" else ""
            name = f"usage_{table}_{event.lower()}"
            if pg:
                function = FUNCTION.format(table=table, event=event.lower())
                op.execute(f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                           f"BEGIN {_body(table, event, pg=True)} RETURN NULL; END $$")
                op.execute(f"CREATE TRIGGER {name} AFTER {event}{of} ON {table} FOR EACH ROW{condition} "
                           f"EXECUTE FUNCTION {function}()")
            else:
                condition = condition or _sqlite_when(table, event)
                op.execute(f"CREATE TRIGGER {name} AFTER {event}{of} ON {table}{condition} "
                           f"BEGIN {_body(table, event, pg=False)} END")
    for table, column in EPOCH.items():
        if pg:
            function = FUNCTION.format(table=table, event="epoch")
            op.execute(f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                       f"BEGIN {_EPOCH} RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER usage_{table}_delete AFTER DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION {function}()")
            op.execute(f"CREATE TRIGGER usage_{table}_update AFTER UPDATE OF {column} ON {table} "
                       f"FOR EACH ROW{_when((column,), pg=True)} EXECUTE FUNCTION {function}()")
        else:
            op.execute(f"CREATE TRIGGER usage_{table}_delete AFTER DELETE ON {table} BEGIN {_EPOCH} END")
            op.execute(f"CREATE TRIGGER usage_{table}_update AFTER UPDATE OF {column} ON {table}"
                       f"{_when((column,), pg=False)} BEGIN {_EPOCH} END")


def _drop_triggers(pg: bool) -> None:
    names = [(table, f"usage_{table}_{event.lower()}", event.lower()) for table in MARKS for event in _events(table)]
    names += [(table, f"usage_{table}_{event}", "epoch") for table in EPOCH for event in ("delete", "update")]
    functions = set()
    for table, name, function_event in names:
        op.execute(f"DROP TRIGGER {name} ON {table}" if pg else f"DROP TRIGGER {name}")
        functions.add(FUNCTION.format(table=table, event=function_event))
    if pg:
        for function in sorted(functions):
            op.execute(f"DROP FUNCTION {function}()")


def _marks_table(*columns: sa.Column) -> None:
    op.create_table("usage_dirty", sa.Column("id", sa.Integer(), nullable=False), *columns,
                    sa.PrimaryKeyConstraint("id"))


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    old = sa.table("usage_dirty", sa.column("day", sa.Date))
    days = list(op.get_bind().execute(sa.select(old.c.day).distinct()).scalars())
    op.drop_index("ix_usage_dirty_day", table_name="usage_dirty")
    op.drop_table("usage_dirty")
    _marks_table(sa.Column("first_day", sa.Date(), nullable=False), sa.Column("last_day", sa.Date(), nullable=False))
    op.create_index("ix_usage_dirty_last_day", "usage_dirty", ["last_day"], unique=False)
    if days:
        marks = sa.table("usage_dirty", sa.column("first_day", sa.Date), sa.column("last_day", sa.Date))
        op.bulk_insert(marks, [{"first_day": d, "last_day": d} for d in days])
    _create_triggers(pg)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(pg)
    marks = sa.table("usage_dirty", sa.column("first_day", sa.Date), sa.column("last_day", sa.Date))
    ranges = op.get_bind().execute(sa.select(marks.c.first_day, marks.c.last_day).distinct()).all()
    op.drop_index("ix_usage_dirty_last_day", table_name="usage_dirty")
    op.drop_table("usage_dirty")
    _marks_table(sa.Column("day", sa.Date(), nullable=False))
    op.create_index("ix_usage_dirty_day", "usage_dirty", ["day"], unique=False)
    days = sorted({first + timedelta(days=n) for first, last in ranges for n in range((last - first).days + 1)})
    if days:
        op.bulk_insert(sa.table("usage_dirty", sa.column("day", sa.Date)), [{"day": d} for d in days])
