"""Faults in usage statistics from real rows: ``endpoint_status_history`` written by the endpoint-status
service and readiness ``problem`` written by the readiness service, on SQLite and PostgreSQL.

Scenario (``stats_scenario``, local time +07:00): M1 31/10 22:00 → 01/11 01:00, check lead 60 min, so its
window is [31/10 21:00, 01/11 01:00), sites E1 (room R1, province) and E2 (room R2, commune); M3 02/11
08:00 → 10:00, window [07:00, 10:00), site E1; M2 (01/11) is cancelled.

Status history (changes, in time order):

=====  ==============  ========  ===========================================================
 end    at (local)     status    effect
=====  ==============  ========  ===========================================================
 E1     31/10 12:00    fault     recovered before M1's window opens: no fault for (M1, E1)
 E1     31/10 20:30    online
 E2     31/10 21:00    fault     exactly at M1's window start ([start − lead, …)): (M1, E2) faulty
 E2     31/10 21:40    online
 E1     01/11 01:00    fault     exactly at M1's end (half-open): not M1's; still in fault when
                                 M3's window opens at 02/11 07:00: (M3, E1) faulty
 E1     02/11 07:30    online
 E1     02/11 08:30    fault     during M3 too: the site still counts once
 E2     02/11 08:00    fault     E2 is not a site of M3: nothing
=====  ==============  ========  ===========================================================

Readiness: R2 ``problem`` for M1 (E2 already faulty: still one), R1 ``problem`` for M3 (one).
Hand-computed: (M1, E1) 0, (M1, E2) 1, (M3, E1) 1.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session

from confsvc.config import Settings
from confsvc.endpoints import status as endpoint_status
from confsvc.endpoints.models import Endpoint, EndpointStatus, Room, UnitLevel
from confsvc.errors import Invalid
from confsvc.scheduling import readiness
from confsvc.scheduling.models import Meeting, Occurrence, ReadinessState
from confsvc.stats import usage
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users import service as users
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import make_user

F, O = EndpointStatus.fault, EndpointStatus.online  # noqa: E741 (F and O read as the figures in the tables)


def _faulty(session: Session, settings: Settings) -> sc.Scenario:
    s = sc.build(session, settings)
    changes = [(s.e1, sc.local(31, 12, 0, month=10), F), (s.e1, sc.local(31, 20, 30, month=10), O),
               (s.e2, sc.local(31, 21, 0, month=10), F), (s.e2, sc.local(31, 21, 40, month=10), O),
               (s.e1, sc.local(1, 1, 0), F), (s.e1, sc.local(2, 7, 30), O), (s.e1, sc.local(2, 8, 30), F),
               (s.e2, sc.local(2, 8, 0), F)]
    for endpoint_id, at, status in changes:
        endpoint = session.get(Endpoint, endpoint_id)
        result = endpoint_status.apply_status(session, endpoint, session.get(Room, endpoint.room_id), status, at=at,
                                              source="agent", now=at)
        assert result.changed and not result.stale
    admin = users.principal_for(session, make_user(session, Role.admin))
    for meeting_id, occurrence_id, room_id, at in ((s.m1, s.o1, s.r2, sc.local(31, 21, 5, month=10)),
                                                    (s.m3, s.o3, s.r1, sc.local(2, 7, 10))):
        readiness.set_readiness(session, settings, admin, session.get(Meeting, meeting_id),
                                session.get(Occurrence, occurrence_id), room_id, ReadinessState.problem,
                                "Không có tiếng từ điểm cầu chủ trì", now=at)
    session.flush()
    return s


def _report(session: Session, settings: Settings, group_by: GroupBy, period: Period, first: date, after: date,
            **kw):
    principal = users.principal_for(session, make_user(session, Role.admin))
    return usage.usage_report(session, settings, principal, group_by=group_by, period=period, from_date=first,
                              to_date=after, now=sc.NOW, **kw)


def _faults(report) -> dict[tuple[int, str], int]:
    return {(r["group"]["id"], r["period_start"].isoformat()): r["faults"] for r in report["rows"]}


def test_fault_rows_and_readiness_problems_count_each_site_once(session: Session, settings: Settings):
    s = _faulty(session, settings)
    by_endpoint = _report(session, settings, GroupBy.endpoint, Period.day, date(2026, 10, 31), date(2026, 11, 3))
    assert _faults(by_endpoint) == {(s.e1, "2026-10-31"): 0, (s.e1, "2026-11-01"): 0, (s.e1, "2026-11-02"): 1,
                                    (s.e2, "2026-10-31"): 1, (s.e2, "2026-11-01"): 0}
    assert by_endpoint["totals"]["faults"] == 2
    by_room = _report(session, settings, GroupBy.room, Period.day, date(2026, 10, 31), date(2026, 11, 3))
    assert _faults(by_room) == {(s.r1, "2026-10-31"): 0, (s.r1, "2026-11-01"): 0, (s.r1, "2026-11-02"): 1,
                                (s.r2, "2026-10-31"): 1, (s.r2, "2026-11-01"): 0}
    by_unit = _report(session, settings, GroupBy.unit, Period.month, date(2026, 10, 1), date(2026, 12, 1))
    assert _faults(by_unit) == {(s.commune, "2026-10-01"): 1, (s.commune, "2026-11-01"): 0,
                                (s.province, "2026-10-01"): 1, (s.province, "2026-11-01"): 1}
    assert by_unit["notes"] == []
    bridge = _report(session, settings, GroupBy.bridge, Period.month, date(2026, 10, 1), date(2026, 12, 1))
    assert _faults(bridge) == {(s.bridge, "2026-10-01"): 1, (s.bridge, "2026-11-01"): 1}


def test_without_faults_every_site_counts_zero(session: Session, settings: Settings):
    s = sc.build(session, settings)
    report = _report(session, settings, GroupBy.room, Period.day, date(2026, 10, 31), date(2026, 11, 3))
    assert set(_faults(report).values()) == {0} and report["totals"]["faults"] == 0
    assert len(report["rows"]) == 5 and {r["group"]["id"] for r in report["rows"]} == {s.r1, s.r2}


def test_unit_level_keeps_one_row_per_province(session: Session, settings: Settings):
    s = _faulty(session, settings)
    figures = ("meetings", "cancelled", "booked_hours", "connected_hours", "sites_invited", "sites_connected",
               "faults")
    provinces = _report(session, settings, GroupBy.unit, Period.month, date(2026, 10, 1), date(2026, 12, 1),
                        unit_level=UnitLevel.province)
    assert {(r["group"]["id"], r["period_start"].isoformat()): tuple(r[f] for f in figures)
            for r in provinces["rows"]} == {(s.province, "2026-10-01"): (1, 0, 2.0, 3.83, 2, 2, 1),
                                            (s.province, "2026-11-01"): (1, 1, 3.0, 1.5, 1, 0, 1)}
    everything = _report(session, settings, GroupBy.unit, Period.month, date(2026, 10, 1), date(2026, 12, 1))
    assert provinces["totals"] == everything["totals"]
    communes = _report(session, settings, GroupBy.unit, Period.month, date(2026, 10, 1), date(2026, 12, 1),
                       unit_level=UnitLevel.commune)
    assert {r["group"]["id"] for r in communes["rows"]} == {s.commune}
    with pytest.raises(Invalid) as caught:
        _report(session, settings, GroupBy.room, Period.month, date(2026, 10, 1), date(2026, 12, 1),
                unit_level=UnitLevel.province)
    assert caught.value.code == "unit_level_needs_unit_grouping"
