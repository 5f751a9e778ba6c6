"""Pure scheduling arithmetic: windows, peak ports, recurrence in a local zone."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from confsvc.scheduling import recurrence
from confsvc.scheduling.conflicts import Window, booking_window, merge, peak_ports

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
    root = Path(__file__).parent.parent / "confsvc" / "endpoints"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("confsvc.scheduling"), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("confsvc.scheduling") for a in node.names), path
