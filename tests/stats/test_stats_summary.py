"""The usage summary (``stats.summary``) on SQLite and PostgreSQL: stored days give exactly the live
statements' figures, every kind of change marks its days so they are computed again, and a store
racing a change never keeps a stale day.

Scenario: ``stats_scenario`` (31/10–02/11/2026, +07:00). At its ``NOW`` (03/11 12:00) with the default
longest booking window (12 h + 4 h + teardown), 31/10 and 01/11 are settled, 02/11 is not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from confsvc.calls.models import CallRecord
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, EndpointStatus, EndpointStatusChange, UnitLevel
from confsvc.scheduling.models import MeetingParticipant, Occurrence, OccurrenceStatus, ReadinessState, SiteReadiness
from confsvc.stats import buckets, summary, summary_job, usage, usage_queries
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users import service as users
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import bearer, make_user

OCT31, NOV1, NOV2 = date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)
#: The reports' first day: 03/10 → 01/11 are 30 settled days, so a report fills them itself
#: (at most ``summary_job.SUMMARY_CHUNK_DAYS``, 31).
FIRST = date(2026, 10, 3)


def _report(session: Session, settings: Settings, **kw):
    principal = users.principal_for(session, make_user(session, Role.admin))
    values = {"group_by": GroupBy.unit, "period": Period.day, "from_date": FIRST,
              "to_date": date(2026, 12, 1), "now": sc.NOW, **kw}
    return usage.usage_report(session, settings, principal, **values)


def _live(session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch, **kw):
    """The same report from the live statements only (the summary path switched off)."""
    with monkeypatch.context() as m:
        m.setattr(usage, "summary_total", lambda *args: None)
        return _report(session, settings, **kw)


def _stored_days(session: Session) -> set[date]:
    return set(session.exec(select(summary.UsageDayState.day)).all())


def _row(session: Session, day: date, unit_id: int) -> dict[str, int]:
    row = session.get(summary.UsageDay, (day, unit_id))
    return {name: getattr(row, name) for name in summary.FIGURES}


@pytest.mark.parametrize("kw", [
    {},
    {"period": Period.week},
    {"period": Period.month},
    {"period": Period.month, "unit_level": UnitLevel.province},
    {"period": Period.day, "from_date": OCT31, "to_date": date(2026, 11, 3)},
], ids=["day", "week", "month", "month-provinces", "three-days"])
def test_stored_days_give_the_live_figures(session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                           kw: dict):
    sc.build(session, settings)
    first = _report(session, settings, **kw)      # computes settled days and stores them
    second = _report(session, settings, **kw)     # reads them
    assert first == second == _live(session, settings, monkeypatch, **kw)
    start = kw.get("from_date", FIRST)
    assert _stored_days(session) == {date.fromordinal(d) for d in range(start.toordinal(), NOV2.toordinal())}


def test_more_missing_days_than_a_report_fills_are_computed_live(engine: Engine, settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch):
    with make_session(engine) as session:
        sc.build(session, settings)
        session.commit()
    with make_session(engine) as session:  # 01/10 → 01/11: 32 settled days missing
        report = _report(session, settings, period=Period.month, from_date=date(2026, 10, 1))
        assert _stored_days(session) == set()
        assert report == _live(session, settings, monkeypatch, period=Period.month, from_date=date(2026, 10, 1))
        session.commit()
    stored = summary_job.refresh_summary(engine, settings, date(2026, 10, 1), date(2026, 12, 1), now=sc.NOW)
    assert stored == [date.fromordinal(n) for n in range(date(2026, 10, 1).toordinal(), NOV2.toordinal())]
    with make_session(engine) as session:
        assert _report(session, settings, period=Period.month, from_date=date(2026, 10, 1)) == report
        # The background job's tick: the newest missing days first, at most SUMMARY_CHUNK_DAYS of them.
        session.execute(sa.delete(summary.UsageDayState))
        session.commit()
    tick = summary_job.refresh_due(engine, settings.model_copy(update={"stats_summary_days": 40}), now=sc.NOW)
    assert tick == [date.fromordinal(n) for n in range(NOV2.toordinal() - 31, NOV2.toordinal())]


def test_a_unit_subtree_report_totals_are_that_units_rows(session: Session, settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch):
    s = sc.build(session, settings)
    _report(session, settings, period=Period.month)
    commune = _report(session, settings, period=Period.month, unit_id=s.commune)
    assert commune == _live(session, settings, monkeypatch, period=Period.month, unit_id=s.commune)
    assert commune["totals"]["connected_hours"] == 2.33  # E2: 80 min + 60 min


def test_stored_rows_hold_the_hand_computed_day(session: Session, settings: Settings):
    s = sc.build(session, settings)
    _report(session, settings, from_date=OCT31, to_date=NOV1)
    # 31/10 (Saturday): M1 22:00 → 24:00 of its 22:00 → 01:00; E1 21:30 → 24:00 (150 min), E2 22:10 → 23:00
    # and 23:30 → 24:00 (80 min), its first connection after 22:05 (late).
    province = {"meetings": 1, "cancelled": 0, "booked_s": 7200, "sites_invited": 2, "sites_connected": 2,
                "late_joins": 1, "faults": 0, "connected_s": 13800, "busy_s": 0}
    assert _row(session, OCT31, s.province) == province
    assert _row(session, OCT31, summary.TOTAL_KEY) == province
    assert _row(session, OCT31, s.commune) == {**province, "sites_invited": 1, "sites_connected": 1,
                                               "connected_s": 4800}
    assert _stored_days(session) == {OCT31}


def test_a_stored_row_is_what_the_report_reads_until_a_change_marks_its_day(session: Session, settings: Settings,
                                                                           monkeypatch: pytest.MonkeyPatch):
    s = sc.build(session, settings)
    _report(session, settings)
    # Tamper with the stored row behind the summary's back (usage_days is not a watched table).
    session.execute(sa.update(summary.UsageDay).where(summary.UsageDay.day == OCT31,
                                                      summary.UsageDay.unit_id == s.commune)
                    .values(connected_s=36000))
    row = {r["group"]["id"]: r for r in _report(session, settings)["rows"] if r["period_start"] == OCT31}
    assert row[s.commune]["connected_hours"] == 10.0
    # E2's first period now ends at 23:10 instead of 23:00: a call-record change on 31/10.
    record = session.exec(select(CallRecord).where(CallRecord.endpoint_id == s.e2)
                          .order_by(CallRecord.connected_at)).first()
    record.disconnected_at = sc.local(31, 23, 10, month=10)
    session.flush()
    assert session.exec(select(summary.UsageDirty.first_day).where(summary.UsageDirty.first_day <= OCT31,
                                                                   summary.UsageDirty.last_day >= OCT31)).first()
    report = _report(session, settings)
    row = {r["group"]["id"]: r for r in report["rows"] if r["period_start"] == OCT31}
    assert row[s.commune]["connected_hours"] == 1.5  # 60 + 30 min
    assert report == _live(session, settings, monkeypatch)
    assert session.exec(select(summary.UsageDirty.id).where(summary.UsageDirty.first_day <= NOV1)).all() == []


def _cancel_m1(session: Session, s: sc.Scenario) -> None:
    session.get(Occurrence, s.o1).status = OccurrenceStatus.cancelled


def _move_e2_to_the_province_room(session: Session, s: sc.Scenario) -> None:
    session.get(Endpoint, s.e2).room_id = s.r1


def _backdated_fault(session: Session, s: sc.Scenario) -> None:
    session.add(EndpointStatusChange(endpoint_id=s.e2, status=EndpointStatus.fault, previous=EndpointStatus.online,
                                     at=sc.local(31, 22, 30, month=10), source="user"))


def _readiness_problem(session: Session, s: sc.Scenario) -> None:
    session.add(SiteReadiness(occurrence_id=s.o1, room_id=s.r2, state=ReadinessState.problem, note="Mất tiếng"))


def _participants_replaced_in_bulk(session: Session, s: sc.Scenario) -> None:
    session.execute(sa.delete(MeetingParticipant).where(MeetingParticipant.meeting_id == s.m1,
                                                        MeetingParticipant.endpoint_id == s.e2))


def _occurrences_updated_in_bulk(session: Session, s: sc.Scenario) -> None:
    session.execute(sa.update(Occurrence).where(Occurrence.id == s.o1).values(status=OccurrenceStatus.cancelled))


@pytest.mark.parametrize("change", [_cancel_m1, _move_e2_to_the_province_room, _backdated_fault, _readiness_problem,
                                    _participants_replaced_in_bulk, _occurrences_updated_in_bulk],
                         ids=lambda f: f.__name__.strip("_"))
def test_every_kind_of_change_is_seen(session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                      change: Callable[[Session, sc.Scenario], None]):
    s = sc.build(session, settings)
    before = _report(session, settings, period=Period.month)
    change(session, s)
    session.flush()
    after = _report(session, settings, period=Period.month)
    assert after != before
    assert after == _live(session, settings, monkeypatch, period=Period.month)


def test_settings_that_shape_figures_invalidate_stored_days(session: Session, settings: Settings,
                                                           monkeypatch: pytest.MonkeyPatch):
    s = sc.build(session, settings)
    assert _report(session, settings, period=Period.month)["totals"]["late_joins"] == 1
    tolerant = settings.model_copy(update={"late_join_minutes": 30})
    assert summary.fingerprint(tolerant) != summary.fingerprint(settings)
    report = _report(session, tolerant, period=Period.month)
    assert report["totals"]["late_joins"] == 0  # E2 joined 10 min after the start
    assert report == _live(session, tolerant, monkeypatch, period=Period.month)
    assert {r["group"]["id"] for r in report["rows"]} == {s.province, s.commune}


def test_a_change_committed_while_a_day_is_computed_keeps_it_unstored(engine: Engine, settings: Settings):
    with make_session(engine) as session:
        s = sc.build(session, settings)
        session.commit()
    reader = make_session(engine, write=False)
    try:
        snapshot = summary.fresh_days(reader, settings, OCT31, NOV1)
        assert snapshot.fresh == frozenset()
        figures = summary_job.compute_days(reader, settings, usage_queries.Scope(None, None), [OCT31], sc.NOW,
                                     usage_queries.faults_condition(reader))
        with make_session(engine) as writer:  # meanwhile: E2's late join is corrected
            record = writer.exec(select(CallRecord).where(CallRecord.endpoint_id == s.e2)
                                 .order_by(CallRecord.connected_at)).first()
            record.connected_at = sc.local(31, 22, 0, month=10)
            writer.commit()
        summary.store_days(reader, settings, snapshot, figures, now=sc.NOW)
    finally:
        reader.close()
    with make_session(engine) as session:
        assert _stored_days(session) == {OCT31}  # stored, but its mark survives: not fresh
        assert summary.fresh_days(session, settings, OCT31, NOV1).fresh == frozenset()
        report = _report(session, settings, from_date=OCT31, to_date=NOV1)
        assert report["totals"]["late_joins"] == 0
        session.commit()
    with make_session(engine, write=False) as session:
        assert summary.fresh_days(session, settings, OCT31, NOV1).fresh == {OCT31}


def test_the_api_reads_stored_days_and_sees_a_manual_attendance_mark(client: TestClient, engine: Engine,
                                                                      settings: Settings):
    with make_session(engine) as session:
        s = sc.build(session, settings)
        headers = bearer(session, make_user(session, Role.admin))
        session.commit()
    query = f"/api/v1/stats/usage?group_by=unit&period=month&from=2026-10-16&to=2026-11-16&unit_id={s.province}"
    first = client.get(query, headers=headers).json()
    with make_session(engine, write=False) as session:
        assert len(_stored_days(session)) == 31  # every day of the period is settled on the real clock
    assert client.get(query, headers=headers).json() == first
    november = {r["group"]["id"]: r for r in first["rows"] if r["period_start"] == "2026-11-01"}
    assert november[s.province]["connected_hours"] == 1.5
    mark = {"endpoint_id": s.e1, "connected_from": "2026-11-02T08:00:00+07:00",
            "connected_to": "2026-11-02T09:30:00+07:00"}
    r = client.post(f"/api/v1/meetings/{s.m3}/occurrences/{s.o3}/attendance", json=mark, headers=headers)
    assert r.status_code == 200, r.text
    again = client.get(query, headers=headers).json()
    november = {r["group"]["id"]: r for r in again["rows"] if r["period_start"] == "2026-11-01"}
    assert november[s.province]["connected_hours"] == 3.0
    assert november[s.province]["sites_connected"] == 1
    assert again["totals"]["connected_hours"] == first["totals"]["connected_hours"] + 1.5


def test_cli_stats_refresh_fills_the_settled_days(engine: Engine, settings: Settings, db_url: str, tmp_path):
    from tests.core.test_demo import _cli

    with make_session(engine) as session:
        sc.build(session, settings)
        session.commit()
    env = {"CONFSVC_DATABASE_URL": db_url}
    done = _cli(["stats", "refresh", "--from", "2026-10-01", "--to", "2026-11-16"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("46 days computed and stored in ")
    with make_session(engine, write=False) as session:
        fresh = summary.fresh_days(session, settings, date(2026, 10, 1), date(2026, 11, 16)).fresh
        assert len(fresh) == 46
        assert session.get(summary.UsageDay, (OCT31, summary.TOTAL_KEY)).connected_s == 13800
    again = _cli(["stats", "refresh", "--from", "2026-10-01", "--to", "2026-11-16"], tmp_path, **env)
    assert again.stdout.startswith("0 days computed and stored in ")
    bad = _cli(["stats", "refresh", "--from", "2026-11-16", "--to", "2026-10-01"], tmp_path, **env)
    assert (bad.returncode, bad.stderr.strip()) == (
        1, "error (empty_period): `to` must be after `from` (the period is [from, to), local dates)")


def test_running_app_fills_the_summary_on_the_scheduler_cadence(engine: Engine, settings: Settings):
    import time

    from confsvc.clock import utc_now
    from confsvc.main import create_app

    with make_session(engine) as session:
        sc.build(session, settings)
        session.commit()
    fast = settings.model_copy(update={"scheduler_interval_seconds": 0.05, "stats_summary_days": 40})
    now = utc_now()
    today = now.astimezone(settings.zone).date()
    settled = summary.settled_before(settings, now)
    expected = {date.fromordinal(n) for n in range(today.toordinal() - 40, today.toordinal())
                if buckets.midnight_utc(date.fromordinal(n + 1), settings.zone) <= settled}
    assert len(expected) > summary_job.SUMMARY_CHUNK_DAYS  # two ticks at least
    with TestClient(create_app(fast, engine=engine)):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with make_session(engine, write=False) as session:
                if _stored_days(session) == expected:
                    break
            time.sleep(0.05)
    with make_session(engine, write=False) as session:
        assert _stored_days(session) == expected
        assert session.get(summary.UsageDay, (OCT31, summary.TOTAL_KEY)).connected_s == 13800


def _by_group(report: dict, day: date) -> dict[int, tuple]:
    return {r["group"]["id"]: (r["sites_invited"], r["sites_connected"], r["connected_hours"])
            for r in report["rows"] if r["period_start"] == day}


def test_a_check_lead_connection_before_midnight_counts_in_its_day_however_the_days_are_computed(
        session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch):
    from confsvc.calls import intake as calls
    from confsvc.calls.schemas import CallEventCreate
    from confsvc.endpoints.models import Room
    from tests.factories import make_meeting

    s = sc.build(session, settings)
    admin = make_user(session, Role.admin)
    # 02/11 00:30 → 01:30 in the commune's room, check lead 60: E2 connects at 23:40 on 01/11.
    make_meeting(session, chair_room=session.get(Room, s.r2), start=sc.local(2, 0, 30), end=sc.local(2, 1, 30),
                 user=admin, settings=settings, title="Họp sau nửa đêm")
    principal = users.principal_for(session, admin)
    for event, at in (("connected", sc.local(1, 23, 40)), ("disconnected", sc.local(2, 1, 0))):
        calls.report_call(session, settings, principal,
                          CallEventCreate(endpoint_id=s.e2, event=event, at=at, source="bridge"), now=sc.NOW)
    session.flush()
    _report(session, settings, from_date=NOV1, to_date=NOV2)  # stores 01/11 computed on its own
    assert _stored_days(session) == {NOV1}
    # E2 on 01/11: M1's 00:00 → 01:00 and the check from 23:40: 80 min. Invited: M1 started on 31/10.
    rooms = _report(session, settings, group_by=GroupBy.room, from_date=OCT31, to_date=date(2026, 11, 3))
    assert _by_group(rooms, NOV1)[s.r2] == (0, 0, 1.33)
    units = _report(session, settings, from_date=OCT31, to_date=date(2026, 11, 3))
    assert _by_group(units, NOV1)[s.commune] == (0, 0, 1.33)
    assert units == _live(session, settings, monkeypatch, from_date=OCT31, to_date=date(2026, 11, 3))


def test_records_left_outside_a_moved_occurrences_window_count_nowhere(session: Session, settings: Settings,
                                                                      monkeypatch: pytest.MonkeyPatch):
    s = sc.build(session, settings)
    _report(session, settings)  # 31/10 and 01/11 stored with M1's calls
    occurrence = session.get(Occurrence, s.o1)
    occurrence.start, occurrence.end = sc.local(2, 18), sc.local(2, 19)  # M1 moved after the fact
    session.flush()
    for first, after in ((OCT31, NOV1), (OCT31, date(2026, 11, 3)), (FIRST, date(2026, 12, 1))):
        units = _report(session, settings, from_date=first, to_date=after)
        rooms = _report(session, settings, group_by=GroupBy.room, from_date=first, to_date=after)
        assert units == _live(session, settings, monkeypatch, from_date=first, to_date=after)
        assert _by_group(units, OCT31) == _by_group(rooms, OCT31) == {}
    # 02/11: M1 (both sites, no record in its new window 17:00 → 19:00) and M3 (the province's room).
    assert _by_group(units, NOV2) == {s.province: (3, 0, 0.0), s.commune: (1, 0, 0.0)}
