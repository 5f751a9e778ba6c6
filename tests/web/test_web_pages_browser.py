"""Every page of the web UI in Chromium on the demo's full Phú Thọ data (148 communes, the 149-site
briefing), at a laptop (1366×768) and a phone (375×812), in Vietnamese and English:

- no horizontal scroll (``document.documentElement.scrollWidth <= window.innerWidth``);
- axe-core (npm, ``tests/js``: ``npm ci``) finds no serious or critical accessibility violation;
- a Vietnamese page shows no English words (``ENGLISH``: a message that escaped the catalog).

Screenshots go to ``test-artifacts/pages/<backend>/<lang>-<width>-<page>.png`` (gitignored) for a
person to look at. Needs Playwright, ``/usr/bin/chromium`` and ``tests/js/node_modules``; fails, never
skips, without them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import demo
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, Room, Unit
from confsvc.live import display
from confsvc.scheduling.models import Meeting, Occurrence
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import User
from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, live_server  # noqa: F401
from tests.web_support import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pages"
AXE = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"laptop": (1366, 768), "phone": (375, 812)}


def _seed(engine: Engine, settings: Settings) -> dict[str, str]:
    """The demo (placed a week before now so that meetings are upcoming), every password set to PASSWORD;
    returns the URLs of the pages to visit as the administrator, keyed by a short page name."""
    with make_session(engine) as session:
        demo.seed(session, settings, now=datetime.now(UTC) - timedelta(days=1))
        for user in session.exec(select(User)).all():
            user.password_hash = security.hash_password(PASSWORD)
            session.add(user)
        briefing = session.exec(select(Meeting).where(Meeting.title == demo.BRIEFING_TITLE)).one()
        occurrence = session.exec(select(Occurrence).where(Occurrence.meeting_id == briefing.id)
                                  .order_by(Occurrence.start)).first()
        chair = session.exec(select(Room).where(Room.name == demo.CHAIR_ROOM_NAME)).one()
        endpoint = session.exec(select(Endpoint).order_by(Endpoint.id)).first()
        unit = session.exec(select(Unit).where(Unit.code == demo.PROVINCE_CODE)).one()
        admin = session.exec(select(User).where(User.username == "admin")).one()
        _, secret = display.create_display_token(session, users.principal_for(session, admin), chair.id,
                                                 name="TV phòng họp")
        session.commit()
        return {
            "dashboard": "/", "calendar": "/calendar", "calendar-day": "/calendar?view=day",
            "calendar-week": f"/calendar?view=week&date={occurrence.start.date().isoformat()}",
            "booking": "/meetings/new", "meeting": f"/meetings/{briefing.id}",
            "edit-meeting": f"/meetings/{briefing.id}/edit",
            "edit-occurrence": f"/meetings/{briefing.id}/occurrences/{occurrence.id}/edit",
            "cancel": f"/meetings/{briefing.id}/cancel",
            "inventory": "/inventory", "edit-endpoint": f"/inventory/endpoints/{endpoint.id}/edit",
            "edit-room": f"/inventory/rooms/{chair.id}/edit", "edit-unit": f"/inventory/units/{unit.id}/edit",
            "room-displays": f"/inventory/rooms/{chair.id}/displays",
            "statistics": "/statistics", "feeds": "/feeds",
            "planner": f"/planner?date={occurrence.start.date().isoformat()}", "audit": "/audit",
            "site-groups": "/site-groups",
            "not-found": "/meetings/99999", "display": f"/display/rooms/{chair.id}?token={secret}",
        }


#: English words that betray an untranslated message on a Vietnamese page (none is a Vietnamese word, a
#: demo name or a product name: Cisco's "Webex Room Kit" is why "room" is not listed).
ENGLISH = re.compile(r"\b(the|not|found|should|must|please|sign in|save|cancel|edit|search|select|meeting|"
                     r"meetings|endpoint|endpoints|bridge|unit|units|error|required|invalid|occurrences|skipped|fields|"
                     r"today|tomorrow|week|month|none|new|delete|show|back|next|previous)\b", re.I)


def _check(page, url: str, name: str, backend: str, lang: str, size: str) -> list[str]:
    """Load ``url``; return the problems found (overflow, axe serious/critical violations, English words
    on a Vietnamese page)."""
    page.goto(url)
    page.wait_for_load_state("load")
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{lang}-{size}-{name}.png"), full_page=True)
    problems = []
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 3).map(e => e.tagName + '.' + e.className + '#' + e.id)""")
        problems.append(f"{lang} {size} {name}: {widths[0]} px wide > {widths[1]} ({wide})")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ': ' + v.nodes.slice(0, 2).map(n => n.target.join(' ')).join(' | '));
    }""")
    problems += [f"{lang} {size} {name}: axe {v}" for v in found]
    if lang == "vi":
        english = sorted({m.group(0) for m in ENGLISH.finditer(page.evaluate("document.body.innerText"))})
        if english:
            problems.append(f"{lang} {size} {name}: English words {english}")
    return problems


@pytest.mark.one_backend_per_language(["vi", "en"])  # the layout does not depend on the database
def test_every_page_fits_a_phone_and_a_laptop_and_passes_axe_on_the_full_province(
        live_server: str, engine: Engine, settings: Settings, backend: str, lang: str) -> None:  # noqa: F811
    _require_browser()
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` in tests/js")
    from playwright.sync_api import sync_playwright

    pages = _seed(engine, settings)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for size, (width, height) in SIZES.items():
                # bypass_csp: axe-core is injected as a script of the test's own; the pages' CSP is checked
                # on its own by test_security_browser.py.
                context = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN", bypass_csp=True,
                                              timezone_id="Asia/Ho_Chi_Minh")
                page = context.new_page()
                page.set_default_timeout(20000)
                problems += _check(page, f"{live_server}/login", "login", backend, lang, size)
                page.get_by_label("Tên đăng nhập").fill("admin")
                page.get_by_label("Mật khẩu").fill(PASSWORD)
                page.get_by_role("button", name="Đăng nhập").click()
                page.wait_for_url(f"{live_server}/")
                if lang == "en":
                    page.locator("form.lang button").click()
                    page.wait_for_load_state("load")
                for name, path in pages.items():
                    problems += _check(page, live_server + path, name, backend, lang, size)
                context.close()
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)
