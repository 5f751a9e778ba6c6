"""Issue 16, defect 3 and operations: a real ``confsvc serve`` redacts token secrets from its access
log and carries the request id (text and JSON formats); the outage log is throttled."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from confsvc.logs import Throttled, redact
from confsvc.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
SECRET = "cfs_Zq3vN8sKpL0aXbY7wT2mR5uE"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_and_log(tmp_path: Path, log_format: str, requests: list[tuple[str, dict[str, str]]],
                   answers: list[httpx.Response] | None = None) -> str:
    """Starts ``confsvc serve`` on a migrated SQLite file, sends ``requests`` (their responses appended to
    ``answers``), stops it; its stderr."""
    url = f"sqlite:///{(tmp_path / 'log.sqlite3').as_posix()}"
    upgrade(url)
    port = _free_port()
    env = {**os.environ, "CONFSVC_DATABASE_URL": url, "CONFSVC_SECRET_KEY": "k" * 48,
           "CONFSVC_DATA_DIR": str(tmp_path), "CONFSVC_LOG_FORMAT": log_format,
           "PYTHONPATH": str(ROOT)}  # this checkout's confsvc, whatever is installed
    log_path = tmp_path / f"serve-{log_format}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "confsvc.cli", "serve", "--port", str(port)],
                                   env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for path, headers in requests:
                response = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
                if answers is not None:
                    answers.append(response)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return log_path.read_text(encoding="utf-8")


def test_access_log_does_not_show_query_string_tokens(tmp_path: Path) -> None:
    paths = [f"/ical/unit/1.ics?token={SECRET}", f"/display/rooms/1?token={SECRET}&x=1",
             f"/api/v1/users/me?access_token={SECRET}", f"/ws/rooms/1?since=3&token={SECRET}"]
    output = _serve_and_log(tmp_path, "text", [(p, {"X-Request-ID": "req-42"}) for p in paths])
    access = [line for line in output.splitlines() if '"GET /' in line and "healthz" not in line]
    assert SECRET not in output and SECRET[4:] not in output
    assert len(access) == 4
    assert "GET /ical/unit/1.ics?token=[redacted] HTTP/1.1" in access[0]
    assert "GET /display/rooms/1?token=[redacted]&x=1 HTTP/1.1" in access[1]
    assert "GET /api/v1/users/me?access_token=[redacted] HTTP/1.1" in access[2]
    assert all("[req-42]" in line for line in access)


def test_json_log_lines_carry_the_request_id_and_no_secret(tmp_path: Path) -> None:
    output = _serve_and_log(tmp_path, "json", [(f"/ical/unit/1.ics?token={SECRET}", {"X-Request-ID": "req-7"})])
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("name") == "uvicorn.access" and "/ical/" in line["message"]]
    assert SECRET not in output
    assert len(access) == 1
    assert (access[0]["request_id"], access[0]["levelname"]) == ("req-7", "INFO")
    assert '"GET /ical/unit/1.ics?token=[redacted] HTTP/1.1" 404' in access[0]["message"]


@pytest.mark.pure
def test_redact_covers_bearer_headers_and_bare_tokens() -> None:
    assert redact(f"Authorization: Bearer {SECRET}") == "Authorization: Bearer [redacted]"
    assert redact(f"token {SECRET} leaked") == "token [redacted] leaked"
    assert redact("/ical/unit/1.ics?TOKEN=abc&key=def") == "/ical/unit/1.ics?TOKEN=[redacted]&key=[redacted]"


@pytest.mark.pure
def test_database_outage_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    throttled = Throttled(logging.getLogger("confsvc.test_outage"), interval_seconds=3600)
    error = RuntimeError("connection refused")
    with caplog.at_level(logging.ERROR, logger="confsvc.test_outage"):
        logged = [throttled.warning("database", "database unavailable", exc=error) for _ in range(3867)]
    assert logged.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == ["database unavailable"]
    assert caplog.records[0].exc_info is not None


def test_request_id_is_echoed_made_when_missing_and_kept_in_the_audit(client, session) -> None:
    from sqlmodel import select

    from confsvc.scheduling.models import AuditEntry
    from confsvc.users.models import Role
    from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_user, next_monday_local

    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    headers = bearer(session, make_user(session, Role.secretariat))
    session.commit()
    assert client.get("/healthz", headers={"X-Request-ID": "req-42"}).headers["x-request-id"] == "req-42"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id\r\ninjected"}).headers["x-request-id"]
    assert len(made) == 32 and made != "bad id\r\ninjected"
    booked = client.post("/api/v1/meetings", headers={**headers, "X-Request-ID": "req-book-1"}, json={
        "title": "Giao ban", "chair_room_id": room.id, "start": next_monday_local().isoformat(),
        "end": next_monday_local(hour=10).isoformat()})
    assert booked.status_code == 201, booked.text
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "meeting.created")).one()
    assert entry.details["request_id"] == "req-book-1"


def test_session_cookie_is_secure_behind_a_trusted_https_proxy(tmp_path: Path) -> None:
    """``confsvc serve`` trusts X-Forwarded-Proto from ``forwarded_allow_ips`` (default 127.0.0.1)."""
    answers: list[httpx.Response] = []
    _serve_and_log(tmp_path, "text", [("/login", {}), ("/login", {"X-Forwarded-Proto": "https"})], answers)
    plain, proxied = answers
    assert ("secure" in plain.headers["set-cookie"].lower(), "secure" in proxied.headers["set-cookie"].lower()) == (
        False, True)


def test_made_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    from confsvc.middleware import new_request_id

    made = [new_request_id() for _ in range(1000)]
    assert len(set(made)) == 1000 and all(re.fullmatch("[0-9a-f]{32}", rid) for rid in made)
    assert len({rid[:16] for rid in made}) == 1  # one process: one random half, the counter after it
