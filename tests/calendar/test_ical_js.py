"""confsvc's invites and feeds read by Mozilla ical.js (the parser inside Thunderbird), run with Node.

Needs ``npm ci`` in ``tests/js`` (``scripts/test`` does it); fails with that instruction when Node or
the package is missing, so CI can never pass without having run the parser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.calendar import feed_ical, ical
from tests.calendar.test_ical_feeds import _database, _feed_url, _series, _setup
from tests.calendar.test_ical_pure import LONG_TITLE, _meeting
from tests.calendar.test_ical_pure import _series as _pure_series

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")


@pytest.fixture
def _ical_js_installed() -> None:
    assert NODE is not None and (JS_DIR / "node_modules" / "ical.js").exists(), (
        "Mozilla ical.js not installed: run `npm ci` in tests/js (scripts/test does)")


needs_ical_js = pytest.mark.usefixtures("_ical_js_installed")


def parse_with_ical_js(body: bytes) -> dict:
    """The JSON ``tests/js/parse.mjs`` prints for ``body``; fails the test on a parse error."""
    done = subprocess.run([NODE, str(JS_DIR / "parse.mjs")], input=body, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def _expand(parsed: dict) -> dict[str, list[tuple[str, str]]]:
    """UID -> sorted (local start, status): master occurrences with overrides applied by RECURRENCE-ID."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for event in parsed["events"]:
        if event["recurrenceId"] is None:
            starts = event["occurrences"] or [event["dtstart"]]
            out.setdefault(event["uid"], {}).update({s: (s, event["status"]) for s in starts})
    for event in parsed["events"]:
        if event["recurrenceId"] is not None:
            out[event["uid"]][event["recurrenceId"]] = (event["dtstart"], event["status"])
    return {uid: sorted(rows.values()) for uid, rows in out.items()}


@needs_ical_js
@pytest.mark.parametrize("title", [LONG_TITLE, "Giao ban, tuần 42; khẩn \\ C:\\họp", "Dòng 1\nDòng 2", "Đ" * 120,
                                   "Họp\r\nATTENDEE:mailto:evil@example.com\r\nMETHOD:CANCEL"])
def test_ical_js_reads_titles_back(title: str) -> None:
    parsed = parse_with_ical_js(ical.invite(_meeting(title=title, description=title)))
    assert parsed["method"] == "REQUEST"
    (event,) = parsed["events"]
    assert event["summary"] == ical.clean_text(title)
    assert event["description"].startswith(ical.clean_text(title))
    assert [a["value"] for a in event["attendees"]] == ["mailto:vanphong@phutho.gov.vn", "urn:x-confsvc:room:2"]
    assert {a["cutype"] for a in event["attendees"]} == {"ROOM"}


@needs_ical_js
def test_ical_js_expands_a_series_with_exdates_and_overrides() -> None:
    series = _pure_series()
    parsed = parse_with_ical_js(feed_ical.feed("Lịch họp – Xã Thanh Sơn", [series], refresh=timedelta(hours=1)))
    assert parsed["method"] is None and parsed["name"] == "Lịch họp – Xã Thanh Sơn"
    assert parsed["timezones"] == ["Asia/Ho_Chi_Minh"]
    assert _expand(parsed) == {"m-1@confsvc": [
        ("2025-10-06T08:00:00", "CONFIRMED"), ("2025-10-13T09:00:00", "CONFIRMED"),
        ("2025-10-20T08:00:00", "CANCELLED"), ("2025-11-03T08:00:00", "CONFIRMED")]}
    cancel = parse_with_ical_js(ical.occurrence_cancel(series, series.exceptions[1]))
    assert cancel["method"] == "CANCEL"
    assert [(e["recurrenceId"], e["status"]) for e in cancel["events"]] == [("2025-10-20T08:00:00", "CANCELLED")]


@needs_ical_js
def test_ical_js_reads_a_served_feed_as_the_database_holds_it(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series = _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_b"])
    parsed = parse_with_ical_js(client.get(url).content)
    expected = [(start.isoformat(), status) for start, _end, status in _database(engine, series["id"])]
    assert _expand(parsed) == {series["uid"]: expected}
