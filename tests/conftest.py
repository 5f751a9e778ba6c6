"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

Each backend's schema is built once per session by the real Alembic migrations; after each test
every table is emptied. PostgreSQL tests use a database of their own, created from the server
named by ``CONFSVC_TEST_PG_URL`` (default: the local ``test`` database) and dropped at the end, so
parallel runs do not collide. ``--db sqlite`` or ``--db postgresql`` runs one backend only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

import confsvc.all_models  # noqa: F401
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.main import create_app
from confsvc.migrate import upgrade

PG_ADMIN_URL = os.environ.get("CONFSVC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=(*BACKENDS, "all"), default="all", help="database backend(s) to test")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        backends = BACKENDS if chosen == "all" else (chosen,)
        if metafunc.definition.get_closest_marker("postgresql_only"):
            backends = tuple(b for b in backends if b == "postgresql")
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = tuple(b for b in backends if b == "sqlite")
        split = metafunc.definition.get_closest_marker("one_backend_per_language")
        if split:  # both backends run: each language once, on one of them
            metafunc.parametrize(("backend", "lang"), [(backends[i % len(backends)], lang)
                                                       for i, lang in enumerate(split.args[0])], scope="session")
        else:
            metafunc.parametrize("backend", backends, scope="session")


class _Databases:
    """Lazily creates one migrated database per backend for the whole session."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.urls: dict[str, str] = {}
        self.engines: dict[str, Engine] = {}
        self.pg_name: str | None = None

    def url(self, backend: str) -> str:
        if backend not in self.urls:
            if backend == "sqlite":
                self.urls[backend] = f"sqlite:///{(self.tmp / 'test.sqlite3').as_posix()}"
            else:
                self.pg_name = f"confsvc_test_{os.getpid()}_{secrets.token_hex(3)}"
                admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'CREATE DATABASE "{self.pg_name}"')
                admin.dispose()
                self.urls[backend] = sa.engine.make_url(PG_ADMIN_URL).set(database=self.pg_name).render_as_string(
                    hide_password=False)
            upgrade(self.urls[backend])
        return self.urls[backend]

    def engine(self, backend: str) -> Engine:
        if backend not in self.engines:
            self.engines[backend] = make_engine(self.url(backend))
        return self.engines[backend]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        if self.pg_name:
            admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Databases]:
    dbs = _Databases(tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.close()


#: Written by the database's triggers when other tables change (SQLite's deletes fire them): emptied last.
_DERIVED = ("usage_dirty", "usage_epoch", "feed_versions")


def _empty_tables(engine: Engine) -> None:
    """Every table emptied and (PostgreSQL) every sequence back at its start, as a new database.

    PostgreSQL: ``DELETE`` with triggers and foreign-key checks off (``session_replication_role =
    replica``) in one round trip, then the sequences reset: a ``TRUNCATE`` of every table replaces
    each table's and index's files and took ~1 s per test, the largest part of the suite's time."""
    tables = sorted(reversed(SQLModel.metadata.sorted_tables), key=lambda t: t.name in _DERIVED)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            deletes = "".join(f'DELETE FROM "{t.name}";' for t in tables)
            conn.exec_driver_sql(f"SET LOCAL session_replication_role = replica;{deletes}"
                                 "SELECT setval(quote_ident(schemaname) || '.' || quote_ident(sequencename), start_value, false) "
                                 "FROM pg_sequences WHERE schemaname = current_schema()")
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")  # units reference units
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def db_url(databases: _Databases, backend: str) -> str:
    return databases.url(backend)


@pytest.fixture
def engine(databases: _Databases, backend: str) -> Iterator[Engine]:
    engine = databases.engine(backend)
    yield engine
    _empty_tables(engine)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with make_session(engine) as session:
        yield session
        session.rollback()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


@pytest.fixture
def fresh_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no migrations applied), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{(tmp_path / 'fresh.sqlite3').as_posix()}"
        return
    name = f"confsvc_fresh_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 with its smallest cost: real hashing and verification, without 100 ms per user."""
    from argon2 import PasswordHasher

    from confsvc.users import security

    original = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    security._hasher = original


@pytest.fixture(autouse=True, scope="session")
def _hooks() -> None:
    """The listeners and recorders ``create_app`` installs: service tests write through sessions without an app."""
    from confsvc.main import install_hooks

    install_hooks()
