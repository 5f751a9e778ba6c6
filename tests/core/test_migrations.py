"""Migrations build the schema from empty on both backends, go down and up again, and the app
refuses to start on a database that is not at head."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from confsvc.config import Settings
from confsvc.db import make_engine
from confsvc.main import create_app
from confsvc.migrate import NotMigrated, current_revisions, downgrade, head_revisions, upgrade

EXPECTED_TABLES = {"units", "rooms", "endpoints", "bridges", "users", "user_units", "api_tokens", "alembic_version"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_from_empty(fresh_db_url: str) -> None:
    upgrade(fresh_db_url)
    assert EXPECTED_TABLES <= _tables(fresh_db_url)
    downgrade(fresh_db_url, "base")
    assert _tables(fresh_db_url) <= {"alembic_version"}
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    try:
        assert current_revisions(engine) == head_revisions()
    finally:
        engine.dispose()


def test_app_refuses_unmigrated_database(fresh_db_url: str, tmp_path) -> None:
    settings = Settings(database_url=fresh_db_url, data_dir=tmp_path, secret_key="x" * 40)
    with pytest.raises(NotMigrated, match=r"confsvc db upgrade"):
        with TestClient(create_app(settings)):
            pass


def test_app_refuses_placeholder_secret_outside_demo(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="CONFSVC_SECRET_KEY"):
        create_app(Settings(data_dir=tmp_path, secret_key="changeme"))


def test_demo_mode_generates_and_keeps_a_secret(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, demo=True)
    first = settings.resolved_secret_key()
    assert len(first) >= 48
    assert Settings(data_dir=tmp_path, demo=True).resolved_secret_key() == first


def test_migrations_match_the_models(db_url: str) -> None:
    """The migrated schema is what the models declare: autogenerate would write nothing."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import confsvc.all_models  # noqa: F401

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_one_head() -> None:
    """History is one line: a new revision revises the head, never starts a branch."""
    assert len(head_revisions()) == 1


def test_requests_migration_keeps_tokens_and_unit_scopes_of_existing_users(fresh_db_url: str) -> None:
    """20261207_requests widens users.role's CHECK; on SQLite that rebuilds ``users``. Dropping the old
    table with foreign keys on would cascade: API tokens and operators' unit scopes deleted, feed-version
    triggers gone. Existing rows and the triggers survive, and the new role is accepted."""
    from alembic.script import ScriptDirectory

    from confsvc.migrate import alembic_config

    before = ScriptDirectory.from_config(alembic_config(fresh_db_url)).get_revision("20261207_requests").down_revision
    upgrade(fresh_db_url, before)
    stamp = "2026-01-01 00:00:00.000000+00:00"
    engine = make_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO units (id, code, name, division_type, level, search_text, updated_at) "
                                 "VALUES (1, '25', 'Tỉnh Phú Thọ', 'tỉnh', 'province', 'tinh phu tho', :t)"),
                         {"t": stamp})
            conn.execute(sa.text("INSERT INTO users (id, username, full_name, role, password_hash, active, created_at, "
                                 "updated_at) VALUES (7, 'kythuat', 'Kỹ thuật', 'operator', 'x', true, :t, :t)"),
                         {"t": stamp})
            conn.execute(sa.text("INSERT INTO user_units (user_id, unit_id) VALUES (7, 1)"))
            conn.execute(sa.text("INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
                                 "VALUES (7, 'agent', 'cs_ab', 'h', :t)"), {"t": stamp})
    finally:
        engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT user_id, unit_id FROM user_units")).all() == [(7, 1)]
            assert conn.execute(sa.text("SELECT user_id, name FROM api_tokens")).all() == [(7, "agent")]
            version = conn.execute(sa.text("SELECT version FROM feed_versions")).scalar_one()
            conn.execute(sa.text("UPDATE users SET role = 'requester', full_name = 'Xã Thanh Ba' WHERE id = 7"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version FROM feed_versions")).scalar_one() == version + 1
    finally:
        engine.dispose()
