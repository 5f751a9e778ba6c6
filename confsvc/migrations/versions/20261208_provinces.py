"""provinces: provinces as tenants (issue 14)

- ``users.province_id``: the province a user acts in; none = national (Văn phòng Chính phủ: sees and
  books across provinces). Existing users get the province of their units, else the deployment's
  only province, else none (deployment-wide, as before).
- ``bridges.unit_id``: the province that owns a bridge; existing bridges get the only province, else
  none (shared by all).

SQLite cannot add a named foreign key: both tables are rebuilt the way ``20261207_requests`` rebuilds ``users`` (foreign keys
off between transactions, triggers read before and run again after, ``PRAGMA foreign_key_check``).

Revision ID: 20261208_provinces
Revises: 20261208_unit_history
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "20261208_provinces"
down_revision = "20261208_unit_history"
branch_labels = None
depends_on = None

def _between_transactions(pragma: str) -> None:
    dbapi = op.get_bind().connection.dbapi_connection
    dbapi.execute("COMMIT")
    dbapi.execute(pragma)
    dbapi.execute("BEGIN IMMEDIATE")


def _rebuild(changes: dict[str, Callable[[BatchOperations], None]]) -> None:
    """SQLite: each table of ``changes`` rebuilt with its batch operations, keeping its triggers."""
    bind = op.get_bind()
    _between_transactions("PRAGMA foreign_keys=OFF")
    try:
        for table, change in changes.items():
            triggers = [sql for (sql,) in bind.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name",
                (table,)).all()]
            with op.batch_alter_table(table, recreate="always") as batch:
                change(batch)
            for sql in triggers:
                op.execute(sql)
        dangling = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
        if dangling:
            raise RuntimeError(f"the rebuild left dangling foreign keys: {dangling}")
        _between_transactions("PRAGMA foreign_keys=ON")
    except BaseException:
        dbapi = bind.connection.dbapi_connection
        dbapi.execute("ROLLBACK")
        dbapi.execute("PRAGMA foreign_keys=ON")
        dbapi.execute("BEGIN")
        raise


def _add_columns(batch: BatchOperations, table: str, column: str) -> None:
    batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
    batch.create_foreign_key(op.f(f"fk_{table}_{column}_units"), "units", [column], ["id"], ondelete="RESTRICT")
    batch.create_index(op.f(f"ix_{table}_{column}"), [column])


def _drop_columns(batch: BatchOperations, table: str, column: str) -> None:
    batch.drop_index(op.f(f"ix_{table}_{column}"))
    batch.drop_constraint(op.f(f"fk_{table}_{column}_units"), type_="foreignkey")
    batch.drop_column(column)


def _fill() -> None:
    provinces = [row[0] for row in op.get_bind().exec_driver_sql(
        "SELECT id FROM units WHERE level = 'province' ORDER BY id LIMIT 2").all()]
    # A user's province: the top province-level ancestor of any of their units.
    op.execute("""
        WITH RECURSIVE up(user_id, id, parent_id, level) AS (
            SELECT uu.user_id, u.id, u.parent_id, u.level FROM user_units uu JOIN units u ON u.id = uu.unit_id
            UNION ALL
            SELECT up.user_id, u.id, u.parent_id, u.level FROM up JOIN units u ON u.id = up.parent_id)
        UPDATE users SET province_id = (SELECT MIN(up.id) FROM up WHERE up.user_id = users.id
                                        AND up.level = 'province')
        """)
    if len(provinces) == 1:
        op.execute(f"UPDATE users SET province_id = {int(provinces[0])} "
                   "WHERE province_id IS NULL")
        op.execute(f"UPDATE bridges SET unit_id = {int(provinces[0])}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in (("users", "province_id"), ("bridges", "unit_id")):
            op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
            op.create_foreign_key(op.f(f"fk_{table}_{column}_units"), table, "units", [column], ["id"],
                                  ondelete="RESTRICT")
            op.create_index(op.f(f"ix_{table}_{column}"), table, [column])
    else:
        _rebuild({"users": lambda batch: _add_columns(batch, "users", "province_id"),
                  "bridges": lambda batch: _add_columns(batch, "bridges", "unit_id")})
    _fill()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in (("users", "province_id"), ("bridges", "unit_id")):
            op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
            op.drop_constraint(op.f(f"fk_{table}_{column}_units"), table, type_="foreignkey")
            op.drop_column(table, column)
        return
    _rebuild({"users": lambda batch: _drop_columns(batch, "users", "province_id"),
              "bridges": lambda batch: _drop_columns(batch, "bridges", "unit_id")})
