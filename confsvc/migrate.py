"""Alembic, driven from code so an installed wheel can migrate without an ``alembic.ini``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class NotMigrated(RuntimeError):
    """The database schema is not at the code's head revision."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply migrations up to ``revision`` (default: every head) on the database at ``url``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revisions() -> frozenset[str]:
    """The code's migration heads (one per independent branch, e.g. per domain)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> frozenset[str]:
    with engine.connect() as conn:
        return frozenset(MigrationContext.configure(conn).get_current_heads())


def assert_migrated(engine: Engine) -> None:
    """Refuse to run on a database that is not at head.

    Raises:
        NotMigrated: with the command that fixes it.
    """
    current, heads = current_revisions(engine), head_revisions()
    if current != heads:
        where = engine.url.render_as_string(hide_password=True)
        raise NotMigrated(
            f"Database {where} is at migration {', '.join(sorted(current)) or '(empty)'}, the code needs "
            f"{', '.join(sorted(heads))}. Run `confsvc db upgrade` first."
        )
