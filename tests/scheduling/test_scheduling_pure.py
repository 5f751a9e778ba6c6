"""Pure scheduling arithmetic: windows, peak ports, recurrence in a local zone."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from confsvc.scheduling import recurrence
from confsvc.scheduling.conflicts import Window, booking_window, merge, peak_ports, port_overloads

pytestmark = pytest.mark.pure
T0 = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)
M = timedelta(minutes=1)
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def w(a: int, b: int) -> Window:
    return Window(T0 + a * M, T0 + b * M)


@pytest.mark.parametrize(("a", "b", "overlap"), [
    (w(0, 60), w(60, 120), False), (w(0, 60), w(59, 120), True), (w(0, 60), w(-60, 0), False),
    (w(0, 60), w(10, 20), True)])
def test_half_open_overlap(a, b, overlap):
    assert a.overlaps(b) is overlap and b.overlaps(a) is overlap


def test_booking_window_includes_lead_and_teardown():
    assert booking_window(T0, T0 + 60 * M, check_lead_minutes=60, teardown_minutes=15) == w(-60, 75)


@pytest.mark.parametrize(("uses", "peak"), [
    ([], 0), ([(w(0, 60), 2), (w(60, 120), 2)], 2), ([(w(0, 60), 2), (w(30, 90), 1)], 3),
    ([(w(0, 60), 2), (w(100, 160), 2), (w(50, 110), 1)], 3), ([(w(-100, -10), 5)], 0)])
def test_peak_ports_is_a_sweep_not_a_count(uses, peak):
    assert peak_ports(w(0, 120), uses) == peak


def test_merge_keeps_touching_windows_apart():
    assert merge([w(0, 10), w(5, 20), w(20, 30)]) == [w(0, 20), w(20, 30)]


def test_weekly_rule_uses_local_weekdays_and_exdates():
    start = datetime(2027, 2, 28, 23, 0, tzinfo=UTC)  # Monday 06:00 in Hà Nội
    starts = recurrence.expand("FREQ=WEEKLY;BYDAY=MO;COUNT=3", start, VN, until_utc=start + timedelta(days=60),
                               exdates_utc=frozenset({start + timedelta(weeks=1)}))
    assert starts == [start, start + timedelta(weeks=2)]


def test_until_in_utc_and_horizon_cut():
    start = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)
    assert len(recurrence.expand("RRULE:FREQ=DAILY;UNTIL=20270305T000000Z", start, VN,
                                 until_utc=start + timedelta(days=30))) == 4
    assert len(recurrence.expand("FREQ=DAILY", start, VN, until_utc=start + timedelta(days=10))) == 10
    assert recurrence.parse("FREQ=DAILY", start, VN).open_ended is True


@pytest.mark.parametrize("text", ["", "FREQ=SOMETIMES", "DTSTART:20270101T000000\nRRULE:FREQ=DAILY"])
def test_bad_rules_are_refused(text):
    with pytest.raises(recurrence.RecurrenceError):
        recurrence.expand(text, T0, VN, until_utc=T0 + timedelta(days=1))


def test_endpoints_never_import_scheduling():
    root = Path(__file__).resolve().parents[2] / "confsvc" / "endpoints"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("confsvc.scheduling"), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("confsvc.scheduling") for a in node.names), path


# ---------------------------------------------------------------- where ports run out (issue 12 defect 5)

#: Issue 12's example in minutes from 08:00, lead 15 included: M1, M2 07:45–12:00, M3 07:45–09:00,
#: M4 08:45–10:00, one port each, on a 4-port bridge; N asks 08:15–09:30 for one port.
ISSUE_USES = [(w(-15, 240), 1, "M1"), (w(-15, 240), 1, "M2"), (w(-15, 60), 1, "M3"), (w(45, 120), 1, "M4")]


@pytest.mark.parametrize(("window", "uses", "requested", "capacity", "expected"), [
    pytest.param(w(15, 90), ISSUE_USES, 1, 4, [(w(45, 60), 4, ("M1", "M2", "M3", "M4"))], id="issue-12-example"),
    pytest.param(w(15, 90), ISSUE_USES, 1, 5, [], id="fits-at-peak"),
    pytest.param(w(15, 90), ISSUE_USES, 2, 4,
                 [(w(15, 45), 3, ("M1", "M2", "M3")), (w(45, 60), 4, ("M1", "M2", "M3", "M4")),
                  (w(60, 90), 3, ("M1", "M2", "M4"))], id="holders-change-per-interval"),
    pytest.param(w(0, 60), [(w(0, 30), 2, "A"), (w(30, 60), 2, "B")], 1, 2,
                 [(w(0, 30), 2, ("A",)), (w(30, 60), 2, ("B",))], id="back-to-back-never-summed"),
    pytest.param(w(0, 60), [(w(0, 60), 1, "A"), (w(0, 30), 1, "B"), (w(30, 60), 1, "B")], 1, 2,
                 [(w(0, 60), 2, ("A", "B"))], id="same-load-same-holders-merge"),
    pytest.param(w(0, 60), [], 5, 4, [(w(0, 60), 0, ())], id="request-alone-exceeds"),
    pytest.param(w(0, 60), [(w(60, 90), 4, "A"), (w(-30, 0), 4, "B")], 1, 4, [], id="touching-uses-ignored"),
])
def test_port_overloads(window, uses, requested, capacity, expected):
    got = port_overloads(window, uses, requested=requested, capacity=capacity)
    assert [(o.window, o.in_use, o.holders) for o in got] == expected
