"""The scheduler: reminders, started/ended and the readiness deadline, each exactly once, also from
two processes ticking at the same moment against one database."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.scheduling import readiness, scheduler
from confsvc.scheduling.models import Occurrence, ReadinessState, SchedulerMark
from confsvc.scheduling.cancellation import cancel_occurrence
from confsvc.scheduling.editing import edit_occurrence
from confsvc.scheduling.schemas import OccurrenceUpdate
from confsvc.users.models import Role
from confsvc.users.service import principal_for
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_user, next_monday_local

TYPES = ("meeting.reminder", "meeting.started", "meeting.ended")
S = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


@pytest.mark.pure
@pytest.mark.parametrize(("minutes_from_start", "kinds"), [
    (-61, []),
    (-60, ["technical_check"]),
    (-15, ["technical_check", "readiness_overdue"]),
    (-5, ["technical_check", "readiness_overdue", "starting_soon"]),
    (0, ["readiness_overdue", "started"]),
    (119, ["readiness_overdue", "started"]),
    (120, ["ended"]),
    (120 + 24 * 60 - 1, ["ended"]),
    (120 + 24 * 60, []),
])
def test_notice_windows(minutes_from_start: int, kinds: list[str]) -> None:
    settings = Settings(secret_key="x" * 40)
    due = scheduler.notices_due(settings, occurrence_id=1, start=S, end=S + timedelta(hours=2), check_lead_minutes=60,
                                now=S + timedelta(minutes=minutes_from_start))
    assert [n.kind for n in due] == kinds


def _book(session: Session, settings: Settings, weeks_ahead: int = 2, **overrides):
    make_bridge(session)
    chair, site = make_room(session, name="Phòng họp tỉnh"), make_room(session, name="Điểm cầu xã")
    make_endpoint(session, chair)
    ep = make_endpoint(session, site)
    start = next_monday_local(weeks_ahead).astimezone(UTC)
    meeting = make_meeting(session, chair_room=chair, start=start, end=start + timedelta(hours=2), endpoints=[ep],
                           settings=settings, title="Giao ban trực tuyến", **overrides).meeting
    occ = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id).order_by(Occurrence.start)).first()
    session.commit()
    return meeting, occ, chair, site


def _notices(session: Session) -> list[tuple[str, str, dict]]:
    return [(p.message["type"], p.message["at"], p.message["data"]) for p in events.replay(session, 0)
            if p.message["type"] in TYPES]


def _z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_each_notice_once_at_its_time(engine: Engine, settings: Settings) -> None:
    with make_session(engine) as session:
        meeting, occ, chair, site = _book(session, settings)
        secretariat = principal_for(session, make_user(session, Role.secretariat))
        session.commit()
    start, end = occ.start, occ.end
    ticks = {n: start + timedelta(minutes=n) for n in (-61, -60, -30, -15, -5, 0, 1, 120)}
    sent = {}
    for n, now in ticks.items():
        if n == -30:
            with make_session(engine) as session:
                readiness.set_readiness(session, settings, secretariat, meeting, occ, chair.id,
                                        ReadinessState.ready, now=now)
                session.commit()
        sent[n] = [(s.kind, s.event_id is not None) for s in scheduler.run_due(engine, settings, now)]
        assert scheduler.run_due(engine, settings, now) == []  # a second tick at the same time sends nothing
    assert sent == {-61: [], -60: [("technical_check", True)], -30: [], -15: [("readiness_overdue", True)],
                    -5: [("starting_soon", True)], 0: [("started", True)], 1: [], 120: [("ended", True)]}
    base = {"meeting_id": meeting.id, "occurrence_id": occ.id}
    times = {"title": "Giao ban trực tuyến", "start": _z(start), "end": _z(end)}
    with make_session(engine, write=False) as session:
        assert _notices(session) == [
            ("meeting.reminder", _z(ticks[-60]), {**base, "kind": "technical_check", **times, "minutes_before": 60}),
            ("meeting.reminder", _z(ticks[-15]), {**base, "kind": "readiness_overdue", **times, "minutes_before": 15,
                                                  "deadline": _z(ticks[-15]),
                                                  "not_ready": [{"room_id": site.id, "state": "not_checked"}]}),
            ("meeting.reminder", _z(ticks[-5]), {**base, "kind": "starting_soon", **times, "minutes_before": 5}),
            ("meeting.started", _z(ticks[0]), {**base, **times}),
            ("meeting.ended", _z(ticks[120]), {**base, **times})]
        routed = {p.message["data"].get("kind", p.message["type"]): p.room_ids for p in events.replay(session, 0)
                  if p.message["type"] in TYPES}
        assert routed == {"technical_check": {chair.id, site.id}, "readiness_overdue": {site.id},
                          "starting_soon": {chair.id, site.id}, "meeting.started": {chair.id, site.id},
                          "meeting.ended": {chair.id, site.id}}


def test_a_restart_catches_up_open_windows_and_cancelled_occurrences_get_nothing(engine: Engine,
                                                                                 settings: Settings) -> None:
    with make_session(engine) as session:
        _, occ, chair, site = _book(session, settings)
        cancelled_meeting, cancelled_occ, *_ = _book(session, settings, weeks_ahead=3)
        cancel_occurrence(session, principal_for(session, make_user(session, Role.secretariat)), cancelled_meeting,
                          cancelled_occ)
        ready_meeting, ready_occ, ready_chair, ready_site = _book(session, settings, weeks_ahead=4)
        admin = principal_for(session, make_user(session, Role.admin))
        for room in (ready_chair, ready_site):
            readiness.set_readiness(session, settings, admin, ready_meeting, ready_occ, room.id,
                                    ReadinessState.connected, now=ready_occ.start - timedelta(hours=1))
        session.commit()
    # Down from before the technical check until 10 minutes after the start:
    back = scheduler.run_due(engine, settings, occ.start + timedelta(minutes=10))
    assert [(s.occurrence_id, s.kind) for s in back] == [(occ.id, "readiness_overdue"), (occ.id, "started")]
    late = scheduler.run_due(engine, settings, cancelled_occ.start + timedelta(minutes=1))
    assert late == []
    all_ready = scheduler.run_due(engine, settings, ready_occ.start - timedelta(minutes=15))
    assert [(s.occurrence_id, s.kind, s.event_id) for s in all_ready] == [
        (ready_occ.id, "technical_check", all_ready[0].event_id), (ready_occ.id, "readiness_overdue", None)]
    assert scheduler.run_due(engine, settings, ready_occ.start - timedelta(minutes=15)) == []


def test_a_moved_occurrence_gets_its_notices_again(engine: Engine, settings: Settings) -> None:
    with make_session(engine) as session:
        meeting, occ, *_ = _book(session, settings)
        session.commit()
    assert [s.kind for s in scheduler.run_due(engine, settings, occ.start - timedelta(minutes=60))] == [
        "technical_check"]
    new_start = occ.start + timedelta(days=1)
    with make_session(engine) as session:
        principal = principal_for(session, make_user(session, Role.secretariat))
        edit_occurrence(session, settings, principal, session.get(type(meeting), meeting.id),
                        session.get(Occurrence, occ.id),
                        OccurrenceUpdate(start=new_start, end=new_start + timedelta(hours=2)))
        session.commit()
    assert [s.kind for s in scheduler.run_due(engine, settings, new_start - timedelta(minutes=60))] == [
        "technical_check"]
    with make_session(engine, write=False) as session:
        assert sorted(m.due_at for m in session.exec(select(SchedulerMark)).all()) == [
            occ.start - timedelta(minutes=60), new_start - timedelta(minutes=60)]


def _tick_in_process(url: str, settings: Settings, now: datetime, barrier, results) -> None:
    engine = make_engine(url)
    try:
        barrier.wait(timeout=60)
        claimed = []
        for _ in range(3):  # several ticks to widen the overlap
            claimed += [(s.occurrence_id, s.kind) for s in scheduler.run_due(engine, settings, now)]
        results.put(claimed)
    finally:
        engine.dispose()


def test_two_processes_send_each_notice_exactly_once(engine: Engine, settings: Settings, db_url: str) -> None:
    with make_session(engine) as session:
        occurrences = [_book(session, settings, weeks_ahead=2, rrule="FREQ=DAILY;COUNT=20")[1]]
        session.commit()
        occ_ids = sorted(session.exec(select(Occurrence.id)).all())
        starts = sorted(session.exec(select(Occurrence.start)).all())
    assert len(occ_ids) == 20 and occurrences
    now = starts[-1] + timedelta(minutes=5)  # every occurrence: started or ended; the last: overdue, started
    settings = settings.model_copy(update={"ended_notice_grace_minutes": 30 * 24 * 60})
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_tick_in_process, args=(db_url, settings, now, barrier, results))
                 for _ in range(2)]
    for p in processes:
        p.start()
    claimed = [results.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
        p.close()
    results.close()
    results.join_thread()
    both = claimed[0] + claimed[1]
    expected = sorted([(i, "ended") for i in occ_ids[:-1]] + [(occ_ids[-1], "readiness_overdue"),
                                                              (occ_ids[-1], "started")])
    assert sorted(both) == expected  # each claimed by exactly one of the two processes
    with make_session(engine, write=False) as session:
        sent = sorted((m[2]["occurrence_id"], m[2].get("kind", m[0].split(".")[1])) for m in _notices(session))
        assert sent == expected
        assert session.exec(select(SchedulerMark)).all().__len__() == len(expected)


def test_the_app_runs_the_scheduler_and_the_probe_in_the_background(engine: Engine, settings: Settings) -> None:
    import socket
    import time

    from fastapi.testclient import TestClient

    from confsvc.endpoints.models import Endpoint, EndpointStatus
    from confsvc.main import create_app

    with make_session(engine) as session:
        make_bridge(session)
        room = make_room(session)
        ep = make_endpoint(session, room, management_ip="127.0.0.1")
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)  # technical check due now
        make_meeting(session, chair_room=room, start=start, end=start + timedelta(hours=1), settings=settings)
        session.commit()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        live = settings.model_copy(update={"scheduler_interval_seconds": 0.05, "probe_interval_seconds": 0.05,
                                           "probe_port": listener.getsockname()[1]})
        with TestClient(create_app(live, engine=engine)):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with make_session(engine, write=False) as session:
                    kinds = [m[2].get("kind") for m in _notices(session)]
                    status = session.get(Endpoint, ep.id).status
                if kinds and status is EndpointStatus.online:
                    break
                time.sleep(0.05)
    assert (kinds, status) == (["technical_check"], EndpointStatus.online)
