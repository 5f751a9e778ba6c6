"""`confsvc demo` data on both databases, and the CLI end to end on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, func, select

from confsvc import demo
from confsvc.endpoints.models import Bridge, Endpoint, Protocol, Room
from confsvc.users.models import User
from confsvc.users.service import authenticate


def test_demo_inventory(session: Session) -> None:
    summary = demo.seed(session)
    assert (summary.communes, summary.rooms, summary.endpoints, summary.bridges) == (148, 149, 150, 2)
    chair = session.exec(select(Room).where(Room.name == demo.CHAIR_ROOM_NAME)).one()
    assert len(session.exec(select(Endpoint).where(Endpoint.room_id == chair.id)).all()) == 2
    vendors = set(session.exec(select(Endpoint.vendor)).all())
    assert vendors == {"Poly", "Cisco", "Huawei", "Yealink"}
    protocols = set(session.exec(select(Endpoint.protocol)).all())
    assert protocols == {Protocol.sip, Protocol.h323}
    dial = session.exec(select(Endpoint.dial_address)).all()
    assert len(set(dial)) == len(dial), "dial addresses must be unique"
    assert [b.port_capacity for b in session.exec(select(Bridge).order_by(Bridge.name))] == [200, 200]
    for username, (_, password) in summary.passwords.items():
        assert authenticate(session, username, password).username == username
    assert {u.role.value for u in session.exec(select(User))} == {"admin", "secretariat", "operator", "viewer"}


def test_demo_is_rerunnable(session: Session) -> None:
    demo.seed(session)
    again = demo.seed(session)
    assert (again.rooms, again.endpoints) == (149, 150)
    assert session.exec(select(func.count()).select_from(User)).one() == 4


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFSVC_")} | env
    return subprocess.run([sys.executable, "-m", "confsvc.cli", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_cli_demo_then_export_and_reimport(tmp_path: Path) -> None:
    done = _cli(["demo", "--no-serve"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Phú Thọ: 148 communes/wards, 149 rooms, 150 endpoints, 2 bridges" in done.stdout
    assert (tmp_path / "data" / "confsvc.sqlite3").exists()
    exported = _cli(["endpoints", "export", "-o", "out.csv"], tmp_path)
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    assert text.count("\n") == 151 and "Phường Việt Trì" in text
    reimported = _cli(["endpoints", "import", "out.csv"], tmp_path)
    assert reimported.stdout.strip() == "0 created, 0 updated, 150 unchanged, 0 rooms created"


def test_cli_refuses_unmigrated_database(tmp_path: Path) -> None:
    result = _cli(["units", "import", "25"], tmp_path)
    assert result.returncode == 1
    assert "Run `confsvc db upgrade` first" in result.stderr


def test_cli_serve_refuses_without_secret(tmp_path: Path) -> None:
    result = _cli(["serve"], tmp_path)
    assert result.returncode == 1
    assert "CONFSVC_SECRET_KEY is missing" in result.stderr


def test_cli_users_create_reports_bad_role_scope(tmp_path: Path) -> None:
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    assert _cli(["units", "import", "25"], tmp_path).returncode == 0
    bad = _cli(["users", "create", "op", "--role", "operator", "--password", "mat-khau-dai"], tmp_path)
    assert (bad.returncode, bad.stderr.strip()) == (1, "error (operator_without_units): an operator needs at least one unit")
    ok = _cli(["users", "create", "op", "--role", "operator", "--unit", "07900", "--password", "mat-khau-dai"], tmp_path)
    assert ok.stdout.strip() == "user op (operator) created"
