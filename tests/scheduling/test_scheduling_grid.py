"""The scheduling grid (rooms × time, issue 13): exact blocks, check lead apart, bridge load steps,
scope, bounds; pure step function; both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.grid import port_load
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local


def _t(hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 2, 1, hour, minute, tzinfo=UTC)


@pytest.mark.pure
@pytest.mark.parametrize(("uses", "expected"), [
    ([], []),
    ([(Window(_t(1), _t(3)), 2)], [(_t(1), _t(3), 2)]),
    # back-to-back windows of equal load merge into one step (half-open: no spike at 02:00)
    ([(Window(_t(1), _t(2)), 2), (Window(_t(2), _t(3)), 2)], [(_t(1), _t(3), 2)]),
    ([(Window(_t(1), _t(3)), 1), (Window(_t(2), _t(4)), 3)],
     [(_t(1), _t(2), 1), (_t(2), _t(3), 4), (_t(3), _t(4), 3)]),
    # clipped to the span [00:00, 05:00)
    ([(Window(_t(0) - timedelta(hours=2), _t(6)), 5)], [(_t(0), _t(5), 5)]),
])
def test_port_load_steps(uses, expected):
    assert port_load(Window(_t(0), _t(5)), uses) == expected


def _setup(engine: Engine):
    with make_session(engine) as session:
        bridge = make_bridge(session, port_capacity=10)
        unit, other_unit = make_unit(session, name="Xã Hy Cương"), make_unit(session, name="Phường Âu Cơ")
        chair, site, other = make_room(session, unit), make_room(session, unit), make_room(session, other_unit)
        endpoints = {r.id: make_endpoint(session, r).id for r in (chair, site, other)}
        headers = {"secretariat": bearer(session, make_user(session, Role.secretariat)),
                   "operator": bearer(session, make_user(session, Role.operator, units=[unit]))}
        ids = {"bridge": bridge.id, "unit": unit.id, "other_unit": other_unit.id, "chair": chair.id, "site": site.id,
               "other": other.id, "endpoints": endpoints}
        session.commit()
    return ids, headers


def test_grid_shows_meeting_time_and_check_lead_apart(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    start = next_monday_local(hour=8)
    booked = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Giao ban trực tuyến", "chair_room_id": ids["chair"], "participant_room_ids": [ids["site"]],
        "start": start.isoformat(), "end": (start + timedelta(hours=2, minutes=30)).isoformat(),
        "check_lead_minutes": 60})
    assert booked.status_code == 201, booked.text
    meeting = booked.json()

    r = client.get("/api/v1/availability/grid", headers=h["secretariat"],
                   params={"day": start.date().isoformat(), "unit_id": ids["unit"]})
    assert r.status_code == 200, r.text
    grid = r.json()
    assert grid["from_local"] == f"{start.date().isoformat()}T00:00"
    assert [row["id"] for row in grid["rooms"]] == sorted([ids["chair"], ids["site"]])
    block = grid["rooms"][0]["blocks"]
    assert len(block) == 1
    assert {k: block[0][k] for k in ("kind", "meeting_id", "title", "status", "start_local", "end_local",
                                     "window_start_local", "window_end_local")} == {
        "kind": "meeting", "meeting_id": meeting["id"], "title": "Giao ban trực tuyến", "status": "confirmed",
        "start_local": f"{start.date().isoformat()}T08:00", "end_local": f"{start.date().isoformat()}T10:30",
        "window_start_local": f"{start.date().isoformat()}T07:00",
        "window_end_local": f"{start.date().isoformat()}T10:30"}
    bridge = next(b for b in grid["bridges"] if b["id"] == ids["bridge"])
    assert (bridge["port_capacity"], bridge["peak"]) == (10, 2)
    assert [(s["start_local"], s["end_local"], s["ports"]) for s in bridge["load"]] == [
        (f"{start.date().isoformat()}T07:00", f"{start.date().isoformat()}T10:30", 2)]

    next_day = client.get("/api/v1/availability/grid", headers=h["secretariat"],
                          params={"day": (start.date() + timedelta(days=1)).isoformat(), "unit_id": ids["unit"]})
    assert [row["blocks"] for row in next_day.json()["rooms"]] == [[], []]


def test_grid_shows_endpoint_maintenance_on_its_room(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    start = next_monday_local(hour=13)
    endpoint_id = ids["endpoints"][ids["other"]]
    made = client.post(f"/api/v1/endpoints/{endpoint_id}/maintenance", headers=h["secretariat"],
                       json={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(),
                             "note": "thay camera"})
    assert made.status_code == 201, made.text
    grid = client.get("/api/v1/availability/grid", headers=h["secretariat"],
                      params={"day": start.date().isoformat(), "room_ids": [ids["other"]]}).json()
    blocks = grid["rooms"][0]["blocks"]
    assert [(b["kind"], b["endpoint_id"], b["start_local"][-5:], b["end_local"][-5:]) for b in blocks] == [
        ("maintenance", endpoint_id, "13:00", "15:00")]


def test_grid_keeps_operators_inside_their_units(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = next_monday_local().date().isoformat()
    mine = client.get("/api/v1/availability/grid", headers=h["operator"], params={"day": day})
    assert mine.status_code == 200
    assert {row["id"] for row in mine.json()["rooms"]} == {ids["chair"], ids["site"]}
    refused = client.get("/api/v1/availability/grid", headers=h["operator"],
                         params={"day": day, "room_ids": [ids["other"]]})
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_scope")


@pytest.mark.parametrize("days", [0, 8])
def test_grid_refuses_more_than_a_week(client: TestClient, engine: Engine, days: int):
    ids, h = _setup(engine)
    r = client.get("/api/v1/availability/grid", headers=h["secretariat"],
                   params={"day": next_monday_local().date().isoformat(), "days": days})
    assert r.status_code == 422


def test_grid_shows_whole_day_blocks_of_the_room_and_its_endpoints(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = next_monday_local().date()
    room_block = client.post(f"/api/v1/rooms/{ids['site']}/blocks", headers=h["secretariat"],
                             json={"first_day": day.isoformat(), "last_day": day.isoformat(), "reason": "bầu cử"})
    assert room_block.status_code == 201, room_block.text
    endpoint_id = ids["endpoints"][ids["other"]]
    endpoint_block = client.post(f"/api/v1/endpoints/{endpoint_id}/blocks", headers=h["secretariat"],
                                 json={"first_day": day.isoformat(), "last_day": day.isoformat(), "reason": "sửa chữa"})
    assert endpoint_block.status_code == 201, endpoint_block.text
    grid = client.get("/api/v1/availability/grid", headers=h["secretariat"],
                      params={"day": day.isoformat(), "room_ids": [ids["site"], ids["other"]]}).json()
    assert [[(b["kind"], b["resource_kind"], b["reason"], b["start_local"], b["end_local"]) for b in row["blocks"]]
            for row in grid["rooms"]] == [
        [("block", "room", "bầu cử", f"{day.isoformat()}T00:00", f"{(day + timedelta(days=1)).isoformat()}T00:00")],
        [("block", "endpoint", "sửa chữa", f"{day.isoformat()}T00:00", f"{(day + timedelta(days=1)).isoformat()}T00:00")]]


def test_grid_of_a_site_group_lists_its_rooms_the_caller_may_see(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    day = next_monday_local().date().isoformat()
    made = client.post("/api/v1/site-groups", headers=h["secretariat"], json={
        "name": "Các xã giao ban", "visibility": "province", "room_ids": [ids["other"], ids["site"]]})
    assert made.status_code == 201, made.text
    group = made.json()["id"]
    whole = client.get("/api/v1/availability/grid", headers=h["secretariat"],
                       params={"day": day, "site_group_id": group, "unit_id": ids["unit"]})
    assert whole.status_code == 200, whole.text
    # the group's rooms in its order (unit name, then room name: Phường Âu Cơ before Xã Hy Cương); the unit ignored
    assert [(r["id"], r["unit_name"]) for r in whole.json()["rooms"]] == [
        (ids["other"], "Phường Âu Cơ"), (ids["site"], "Xã Hy Cương")]
    mine = client.get("/api/v1/availability/grid", headers=h["operator"], params={"day": day, "site_group_id": group})
    assert [r["id"] for r in mine.json()["rooms"]] == [ids["site"]]  # the other commune's room stays hidden
    private = client.post("/api/v1/site-groups", headers=h["secretariat"], json={
        "name": "Nhóm riêng", "room_ids": [ids["site"]]}).json()["id"]
    for group_id in (private, 999_999):
        missing = client.get("/api/v1/availability/grid", headers=h["operator"],
                             params={"day": day, "site_group_id": group_id})
        assert (missing.status_code, missing.json()["code"]) == (404, "site_group_not_found")


def test_grid_hides_a_confidential_meetings_title_from_those_outside_it(client: TestClient, engine: Engine):
    # The grid showed every meeting's title to any signed-in reader, a confidential one's included.
    ids, h = _setup(engine)
    with make_session(engine) as session:
        h["viewer"] = bearer(session, make_user(session, Role.viewer))
        session.commit()
    start = next_monday_local(hour=14)
    booked = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Họp mật về quốc phòng", "chair_room_id": ids["chair"], "participant_room_ids": [ids["site"]],
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "confidential": True})
    assert booked.status_code == 201, booked.text

    def titles(who: str, unit: int) -> list[str]:
        r = client.get("/api/v1/availability/grid", headers=h[who], params={"day": start.date().isoformat(),
                                                                             "unit_id": unit})
        assert r.status_code == 200, r.text
        return [b["title"] for row in r.json()["rooms"] for b in row["blocks"] if b["kind"] == "meeting"]

    assert titles("secretariat", ids["unit"]) == ["Họp mật về quốc phòng"] * 2
    assert titles("operator", ids["unit"]) == ["Họp mật về quốc phòng"] * 2  # its unit takes part
    assert titles("viewer", ids["unit"]) == ["Cuộc họp"] * 2
