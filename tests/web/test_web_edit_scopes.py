"""The edit screens' booking component (issue 13), as a browser posts the forms (TestClient, SQLite and
PostgreSQL): the three scopes of an occurrence edit with the exact occurrences they leave, the repeat
rule edited on the series screen (validated by the API's code), and the live check of an edit, which
names other meetings in groups and never the meeting's own occurrences."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.calendar import feeds
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.scheduling.models import AuditEntry, Meeting, Occurrence
from tests.factories import next_monday_local
from tests.web.test_web_edit import _form_values
from tests.web.test_web_pages import _book, _province
from tests.web_support import csrf_of, login

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _rows(engine: Engine, meeting_id: int) -> list[tuple[int, str, str]]:
    """``(id, local "dd/mm HH:MM–HH:MM", status)`` in start order."""
    with make_session(engine) as session:
        rows = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting_id)
                            .order_by(Occurrence.start)).all()
        return [(o.id, f"{o.start.astimezone(ZONE):%d/%m %H:%M}–{o.end.astimezone(ZONE):%H:%M}", o.status.value)
                for o in rows]


def _day(weeks: int, days: int = 0) -> str:
    return (next_monday_local(weeks_ahead=weeks) + timedelta(days=days)).strftime("%d/%m")


def _date(weeks: int, days: int = 0) -> str:
    return (next_monday_local(weeks_ahead=weeks) + timedelta(days=days)).strftime("%d/%m/%Y")


def _series(client: TestClient, province, count: str = "4", **overrides) -> int:
    response = _book(client, province, repeat="weekly", repeat_count=count, **overrides)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def _occurrence_form(client: TestClient, meeting_id: int, occurrence_id: int) -> dict[str, object]:
    page = client.get(f"/meetings/{meeting_id}/occurrences/{occurrence_id}/edit")
    assert page.status_code == 200
    return _form_values(page.text)


def test_this_occurrence_only_moves_it_and_changes_its_rooms(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province)
    ids = [row[0] for row in _rows(engine, meeting_id)]
    values = _occurrence_form(client, meeting_id, ids[1])
    assert values["participant_room_ids"] == [str(province.rooms[i].id) for i in (1, 2, 0)]
    saved = client.post(f"/meetings/{meeting_id}/occurrences/{ids[1]}/edit", data={
        **values, "scope": "this", "start_time": "14:00", "end_time": "15:30",
        "participant_room_ids": [str(province.rooms[3].id)]}, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"/meetings/{meeting_id}?occurrence={ids[1]}")
    assert _rows(engine, meeting_id) == [
        (ids[0], f"{_day(2)} 08:00–10:00", "scheduled"), (ids[1], f"{_day(3)} 14:00–15:30", "scheduled"),
        (ids[2], f"{_day(4)} 08:00–10:00", "scheduled"), (ids[3], f"{_day(5)} 08:00–10:00", "scheduled")]
    page = client.get(f"/meetings/{meeting_id}?occurrence={ids[1]}")
    assert "Điểm cầu Xã Tam Nông" in page.text


def test_this_and_following_splits_the_series(client: TestClient, engine: Engine, settings: Settings) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province)
    ids = [row[0] for row in _rows(engine, meeting_id)]
    with make_session(engine) as session:
        old = session.get(Meeting, meeting_id)
        uid, sequence = old.uid, old.sequence
    values = _occurrence_form(client, meeting_id, ids[2])
    # The following occurrences' rule: two left of COUNT=4, on the series' Monday.
    assert (values["repeat"], values["repeat_count"]) == ("weekly", "2")
    saved = client.post(f"/meetings/{meeting_id}/occurrences/{ids[2]}/edit", data={
        **values, "scope": "following", "title": "Giao ban (buổi chiều)", "start_time": "13:30", "end_time": "15:00",
        "repeat": "weekly", "repeat_byday": ["MO", "WE"], "repeat_count": "3",
        "participant_room_ids": [str(province.rooms[0].id), str(province.rooms[3].id)]}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    new_id = int(saved.headers["location"].rsplit("/", 1)[1])
    assert new_id != meeting_id
    # The old series ends before the occurrence; its later occurrences are gone.
    assert _rows(engine, meeting_id) == [(ids[0], f"{_day(2)} 08:00–10:00", "scheduled"),
                                         (ids[1], f"{_day(3)} 08:00–10:00", "scheduled")]
    new_rows = _rows(engine, new_id)
    assert [row[1:] for row in new_rows] == [(f"{_day(4)} 13:30–15:00", "scheduled"),
                                             (f"{_day(4, 2)} 13:30–15:00", "scheduled"),
                                             (f"{_day(5)} 13:30–15:00", "scheduled")]
    with make_session(engine) as session:
        old, new = session.get(Meeting, meeting_id), session.get(Meeting, new_id)
        until = (next_monday_local(weeks_ahead=4) - timedelta(seconds=1)).astimezone(UTC)
        assert old.rrule == f"FREQ=WEEKLY;UNTIL={until:%Y%m%dT%H%M%S}Z"  # one second before, in UTC (§3.3.10)
        assert (old.uid, old.sequence) == (uid, sequence + 1)  # RFC 5545 §3.8.7.4: the rule changed
        assert (new.title, new.rrule, new.sequence) == ("Giao ban (buổi chiều)", "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=3", 0)
        assert new.uid != old.uid
        split = session.exec(select(AuditEntry).where(AuditEntry.action == "meeting.split")).one()
        assert (split.meeting_id, split.occurrence_id, split.details["new_meeting_id"]) == (meeting_id, ids[2], new_id)
        # Feeds: each series is one VEVENT with its own UID and SEQUENCE; the old one ends before the split.
        old_cal = Calendar.from_ical(feeds.invite(session, settings, old, base_url="https://x.vn").body)
        new_cal = Calendar.from_ical(feeds.invite(session, settings, new, base_url="https://x.vn").body)
        (old_event,), (new_event,) = old_cal.walk("VEVENT"), new_cal.walk("VEVENT")
        assert (str(old_event["UID"]), int(old_event["SEQUENCE"])) == (uid, sequence + 1)
        assert old_event["RRULE"].to_ical().decode() == "FREQ=WEEKLY;UNTIL=" + old.rrule.split("UNTIL=")[1]
        assert (str(new_event["UID"]), int(new_event["SEQUENCE"])) == (new.uid, 0)
        assert new_event["RRULE"].to_ical().decode() == "FREQ=WEEKLY;COUNT=3;BYDAY=MO,WE"
    page = client.get(f"/meetings/{new_id}")
    assert "Giao ban (buổi chiều)" in page.text and "Điểm cầu Xã Tam Nông" in page.text


def test_this_and_following_keeps_cancelled_occurrences_cancelled(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province)
    ids = [row[0] for row in _rows(engine, meeting_id)]
    page = client.get(f"/meetings/{meeting_id}")
    client.post(f"/meetings/{meeting_id}/cancel", data={"occurrence": ids[3], "csrf": csrf_of(page.text)})
    values = _occurrence_form(client, meeting_id, ids[1])
    saved = client.post(f"/meetings/{meeting_id}/occurrences/{ids[1]}/edit", data={
        **values, "scope": "following", "start_time": "09:00", "end_time": "11:00"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    new_id = int(saved.headers["location"].rsplit("/", 1)[1])
    assert _rows(engine, meeting_id) == [(ids[0], f"{_day(2)} 08:00–10:00", "scheduled")]
    # COUNT=3 left from the split; the cancelled fourth stays out (EXDATE at the new time of day).
    assert [row[1:] for row in _rows(engine, new_id)] == [(f"{_day(3)} 09:00–11:00", "scheduled"),
                                                          (f"{_day(4)} 09:00–11:00", "scheduled")]
    with make_session(engine) as session:
        new = session.get(Meeting, new_id)
        assert new.rrule == "FREQ=WEEKLY;COUNT=3"
        assert [d[:16] for d in new.exdates] == [next_monday_local(weeks_ahead=5, hour=9).astimezone(UTC).isoformat()[:16]]


def test_whole_series_from_an_occurrence_moves_every_occurrence(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="3")
    ids = [row[0] for row in _rows(engine, meeting_id)]
    values = _occurrence_form(client, meeting_id, ids[1])
    # The date moved by one day on the second occurrence: the whole series moves by one day.
    saved = client.post(f"/meetings/{meeting_id}/occurrences/{ids[1]}/edit", data={
        **values, "scope": "series", "date": _date(3, 1), "start_time": "09:00", "end_time": "11:00"},
        follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"/meetings/{meeting_id}")
    # (Occurrences are matched by their original local date, service.edit_meeting: on other days they are new.)
    assert [row[1:] for row in _rows(engine, meeting_id)] == [(f"{_day(2, 1)} 09:00–11:00", "scheduled"),
                                                              (f"{_day(3, 1)} 09:00–11:00", "scheduled"),
                                                              (f"{_day(4, 1)} 09:00–11:00", "scheduled")]


def test_series_screen_edits_the_repeat_rule_with_the_api_validation(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="2")
    ids = [row[0] for row in _rows(engine, meeting_id)]
    page = client.get(f"/meetings/{meeting_id}/edit")
    assert '<p id="repeat-summary" class="repeat-summary" aria-live="polite">Hằng tuần vào Thứ Hai, 2 buổi</p>' in page.text
    assert re.findall(r'name="repeat_byday" value="(\w\w)" checked', page.text) == ["MO"]
    values = _form_values(page.text)
    # Beyond the booking horizon: refused by the recurrence rules the API applies, in Vietnamese.
    far = client.post(f"/meetings/{meeting_id}/edit", data={**values, "repeat_count": "", "repeat_until": "31/12/2099"})
    assert far.status_code == 422
    assert "Cuộc họp chưa được thay đổi" in far.text and _rows(engine, meeting_id)[0][0] == ids[0]
    saved = client.post(f"/meetings/{meeting_id}/edit", data={
        **values, "repeat": "weekly", "repeat_byday": ["MO", "TH"], "repeat_count": "4"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    rows = _rows(engine, meeting_id)
    assert [row[1:] for row in rows] == [(f"{_day(2)} 08:00–10:00", "scheduled"),
                                         (f"{_day(2, 3)} 08:00–10:00", "scheduled"),
                                         (f"{_day(3)} 08:00–10:00", "scheduled"),
                                         (f"{_day(3, 3)} 08:00–10:00", "scheduled")]
    assert (rows[0][0], rows[2][0]) == (ids[0], ids[1])  # Mondays keep their ids
    again = client.get(f"/meetings/{meeting_id}/edit")
    assert "Hằng tuần vào Thứ Hai, Thứ Năm, 4 buổi" in again.text
    # No repeat: a single meeting on the first date.
    single = client.post(f"/meetings/{meeting_id}/edit", data={**_form_values(again.text), "repeat": "none"},
                         follow_redirects=False)
    assert single.status_code == 303
    assert [row[1:] for row in _rows(engine, meeting_id)] == [(f"{_day(2)} 08:00–10:00", "scheduled")]


def test_live_check_of_an_edit_groups_other_meetings_and_skips_its_own(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="2")
    other = _book(client, province, title="Họp chuyên đề", start_time="14:00", end_time="15:00",
                  chair_room_id=str(province.rooms[3].id), participant_room_ids=[str(province.rooms[0].id)])
    assert other.status_code == 303
    other_id = int(other.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/meetings/{meeting_id}/edit")
    values = _form_values(page.text)
    headers = {"X-CSRF-Token": csrf_of(page.text)}
    unchanged = client.post(f"/meetings/{meeting_id}/edit/check", data=values, headers=headers)
    assert unchanged.json() == {"ok": True, "lines": [], "warnings": [], "summary": "Hằng tuần vào Thứ Hai, 2 buổi"}
    moved = client.post(f"/meetings/{meeting_id}/edit/check", headers=headers, data={
        **values, "start_time": "13:30", "end_time": "14:30", "repeat_count": "3"})
    body = moved.json()
    day = next_monday_local(weeks_ahead=2).strftime("%d/%m/%Y")
    assert (body["ok"], body["summary"]) == (False, "Hằng tuần vào Thứ Hai, 3 buổi")
    assert [(line["text"], line["href"], [i["text"] for i in line["items"]]) for line in body["lines"]] == [
        (f"1 điểm cầu trùng với «Họp chuyên đề» (14:00–15:00 Thứ Hai, {day}, kiểm tra kỹ thuật từ 13:00).",
         f"/meetings/{other_id}", ["Điểm cầu Xã Thanh Ba"])]
    # Nothing was saved by the check.
    assert [row[1] for row in _rows(engine, meeting_id)] == [f"{_day(2)} 08:00–10:00", f"{_day(3)} 08:00–10:00"]
    # The occurrence screen checks in its scope; a bad date is a sentence, not a traceback.
    occ = _rows(engine, meeting_id)[0][0]
    form = _occurrence_form(client, meeting_id, occ)
    this = client.post(f"/meetings/{meeting_id}/occurrences/{occ}/edit/check", headers=headers,
                       data={**form, "scope": "this", "start_time": "13:30", "end_time": "14:30"})
    assert [line["href"] for line in this.json()["lines"]] == [f"/meetings/{other_id}"]
    bad = client.post(f"/meetings/{meeting_id}/occurrences/{occ}/edit/check", headers=headers,
                      data={**form, "date": "31/02/2027"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("Ngày: 31/02/2027")
    assert client.post(f"/meetings/{meeting_id}/edit/check", data=values).status_code == 403  # no CSRF header


def test_new_and_edit_screens_share_the_booking_component(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="2")
    occ = _rows(engine, meeting_id)[0][0]
    page = client.get("/meetings/new")
    group = client.post("/api/v1/site-groups", headers={"X-CSRF-Token": csrf_of(page.text)}, json={
        "name": "Cụm Thanh Ba", "room_ids": [province.rooms[0].id, province.rooms[2].id]})
    assert group.status_code == 201, group.text
    for url in ("/meetings/new", f"/meetings/{meeting_id}/edit", f"/meetings/{meeting_id}/occurrences/{occ}/edit"):
        html = client.get(url).text
        for part in ('id="unit-filter"', 'id="select-shown"', 'id="clear-rooms"', 'id="selected-count"',
                     'id="repeat-summary"', 'name="repeat_byday" value="WE"', "/static/booking.js"):
            assert part in html, (url, part)
        assert re.findall(r'<option value="\d+" data-rooms="([\d,]+)">Cụm Thanh Ba \(2\)</option>', html) == [
            f"{province.rooms[0].id},{province.rooms[2].id}"]
        # Units in the Vietnamese order, searchable by folded unit and room names.
        assert re.findall(r'data-search="([^"]+)"', html)[:2] == [
            "tinh phu tho phong hop truc tuyen ubnd tinh", "phuong viet tri diem cau phuong viet tri"]
    assert f'data-check-url="/meetings/{meeting_id}/edit/check"' in client.get(f"/meetings/{meeting_id}/edit").text
    # The new meeting's live check says the rule in words too.
    start = next_monday_local(weeks_ahead=6)
    check = client.post("/meetings/new/check", headers={"X-CSRF-Token": csrf_of(page.text)}, json={
        "title": "Giao ban", "chair_room_id": province.chair.id, "start": start.replace(tzinfo=None).isoformat(),
        "end": (start + timedelta(hours=1)).replace(tzinfo=None).isoformat(),
        "rrule": "FREQ=WEEKLY;BYDAY=MO,FR;UNTIL=20270301T235959"})
    assert check.json()["summary"] == "Hằng tuần vào Thứ Hai, Thứ Sáu, đến hết ngày 01/03/2027"


def test_this_occurrence_with_every_box_unticked_keeps_only_the_chair(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="2")
    first, second = (row[0] for row in _rows(engine, meeting_id))
    values = {k: v for k, v in _occurrence_form(client, meeting_id, second).items() if k != "participant_room_ids"}
    saved = client.post(f"/meetings/{meeting_id}/occurrences/{second}/edit",
                        data={**values, "participants_shown": "1"}, follow_redirects=False)
    assert saved.status_code == 303
    page = client.get(f"/meetings/{meeting_id}?occurrence={second}")
    assert "Điểm cầu Xã Thanh Ba" not in page.text
    assert "Điểm cầu Xã Thanh Ba" in client.get(f"/meetings/{meeting_id}?occurrence={first}").text


def test_this_and_following_from_a_moved_occurrence_starts_where_it_is_shown(client: TestClient,
                                                                              engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="3")
    ids = [row[0] for row in _rows(engine, meeting_id)]
    values = _occurrence_form(client, meeting_id, ids[1])
    moved = client.post(f"/meetings/{meeting_id}/occurrences/{ids[1]}/edit", data={
        **values, "scope": "this", "date": _date(3, 1), "start_time": "14:00", "end_time": "16:00"},
        follow_redirects=False)
    assert moved.status_code == 303
    values = _occurrence_form(client, meeting_id, ids[1])
    assert (values["date"], values["start_time"], values["repeat_count"]) == (_date(3, 1), "14:00", "2")
    saved = client.post(f"/meetings/{meeting_id}/occurrences/{ids[1]}/edit", data={**values, "scope": "following"},
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    new_id = int(saved.headers["location"].rsplit("/", 1)[1])
    assert _rows(engine, meeting_id) == [(ids[0], f"{_day(2)} 08:00–10:00", "scheduled")]
    assert [row[1:] for row in _rows(engine, new_id)] == [(f"{_day(3, 1)} 14:00–16:00", "scheduled"),
                                                          (f"{_day(4, 1)} 14:00–16:00", "scheduled")]


def test_this_and_following_refused_by_a_conflict_changes_nothing(client: TestClient, engine: Engine) -> None:
    province = _province(engine)
    login(client, "vanphong")
    meeting_id = _series(client, province, count="3")
    before = _rows(engine, meeting_id)
    other = _book(client, province, title="Họp chuyên đề", date=_date(4), start_time="14:00", end_time="15:00",
                  chair_room_id=str(province.rooms[3].id), participant_room_ids=[str(province.rooms[0].id)])
    assert other.status_code == 303
    values = _occurrence_form(client, meeting_id, before[1][0])
    refused = client.post(f"/meetings/{meeting_id}/occurrences/{before[1][0]}/edit", data={
        **values, "scope": "following", "start_time": "13:30", "end_time": "14:30"})
    assert refused.status_code == 409
    assert re.findall(r'<span class="conflict-text"><a href="[^"]+">(.*?)</a></span>', refused.text) == [
        f"1 điểm cầu trùng với «Họp chuyên đề» (14:00–15:00 Thứ Hai, {_date(4)}, kiểm tra kỹ thuật từ 13:00)."]
    assert 'value="following" checked' in refused.text and 'value="13:30"' in refused.text
    assert _rows(engine, meeting_id) == before
    with make_session(engine) as session:
        assert len(session.exec(select(Meeting)).all()) == 2  # no new series
