"""Regressions from a QA session: bad input of every kind is a clear 4xx, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, UnitLevel
from confsvc.text import nfc, one_line
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user


@pytest.fixture
def admin(session: Session) -> dict[str, str]:
    headers = bearer(session, make_user(session, Role.admin))
    session.commit()
    return headers


@pytest.mark.parametrize("path", [
    "/api/v1/meetings?offset=99999999999999999999",
    "/api/v1/units?offset=99999999999999999999",
    "/api/v1/endpoints?offset=9223372036854775808",
])
def test_huge_offsets_are_422(client: TestClient, admin: dict, path: str) -> None:
    response = client.get(path, headers=admin)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


@pytest.mark.parametrize("path", ["/ical/room/9223372036854775808.ics?token=x",
                                  "/ical/unit/99999999999999999999.ics?token=x"])
def test_huge_feed_ids_never_500(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (404, 422), response.text


def test_year_one_is_out_of_range_not_500(client: TestClient, session: Session, admin: dict) -> None:
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    session.commit()
    check = client.post("/api/v1/meetings/check", headers=admin, json={
        "title": "Năm 1", "chair_room_id": room.id,
        "start": "0001-01-01T00:00:00+00:00", "end": "0001-01-01T01:00:00+00:00"})
    assert check.status_code == 422, check.text
    slots = client.get("/api/v1/availability", headers=admin, params={
        "duration_minutes": 60, "from_date": "0001-01-01", "to_date": "0001-01-05", "room_ids": room.id})
    assert slots.status_code == 422, slots.text


def test_control_characters_never_reach_the_database(client: TestClient, session: Session, admin: dict) -> None:
    room = make_room(session)
    session.commit()
    response = client.post("/api/v1/endpoints", headers=admin, json={
        "room_id": room.id, "vendor": "Poly", "model": "Studio\u0000X50", "serial": "NUL-1",
        "name": "Thiết bị\r\nDESCRIPTION:injected", "protocol": "sip", "dial_address": "sip:a@b.vn"})
    assert response.status_code == 201, response.text
    assert (response.json()["model"], response.json()["name"]) == ("StudioX50", "Thiết bị DESCRIPTION:injected")
    assert session.exec(select(Endpoint.model).where(Endpoint.serial == "NUL-1")).one() == "StudioX50"


def test_text_helpers() -> None:
    assert nfc("a\r\nb\rc\x00d\x1be\u0085") == "a\nb\ncde"
    assert one_line("  Giao ban\r\n tuần\tnày ") == "Giao ban tuần này"


def _csv_admin(session: Session) -> dict[str, str]:
    province = make_unit(session, code="25", name="Phú Thọ", level=UnitLevel.province)
    make_unit(session, code="07900", name="Phường Việt Trì", parent_id=province.id)
    headers = bearer(session, make_user(session, Role.admin))
    session.commit()
    return headers


HEADER = "serial,unit_code,room_name,vendor,model,protocol,dial_address\r\n"


def test_csv_field_over_the_csv_module_limit(client: TestClient, session: Session) -> None:
    headers = _csv_admin(session)
    data = (HEADER + "A-1,07900,Điểm cầu,Poly," + "x" * 140_000 + ",sip,sip:a@b.vn\r\n").encode()
    response = client.post("/api/v1/endpoints/import", headers=headers,
                           files={"file": ("e.csv", data, "text/csv")})
    assert response.status_code == 422
    assert response.json()["errors"][0]["line"] == 2
    assert response.json()["errors"][0]["reason"].startswith("unreadable CSV: field larger than field limit")


def test_csv_dry_run_reports_what_the_import_would_do(client: TestClient, session: Session, engine: Engine) -> None:
    headers = _csv_admin(session)
    data = (HEADER + "A-1,07900,Điểm cầu,Poly,G7500,sip,sip:a@b.vn\r\n"
            + "A-2,07900,Điểm cầu,Poly,G7500,sip,sip:b@b.vn\r\n").encode()

    def run(dry_run: bool) -> dict:
        r = client.post("/api/v1/endpoints/import", headers=headers, params={"dry_run": dry_run},
                        files={"file": ("e.csv", data, "text/csv")})
        assert r.status_code == 200, r.text
        return r.json()

    assert run(True) == {"created": 2, "updated": 0, "unchanged": 0, "rooms_created": 1, "dry_run": True}
    with make_session(engine, write=False) as reader:  # never hold SQLite's write lock from the test
        assert reader.exec(select(Endpoint)).all() == []
    assert run(False) == {"created": 2, "updated": 0, "unchanged": 0, "rooms_created": 1, "dry_run": False}
    assert run(True) == {"created": 0, "updated": 0, "unchanged": 2, "rooms_created": 0, "dry_run": True}


@pytest.mark.parametrize("path", ["/api/v1/stats/usage", "/api/v1/stats/usage.csv", "/api/v1/stats/usage.xlsx",
                                  "/api/v1/stats/usage?from=2026-01-01"])
def test_usage_without_a_period_is_422(client: TestClient, admin: dict, path: str) -> None:
    # Regression: the period defaulted to Ellipsis and reached the SQL as such (500).
    response = client.get(path, headers=admin)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert "from" in response.json()["detail"] or "to" in response.json()["detail"]
