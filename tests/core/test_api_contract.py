"""Issue 16, defects 14 and 11: the API answers what its OpenAPI declares, keeps ``Allow`` on 405,
answers 413 to an oversized chunked body, and names storage failures (read-only, disk full,
unreachable, pool exhausted) with 503 (+ ``Retry-After`` when transient), logged once per interval;
``/healthz`` is liveness, ``/readyz`` readiness. Both databases where a database is involved."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc.config import Settings
from confsvc.db import make_engine
from confsvc.health import ready_report
from confsvc.main import create_app
from confsvc.migrate import upgrade
from confsvc.users.models import Role
from tests.factories import bearer, make_user

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def admin(session: Session) -> dict[str, str]:
    headers = bearer(session, make_user(session, Role.admin))
    session.commit()
    return headers


def test_openapi_declares_the_422_body_we_answer(client: TestClient, admin: dict[str, str]) -> None:
    document = client.get("/openapi.json").json()
    declared = [op["responses"]["422"]["content"]["application/json"]["schema"]
                for path in document["paths"].values() for op in path.values() if "422" in op["responses"]]
    assert len(declared) > 40 and all(schema == ERROR_BODY for schema in declared)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    body = document["components"]["schemas"]["ErrorBody"]
    assert (body["properties"]["detail"]["type"], body["properties"]["code"]["type"], body["required"]) == (
        "string", "string", ["detail", "code"])
    answer = client.get("/api/v1/units?limit=abc", headers=admin).json()
    assert (answer["code"], answer["detail"], answer["errors"][0]["loc"]) == (
        "validation_error", "query.limit: Input should be a valid integer, unable to parse string as an integer",
        ["query", "limit"])


def test_405_keeps_the_allow_header(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert (response.status_code, response.headers["allow"], response.json()["code"]) == (405, "GET", "http_405")


def test_oversized_chunked_body_is_413_not_400(settings: Settings, engine: Engine, session: Session) -> None:
    headers = bearer(session, make_user(session, Role.admin))
    session.commit()

    def chunks():
        for _ in range(10):
            yield b'{"name": "' + b"x" * 500

    with TestClient(create_app(settings.model_copy(update={"max_request_bytes": 2000}), engine=engine)) as client:
        response = client.post("/api/v1/units", content=chunks(), headers={**headers, "Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert (response.status_code, response.json()) == (
        413, {"detail": "request body larger than 2000 bytes", "code": "payload_too_large"})


def test_healthz_is_liveness_and_readyz_checks_a_write(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["status"], ready.json()["database"], ready.json()["broker"]) == (
        200, "ready", "ok", "not configured")


@pytest.mark.pure
def test_readiness_reports_an_unreachable_broker(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'r.sqlite3').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    try:
        assert ready_report(engine, "redis://127.0.0.1:1/0") == (False, {"database": "ok", "broker": "unreachable"})
        assert ready_report(engine, "redis://127.0.0.1:6379/0") == (True, {"database": "ok", "broker": "ok"})
    finally:
        engine.dispose()


def _sqlite_app(tmp_path: Path) -> tuple[TestClient, Engine, dict[str, str]]:
    url = f"sqlite:///{(tmp_path / 'storage.sqlite3').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        headers = bearer(session, make_user(session, Role.admin))
        session.commit()
    settings = Settings(database_url=url, data_dir=tmp_path, secret_key="k" * 48)
    return TestClient(create_app(settings, engine=engine)), engine, headers


@pytest.mark.pure
def test_read_only_sqlite_is_named_not_called_transient(tmp_path: Path) -> None:
    client, engine, headers = _sqlite_app(tmp_path)
    with client:
        engine.dispose()
        event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA query_only = ON"))
        response = client.post("/api/v1/units", headers=headers, json={"code": "99999", "name": "Xã Thử",
                                                                       "division_type": "xã", "level": "commune"})
        ready = client.get("/readyz")
        live = client.get("/healthz")
    assert (response.status_code, response.json()["code"], "retry-after" in response.headers) == (
        503, "database_read_only", False)
    assert response.json()["detail"].startswith("the database is read-only")
    assert (ready.status_code, ready.json()["database"], live.status_code) == (503, "database_read_only", 200)


@pytest.mark.pure
def test_full_disk_is_named_not_called_transient(tmp_path: Path) -> None:
    client, engine, headers = _sqlite_app(tmp_path)
    with client:
        engine.dispose()

        def no_growth(conn, _record) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")

        event.listen(engine, "connect", no_growth)
        response = None
        for i in range(200):  # fill the last free pages
            response = client.post("/api/v1/units", headers=headers,
                                   json={"code": f"9{i:04d}", "name": "Xã " + "Đ" * 190, "division_type": "xã", "level": "commune"})
            if response.status_code != 201:
                break
    assert (response.status_code, response.json()["code"], "retry-after" in response.headers) == (
        503, "disk_full", False)
    assert response.json()["detail"] == "the database's disk is full"


def test_unreachable_database_is_503_with_retry_after_and_logged_once(
        client: TestClient, admin: dict[str, str], backend: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    good = client.app.state.engine
    # SQLite: a directory is no database file; PostgreSQL: nothing listens on port 1.
    dead = sa.create_engine(f"sqlite:///{tmp_path}" if backend == "sqlite"
                            else "postgresql+psycopg://postgres@127.0.0.1:1/test")
    client.app.state.engine = dead
    try:
        with caplog.at_level(logging.ERROR, logger="confsvc"):
            answers = [client.get("/api/v1/units", headers=admin) for _ in range(20)]
    finally:
        client.app.state.engine = good
        dead.dispose()
    assert {(a.status_code, a.json()["code"], a.headers["retry-after"]) for a in answers} == {
        (503, "database_unavailable", "5")}
    outage = [r for r in caplog.records if r.name == "confsvc" and "database_unavailable" in r.getMessage()]
    assert len(outage) == 1


def test_exhausted_connection_pool_is_503_with_retry_after(settings: Settings, db_url: str,
                                                           admin: dict[str, str]) -> None:
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            with engine.connect():  # the only connection is taken
                response = client.get("/api/v1/units", headers=admin)
    finally:
        engine.dispose()
    assert (response.status_code, response.json()["code"], response.headers["retry-after"]) == (
        503, "database_busy", "5")
