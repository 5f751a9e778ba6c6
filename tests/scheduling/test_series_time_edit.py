"""Regression (found by QA): after a whole-series time change, the exceptions' RECURRENCE-ID and
the EXDATEs must name the instances the new RRULE generates, or calendar clients show a cancelled
briefing as happening plus a phantom session. The database and every client must agree."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine

from tests.calendar.test_ical_feeds import _database, _expanded, _feed_url, _get_calendar, _series, _setup
from tests.factories import next_monday_local


def test_series_time_edit_moves_exdates_and_recurrence_ids(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series = _series(client, ids, h)  # Mondays 08:00–10:00 ×5: 4th excluded, 2nd moved, 3rd cancelled
    before = {o["id"]: o for o in client.get(f"/api/v1/meetings/{series['id']}/occurrences",
                                              headers=h["secretariat"]).json()}
    start = next_monday_local(weeks_ahead=2) + timedelta(minutes=30)
    r = client.patch(f"/api/v1/meetings/{series['id']}", headers=h["secretariat"],
                     json={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()})
    assert r.status_code == 200, r.text
    after = {o["id"]: o for o in client.get(f"/api/v1/meetings/{series['id']}/occurrences",
                                             headers=h["secretariat"]).json()}
    assert set(after) == set(before)  # ids stable, the excluded 4th week does not come back

    local = start.replace(tzinfo=None)
    expected = [
        (local, local + timedelta(hours=2), "CONFIRMED"),                                 # 1st, moved to 08:30
        (local + timedelta(weeks=1, minutes=30), local + timedelta(weeks=1, minutes=90), "CONFIRMED"),  # 2nd keeps its own time
        # 3rd: stays cancelled, at the time it was cancelled at (an exception keeps its own time)
        (local + timedelta(weeks=2, minutes=-30), local + timedelta(weeks=2, minutes=90), "CANCELLED"),
        (local + timedelta(weeks=4), local + timedelta(weeks=4, hours=2), "CONFIRMED"),   # 5th
    ]
    assert _database(engine, series["id"]) == expected
    _, url = _feed_url(client, h["secretariat"], "province", ids["province"])
    assert _expanded(_get_calendar(client, url)) == {series["uid"]: expected}
    invite = Calendar.from_ical(client.get(f"/api/v1/meetings/{series['id']}/invite.ics",
                                           headers=h["secretariat"]).content)
    master = next(e for e in invite.walk("VEVENT") if "RECURRENCE-ID" not in e)
    exdates = [d.dt.replace(tzinfo=None) for prop in _as_list(master.get("EXDATE")) for d in prop.dts]
    assert local + timedelta(weeks=3) in exdates          # the excluded 4th week, now at 08:30
    assert local + timedelta(weeks=3, minutes=-30) not in exdates
    overrides = sorted(e.decoded("RECURRENCE-ID").replace(tzinfo=None) for e in invite.walk("VEVENT")
                       if "RECURRENCE-ID" in e)
    assert all(o.time() == local.time() for o in overrides)  # every override names a new-rule instance


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
