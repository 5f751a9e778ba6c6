"""Usage statistics on SQLite and PostgreSQL, against the hand-computed scenario in ``stats_scenario``.

Hours: E1 21:30 → 00:30 is 2 h 30 before midnight and 0 h 30 after; E2 22:10 → 23:00 and 23:30 → 01:00 is
50 + 30 = 80 min (1.33 h) before midnight and 1 h after. M1 books 22:00 → 01:00: 2 h on 31/10, 1 h on 01/11.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session

from confsvc.config import Settings
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.stats import buckets, usage
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users import service as users
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import make_user

FIGURES = ("meetings", "cancelled", "booked_hours", "connected_hours", "sites_invited", "sites_connected",
           "attendance_rate", "late_joins", "room_utilisation")


def _report(session: Session, settings: Settings, group_by: GroupBy, period: Period = Period.day,
            first: date = date(2026, 10, 31), after: date = date(2026, 11, 3), role: Role = Role.admin,
            units=None, **kw):
    principal = users.principal_for(session, make_user(session, role, units=units))
    return usage.usage_report(session, settings, principal, group_by=group_by, period=period, from_date=first,
                              to_date=after, now=sc.NOW, **kw)


def _table(report, figures=FIGURES):
    return {(r["group"]["id"], r["period_start"].isoformat()): tuple(r[f] for f in figures) for r in report["rows"]}


def test_call_spanning_midnight_is_split_across_days_and_months(session: Session, settings: Settings):
    s = sc.build(session, settings)
    by_day = _table(_report(session, settings, GroupBy.endpoint), ("booked_hours", "connected_hours"))
    assert by_day[(s.e1, "2026-10-31")] == (2.0, 2.5)
    assert by_day[(s.e1, "2026-11-01")] == (1.0, 0.5)
    assert by_day[(s.e2, "2026-10-31")] == (2.0, 1.33)
    assert by_day[(s.e2, "2026-11-01")] == (1.0, 1.0)
    by_month = _table(_report(session, settings, GroupBy.endpoint, Period.month), ("booked_hours", "connected_hours"))
    assert by_month == {(s.e1, "2026-10-31"): (2.0, 2.5), (s.e1, "2026-11-01"): (3.0, 0.5),
                        (s.e2, "2026-10-31"): (2.0, 1.33), (s.e2, "2026-11-01"): (1.0, 1.0)}


def test_room_figures_by_day(session: Session, settings: Settings):
    s = sc.build(session, settings)
    report = _report(session, settings, GroupBy.room)
    # meetings, cancelled, booked, connected, invited, connected sites, rate, late, utilisation
    assert _table(report) == {
        (s.r1, "2026-10-31"): (1, 0, 2.0, 2.5, 1, 1, 1.0, 0, None),      # Saturday: no working hours
        (s.r1, "2026-11-01"): (0, 1, 1.0, 0.5, 0, 0, None, 0, None),     # M2 cancelled, M1's last hour
        (s.r1, "2026-11-02"): (1, 0, 2.0, 0.0, 1, 0, 0.0, 0, 0.2105),    # 2 h of 07:30–17:00 (9.5 h)
        (s.r2, "2026-10-31"): (1, 0, 2.0, 1.33, 1, 1, 1.0, 1, None),     # first connect 22:10 > 22:05
        (s.r2, "2026-11-01"): (0, 0, 1.0, 1.0, 0, 0, None, 0, None),
    }
    assert [r["group"]["name"] for r in report["rows"]][:1] == ["Phòng họp tỉnh"]
    assert report["totals"] == {
        "meetings": 2, "cancelled": 1, "booked_hours": 5.0, "connected_hours": 5.33, "sites_invited": 3,
        "sites_connected": 2, "attendance_rate": 0.6667, "late_joins": 1, "faults": 0,
        "room_utilisation": 0.1053, "port_peak": None, "port_hours": None, "port_utilisation": None}


def test_cancelled_occurrence_counted_apart_not_in_booked_hours(session: Session, settings: Settings):
    s = sc.build(session, settings, with_calls=False)
    only_sunday = _report(session, settings, GroupBy.room, first=date(2026, 11, 1), after=date(2026, 11, 2))
    # M2 (09:00–11:00, cancelled) adds nothing to booked hours; the 1 h is M1's 00:00–01:00.
    assert _table(only_sunday, ("meetings", "cancelled", "booked_hours"))[(s.r1, "2026-11-01")] == (0, 1, 1.0)


def test_sub_unit_rolls_up_into_its_province(session: Session, settings: Settings):
    s = sc.build(session, settings)
    table = _table(_report(session, settings, GroupBy.unit, Period.month, first=date(2026, 10, 1),
                           after=date(2026, 12, 1)))
    assert table == {
        (s.commune, "2026-10-01"): (1, 0, 2.0, 1.33, 1, 1, 1.0, 1, 0.0),
        (s.commune, "2026-11-01"): (0, 0, 1.0, 1.0, 0, 0, None, 0, 0.0),
        # The province has its own room and the commune's: M1 counted once, both sites, both calls.
        (s.province, "2026-10-01"): (1, 0, 2.0, 3.83, 2, 2, 1.0, 1, 0.0),
        # November: M3's 2 h over 2 rooms × 21 working days × 9.5 h = 399 h.
        (s.province, "2026-11-01"): (1, 1, 3.0, 1.5, 1, 0, 0.0, 0, 0.005),
    }
    commune_only = _report(session, settings, GroupBy.unit, Period.month, first=date(2026, 10, 1),
                           after=date(2026, 12, 1), unit_id=s.commune)
    assert {r["group"]["id"] for r in commune_only["rows"]} == {s.commune}
    assert commune_only["totals"]["connected_hours"] == 2.33


def test_bridge_port_peak_and_utilisation(session: Session, settings: Settings):
    s = sc.build(session, settings)
    table = _table(_report(session, settings, GroupBy.bridge),
                   ("meetings", "cancelled", "port_peak", "port_hours", "port_utilisation"))
    # M1: 2 ports over 21:00 → 01:00 (check lead included); M3: 1 port over 07:00 → 10:00. Capacity 10.
    assert table == {(s.bridge, "2026-10-31"): (1, 0, 2, 6.0, 0.025),
                     (s.bridge, "2026-11-01"): (0, 1, 2, 2.0, 0.0083),
                     (s.bridge, "2026-11-02"): (1, 0, 1, 3.0, 0.0125)}


def test_operator_sees_only_their_units(session: Session, settings: Settings):
    s = sc.build(session, settings)
    from confsvc.endpoints.models import Unit

    commune = session.get(Unit, s.commune)
    report = _report(session, settings, GroupBy.unit, role=Role.operator, units=[commune])
    assert {r["group"]["id"] for r in report["rows"]} == {s.commune}
    assert report["totals"]["connected_hours"] == 2.33
    with pytest.raises(Forbidden):
        _report(session, settings, GroupBy.unit, role=Role.operator, units=[commune], unit_id=s.province)
    with pytest.raises(Forbidden):
        _report(session, settings, GroupBy.bridge, role=Role.operator, units=[commune])


def test_unknown_bridge_is_not_found_in_a_deployment_without_provinces(session: Session, settings: Settings):
    # A province scope check (issue 14) let an unknown bridge id through where no scope applies.
    sc.build(session, settings)
    with pytest.raises(NotFound) as caught:
        _report(session, settings, GroupBy.bridge, bridge_id=999999)
    assert caught.value.code == "bridge_not_found"


@pytest.mark.parametrize(("first", "after", "period", "code"), [
    (date(2026, 11, 2), date(2026, 11, 2), Period.day, "empty_period"),
    (date(2016, 1, 1), date(2026, 11, 2), Period.month, "period_too_long"),
    (date(2024, 1, 1), date(2026, 11, 2), Period.day, "too_many_buckets"),
])
def test_bad_periods(session: Session, settings: Settings, first, after, period, code):
    with pytest.raises(Invalid) as caught:
        _report(session, settings, GroupBy.room, period, first=first, after=after)
    assert caught.value.code == code


@pytest.mark.pure
def test_buckets_follow_the_zone_and_clip_to_the_period():
    from zoneinfo import ZoneInfo

    weeks = buckets.make_buckets(date(2026, 10, 28), date(2026, 11, 10), Period.week, ZoneInfo("Asia/Ho_Chi_Minh"))
    assert [(b.first.isoformat(), b.after.isoformat(), b.start.isoformat()) for b in weeks] == [
        ("2026-10-28", "2026-11-02", "2026-10-27T17:00:00+00:00"),
        ("2026-11-02", "2026-11-09", "2026-11-01T17:00:00+00:00"),
        ("2026-11-09", "2026-11-10", "2026-11-08T17:00:00+00:00")]
    # A zone with DST: the day the clocks go back lasts 25 hours.
    paris = buckets.make_buckets(date(2026, 10, 25), date(2026, 10, 26), Period.day, ZoneInfo("Europe/Paris"))
    assert (paris[0].end - paris[0].start).total_seconds() == 25 * 3600


def test_future_occurrence_is_not_counted_as_zero_percent_attendance(session: Session, settings: Settings):
    """Issue 13: a booking after the report's now showed as 0 % attendance; it has no attendance yet."""
    s = sc.build(session, settings)
    principal = users.principal_for(session, make_user(session, Role.admin))
    before_m3 = sc.local(2, 7)  # Monday 02/11 07:00, M3 starts at 08:00
    report = usage.usage_report(session, settings, principal, group_by=GroupBy.room, period=Period.day,
                                from_date=date(2026, 10, 31), to_date=date(2026, 11, 3), now=before_m3)
    table = _table(report, ("meetings", "booked_hours", "sites_invited", "sites_connected", "attendance_rate"))
    assert table[(s.r1, "2026-11-02")] == (1, 2.0, 0, 0, None)   # booked, but not yet a rate
    assert table[(s.r1, "2026-10-31")] == (1, 2.0, 1, 1, 1.0)
    totals = report["totals"]
    assert (totals["sites_invited"], totals["sites_connected"], totals["attendance_rate"]) == (2, 2, 1.0)
