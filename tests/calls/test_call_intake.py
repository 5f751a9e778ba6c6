"""Call records on SQLite and PostgreSQL: merging of overlapping and repeated reports, reconnects,
closing at the occurrence's end, manual attendance marks, events, and the HTTP API's permissions."""

from __future__ import annotations

from datetime import UTC

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events
from confsvc.calls import intake as calls
from confsvc.calls.models import CallRecord
from confsvc.calls.schemas import AttendanceMark, CallEventCreate
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.errors import Invalid
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


# ---------------------------------------------------------------- call legs (issue 12 defect 6)

def _legs(session: Session, endpoint_id: int) -> list[tuple[str, str | None, str | None, bool]]:
    from confsvc.calls.models import CallLeg

    rows = session.exec(select(CallLeg).where(CallLeg.endpoint_id == endpoint_id)
                        .order_by(CallLeg.connected_at, CallLeg.id)).all()
    fmt = "%H:%M"
    return [(r.connected_at.astimezone(sc.ZONE).strftime(fmt),
             r.disconnected_at.astimezone(sc.ZONE).strftime(fmt) if r.disconnected_at else None, r.leg_id,
             r.end_presumed) for r in rows]


def _nine_to_ten(session: Session, settings: Settings):
    """The outside run's meeting: Monday 02/11 09:00–10:00, check lead 60 (window 08:00–10:00), site E2, past."""
    from confsvc.endpoints.models import Room
    from tests.factories import make_meeting

    s = sc.build(session, settings, with_calls=False)
    meeting = make_meeting(session, chair_room=session.get(Room, s.r2), start=sc.local(2, 9), end=sc.local(2, 10),
                           settings=settings, check_lead_minutes=60, user=make_user(session, Role.admin)).meeting
    return s, sc.occurrence_of(session, meeting.id)


def _outcome(outcome) -> tuple[bool, str | None]:
    return outcome.accepted, outcome.reason


def test_reconnect_inside_a_meeting_is_a_second_leg_and_a_disconnect_after_the_end_is_accepted(
        session: Session, settings: Settings):
    s, occ = _nine_to_ten(session, settings)
    admin = _admin(session)
    steps = [("connected", sc.local(2, 8, 58)), ("connected", sc.local(2, 9, 19)),
             ("disconnected", sc.local(2, 9, 20)), ("disconnected", sc.local(2, 10, 5))]
    answers, periods = [], []
    for event, at in steps:
        outcome = _report(session, settings, admin, s.e2, event, at)
        answers.append((_outcome(outcome), outcome.occurrence_id))
        periods.append(_periods(session, s.e2))
    assert answers == [((True, None), occ)] * 4  # was: duplicate at 09:19, 422 no_occurrence at 10:05
    assert periods == [[("02/11 08:58", None, "bridge")], [("02/11 08:58", None, "bridge")],
                       [("02/11 08:58", None, "bridge")], [("02/11 08:58", "02/11 10:00", "bridge")]]
    # The legs keep what was reported (the overrun to 10:05 included); usage counts their union inside
    # the booked window: 08:58–10:00 = 62 minutes (was 22).
    assert _legs(session, s.e2) == [("08:58", "09:20", None, False), ("09:19", "10:05", None, False)]
    from datetime import date

    from confsvc.stats import usage
    from confsvc.stats.schemas import GroupBy, Period

    report = usage.usage_report(session, settings, admin, group_by=GroupBy.endpoint, period=Period.day,
                                from_date=date(2026, 11, 2), to_date=date(2026, 11, 3), now=sc.NOW)
    [row] = [r for r in report["rows"] if r["group"]["id"] == s.e2]
    assert (row["connected_hours"], row["sites_connected"], row["late_joins"]) == (round(62 / 60, 2), 1, 0)


def test_resent_leg_events_change_nothing(session: Session, settings: Settings):
    s, occ = _nine_to_ten(session, settings)
    admin = _admin(session)
    before = events.latest_id(session)
    steps = [("connected", sc.local(2, 8, 58), "leg-a"), ("connected", sc.local(2, 8, 58), "leg-a"),
             ("connected", sc.local(2, 9, 19), "leg-b"), ("disconnected", sc.local(2, 9, 20), "leg-a"),
             ("disconnected", sc.local(2, 9, 20), "leg-a"), ("disconnected", sc.local(2, 10, 5), "leg-b"),
             ("disconnected", sc.local(2, 10, 5), "leg-b"), ("disconnected", sc.local(2, 10, 6), "leg-zzz")]
    answers = [_outcome(_report(session, settings, admin, s.e2, event, at, leg_id=leg)) for event, at, leg in steps]
    assert answers == [(True, None), (False, "duplicate"), (True, None), (True, None), (False, "duplicate"),
                       (True, None), (False, "duplicate"), (False, "unknown_leg")]
    assert _legs(session, s.e2) == [("08:58", "09:20", "leg-a", False), ("09:19", "10:05", "leg-b", False)]
    assert _periods(session, s.e2) == [("02/11 08:58", "02/11 10:00", "bridge")]
    sent = [(p.message["type"], p.message["data"]["connected_at"], p.message["data"]["disconnected_at"])
            for p in events.replay(session, before)]
    assert sent == [("call.connected", "2026-11-02T01:58:00Z", None),
                    ("call.disconnected", "2026-11-02T01:58:00Z", "2026-11-02T03:00:00Z")]
    # The same without leg ids: a re-sent connect or disconnect is recognised by its source and time.
    again = [_outcome(_report(session, settings, admin, s.e1, event, at))
             for event, at in [("connected", sc.local(2, 7, 30)), ("connected", sc.local(2, 7, 30)),
                               ("disconnected", sc.local(2, 9, 0)), ("disconnected", sc.local(2, 9, 0))]]
    assert again == [(True, None), (False, "duplicate"), (True, None), (False, "duplicate")]
    assert occ


def test_reported_disconnect_replaces_the_end_presumed_when_the_meeting_ended(session: Session, settings: Settings):
    s, _ = _nine_to_ten(session, settings)
    admin = _admin(session)
    _report(session, settings, admin, s.e2, "connected", sc.local(2, 8, 58), leg_id="leg-a")
    assert calls.close_open_records(session, sc.NOW) == 1
    assert (_legs(session, s.e2), _periods(session, s.e2)) == (
        [("08:58", "10:00", "leg-a", True)], [("02/11 08:58", "02/11 10:00", "bridge")])
    late = _report(session, settings, admin, s.e2, "disconnected", sc.local(2, 9, 20), leg_id="leg-a")
    assert _outcome(late) == (True, None)
    assert (_legs(session, s.e2), _periods(session, s.e2)) == (
        [("08:58", "09:20", "leg-a", False)], [("02/11 08:58", "02/11 09:20", "bridge")])


def test_http_call_legs_reconnect_overrun_and_resent_leg(client: TestClient, engine: Engine, settings: Settings):
    """The outside run's requests, over HTTP: a reconnect is a second leg, a disconnect after the end is
    accepted, a re-sent leg event changes nothing, a malformed leg id is a 422."""
    with make_session(engine) as session:
        s, occ = _nine_to_ten(session, settings)
        headers = bearer(session, make_user(session, Role.secretariat))
        session.commit()

    def post(event: str, at: str, **extra) -> tuple[int, dict]:
        r = client.post("/api/v1/calls", headers=headers,
                        json={"endpoint_id": s.e2, "event": event, "at": at, **extra})
        return r.status_code, r.json()

    answers = [post("connected", "2026-11-02T08:58:00+07:00", leg_id="c1"),
               post("connected", "2026-11-02T09:19:00+07:00", leg_id="c2"),
               post("disconnected", "2026-11-02T09:20:00+07:00", leg_id="c1"),
               post("disconnected", "2026-11-02T10:05:00+07:00", leg_id="c2"),
               post("disconnected", "2026-11-02T10:05:00+07:00", leg_id="c2")]
    assert [(code, body["accepted"], body["reason"], body["occurrence_id"]) for code, body in answers] == [
        (200, True, None, occ), (200, True, None, occ), (200, True, None, occ), (200, True, None, occ),
        (200, False, "duplicate", occ)]
    record = answers[3][1]["record"]
    assert (record["connected_at"], record["disconnected_at"]) == ("2026-11-02T01:58:00Z", "2026-11-02T03:00:00Z")
    code, body = post("connected", "2026-11-02T09:30:00+07:00", leg_id="bad leg")
    assert (code, body["code"]) == (422, "validation_error")
