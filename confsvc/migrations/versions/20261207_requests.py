"""requests: the ``requester`` role and ``meeting_requests`` (issue 15, "Requests and approval")

- ``users.role`` accepts ``requester``. The role is a CHECK constraint (``ck_users_role``):
  PostgreSQL drops and adds it; SQLite cannot alter a CHECK, so the ``users`` table is rebuilt
  (``batch_alter_table(recreate="always")``). Two things a rebuild would break, handled here:

  * **Foreign keys.** Dropping the old ``users`` table with ``foreign_keys=ON`` runs an implicit
    ``DELETE FROM users`` that fires the ``ON DELETE`` actions of every referencing table
    (``user_units`` and ``api_tokens`` rows deleted, meetings' organizer set NULL), and
    ``PRAGMA defer_foreign_keys`` does not stop actions, only checks. ``PRAGMA foreign_keys`` is a
    no-op inside a transaction, so: commit, ``foreign_keys=OFF``, rebuild in a transaction of its
    own, ``PRAGMA foreign_key_check`` (fails the migration on any dangling reference), commit,
    ``foreign_keys=ON`` (see ``_between_transactions``).
  * **Triggers.** The rebuild drops the table's triggers (0012_feed_versions' feed-version
    triggers on ``users``): their SQL is read from ``sqlite_master`` before and run again after.

- ``meeting_requests``: one row per requested meeting (state, who asked, when it expires, who decided).

Downgrade turns requesters into inactive viewers before narrowing the CHECK again.

Revision ID: 20261207_requests
Revises: 20261207_occurrence_number
"""

import sqlalchemy as sa
from alembic import op

import confsvc.db

revision = "20261207_requests"
down_revision = "20261207_occurrence_number"
branch_labels = None
depends_on = None

OLD_ROLES = ("admin", "secretariat", "operator", "viewer")
NEW_ROLES = (*OLD_ROLES, "requester")


def _role_type(roles: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*roles, name="role", native_enum=False, create_constraint=True, length=20)


def _between_transactions(pragma: str) -> None:
    """Commit what the migration did so far, run ``pragma`` outside any transaction, begin again.

    Straight on the DBAPI connection: ``PRAGMA foreign_keys`` is a no-op inside a transaction, and
    Alembic's ``autocommit_block`` does not help here (confsvc's SQLite ``begin`` hook issues
    ``BEGIN IMMEDIATE`` even in AUTOCOMMIT mode). SQLAlchemy's transaction goes on around it.
    """
    dbapi = op.get_bind().connection.dbapi_connection
    dbapi.execute("COMMIT")
    dbapi.execute(pragma)
    dbapi.execute("BEGIN IMMEDIATE")


def _set_roles(roles: tuple[str, ...], previous: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        listed = ", ".join(f"'{r}'" for r in roles)
        op.execute("ALTER TABLE users DROP CONSTRAINT ck_users_role")
        op.execute(f"ALTER TABLE users ADD CONSTRAINT ck_users_role CHECK (role IN ({listed}))")
        return
    _between_transactions("PRAGMA foreign_keys=OFF")
    try:
        triggers = [sql for (sql,) in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'users' ORDER BY name").all()]
        with op.batch_alter_table("users", recreate="always") as batch:
            batch.alter_column("role", type_=_role_type(roles), existing_type=_role_type(previous),
                               existing_nullable=False)
        for sql in triggers:
            op.execute(sql)
        dangling = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
        if dangling:
            raise RuntimeError(f"the users rebuild left dangling foreign keys: {dangling}")
        _between_transactions("PRAGMA foreign_keys=ON")
    except BaseException:
        dbapi = bind.connection.dbapi_connection
        dbapi.execute("ROLLBACK")  # the rebuild, not what earlier migrations committed
        dbapi.execute("PRAGMA foreign_keys=ON")
        dbapi.execute("BEGIN")  # for SQLAlchemy's own rollback
        raise


def upgrade() -> None:
    _set_roles(NEW_ROLES, OLD_ROLES)
    op.create_table(
        "meeting_requests",
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("requested_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", confsvc.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Enum("pending", "approved", "rejected", "expired", name="requeststate",
                                   native_enum=False, length=20, create_constraint=True),
                  server_default="pending", nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", confsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["meeting_id"], ["meetings.id"], name=op.f("fk_meeting_requests_meeting_id_meetings"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], name=op.f("fk_meeting_requests_requested_by_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name=op.f("fk_meeting_requests_decided_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("meeting_id", name=op.f("pk_meeting_requests")),
    )
    op.create_index(op.f("ix_meeting_requests_requested_by"), "meeting_requests", ["requested_by"])
    op.create_index("ix_meeting_requests_state_expires_at", "meeting_requests", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_meeting_requests_state_expires_at", table_name="meeting_requests")
    op.drop_index(op.f("ix_meeting_requests_requested_by"), table_name="meeting_requests")
    op.drop_table("meeting_requests")
    op.execute("UPDATE users SET role = 'viewer', active = false WHERE role = 'requester'")
    _set_roles(OLD_ROLES, NEW_ROLES)
