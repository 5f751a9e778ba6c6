"""Issue 16 defect 1: one request could occupy the server for minutes by expanding a huge window into
rows (a 100-year maintenance window wrote 43,829 bookings). Every window a request expands is bounded
by a setting and refused with a clear 422 beyond it, before any row is written."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.scheduling.models import Booking, MaintenanceWindow
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local


def _setup(engine: Engine):
    with make_session(engine) as session:
        make_bridge(session, port_capacity=10)
        unit = make_unit(session)
        room = make_room(session, unit)
        ep = make_endpoint(session, room)
        h = {"secretariat": bearer(session, make_user(session, Role.secretariat)),
             "operator": bearer(session, make_user(session, Role.operator, units=[unit]))}
        ids = {"room": room.id, "ep": ep.id, "unit": unit.id}
        session.commit()
    return ids, h


def _rows(engine: Engine) -> tuple[int, int]:
    with make_session(engine, write=False) as session:
        return (session.execute(sa.select(sa.func.count()).select_from(Booking)).scalar_one(),
                session.execute(sa.select(sa.func.count()).select_from(MaintenanceWindow)).scalar_one())


def test_century_long_maintenance_window_is_refused_before_writing_rows(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    r = client.post(f"/api/v1/endpoints/{ids['ep']}/maintenance", headers=h["operator"],
                    json={"start": "1900-01-01T00:00:00", "end": "2000-01-01T00:00:00"})
    assert (r.status_code, r.json()["code"]) == (422, "window_starts_too_early")
    assert r.json()["detail"] == "a maintenance window may start at most 1 day(s) in the past"
    assert _rows(engine) == (0, 0)


def test_maintenance_window_longer_than_the_setting_is_refused(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    t = next_monday_local()
    r = client.post(f"/api/v1/endpoints/{ids['ep']}/maintenance", headers=h["secretariat"],
                    json={"start": t.isoformat(), "end": (t + timedelta(days=93)).isoformat()})
    assert (r.status_code, r.json()["code"]) == (422, "window_too_long")
    assert r.json()["detail"] == "a maintenance window lasts at most 92 days"
    ok = client.post(f"/api/v1/endpoints/{ids['ep']}/maintenance", headers=h["secretariat"],
                     json={"start": t.isoformat(), "end": (t + timedelta(days=92)).isoformat()})
    assert ok.status_code == 201, ok.text


def test_maintenance_window_past_the_booking_horizon_is_refused(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    t = next_monday_local(weeks_ahead=104)
    r = client.post(f"/api/v1/endpoints/{ids['ep']}/maintenance", headers=h["secretariat"],
                    json={"start": t.isoformat(), "end": (t + timedelta(days=10)).isoformat()})
    assert (r.status_code, r.json()["code"]) == (422, "beyond_booking_horizon")
    assert r.json()["detail"] == "a maintenance window must end within 730 days from now"
    assert _rows(engine) == (0, 0)


def test_series_with_more_occurrences_than_the_setting_is_refused(engine: Engine, settings):
    from confsvc.main import create_app

    ids, h = _setup(engine)
    t = next_monday_local()
    small = settings.model_copy(update={"max_series_occurrences": 5})
    with TestClient(create_app(small, engine=engine)) as client:
        r = client.post("/api/v1/meetings", headers=h["secretariat"], json={
            "title": "Giao ban", "chair_room_id": ids["room"], "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat(), "rrule": "FREQ=DAILY;COUNT=6"})
        assert (r.status_code, r.json()["code"]) == (422, "rrule_too_long")
        assert r.json()["detail"] == "the series has more than 5 occurrences in range"
        ok = client.post("/api/v1/meetings", headers=h["secretariat"], json={
            "title": "Giao ban", "chair_room_id": ids["room"], "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat(), "rrule": "FREQ=DAILY;COUNT=5"})
        assert (ok.status_code, ok.json()["occurrence_count"]) == (201, 5)


def test_availability_and_stats_ranges_are_bounded_by_settings(engine: Engine, settings):
    from confsvc.main import create_app

    ids, h = _setup(engine)
    small = settings.model_copy(update={"availability_max_range_days": 3, "stats_max_period_days": 10})
    t = next_monday_local()
    with TestClient(create_app(small, engine=engine)) as client:
        slots = client.get("/api/v1/availability", headers=h["secretariat"], params={
            "endpoint_ids": [ids["ep"]], "duration_minutes": 60, "from_date": t.date().isoformat(),
            "to_date": (t.date() + timedelta(days=4)).isoformat()})
        assert (slots.status_code, slots.json()["code"]) == (422, "invalid_range")
        assert slots.json()["detail"] == "to_date must be on or after from_date, at most 3 days later"
        for path in ("/api/v1/stats/usage", "/api/v1/stats/usage.csv", "/api/v1/stats/usage.xlsx"):
            r = client.get(path, headers=h["secretariat"], params={"from": "2026-01-01", "to": "2026-01-12"})
            assert (r.status_code, r.json()["code"]) == (422, "period_too_long"), path
            assert r.json()["detail"] == "a report covers at most 10 days"
