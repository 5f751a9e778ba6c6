"""Each role's home, the readiness loop and the calendar's time axis in Chromium (issue 13), on the demo's
148 communes with a meeting of all 149 sites in two hours, at a laptop (1366×768) and a phone (375×812):

- the operator reports "Gặp sự cố" with a note from the top of their home; the page confirms it and the
  note stays; the meeting page's form shows the stored problem (a re-send cannot silently mark ready);
- the secretariat's board shows that problem first; the leader sees their next meetings and the link
  to their calendar;
- the week calendar has hours down and days across, and a click on a free hour opens the booking form
  with that day and hour; on the phone the asked day alone with a day switcher;
- no page scrolls sideways.

Screenshots under ``test-artifacts/homes/<backend>/`` for a person to look at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import demo
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Room
from confsvc.scheduling import creation
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import User
from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, live_server  # noqa: F401
from tests.web_support import PASSWORD, browser_login

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "homes"
SIZES = {"laptop": (1366, 768), "phone": (375, 812)}
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
TITLE = "Họp trực tuyến khẩn về phòng, chống bão số 15"


def seed_province_with_meeting_soon(engine: Engine, settings: Settings) -> dict[str, object]:
    """The demo placed a day ahead (its meetings start two days or more from now) and a meeting of the
    chair room and every commune's room in two hours; every password PASSWORD. Returns the meeting's
    id, the operator's room name and the meeting's local start."""
    with make_session(engine) as session:
        demo.seed(session, settings, now=datetime.now(UTC) + timedelta(days=1))
        for user in session.exec(select(User)).all():
            user.password_hash = security.hash_password(PASSWORD)
            session.add(user)
        chair = session.exec(select(Room).where(Room.name == demo.CHAIR_ROOM_NAME)).one()
        rooms = session.exec(select(Room).where(Room.id != chair.id)).all()
        secretariat = session.exec(select(User).where(User.username == "vanphong")).one()
        operator = session.exec(select(User).where(User.username == "kythuat")).one()
        scope = users.principal_for(session, operator).unit_ids or frozenset()
        start = (datetime.now(UTC) + timedelta(hours=2)).astimezone(ZONE).replace(second=0, microsecond=0)
        meeting = creation.book_meeting(session, settings, users.principal_for(session, secretariat), MeetingCreate(
            title=TITLE, chair_room_id=chair.id, participant_room_ids=[r.id for r in rooms],
            start=start, end=start + timedelta(hours=1, minutes=30))).meeting
        session.commit()
        return {"meeting_id": meeting.id, "room": next(r.name for r in rooms if r.unit_id in scope), "start": start}


def _login(browser, base: str, username: str, size: tuple[int, int]):
    return browser_login(browser, base, username, size=size, timeout_ms=20000)


def _shot(page, backend: str, name: str) -> None:
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_readiness_form_keeps_a_reported_problem_and_each_role_home_and_the_timed_week_fit_a_laptop_and_a_phone(
        live_server: str, engine: Engine, settings: Settings, backend: str) -> None:  # noqa: F811
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    seeded = seed_province_with_meeting_soon(engine, settings)
    room, meeting_id = str(seeded["room"]), seeded["meeting_id"]
    start = seeded["start"]
    assert isinstance(start, datetime)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for size, viewport in SIZES.items():
                note = f"Mất tiếng micro ({size})"
                # The operator: their site first, "Gặp sự cố" with a note, confirmed, the note kept.
                context, page = _login(browser, live_server, "kythuat", viewport)
                home = page.locator("#my-sites article", has_text=TITLE)
                expect(page.locator("#my-sites article").first).to_contain_text(TITLE)  # the next one first
                assert page.evaluate("document.getElementById('my-sites').getBoundingClientRect().top") \
                    < viewport[1], "the operator's sites are not on the first screen"
                home.get_by_label("Ghi chú (bắt buộc khi gặp sự cố)").fill(note)
                home.get_by_role("button", name="Gặp sự cố").click()
                expect(page.locator("#my-sites [role=status]")).to_have_text(
                    f"Đã lưu: {room} — Gặp sự cố. Ghi chú: {note}")
                expect(home.get_by_label("Ghi chú (bắt buộc khi gặp sự cố)")).to_have_value(note)
                problems += [] if _fits(page) else [f"{size}: the operator's dashboard scrolls sideways"]
                _shot(page, backend, f"{size}-operator-home")
                page.goto(f"{live_server}/meetings/{meeting_id}")
                expect(page.get_by_role("radio", name="Gặp sự cố")).to_be_checked()
                expect(page.get_by_role("radio", name="Đã sẵn sàng")).not_to_be_checked()
                expect(page.get_by_label("Ghi chú (bắt buộc khi gặp sự cố)")).to_have_value(note)
                # Sending the form again as it stands keeps the problem (it used to mark the site ready).
                page.get_by_role("button", name="Gửi báo cáo sẵn sàng").click()
                expect(page.locator("#readiness-saved")).to_have_text(
                    f"Đã lưu: {room} — Gặp sự cố. Ghi chú: {note}")
                expect(page.get_by_role("radio", name="Gặp sự cố")).to_be_checked()
                expect(page.locator("#site-counts")).to_contain_text("1 điểm cầu báo gặp sự cố")
                expect(page.locator("#all-sites")).not_to_have_attribute("open", "")
                problems += [] if _fits(page) else [f"{size}: the meeting page scrolls sideways"]
                _shot(page, backend, f"{size}-operator-meeting")
                context.close()

                # The secretariat: the problem on top of today's and tomorrow's board.
                context, page = _login(browser, live_server, "vanphong", viewport)
                first = page.locator("#today-board article").first
                expect(first).to_contain_text(TITLE)
                expect(first).to_contain_text(f"{room}: {note}")
                expect(first).to_contain_text("1 điểm cầu báo gặp sự cố")
                problems += [] if _fits(page) else [f"{size}: the secretariat's dashboard scrolls sideways"]
                _shot(page, backend, f"{size}-secretariat-home")

                # The week calendar: a time axis; a free hour opens the booking form with it.
                day = start.date().isoformat()
                page.goto(f"{live_server}/calendar?view=week&date={day}")
                expect(page.locator(".week .event", has_text=TITLE)).to_be_visible()
                if size == "phone":
                    expect(page.locator(".dayswitch")).to_be_visible()
                    expect(page.locator(".week .day:visible")).to_have_count(1)
                problems += [] if _fits(page) else [f"{size}: the calendar scrolls sideways"]
                _shot(page, backend, f"{size}-calendar-week")
                after = start.date() + timedelta(days=1)  # a day whose hours are all still to come
                page.goto(f"{live_server}/calendar?view=week&date={after.isoformat()}")
                expect(page.locator(".day.focus .tslot")).to_have_count(16)
                page.locator(".day.focus .tslot").last.click()  # 21:00
                page.wait_for_url("**/meetings/new?**")
                expect(page.locator("#date")).to_have_value(after.strftime("%d/%m/%Y"))
                expect(page.locator("#start_time")).to_have_value("21:00")
                expect(page.locator("#end_time")).to_have_value("22:00")
                context.close()

                # The leader: their next meetings and the way to their calendar link.
                context, page = _login(browser, live_server, "lanhdao", viewport)
                expect(page.locator("#my-meetings")).to_contain_text(TITLE)
                page.get_by_role("link", name="Lấy liên kết lịch của bạn (Outlook, Google, iPhone)").click()
                page.wait_for_url(f"{live_server}/feeds")
                page.go_back()
                problems += [] if _fits(page) else [f"{size}: the leader's dashboard scrolls sideways"]
                _shot(page, backend, f"{size}-leader-home")
                context.close()
        finally:
            browser.close()
    assert problems == []
