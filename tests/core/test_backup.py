"""``confsvc backup`` / ``confsvc restore`` on SQLite (online backup API) and PostgreSQL (pg_dump/pg_restore):
a restore into an empty database gives the same API answers (meetings list, a feed's bytes)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.backup import BackupError, backup, restore
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.main import create_app
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local

ROOT = Path(__file__).resolve().parents[2]


def _book(client: TestClient, engine: Engine) -> tuple[dict[str, str], str]:
    """Two meetings (one a weekly series) and a room feed token; the headers and the feed's path."""
    with make_session(engine) as session:
        make_bridge(session, port_capacity=10)
        unit = make_unit(session, name="Xã Thanh Sơn")
        room, other = make_room(session, unit, name="Hội trường UBND tỉnh"), make_room(session, unit)
        make_endpoint(session, room), make_endpoint(session, other)
        headers = bearer(session, make_user(session, Role.secretariat))
        room_id, other_id = room.id, other.id
        session.commit()
    t = next_monday_local()
    for body in ({"title": "Giao ban tuần", "chair_room_id": room_id, "participant_room_ids": [other_id],
                  "start": t.isoformat(), "end": (t + timedelta(hours=2)).isoformat(),
                  "rrule": "FREQ=WEEKLY;COUNT=4"},
                 {"title": "Họp chuyên đề «chuyển đổi số»", "chair_room_id": other_id,
                  "start": (t + timedelta(days=1)).isoformat(), "end": (t + timedelta(days=1, hours=1)).isoformat()}):
        assert client.post("/api/v1/meetings", headers=headers, json=body).status_code == 201
    feed = client.post("/api/v1/feeds", headers=headers, json={"scope": "room", "scope_id": room_id})
    assert feed.status_code == 201, feed.text
    return headers, feed.json()["url"].split("://", 1)[1].split("/", 1)[1]


def _answers(client: TestClient, headers: dict[str, str], feed_path: str) -> tuple[object, bytes]:
    meetings = client.get("/api/v1/meetings", headers=headers, params={"limit": 100})
    feed = client.get("/" + feed_path)
    assert meetings.status_code == 200 and feed.status_code == 200, (meetings.text, feed.text)
    return meetings.json(), feed.content


def test_restore_into_an_empty_database_gives_the_same_api_answers(
        settings: Settings, engine: Engine, db_url: str, fresh_db_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(settings, engine=engine)) as client:
        headers, feed_path = _book(client, engine)
        before = _answers(client, headers, feed_path)
        result = backup(db_url, tmp_path / "confsvc.backup")  # while the app is up, its pool open
    assert result.bytes > 0 and result.backend == engine.dialect.name
    assert not (tmp_path / "confsvc.backup.partial").exists()

    restore(fresh_db_url, tmp_path / "confsvc.backup")
    restored = make_engine(fresh_db_url)
    try:
        fresh = settings.model_copy(update={"database_url": fresh_db_url})
        with TestClient(create_app(fresh, engine=restored)) as client:
            after = _answers(client, headers, feed_path)
    finally:
        restored.dispose()
    assert after[0] == before[0]
    assert [m["title"] for m in after[0]["items"]] == ["Giao ban tuần", "Họp chuyên đề «chuyển đổi số»"]
    assert after[1] == before[1]
    assert b"Giao ban tu" in after[1]


def test_restore_refuses_a_database_that_holds_tables(db_url: str, engine: Engine, tmp_path: Path) -> None:
    backup(db_url, tmp_path / "b")
    with pytest.raises(BackupError, match="already holds tables"):
        restore(db_url, tmp_path / "b")


def test_restore_refuses_a_backup_of_the_other_backend(fresh_db_url: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b"PGDMP\x01\x0f" if fresh_db_url.startswith("sqlite") else b"SQLite format 3\x00" + b"\0" * 84)
    with pytest.raises(BackupError, match="backup; the target database is"):
        restore(fresh_db_url, other)


@pytest.mark.sqlite_only
def test_sqlite_backup_while_a_writer_holds_an_open_transaction_copies_the_committed_state(
        db_url: str, engine: Engine, fresh_db_url: str, tmp_path: Path) -> None:
    with make_session(engine) as session:
        make_unit(session, name="Đã lưu")
        session.commit()
    writer = engine.raw_connection()
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE units SET name = 'Chưa lưu'")
        backup(db_url, tmp_path / "b")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    restore(fresh_db_url, tmp_path / "b")
    restored = make_engine(fresh_db_url)
    try:
        with restored.connect() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT name FROM units")] == ["Đã lưu"]
    finally:
        restored.dispose()


def test_backup_and_restore_commands(db_url: str, engine: Engine, fresh_db_url: str, tmp_path: Path) -> None:
    with make_session(engine) as session:
        make_unit(session, name="Phường Việt Trì")
        session.commit()
    env = {**os.environ, "CONFSVC_DATA_DIR": str(tmp_path)}

    def run(url: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "confsvc.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, env={**env, "CONFSVC_DATABASE_URL": url}, check=False, timeout=120)

    made = run(db_url, "backup", str(tmp_path / "cli.backup"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"{engine.dialect.name} backup written to {tmp_path / 'cli.backup'} (")
    again = run(db_url, "restore", str(tmp_path / "cli.backup"))
    assert again.returncode == 1 and "already holds tables" in again.stderr
    done = run(fresh_db_url, "restore", str(tmp_path / "cli.backup"))
    assert done.returncode == 0, done.stderr
    restored = make_engine(fresh_db_url)
    try:
        with restored.connect() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT name FROM units")] == ["Phường Việt Trì"]
    finally:
        restored.dispose()
