"""Recurrence rules over HTTP on both backends (issue 12 defects 3 and 4): a date-only UNTIL keeps its
last local day, what is published is UTC (RFC 5545 §3.3.10) and read the same by icalendar,
recurring-ical-events and Mozilla ical.js; rules past the booking horizon, past year 9999, with parts
the product cannot honour, or malformed, are 422s naming the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine

from confsvc.scheduling import recurrence
from tests.calendar.test_ical_feeds import _feed_url, _setup
from tests.calendar.test_ical_js import _ical_js_installed, needs_ical_js, parse_with_ical_js  # noqa: F401 (fixture)

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _thursday_14h(weeks_ahead: int = 3) -> datetime:
    today = datetime.now(ZONE).date()
    thursday = today + timedelta(days=7 * weeks_ahead + (3 - today.weekday()))
    return datetime(thursday.year, thursday.month, thursday.day, 14, 0, tzinfo=ZONE)


def _weekly_until_date(client: TestClient, ids, h) -> tuple[dict, datetime, datetime]:
    """Weekly Thursdays 14:00–15:00 from ``start``, ``UNTIL=<the 8th Thursday's date>`` (date only)."""
    start = _thursday_14h()
    last = start + timedelta(weeks=7)
    r = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Giao ban thứ Năm", "chair_room_id": ids["room_a"], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "rrule": f"FREQ=WEEKLY;UNTIL={last:%Y%m%d}"})
    assert r.status_code == 201, r.text
    return r.json(), start, last


def test_date_only_until_keeps_the_last_local_day(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, start, last = _weekly_until_date(client, ids, h)
    assert meeting["occurrence_count"] == 8
    # Stored (and answered) in the legal form: UNTIL = 23:59:59 local of that day, in UTC.
    until_utc = datetime.combine(last.date(), datetime.max.time().replace(microsecond=0), ZONE).astimezone(UTC)
    assert meeting["rrule"] == f"FREQ=WEEKLY;UNTIL={until_utc:%Y%m%dT%H%M%SZ}"
    occs = client.get(f"/api/v1/meetings/{meeting['id']}/occurrences", headers=h["secretariat"]).json()
    assert [datetime.fromisoformat(o["start"]) for o in occs] == [
        (start + timedelta(weeks=i)).astimezone(UTC) for i in range(8)]


def test_feed_publishes_until_in_utc_when_dtstart_has_a_tzid(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, start, last = _weekly_until_date(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    body = client.get(url).content
    (line,) = [x for x in body.decode().split("\r\n") if x.startswith("RRULE:")]
    assert line == f"RRULE:{meeting['rrule']}" and line.endswith("T165959Z")
    cal = Calendar.from_ical(body)
    (event,) = [e for e in cal.walk("VEVENT")]
    assert event["RRULE"]["UNTIL"][0] == datetime(last.year, last.month, last.day, 16, 59, 59, tzinfo=UTC)
    seen = recurring_ical_events.of(cal).between(start - timedelta(days=1), start + timedelta(weeks=20))
    assert [e["DTSTART"].dt for e in seen] == [start + timedelta(weeks=i) for i in range(8)]


@needs_ical_js
def test_ical_js_expands_a_date_only_until_to_the_last_day(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    meeting, start, last = _weekly_until_date(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    invite = client.get(f"/api/v1/meetings/{meeting['id']}/invite.ics", headers=h["secretariat"]).content
    for body in (client.get(url).content, invite):
        (event,) = parse_with_ical_js(body)["events"]
        assert event["occurrences"] == [(start + timedelta(weeks=i)).strftime("%Y-%m-%dT%H:%M:%S") for i in range(8)]
        assert event["occurrences"][-1].startswith(last.strftime("%Y-%m-%d"))


@pytest.mark.parametrize(("rrule", "code", "says"), [
    ("FREQ=YEARLY;COUNT=9000", "rrule_too_long", "at most 1000 occurrences"),
    ("FREQ=YEARLY;COUNT=5", "rrule_beyond_horizon", "booking horizon (730 days ahead"),
    ("FREQ=WEEKLY;UNTIL=99991231", "rrule_beyond_horizon", "booking horizon (730 days ahead"),
    ("FREQ=MONTHLY;UNTIL=99991231T235959Z", "rrule_beyond_horizon", "booking horizon (730 days ahead"),
    ("FREQ=HOURLY;COUNT=3", "rrule_unsupported", "FREQ=HOURLY is not supported"),
    ("FREQ=MINUTELY;COUNT=3", "rrule_unsupported", "FREQ=MINUTELY is not supported"),
    ("FREQ=DAILY;BYHOUR=9,14;COUNT=4", "rrule_unsupported", "BYHOUR is not supported"),
    ("FREQ=YEARLY;BYWEEKNO=20;COUNT=2", "rrule_unsupported", "BYWEEKNO is not supported"),
    ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "no_occurrences", "do not exist"),
    ("FREQ=WEEKLY;BYDAY=MO;BYSETPOS=3;COUNT=2", "invalid_rrule", "BYSETPOS must be ±1…1"),
    ("FREQ=WEEKLY;COUNT=3;COUNT=4", "invalid_rrule", "COUNT is given twice"),
    ("FREQ=WEEKLY;COUNT=3;UNTIL=20300101", "invalid_rrule", "COUNT and UNTIL"),
    ("FREQ=WEEKLY;UNTIL=2027-02-25", "invalid_rrule", "not a DATE or DATE-TIME"),
    ("FREQ=WEEKLY;UNTIL=20270230", "invalid_rrule", "not a valid date"),
    ("FREQ=WEEKLY;INTERVAL=0", "invalid_rrule", "INTERVAL must be 1…1000"),
    ("FREQ=WEEKLY;BYDAY=1MO", "invalid_rrule", "needs FREQ=MONTHLY or YEARLY"),
    ("FREQ=WEEKLY;FOO=1", "invalid_rrule", "FOO is not an RRULE part"),
    ("FREQ=WEEKLY;COUNT", "invalid_rrule", "is not NAME=VALUE"),
])
def test_rrule_limits_and_unsupported_parts_are_422(client: TestClient, engine: Engine, rrule: str, code: str,
                                                    says: str):
    ids, h = _setup(engine)
    start = _thursday_14h()
    body = {"title": "Họp", "chair_room_id": ids["room_a"], "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), "rrule": rrule}
    for path in ("/api/v1/meetings", "/api/v1/meetings/check"):
        r = client.post(path, headers=h["secretariat"], json=body)
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
        assert says in r.json()["detail"]
    single = client.post("/api/v1/meetings", headers=h["secretariat"], json={**body, "rrule": None}).json()
    edit = client.patch(f"/api/v1/meetings/{single['id']}", headers=h["secretariat"], json={"rrule": rrule})
    assert (edit.status_code, edit.json()["code"]) == (422, code), edit.text


def test_rule_ending_inside_the_horizon_is_booked(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    start = _thursday_14h()
    r = client.post("/api/v1/meetings", headers=h["secretariat"], json={
        "title": "Họp quý", "chair_room_id": ids["room_a"], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "rrule": "rrule:freq=monthly;bysetpos=-1;byday=th;count=3"})
    assert r.status_code == 201, r.text
    assert (r.json()["rrule"], r.json()["occurrence_count"]) == ("FREQ=MONTHLY;BYSETPOS=-1;BYDAY=TH;COUNT=3", 3)


@pytest.mark.pure
@pytest.mark.parametrize("rrule", [
    "FREQ=MONTHLY;INTERVAL=12;BYMONTH=3", "FREQ=MONTHLY;INTERVAL=6;BYMONTH=2,4,5,6,8,10,11,12",
    "FREQ=DAILY;INTERVAL=7;BYDAY=TU", "FREQ=DAILY;INTERVAL=14;BYDAY=MO,WE", "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31",
    "FREQ=YEARLY;BYMONTH=2,4;BYMONTHDAY=-31", "FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=3"])
def test_rules_that_never_occur_are_refused_before_any_expansion(rrule: str) -> None:
    # Thursday 7 January 2027, 14:00 local: dateutil would search these until year 9999.
    start = datetime(2027, 1, 7, 7, 0, tzinfo=UTC)
    with pytest.raises(recurrence.RecurrenceError) as refused:
        recurrence.parse(rrule, start, ZONE)
    assert refused.value.code in ("no_occurrences", "invalid_rrule")
    assert recurrence.parse("FREQ=MONTHLY;INTERVAL=12;BYMONTH=1;COUNT=2", start, ZONE).count == 2
    assert recurrence.parse("FREQ=DAILY;INTERVAL=7;BYDAY=TH;COUNT=2", start, ZONE).count == 2


@pytest.mark.pure
@pytest.mark.parametrize("rrule", [
    "FREQ=WEEKLY;COUNT=²", "FREQ=WEEKLY;INTERVAL=²;COUNT=2", "FREQ=MONTHLY;BYMONTHDAY=٣;COUNT=2",
    "FREQ=MONTHLY;BYDAY=٢TH;COUNT=2", "FREQ=MONTHLY;BYDAY=TH;BYSETPOS=-١;COUNT=2", "FREQ=WEEKLY;UNTIL=٢٠٢٧0107"])
def test_a_rule_part_in_superscript_or_other_scripts_digits_is_invalid_not_a_500(rrule: str) -> None:
    # Regression: "²" passed str.isdigit() and int() raised a ValueError; "٣" (Arabic-Indic three) was read
    # as 3 by int() and kept in the stored rule.
    start = datetime(2027, 1, 7, 7, 0, tzinfo=UTC)
    with pytest.raises(recurrence.RecurrenceError) as refused:
        recurrence.parse(rrule, start, ZONE)
    assert refused.value.code == "invalid_rrule"
    assert recurrence.parse("FREQ=WEEKLY;INTERVAL=2;COUNT=2", start, ZONE).count == 2
