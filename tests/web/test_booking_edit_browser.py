"""Editing the 149-site weekly briefing in Chromium on the demo's Phú Thọ (148 communes), with the booking
component of the edit screens (issue 13): search "xuân" without typing diacritics, select all shown,
the live check naming a clash with another meeting in one grouped line, the repeat rule changed with
its summary in words, and "Buổi này và các buổi sau" saved, at 1366×768 and on a 375-px phone (no
horizontal scroll). Screenshots: ``test-artifacts/booking-edit/<backend>/``."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import demo
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Room, Unit
from confsvc.scheduling import creation
from confsvc.scheduling import participants as participation
from confsvc.scheduling.models import Meeting, Occurrence, OccurrenceStatus
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.text import fold
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import User
from tests.web.test_planner_browser import _login
from tests.web.test_web_browser import browser_page, live_server  # noqa: F401 (fixtures)
from tests.web_support import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "booking-edit"
OTHER = "Họp chuyên đề chuyển đổi số các xã Xuân"
#: How long an expectation waits for the live check's answer (a wait, not a timed assert: the check
#: of a 149-site split runs the save and rolls it back, slower on a busy machine).
WAIT = 30_000


def _seed(engine: Engine, settings: Settings) -> dict:
    """The demo (placed a day before now), every password PASSWORD, and a meeting of the "xuân" rooms on
    the Wednesday after the briefing's fourth Monday, 14:00–15:30."""
    with make_session(engine) as session:
        demo.seed(session, settings, now=datetime.now(UTC) - timedelta(days=1))
        for user in session.exec(select(User)).all():
            user.password_hash = security.hash_password(PASSWORD)
            session.add(user)
        briefing = session.exec(select(Meeting).where(Meeting.title == demo.BRIEFING_TITLE)).one()
        occurrences = list(session.exec(select(Occurrence).where(Occurrence.meeting_id == briefing.id)
                                        .order_by(Occurrence.recurrence_id)).all())
        last = occurrences[-1]
        xuan = [(room.id, unit.name) for room, unit in session.exec(select(Room, Unit).where(Room.unit_id == Unit.id))
                if "xuan" in fold(unit.name)]
        monday = last.recurrence_id.astimezone(settings.zone).date()
        wednesday = monday + timedelta(days=2)
        secretary = users.principal_for(session, session.exec(select(User).where(User.username == "vanphong")).one())
        other = creation.book_meeting(session, settings, secretary, MeetingCreate(
            title=OTHER, chair_room_id=xuan[0][0], participant_room_ids=[r for r, _n in xuan[1:]],
            start=datetime.combine(wednesday, time(14, 0), settings.zone),
            end=datetime.combine(wednesday, time(15, 30), settings.zone))).meeting
        sites = len(participation.of_meeting(session, briefing).room_ids)
        rooms = len(session.exec(select(Room.id)).all())
        session.commit()
        return {"briefing": briefing.id, "occurrence": last.id, "at": last.recurrence_id, "monday": monday,
                "xuan": sorted(r for r, _n in xuan), "other": other.id, "sites": sites, "rooms": rooms,
                "chair": briefing.chair_room_id}


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_edit_briefing_this_and_following_with_search_check_and_rule(
        engine: Engine, settings: Settings, live_server: str, browser_page, backend: str,  # noqa: F811
        width: int, height: int) -> None:
    from playwright.sync_api import expect

    ids = _seed(engine, settings)
    # 149 rooms: the chair room and 148 communes; the briefing takes every room with an endpoint in service.
    assert ids["rooms"] == 149 and ids["sites"] >= 148 and len(ids["xuan"]) >= 3
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    _login(page, live_server)
    page.goto(f"{live_server}/meetings/{ids['briefing']}/occurrences/{ids['occurrence']}/edit")
    # The 149 rooms are listed; the briefing's sites other than the chair room are ticked.
    expect(page.locator('input[name="participant_room_ids"]')).to_have_count(149)
    expect(page.locator("#selected-count")).to_have_text(f"Đã chọn {ids['sites'] - 1} điểm cầu")
    expect(page.locator("#check")).to_have_class("check check-ok", timeout=WAIT)

    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no horizontal scroll at 149 rooms
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.locator(".picker").scroll_into_view_if_needed()
    page.screenshot(path=str(folder / f"picker-149-{width}.png"), full_page=False)

    page.get_by_label("Buổi này và các buổi sau").check()
    expect(page.locator("#repeat-summary")).to_have_text("Hằng tuần vào Thứ Hai, 1 buổi", timeout=WAIT)
    page.click("#clear-rooms")
    expect(page.locator("#selected-count")).to_have_text("Đã chọn 0 điểm cầu")
    page.fill("#unit-filter", "xuân")  # with diacritics; "xuan" matches the same units
    expect(page.locator(".unit:not([hidden])")).to_have_count(len(ids["xuan"]))
    expect(page.locator("#shown-count")).to_have_text(f"{len(ids['xuan'])} đơn vị phù hợp")
    page.fill("#unit-filter", "xuan")
    expect(page.locator(".unit:not([hidden])")).to_have_count(len(ids["xuan"]))
    page.click("#select-shown")
    expect(page.locator("#selected-count")).to_have_text(f"Đã chọn {len(ids['xuan'])} điểm cầu")

    page.fill("#start_time", "14:00")
    page.fill("#end_time", "15:30")
    page.fill("#repeat_count", "3")
    page.locator('input[name="repeat_byday"][value="WE"]').check()
    expect(page.locator("#repeat-summary")).to_have_text("Hằng tuần vào Thứ Hai, Thứ Tư, 3 buổi", timeout=WAIT)
    # One line for the other meeting: how many sites, its own time and technical check, a link, the list.
    conflict = page.locator("#check li.conflict")
    expect(conflict).to_have_count(1, timeout=WAIT)
    wednesday = (ids["monday"] + timedelta(days=2)).strftime("%d/%m/%Y")
    sites = len(ids["xuan"])
    expect(conflict.locator(".conflict-text a")).to_have_text(
        f"{sites} điểm cầu trùng với «{OTHER}» (14:00–15:30 Thứ Tư, {wednesday}, kiểm tra kỹ thuật từ 13:00).", timeout=WAIT)
    expect(conflict.locator(".conflict-text a")).to_have_attribute("href", f"/meetings/{ids['other']}", timeout=WAIT)
    expect(conflict.locator("summary")).to_have_text(f"Xem {sites} điểm cầu", timeout=WAIT)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no horizontal scroll
    page.locator("#booking-actions").scroll_into_view_if_needed()
    page.screenshot(path=str(folder / f"conflict-{width}.png"), full_page=False)
    page.screenshot(path=str(folder / f"conflict-{width}-full.png"), full_page=True)

    # Monday only: free; save "this and following".
    page.locator('input[name="repeat_byday"][value="WE"]').uncheck()
    expect(page.locator("#repeat-summary")).to_have_text("Hằng tuần vào Thứ Hai, 3 buổi", timeout=WAIT)
    expect(page.locator("#check")).to_have_class("check check-ok", timeout=WAIT)
    page.click("#submit", no_wait_after=True)  # the save of a 149-site split may be slow on a busy machine
    page.wait_for_url(f"{live_server}/meetings/*", timeout=WAIT)
    new_id = int(page.url.rsplit("/", 1)[1])
    assert new_id != ids["briefing"]
    page.screenshot(path=str(folder / f"saved-{width}.png"), full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    with make_session(engine) as session:
        old, new = session.get(Meeting, ids["briefing"]), session.get(Meeting, new_id)
        assert old.rrule == f"FREQ=WEEKLY;BYDAY=MO;UNTIL={ids['at'] - timedelta(seconds=1):%Y%m%dT%H%M%S}Z"
        assert new.rrule == "FREQ=WEEKLY;BYDAY=MO;COUNT=3" and new.title == demo.BRIEFING_TITLE
        starts = [(o.start.astimezone(settings.zone).strftime("%d/%m %H:%M"), o.status) for o in session.exec(
            select(Occurrence).where(Occurrence.meeting_id == new_id).order_by(Occurrence.start))]
        assert starts == [((ids["monday"] + timedelta(days=7 * w)).strftime("%d/%m 14:00"), OccurrenceStatus.scheduled)
                          for w in range(3)]
        assert list(participation.of_meeting(session, new).room_ids) == sorted({ids["chair"], *ids["xuan"]})
        assert session.exec(select(Occurrence).where(Occurrence.meeting_id == ids["briefing"],
                                                     Occurrence.recurrence_id >= ids["at"])).all() == []
