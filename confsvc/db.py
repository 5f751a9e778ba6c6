"""Engine and session factories, the shared metadata naming convention, and ``get_session``.

SQLite: WAL, foreign keys on, and write transactions that take the write lock up front
(``BEGIN IMMEDIATE``) so that two writers queue instead of failing with "database is locked"
(SPEC conflict rule 7). PostgreSQL: plain READ COMMITTED; rules that need more take row locks
or rely on constraints.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Path as PathParam, Query, Request
from pydantic import Field
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from confsvc import collation
from confsvc.errors import NotFound
from confsvc.text import natural

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Seconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 60
#: Execution option: False on read sessions (SQLite: plain BEGIN instead of BEGIN IMMEDIATE).
WRITE_OPTION = "confsvc_write"

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime stored in UTC and read back aware in UTC, on every backend.

    Raises ``ValueError`` when a naive datetime is bound: callers convert input first
    (``clock.as_utc``), so a naive value here is a bug, not user input.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime bound to a UTC column: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(enum_cls: type[enum.Enum], default: enum.Enum | None = None) -> sa.Column:
    """A NOT NULL column holding an enum's plain ``value`` with a CHECK constraint on both backends
    (no native PostgreSQL enum type, so adding a member is a plain migration)."""
    return sa.Column(
        sa.Enum(enum_cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                create_constraint=True, name=enum_cls.__name__.lower()),
        nullable=False,
        default=default,
        server_default=default.value if default is not None else None,
    )


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with confsvc's per-backend behaviour installed."""
    if is_sqlite(url):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs
        )
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so that BEGIN below is ours (SQLAlchemy
        # documents this recipe for pysqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()
        # Names sort in one order on both databases (confsvc.collation; PostgreSQL uses ICU).
        dbapi_connection.create_collation(collation.SQLITE_COLLATION, collation.compare)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION, True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_session(engine: Engine, *, write: bool = True) -> Session:
    """A session on ``engine``. ``write=False`` lets SQLite readers skip the write lock."""
    bind = engine if write else engine.execution_options(**{WRITE_OPTION: False})
    return Session(bind=bind, expire_on_commit=False)


def ids_in(session: Session, column: Any, ids: Iterable[int]) -> Any:
    """SQL ``column IN ids``; on PostgreSQL as ONE array parameter (``column = ANY(:ids)``): a national
    meeting's 3,355 rooms would otherwise be 3,355 bind parameters, each rendered by SQLAlchemy and parsed
    by the driver (issue 14). SQLite binds a plain ``IN`` list (its driver does not parse the query)."""
    values = sorted(set(ids))
    if session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(sa.Integer())))
    return column.in_(values)


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]], *, return_ids: bool = False) -> list[int]:
    """Insert ``rows`` into ``table`` (a mapped class or a ``Table``) in the session's transaction, through
    SQLAlchemy Core (no ORM objects), and return their ids (the serial ``id`` column) in the order of
    ``rows`` when ``return_ids``, else ``[]``.

    Every row has the same keys, column names; a column left out takes its server default (or NULL),
    not a Python-side one.

    PostgreSQL: ONE statement and ONE parameter whatever the number of rows, ``INSERT … SELECT … FROM
    json_populate_recordset(NULL::<table>, <the rows as a JSON array>) WITH ORDINALITY ORDER BY
    ordinality``: the rows go in the order given (a serial id grows along ``rows``), and the driver
    neither sends one statement per row nor parses a query with thousands of placeholders (issue 14: a
    national meeting writes 6,710 bookings and 3,355 events). Values there are JSON: enums as their
    values, aware datetimes in ISO-8601 (a naive one raises ValueError), JSON columns as they are. Constraints
    (exclusion constraints, the deferred ``bookings_bridge_ports`` trigger) and triggers run per row as
    for any insert. SQLite: a Core ``executemany`` (its driver binds in process).

    Raises whatever the insert raises (e.g. ``IntegrityError``).
    """
    if not rows:
        return []
    session.flush()  # as an ORM insert would: pending objects first (the rows may refer to them)
    target: sa.Table = table if isinstance(table, sa.Table) else table.__table__
    keys = list(rows[0])
    if session.get_bind().dialect.name != "postgresql":
        statement = sa.insert(target)
        if not return_ids:
            session.execute(statement, rows)
            return []
        result = session.execute(statement.returning(target.c.id, sort_by_parameter_order=True), rows)
        return [int(i) for i in result.scalars()]
    preparer = session.get_bind().dialect.identifier_preparer
    name, columns = preparer.format_table(target), ", ".join(preparer.quote(key) for key in keys)
    # The rows as one JSON document, read back typed as the table's columns (a JSON column's value
    # is kept as the JSON it is); WITH ORDINALITY keeps their order.
    sql = (f"INSERT INTO {name} ({columns}) SELECT {columns} FROM json_populate_recordset("
           f"CAST(NULL AS {name}), CAST(:rows AS json)) WITH ORDINALITY AS given ORDER BY given.ordinality")
    payload = json.dumps(rows, default=_json_value)
    if not return_ids:
        session.execute(sa.text(sql), {"rows": payload})
        return []
    # Ids are drawn as the rows are inserted, in ``ordinality`` order: ascending ids are the rows' order.
    found = session.execute(sa.text(sql + " RETURNING id"), {"rows": payload}).scalars()
    return sorted(int(i) for i in found)


def _json_value(value: Any) -> Any:
    """A column value as :func:`insert_rows` sends it in JSON: an enum's value, an aware datetime in ISO-8601.

    Raises ValueError for a naive datetime (as :class:`UTCDateTime` does), TypeError for anything else."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime bound to a UTC column: {value!r}")
        return value.isoformat()
    raise TypeError(f"cannot send {value!r} as a column value")


def read_only(request: Request, load: Callable[[Session], T]) -> T:
    """Run ``load`` on a short read session of its own and return its result, detached.

    Path dependencies load their object this way (issue 16 defect 2): FastAPI runs each sync
    dependency and the handler in separate thread-pool hops, and a dependency that touched the
    request's write session took SQLite's write lock (BEGIN IMMEDIATE) before the handler's role
    check ran; concurrent forbidden writes then starved the pool. A write service re-reads the
    object on its own session with :func:`attach` after its role check.
    """
    with make_session(request.app.state.engine, write=False) as session:
        return load(session)


def attach(session: Session, obj: M) -> M:
    """``obj`` (loaded by :func:`read_only`, now detached) attached to the write ``session`` and re-read
    there, so the write decides on current values. Already in ``session``: returned as is.

    Raises NotFound when the row was deleted since it was read.
    """
    if obj in session:
        return obj
    session.add(obj)
    try:
        session.refresh(obj)
    except sa.exc.InvalidRequestError:
        session.expunge(obj)
        raise NotFound(f"{type(obj).__name__.lower()} no longer exists", code="not_found") from None
    return obj


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(request: Request) -> Iterator[Session]:
    """Request-scoped session: commits when the handler returns, rolls back when it raises.

    Registered with ``scope="function"`` so the commit happens before the response is sent
    (STYLE habit 4): a failing commit is an error response, never a 201 for nothing.
    Safe methods (GET, HEAD, OPTIONS) get a read session that takes no SQLite write lock.
    """
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    session = make_session(request.app.state.engine, write=write)
    try:
        yield session
        if write:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

#: Largest row id: both backends' INTEGER primary keys fit in 32 bits here; larger ids in a path,
#: query or body are a 422, never an overflow inside the driver.
MAX_ID = 2**31 - 1
IdField = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def row_id(raw: str) -> int | None:
    """A row id typed as text (a form field, a query string's list): 1…:data:`MAX_ID` in ASCII digits
    (``text.natural``), else None; the caller says what None means (left out, or its page's message)."""
    return natural(raw, low=1, high=MAX_ID)
