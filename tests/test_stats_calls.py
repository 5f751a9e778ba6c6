"""Call records on SQLite and PostgreSQL: merging of overlapping and repeated reports, reconnects,
closing at the occurrence's end, manual attendance marks, events, and the HTTP API's permissions."""

from __future__ import annotations

from datetime import UTC

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.errors import Invalid
from confsvc.stats import calls
from confsvc.stats.models import CallRecord
from confsvc.stats.schemas import AttendanceMark, CallEventCreate
from confsvc.users import service as users
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import bearer, make_user


def _periods(session: Session, endpoint_id: int) -> list[tuple[str, str | None, str]]:
    rows = session.exec(select(CallRecord).where(CallRecord.endpoint_id == endpoint_id)
                        .order_by(CallRecord.connected_at)).all()
    fmt = "%d/%m %H:%M"
    return [(r.connected_at.astimezone(sc.ZONE).strftime(fmt),
             r.disconnected_at.astimezone(sc.ZONE).strftime(fmt) if r.disconnected_at else None, r.source)
            for r in rows]


def _admin(session: Session):
    return users.principal_for(session, make_user(session, Role.admin))


def _report(session, settings, principal, endpoint_id, event, at, **kw):
    return calls.report_call(session, settings, principal, CallEventCreate(endpoint_id=endpoint_id, event=event,
                                                                           at=at, **kw), now=sc.NOW)


def test_duplicates_and_reconnects_merge_into_periods(session: Session, settings: Settings):
    s = sc.build(session, settings)
    assert _periods(session, s.e1) == [("31/10 21:30", "01/11 00:30", "agent")]
    # E2 reconnected: two periods, the open one closed at the occurrence's end by close_open_records.
    assert _periods(session, s.e2) == [("31/10 22:10", "31/10 23:00", "bridge"),
                                       ("31/10 23:30", "01/11 01:00", "bridge")]


def test_overlapping_reports_never_count_twice(session: Session, settings: Settings):
    s = sc.build(session, settings, with_calls=False)
    admin = _admin(session)
    first = _report(session, settings, admin, s.e1, "connected", sc.local(31, 22, 0, month=10))
    again = _report(session, settings, admin, s.e1, "connected", sc.local(31, 22, 5, month=10), source="agent")
    assert (first.accepted, again.accepted, again.reason) == (True, False, "duplicate")
    closed = _report(session, settings, admin, s.e1, "disconnected", sc.local(31, 23, 0, month=10))
    late = _report(session, settings, admin, s.e1, "disconnected", sc.local(31, 23, 2, month=10), source="agent")
    assert (closed.accepted, late.accepted, late.reason) == (True, False, "no_open_call")
    # A connected report that arrives late, for a time before the period, extends it back.
    earlier = _report(session, settings, admin, s.e1, "connected", sc.local(31, 21, 50, month=10), source="agent")
    assert earlier.accepted and earlier.record.id == first.record.id
    # A manual mark overlapping the period and beyond unites with it.
    calls.mark_attendance(session, settings, admin, _meeting(session, s.m1), _occ(session, s.o1),
                          AttendanceMark(endpoint_id=s.e1, connected_from=sc.local(31, 22, 30, month=10),
                                         connected_to=sc.local(31, 23, 40, month=10)), now=sc.NOW)
    assert _periods(session, s.e1) == [("31/10 21:50", "31/10 23:40", "bridge")]
    # A disconnect after the end closes at the end; a mark past the end is clipped.
    _report(session, settings, admin, s.e2, "connected", sc.local(1, 0, 0))
    _report(session, settings, admin, s.e2, "disconnected", sc.local(1, 2, 0))
    calls.mark_attendance(session, settings, admin, _meeting(session, s.m1), _occ(session, s.o1),
                          AttendanceMark(room_id=s.r2, connected_from=sc.local(31, 20, 0, month=10),
                                         connected_to=sc.local(31, 21, 15, month=10)), now=sc.NOW)
    assert _periods(session, s.e2) == [("31/10 21:00", "31/10 21:15", "manual"),
                                       ("01/11 00:00", "01/11 01:00", "bridge")]


def _meeting(session, meeting_id):
    from confsvc.scheduling.models import Meeting

    return session.get(Meeting, meeting_id)


def _occ(session, occurrence_id):
    from confsvc.scheduling.models import Occurrence

    return session.get(Occurrence, occurrence_id)


def test_reports_outside_any_occurrence_or_cancelled_are_refused(session: Session, settings: Settings):
    s = sc.build(session, settings, with_calls=False)
    admin = _admin(session)
    cases = [({"at": sc.local(31, 20, 59, month=10)}, "no_occurrence"),          # before the check lead
             ({"at": sc.local(1, 1, 0)}, "no_occurrence"),                        # at the end
             ({"at": sc.local(1, 9, 30), "occurrence_id": s.o2}, "occurrence_cancelled"),
             ({"at": sc.local(2, 8, 0), "occurrence_id": s.o1}, "outside_occurrence"),
             ({"at": sc.local(3, 12, 30)}, "at_in_future")]
    for kw, code in cases:
        with pytest.raises(Invalid) as caught:
            _report(session, settings, admin, s.e1, "connected", **kw)
        assert caught.value.code == code
    with pytest.raises(Invalid) as caught:
        _report(session, settings, admin, s.e2, "connected", sc.local(2, 8, 0), occurrence_id=s.o3)
    assert caught.value.code == "not_a_participant"
    assert _periods(session, s.e1) == []


def test_events_recorded_for_the_room_and_published_after_commit(engine: Engine, settings: Settings):
    seen: list[events.Published] = []
    events.subscribe(seen.extend)
    try:
        with make_session(engine) as session:
            s = sc.build(session, settings, with_calls=False)
            session.commit()
            seen.clear()
            admin = _admin(session)
            _report(session, settings, admin, s.e2, "connected", sc.local(31, 22, 10, month=10))
            _report(session, settings, admin, s.e2, "connected", sc.local(31, 22, 11, month=10))
            assert seen == []
            session.commit()
            calls.close_open_records(session, sc.NOW)
            session.commit()
    finally:
        events.unsubscribe(seen.extend)
    assert [(p.message["type"], p.message["data"]["connected_at"], p.message["data"]["disconnected_at"])
            for p in seen] == [("call.connected", "2026-10-31T15:10:00Z", None),
                               ("call.disconnected", "2026-10-31T15:10:00Z", "2026-10-31T18:00:00Z")]
    assert all(p.room_ids == {s.r2} and p.unit_ids == {s.province, s.commune} for p in seen)


def _http_setup(engine: Engine, settings: Settings):
    with make_session(engine) as session:
        s = sc.build(session, settings, with_calls=False)
        from confsvc.endpoints.models import Unit

        commune = session.get(Unit, s.commune)
        headers = {role: bearer(session, make_user(session, role)) for role in (Role.secretariat, Role.viewer)}
        headers["operator"] = bearer(session, make_user(session, Role.operator, units=[commune]))
        session.commit()
    return s, headers


def test_http_calls_and_attendance_permissions(client: TestClient, engine: Engine, settings: Settings):
    s, h = _http_setup(engine, settings)
    body = {"endpoint_id": s.e1, "event": "connected", "at": "2026-10-31T21:30:00", "source": "agent"}
    assert client.post("/api/v1/calls", json=body).status_code == 401
    assert client.post("/api/v1/calls", json=body, headers=h[Role.viewer]).status_code == 403
    assert client.post("/api/v1/calls", json=body, headers=h["operator"]).status_code == 403
    r = client.post("/api/v1/calls", json=body, headers=h[Role.secretariat])
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": True, "reason": None, "occurrence_id": s.o1, "record": {
        "id": r.json()["record"]["id"], "endpoint_id": s.e1, "occurrence_id": s.o1,
        "connected_at": "2026-10-31T14:30:00Z", "disconnected_at": None, "source": "agent"}}
    assert client.post("/api/v1/calls", json=body, headers=h[Role.secretariat]).json()["reason"] == "duplicate"
    bad = client.post("/api/v1/calls", json={**body, "endpoint_id": 2**31}, headers=h[Role.secretariat])
    assert bad.status_code == 422

    url = f"/api/v1/meetings/{s.m1}/occurrences/{s.o1}/attendance"
    mark = {"connected_from": "2026-10-31T22:00:00+07:00", "connected_to": "2026-10-31T23:00:00+07:00"}
    assert client.post(url, json={**mark, "room_id": s.r1}, headers=h["operator"]).status_code == 403
    assert client.post(url, json={**mark, "room_id": s.r2, "endpoint_id": s.e2},
                       headers=h["operator"]).status_code == 422
    ok = client.post(url, json={**mark, "room_id": s.r2}, headers=h["operator"])
    assert ok.status_code == 200, ok.text
    assert [(x["endpoint_id"], x["connected_at"], x["disconnected_at"], x["source"]) for x in ok.json()["records"]] \
        == [(s.e2, "2026-10-31T15:00:00Z", "2026-10-31T16:00:00Z", "manual")]
    with make_session(engine) as session:
        assert calls.close_open_records(session, sc.NOW.astimezone(UTC)) == 1
        session.commit()
        assert _periods(session, s.e1) == [("31/10 21:30", "01/11 01:00", "agent")]
