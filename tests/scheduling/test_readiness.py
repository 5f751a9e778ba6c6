"""Readiness per site per occurrence: the board, who may mark what, and the readiness.changed events."""

from __future__ import annotations

from datetime import UTC, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.scheduling import readiness
from confsvc.scheduling.models import Occurrence, ReadinessState
from confsvc.users.models import Role
from confsvc.users.service import principal_for
from tests.factories import bearer, make_bridge, make_endpoint, make_meeting, make_room, make_unit, make_user, next_monday_local


def _meeting(session: Session, settings: Settings):
    make_bridge(session)
    chair_unit, site_unit = make_unit(session), make_unit(session)
    chair = make_room(session, chair_unit, name="Phòng họp UBND tỉnh")
    site = make_room(session, site_unit, name="Điểm cầu xã")
    spare = make_room(session, site_unit, name="Phòng dự phòng")
    make_endpoint(session, chair)
    site_ep = make_endpoint(session, site)
    start = next_monday_local().astimezone(UTC)
    result = make_meeting(session, chair_room=chair, start=start, end=start + timedelta(hours=2),
                          endpoints=[site_ep], settings=settings)
    occ = session.get(Occurrence, readiness_occurrence_id(session, result.meeting.id))
    return result.meeting, occ, chair, site, spare, site_unit


def readiness_occurrence_id(session: Session, meeting_id: int) -> int:
    return session.exec(select(Occurrence.id).where(Occurrence.meeting_id == meeting_id)).one()


def _readiness_events(session: Session) -> list[dict]:
    return [p.message for p in events.replay(session, 0) if p.message["type"] == "readiness.changed"]


def test_board_defaults_and_marks_record_one_event_per_change(session: Session, settings: Settings):
    meeting, occ, chair, site, _, site_unit = _meeting(session, settings)
    operator = principal_for(session, make_user(session, Role.operator, units=[site_unit]))
    before = occ.start - timedelta(hours=1)
    board = readiness.board(session, settings, meeting, occ, now=before)
    assert board == {"meeting_id": meeting.id, "occurrence_id": occ.id, "start": occ.start,
                     "deadline": occ.start - timedelta(minutes=15), "overdue": False, "sites": [
                         {"room_id": chair.id, "room_name": "Phòng họp UBND tỉnh", "unit_id": chair.unit_id,
                          "is_chair": True, "state": ReadinessState.not_checked, "state_label": "Chưa kiểm tra",
                          "note": "", "updated_by": None, "updated_at": None},
                         {"room_id": site.id, "room_name": "Điểm cầu xã", "unit_id": site.unit_id,
                          "is_chair": False, "state": ReadinessState.not_checked, "state_label": "Chưa kiểm tra",
                          "note": "", "updated_by": None, "updated_at": None}]}

    marked = readiness.set_readiness(session, settings, operator, meeting, occ, site.id, ReadinessState.problem,
                                     "  Mất âm thanh  ", now=before)
    assert marked["sites"][1] == {**board["sites"][1], "state": ReadinessState.problem,
                                       "state_label": "Gặp sự cố", "note": "Mất âm thanh",
                                       "updated_by": operator.user_id, "updated_at": before}
    readiness.set_readiness(session, settings, operator, meeting, occ, site.id, ReadinessState.problem,
                            "Mất âm thanh", now=before + timedelta(minutes=1))  # a repeat: no event
    readiness.set_readiness(session, settings, operator, meeting, occ, site.id, ReadinessState.ready,
                            now=before + timedelta(minutes=2))
    session.commit()
    assert [(m["at"], m["data"]) for m in _readiness_events(session)] == [
        (board_iso(before), {"meeting_id": meeting.id, "occurrence_id": occ.id, "room_id": site.id,
                             "state": "problem", "note": "Mất âm thanh", "by": operator.user_id,
                             "at": board_iso(before)}),
        (board_iso(before + timedelta(minutes=2)),
         {"meeting_id": meeting.id, "occurrence_id": occ.id, "room_id": site.id, "state": "ready", "note": "",
          "by": operator.user_id, "at": board_iso(before + timedelta(minutes=2))})]
    after_deadline = readiness.board(session, settings, meeting, occ, now=occ.start - timedelta(minutes=15))
    assert [s["state"] for s in after_deadline["sites"]] == [ReadinessState.not_checked, ReadinessState.ready]
    assert after_deadline["overdue"] is True


def board_iso(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _http_setup(engine: Engine, settings: Settings):
    with make_session(engine) as session:
        meeting, occ, chair, site, spare, site_unit = _meeting(session, settings)
        h = {role: bearer(session, make_user(session, role)) for role in (Role.secretariat, Role.viewer)}
        h["operator"] = bearer(session, make_user(session, Role.operator, units=[site_unit]))
        ids = {"meeting": meeting.id, "occ": occ.id, "chair": chair.id, "site": site.id, "spare": spare.id}
        session.commit()
    return ids, h


def test_http_permissions_and_errors(client: TestClient, engine: Engine, settings: Settings):
    ids, h = _http_setup(engine, settings)
    base = f"/api/v1/meetings/{ids['meeting']}/occurrences/{ids['occ']}/readiness"
    r = client.get(base, headers=h[Role.viewer])
    assert r.status_code == 200
    assert [(s["room_id"], s["state"]) for s in r.json()["sites"]] == [(ids["chair"], "not_checked"),
                                                                      (ids["site"], "not_checked")]
    ok = client.put(f"{base}/{ids['site']}", headers=h["operator"], json={"state": "ready"})
    assert ok.status_code == 200, ok.text
    assert [(s["room_id"], s["state"], s["state_label"]) for s in ok.json()["sites"]] == [
        (ids["chair"], "not_checked", "Chưa kiểm tra"), (ids["site"], "ready", "Đã sẵn sàng")]
    assert client.get(base, headers=h["operator"]).json()["sites"][1]["state"] == "ready"

    def code(response):
        return response.status_code, response.json()["code"]

    assert code(client.put(f"{base}/{ids['chair']}", headers=h["operator"], json={"state": "ready"})) == (
        403, "forbidden_scope")
    assert code(client.put(f"{base}/{ids['site']}", headers=h[Role.viewer], json={"state": "ready"})) == (
        403, "forbidden_role")
    assert code(client.put(f"{base}/{ids['site']}", headers=h["operator"], json={"state": "problem"})) == (
        422, "note_required")
    assert code(client.put(f"{base}/{ids['spare']}", headers=h["operator"], json={"state": "ready"})) == (
        404, "site_not_in_occurrence")
    assert client.put(f"{base}/{ids['site']}", headers=h["operator"], json={"state": "asleep"}).status_code == 422
    assert code(client.get(f"/api/v1/meetings/{ids['meeting']}/occurrences/999999/readiness",
                           headers=h[Role.viewer])) == (404, "occurrence_not_found")
    chair = client.put(f"{base}/{ids['chair']}", headers=h[Role.secretariat], json={"state": "connected"})
    assert [s["state"] for s in chair.json()["sites"]] == ["connected", "ready"]

    cancel = client.post(f"/api/v1/meetings/{ids['meeting']}/occurrences/{ids['occ']}/cancel",
                         headers=h[Role.secretariat])
    assert cancel.status_code == 200, cancel.text
    assert code(client.put(f"{base}/{ids['site']}", headers=h[Role.secretariat], json={"state": "ready"})) == (
        422, "occurrence_cancelled")
    with make_session(engine, write=False) as session:
        assert [(m["data"]["room_id"], m["data"]["state"]) for m in _readiness_events(session)] == [
            (ids["site"], "ready"), (ids["chair"], "connected")]
