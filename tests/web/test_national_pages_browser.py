"""A meeting spanning provinces in Chromium (issue 14: the national meeting's 3,355 sites), on a small
country of three provinces: the meeting page lists its sites in one closed group per province (the
chair's province first) with counts of ready / connected / not checked / problem, a site a light line
inside; the secretariat's dashboard counts the next meeting's sites by province, lists those not checked
by province, and its endpoint table has a row per province. At 1366×768 and on a 375-px phone, no
horizontal scroll. Screenshots under ``test-artifacts/national-pages/<backend>/``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling import creation
from confsvc.scheduling.models import Occurrence, ReadinessState, SiteReadiness
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_bridge, make_endpoint, make_room, make_unit
from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, live_server  # noqa: F401
from tests.web_support import PASSWORD, browser_login

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "national-pages"
TITLE = "Hội nghị trực tuyến toàn quốc (thử)"
PROVINCES = ["Tỉnh Bắc Thử", "Tỉnh Nam Thử", "Tỉnh Trung Thử"]


def _country(engine: Engine, settings: Settings) -> dict:
    """Three provinces of two communes each, one room and endpoint per commune, a room at each province,
    a bridge per province; the national user (a secretariat of no province) books all 9 rooms, chaired
    from «Tỉnh Nam Thử», in 40 minutes. Marked: Nam's chair ready, a Bắc commune connected, a Trung commune
    reporting a problem."""
    with make_session(engine) as session:
        rooms: dict[str, list[int]] = {}
        for n, name in enumerate(PROVINCES):
            province = make_unit(session, code=f"9{n}", name=name, division_type="tỉnh", level=UnitLevel.province)
            make_bridge(session, unit_id=province.id, name=f"MCU {name}", sip_domain=f"mcu{n}.gov.vn")
            seat = make_room(session, province, name=f"Hội trường {name}")
            make_endpoint(session, seat)
            rooms[name] = [seat.id]
            for c in range(2):
                commune = make_unit(session, code=f"9{n}{c:03d}", name=f"Xã {c + 1} {name[5:]}", parent_id=province.id)
                room = make_room(session, commune, name=f"Điểm cầu xã {c + 1} {name[5:]}")
                make_endpoint(session, room)
                rooms[name].append(room.id)
        user = users.create_user(session, role=Role.secretariat, unit_ids=[], username="quocgia",
                                 password=PASSWORD, full_name="Văn phòng Chính phủ")
        principal = users.principal_for(session, user)
        assert principal.province_id is None  # national
        chair = rooms["Tỉnh Nam Thử"][0]
        # In 40 minutes: its technical check (an hour before) has begun.
        start = (datetime.now(UTC) + timedelta(minutes=40)).replace(second=0, microsecond=0)
        meeting = creation.book_meeting(session, settings, principal, MeetingCreate(
            title=TITLE, chair_room_id=chair, participant_room_ids=[r for rs in rooms.values() for r in rs if r != chair],
            start=start, end=start + timedelta(hours=2))).meeting
        occurrence_id = session.exec(select(Occurrence.id).where(Occurrence.meeting_id == meeting.id)).one()
        for room, state, note in [(chair, ReadinessState.ready, ""),
                                  (rooms["Tỉnh Bắc Thử"][1], ReadinessState.connected, ""),
                                  (rooms["Tỉnh Trung Thử"][2], ReadinessState.problem, "Mất tiếng micro")]:
            session.add(SiteReadiness(occurrence_id=occurrence_id, room_id=room, state=state, note=note,
                                      updated_by=user.id))
        session.commit()
        return {"meeting": meeting.id}


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (375, 812)])
def test_national_meeting_page_and_board_group_sites_by_province(
        engine: Engine, settings: Settings, live_server: str, backend: str, width: int, height: int) -> None:  # noqa: F811
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    ids = _country(engine, settings)
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context, page = browser_login(browser, live_server, "quocgia", size=(width, height))
            page.goto(f"{live_server}/meetings/{ids['meeting']}")
            groups = page.locator("#sites-by-province details.province")
            expect(groups.locator("summary .prov-name")).to_have_text(
                ["Tỉnh Nam Thử", "Tỉnh Bắc Thử", "Tỉnh Trung Thử"])  # the chair's first, then by name
            expect(groups.locator("summary .prov-total")).to_have_text(["3 điểm cầu"] * 3)
            expect(groups.nth(0).locator("[data-state=ready]")).to_have_text("Đã sẵn sàng 1")
            expect(groups.nth(1).locator("[data-state=connected]")).to_have_text("Đã kết nối 1")
            expect(groups.nth(1).locator("[data-state=not_checked]")).to_have_text("Chưa kiểm tra 2")
            expect(groups.nth(2).locator("[data-state=problem]")).to_have_text("Gặp sự cố 1")
            expect(groups.nth(0).locator("[data-state=problem]")).to_have_count(0)
            for i in range(3):
                assert groups.nth(i).get_attribute("open") is None  # closed until asked
            expect(page.locator("#all-sites")).to_have_count(0)  # no per-site table
            groups.nth(2).locator("summary").click()
            expect(groups.nth(2).locator(".site-list li")).to_have_text([  # by unit, then room (as ungrouped)
                "Hội trường Tỉnh Trung Thử Chưa kiểm tra · Chưa rõ",
                "Điểm cầu xã 1 Trung Thử Chưa kiểm tra · Chưa rõ",
                "Điểm cầu xã 2 Trung Thử Gặp sự cố: Mất tiếng micro · Chưa rõ"])
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=str(folder / f"meeting-{width}.png"), full_page=True)

            page.goto(f"{live_server}/")
            rows = page.locator("#board-provinces tbody tr")
            expect(rows).to_have_count(3)
            expect(rows.nth(0).locator("th, td")).to_have_text(["Tỉnh Nam Thử", "3", "1", "0", "2", "0"])
            expect(rows.nth(1).locator("th, td")).to_have_text(["Tỉnh Bắc Thử", "3", "0", "1", "2", "0"])
            expect(rows.nth(2).locator("th, td")).to_have_text(["Tỉnh Trung Thử", "3", "0", "0", "2", "1"])
            expect(page.locator("#board-sites")).to_have_count(0)
            pending = page.locator("#today-board details.province")
            expect(pending.locator("summary")).to_have_text(["Tỉnh Nam Thử (2)", "Tỉnh Bắc Thử (2)",
                                                             "Tỉnh Trung Thử (2)"])
            page.locator("#today-board details.more > summary").click()
            pending.nth(1).locator("summary").click()
            expect(pending.nth(1).locator(".names")).to_have_text("Hội trường Tỉnh Bắc Thử, Điểm cầu xã 2 Bắc Thử")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=str(folder / f"board-{width}.png"), full_page=True)
            context.close()
        finally:
            browser.close()
