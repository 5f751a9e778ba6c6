"""``confsvc backup FILE`` / ``confsvc restore FILE`` (issue 16, operations).

- SQLite: SQLite's online backup API (``sqlite3.Connection.backup``, https://sqlite.org/backup.html)
  copies a consistent snapshot page by page while the service keeps serving (WAL: readers and the
  writer go on; the copy restarts itself if a write lands mid-way). The copy is written next to FILE
  and renamed into place when complete, so FILE is never half a database.
- PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore`` (one consistent snapshot, taken while
  serving). The client tools must be of the server's major version or newer (``pg_dump`` refuses an
  older client; a dump restores into a server of the same or a newer major version). The password,
  if any, goes to the tools in ``PGPASSWORD``, never on their command line.

A restore goes into an *empty* database (a new SQLite file, or a PostgreSQL database with no table),
and gives the same API answers as the source: same rows, ids, sequences and schema revision. Restoring
over a database that holds tables is refused (no silent overwrite); the backup's format must match the
target backend. The restored database is at the backup's schema revision: run ``confsvc db upgrade``
after restoring an older backup into a newer release.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from confsvc.db import is_sqlite

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"
#: Pages copied per step of the SQLite online backup; between steps the service's writers get the lock.
SQLITE_PAGES_PER_STEP = 1024


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    backend: str


def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the tools (no password) and the environment carrying the password."""
    parsed = sa.engine.make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools (same major version as the "
                          "server or newer), e.g. apt-get install postgresql-client")
    return path


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _major(version_text: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", version_text)
    if not match:
        raise BackupError(f"cannot read a version from {version_text!r}")
    return int(match.group(1))


def _check_client_version(url: str, tool: str, env: dict[str, str]) -> None:
    """Refuse a client older than the server (pg_dump would fail later with a less clear message)."""
    client = subprocess.run([tool, "--version"], env=env, capture_output=True, text=True, check=False).stdout
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            server = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) // 10000
    finally:
        engine.dispose()
    if _major(client) < server:
        raise BackupError(f"{Path(tool).name} is version {_major(client)}, the server {server}: install client "
                          f"tools of version {server} or newer")


def backup(url: str, path: Path) -> BackupResult:
    """Write a consistent backup of the database at ``url`` to ``path`` while it may be serving.

    Raises BackupError (tools missing or too old, database unreachable, target not writable).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if is_sqlite(url):
            source_path = _sqlite_path(url)
            if not source_path.exists():
                raise BackupError(f"no SQLite database at {source_path}")
            source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
            target = sqlite3.connect(partial)
            try:
                source.backup(target, pages=SQLITE_PAGES_PER_STEP)
                check = target.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy failed its integrity check: {check}")
            finally:
                target.close()
                source.close()
            backend = "sqlite"
        else:
            tool = _tool("pg_dump")
            uri, env = _libpq(url)
            _check_client_version(url, tool, env)
            _run([tool, "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}", f"--dbname={uri}"],
                 env)
            backend = "postgresql"
        partial.replace(path)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupResult(path, path.stat().st_size, backend)


def _format_of(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgresql"
    raise BackupError(f"{path} is neither a SQLite database nor a pg_dump custom-format archive")


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def restore(url: str, path: Path) -> BackupResult:
    """Restore the backup ``path`` into the empty database at ``url``.

    Raises BackupError: no such file, a backup of the other backend, a target that holds tables, tool
    failure (pg_restore runs in one transaction: a failure leaves the target empty).
    """
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    backend = "sqlite" if is_sqlite(url) else "postgresql"
    found = _format_of(path)
    if found != backend:
        raise BackupError(f"{path} is a {found} backup; the target database is {backend}")
    if backend == "sqlite":
        target_path = _sqlite_path(url)
        if target_path.exists() and target_path.stat().st_size > 0 and _tables(url):
            raise BackupError(f"{target_path} already holds tables: restore into a new file (or remove it first)")
        target_path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(target_path)
        try:
            source.backup(target, pages=SQLITE_PAGES_PER_STEP)
            target.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise BackupError(f"SQLite restore failed: {exc}") from exc
        finally:
            target.close()
            source.close()
    else:
        if _tables(url):
            raise BackupError("the target PostgreSQL database already holds tables: restore into a new, empty "
                              "database (createdb NAME)")
        tool = _tool("pg_restore")
        uri, env = _libpq(url)
        _run([tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", f"--dbname={uri}",
              str(path)], env)
    return BackupResult(path, path.stat().st_size, backend)
