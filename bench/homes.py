"""Benchmark (issue 13): clicks and keystrokes of six everyday tasks, and the render time and height
of the dashboard, the meeting page, the week calendar and the planner grid, on the demo's 148 communes; for this tree and,
with ``--before DIR``, for another checkout of confsvc (e.g. main before the role homes) in the same run.

Each tree gets its own SQLite file, seeded by that tree's own code in a subprocess (``demo.seed`` placed a
day ahead, so its meetings start two days or more from now, every password set to one value) plus two
meetings today: «Họp chuẩn bị» in one hour (the chair room and ten communes, not the operator's) and
«Họp khẩn» in three hours (the chair room and every commune: 149 sites). It is served by uvicorn in a
subprocess and driven by Playwright with Debian's Chromium (1366×768). Logging in is not counted;
each task starts on the dashboard.

Tasks (each counts clicks, keystrokes, and the page scroll needed to reach what the task needs, in px from
the top of the page where it is done: ``scroll``):

1. operator: report "Gặp sự cố" with a note for their site in «Họp khẩn». With an operator home
   (``#my-sites``): note + "Gặp sự cố" there; else the dashboard's board link or today's list, then the
   form of the meeting page (a radio, the note, the submit button).
2. secretariat: find the problem of task 1 (its note on screen): nothing to click when the dashboard
   shows it; else the meeting's link in today's list, then the row in the site table.
3. secretariat: book a meeting of the chair room and all 148 communes on Thursday 14:00–15:00 of next
   week. With the calendar's click-to-book (``.tslot``): Lịch họp, next week, the free hour; else
   "Đặt lịch họp" and the date and both times typed. Both then: title, "Tất cả xã/phường của tỉnh", submit.
4. secretariat: move the first occurrence of the 148-commune briefing to 13:30–16:00 of its day, that
   occurrence only: Lịch họp, "Tiếp ›" to its week, the briefing, "Đổi buổi này" on its row, "Chỉ buổi này"
   when not already chosen, both times typed, save.
5. leader (viewer role): get the link of their calendar feed: the dashboard's (else the menu's) link to
   /feeds, "Tạo liên kết" with the form's first choice; done when the link is on screen.
6. secretariat: export last month's figures as XLSX: Thống kê, the preset "Tháng trước" (else both dates
   typed and "Xem"), "Xuất Excel"; done when the .xlsx is downloaded.
A task the tree cannot do prints "not possible". ``--shots DIR`` saves each task's last screen.

Render: ``server`` = median wall time of ``--repeat`` GETs over one keep-alive connection on loopback
(the page's HTML: the server's work, no assets; both trees' servers run side by side and their GETs
alternate, after one warm-up round); ``load`` = median of the browser's navigation timing
``loadEventEnd`` (ms from the navigation start, assets included, cached after the first); ``ready`` =
for the planner (rows drawn by grid.js from the API after the load), the median time from the navigation
start until its 149 room rows are in the page (polled every 5 ms), else the load time; ``height`` =
``document.documentElement.scrollHeight`` at 1366×768 and 375×812 (px); ``wide`` = scroll width at 375 px.

Reproduce (from the worktree root; Chromium at /usr/bin/chromium):
``PYTHONPATH=$PWD /work/venv-dev/bin/python bench/homes.py`` and, to compare with main in the same run:
``git archive main | (mkdir -p /tmp/confsvc-before && tar -x -C /tmp/confsvc-before)`` then
``PYTHONPATH=$PWD /work/venv-dev/bin/python bench/homes.py --before /tmp/confsvc-before``.
No figure here is asserted anywhere; run it on a quiet machine and compare runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "mat-khau-bench-1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
NOTE = "Mất tiếng micro"
URGENT = "Họp khẩn về phòng, chống bão"
PREPARE = "Họp chuẩn bị"
BRIEFING = "Giao ban trực tuyến UBND tỉnh"

#: Run in the tree's own Python path: migrate, seed, print the ids the tasks need (JSON).
SEED = r'''
import json, sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo
from sqlmodel import select
from confsvc import demo
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.endpoints.models import Room
from confsvc.migrate import upgrade
try:
    from confsvc.scheduling import creation
except ImportError:  # a tree from before issue 11's split
    from confsvc.scheduling import service as creation
from confsvc.scheduling.models import Meeting
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import User

url, password = sys.argv[1], sys.argv[2]
upgrade(url)
settings = Settings(database_url=url, secret_key="b" * 40)
zone = ZoneInfo("Asia/Ho_Chi_Minh")
engine = make_engine(url)
with make_session(engine) as session:
    demo.seed(session, settings, now=datetime.now(UTC) + timedelta(days=1))
    for user in session.exec(select(User)).all():
        user.password_hash = security.hash_password(password)
        session.add(user)
    chair = session.exec(select(Room).where(Room.name == demo.CHAIR_ROOM_NAME)).one()
    rooms = session.exec(select(Room).where(Room.id != chair.id).order_by(Room.id)).all()
    secretariat = users.principal_for(session, session.exec(select(User).where(User.username == "vanphong")).one())
    scope = users.principal_for(session, session.exec(select(User).where(User.username == "kythuat")).one()).unit_ids
    others = [r for r in rooms if r.unit_id not in scope][:10]
    now = datetime.now(UTC).astimezone(zone).replace(second=0, microsecond=0)
    first = creation.book_meeting(session, settings, secretariat, MeetingCreate(
        title=sys.argv[3], chair_room_id=chair.id, participant_room_ids=[r.id for r in others],
        start=now + timedelta(hours=1), end=now + timedelta(hours=1, minutes=45))).meeting
    urgent = creation.book_meeting(session, settings, secretariat, MeetingCreate(
        title=sys.argv[4], chair_room_id=chair.id, participant_room_ids=[r.id for r in rooms],
        start=now + timedelta(hours=3), end=now + timedelta(hours=4))).meeting
    briefing = session.exec(select(Meeting).where(Meeting.title == demo.BRIEFING_TITLE)).one()
    session.commit()
    print(json.dumps({"urgent": urgent.id, "briefing": briefing.id,
                      "week": demo.first_briefing_day(datetime.now(UTC) + timedelta(days=1), settings).isoformat()}))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Tree:
    """One checkout of confsvc: its database, its seeded ids and its server subprocess."""

    def __init__(self, name: str, path: Path, workdir: Path) -> None:
        self.name, self.path = name, path
        self.url = f"sqlite:///{workdir / (name + '.sqlite3')}"
        self.env = {**os.environ, "PYTHONPATH": str(path), "CONFSVC_DATABASE_URL": self.url,
                    "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32), "CONFSVC_DATA_DIR": str(workdir),
                    "CONFSVC_MAIL_INTERVAL_SECONDS": "0"}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.ids: dict[str, Any] = {}

    def seed(self) -> None:
        out = subprocess.run([sys.executable, "-c", SEED, self.url, PASSWORD, PREPARE, URGENT], env=self.env,
                             cwd=self.path, check=True, capture_output=True, text=True)
        self.ids = json.loads(out.stdout.strip().splitlines()[-1])

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "confsvc.main:create_app", "--factory", "--port", str(self.port),
             "--log-level", "warning"], env=self.env, cwd=self.path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: the server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)


class Counter:
    """A page whose clicks and keystrokes are counted (a select's option = 2 clicks: open, choose)."""

    def __init__(self, page: Any) -> None:
        self.page, self.clicks, self.keys, self.scroll = page, 0, 0, 0

    def click(self, locator: Any) -> None:
        self.see(locator)
        locator.click()
        self.clicks += 1

    def fill(self, locator: Any, text: str) -> None:
        self.see(locator)
        locator.click()
        locator.fill(text)
        self.clicks += 1
        self.keys += len(text)

    def see(self, locator: Any) -> None:
        """Record the scroll needed to bring ``locator`` on screen (px below the first screen)."""
        top = locator.evaluate("e => e.getBoundingClientRect().top + window.scrollY")
        self.scroll = max(self.scroll, int(top - self.page.viewport_size["height"] + 60), 0)

    def result(self) -> dict[str, int]:
        return {"clicks": self.clicks, "keys": self.keys, "scroll": self.scroll}


#: Where the tasks' last screens go (``--shots``); none when unset.
SHOTS: list[Path] = []


def shot(page: Any, tree: Tree, task: str) -> None:
    """Full-page screenshot of where ``task`` ended, as ``<shots>/<tree>-<task>.png``."""
    if SHOTS:
        SHOTS[0].mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS[0] / f"{tree.name}-{task}.png"), full_page=True)


def login(browser: Any, base: str, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN",
                                  timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    page.set_default_timeout(30000)
    page.goto(f"{base}/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"{base}/")
    return page


def task_operator(browser: Any, tree: Tree) -> dict[str, int]:
    page = login(browser, tree.base, "kythuat")
    c = Counter(page)
    home = page.locator("#my-sites")
    if home.count():
        form = home.locator("article", has_text=URGENT).locator("form").first
        c.fill(form.locator("textarea"), NOTE)
        c.click(form.locator("button[value=problem]"))
    else:
        c.click(page.locator("a", has_text=URGENT).first)
        page.wait_for_url("**/meetings/**")
        c.click(page.locator("input[name=state][value=problem]"))
        c.fill(page.locator("#ready-note"), NOTE)
        c.click(page.locator(".readiness-form button[type=submit]"))
    page.wait_for_load_state("load")
    shot(page, tree, "operator")
    page.context.close()
    return c.result()


def task_secretariat(browser: Any, tree: Tree) -> dict[str, int]:
    page = login(browser, tree.base, "vanphong")
    c = Counter(page)
    note = page.get_by_text(NOTE).first
    if not (note.count() and note.is_visible()):
        c.click(page.locator("a", has_text=URGENT).first)
        page.wait_for_url("**/meetings/**")
        note = page.get_by_text(NOTE).first
        if not note.is_visible():  # a summary that opens on demand
            c.click(page.locator("#all-sites > summary"))
    c.see(note)
    shot(page, tree, "secretariat")
    page.context.close()
    return c.result()


def task_book(browser: Any, tree: Tree) -> dict[str, int]:
    from datetime import date, timedelta

    monday = date.fromisoformat(tree.ids["week"])
    thursday = monday + timedelta(days=3)
    page = login(browser, tree.base, "vanphong")
    c = Counter(page)
    c.click(page.locator("nav.mainnav a[href='/calendar']"))
    page.wait_for_url("**/calendar**")
    if page.locator(".tslot").count():
        while not page.locator(f"a.tslot[href*='date={thursday.isoformat()}'][href*='start_time=14%3A00']").count():
            c.click(page.locator(".head-actions a").nth(2))  # Tiếp ›
            page.wait_for_load_state("load")
        c.click(page.locator(f"a.tslot[href*='date={thursday.isoformat()}'][href*='start_time=14%3A00']"))
    else:
        c.click(page.locator("nav.mainnav a[href='/meetings/new']"))
        c.fill(page.locator("#date"), thursday.strftime("%d/%m/%Y"))
        c.fill(page.locator("#start_time"), "14:00")
        c.fill(page.locator("#end_time"), "15:00")
    page.wait_for_url("**/meetings/new**")
    c.fill(page.locator("#title"), "Hội nghị trực tuyến toàn tỉnh")
    c.click(page.locator("#all-communes"))
    c.click(page.locator("#submit"))
    page.wait_for_url(re.compile(r".*/meetings/\d+.*"))
    shot(page, tree, "book")
    page.context.close()
    return c.result()


def task_move(browser: Any, tree: Tree) -> dict[str, int] | None:
    """Secretariat moves the first occurrence of the 148-commune briefing to 13:30–16:00 of its day, that
    occurrence only: Lịch họp, "Tiếp ›" to the briefing's week, the briefing, "Đổi buổi này" on its row,
    "Chỉ buổi này" when not already chosen, both times typed, save. ``None`` when it cannot be done."""
    page = login(browser, tree.base, "vanphong")
    c = Counter(page)
    c.click(page.locator("nav.mainnav a[href='/calendar']"))
    page.wait_for_url("**/calendar**")
    event = page.locator("a.event", has_text=BRIEFING)
    for _ in range(8):
        if event.count():
            break
        c.click(page.locator(".head-actions a").nth(2))  # Tiếp ›
        page.wait_for_load_state("load")
    if not event.count():
        return None
    c.click(event.first)
    page.wait_for_url(re.compile(r".*/meetings/\d+.*"))
    chosen = re.search(r"occurrence=(\d+)", page.url)
    edit = page.locator(f"a[href$='/occurrences/{chosen.group(1)}/edit']" if chosen
                        else "a[href*='/occurrences/'][href$='/edit']")
    if not edit.count():
        return None
    c.click(edit.first)
    page.wait_for_url("**/edit")
    only = page.locator("input[name=scope][value=this]")
    if only.count() and only.first.is_visible() and not only.first.is_checked():
        c.click(only.first)
    c.fill(page.locator("#start_time"), "13:30")
    c.fill(page.locator("#end_time"), "16:00")
    submit = page.locator("#submit")
    c.click(submit if submit.count() else page.locator("form[action$='/edit'] button[type=submit]").first)
    page.wait_for_load_state("load")
    moved = not page.url.endswith("/edit") and not page.locator("#form-errors").count()
    shot(page, tree, "move")
    page.context.close()
    if not moved:
        raise RuntimeError(f"{tree.name}: the occurrence was not moved")
    return c.result()


def task_feed(browser: Any, tree: Tree) -> dict[str, int] | None:
    """A leader (viewer role, ``lanhdao``) gets the link of their calendar feed: the dashboard's link to
    /feeds (or the menu's), then "Tạo liên kết" with the form's first choice; done when the link is on
    screen (``#feed-url``). ``None`` when /feeds is not reachable from the leader's dashboard."""
    page = login(browser, tree.base, "lanhdao")
    c = Counter(page)
    link = page.locator("main a[href='/feeds']")
    if not link.count():
        link = page.locator("nav a[href='/feeds']")
    if not (link.count() and link.first.is_visible()):
        page.context.close()
        return None
    c.click(link.first)
    page.wait_for_url("**/feeds")
    form = page.locator("form[action='/feeds']")
    if not form.count():
        page.context.close()
        return None
    c.click(form.locator("button[type=submit]"))
    page.wait_for_load_state("load")
    url = page.locator("#feed-url")
    if not url.count():
        page.context.close()
        return None
    c.see(url)
    shot(page, tree, "feed")
    page.context.close()
    return c.result()


def task_export(browser: Any, tree: Tree) -> dict[str, int] | None:
    """Secretariat exports last month's figures as XLSX: Thống kê, the preset "Tháng trước" (else both
    dates typed and "Xem"), "Xuất Excel"; done when the browser has the .xlsx download."""
    from datetime import date, timedelta

    page = login(browser, tree.base, "vanphong")
    c = Counter(page)
    nav = page.locator("nav.mainnav a[href^='/statistics']")
    if not nav.count():
        page.context.close()
        return None
    c.click(nav.first)
    page.wait_for_url("**/statistics**")
    preset = page.locator("nav.presets a", has_text=re.compile("^Tháng trước$"))
    if preset.count():
        c.click(preset.first)
    else:
        last = date.today().replace(day=1) - timedelta(days=1)
        c.fill(page.locator("#from"), last.replace(day=1).strftime("%d/%m/%Y"))
        c.fill(page.locator("#to"), last.strftime("%d/%m/%Y"))
        c.click(page.locator("form button[type=submit].primary").first)
    page.wait_for_load_state("load")
    with page.expect_download() as download:
        c.click(page.locator("a[download][href*='xlsx']").first)
    name = download.value.suggested_filename
    shot(page, tree, "export")
    page.context.close()
    if not name.endswith(".xlsx"):
        raise RuntimeError(f"{tree.name}: the export is {name}, not an XLSX")
    return c.result()


def pages_of(tree: Tree) -> dict[str, str]:
    return {"dashboard": "/", "meeting": f"/meetings/{tree.ids['urgent']}",
            "calendar": f"/calendar?view=week&date={tree.ids['week']}", "planner": "/planner"}


def server_times(trees: list[Tree], repeat: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Median GET wall time per page and tree; the trees' GETs alternate (one of each in turn), so a
    change of the machine's load during the run weighs on both alike."""
    clients = {}
    for tree in trees:
        web = httpx.Client(base_url=tree.base, timeout=60)
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text)
        assert csrf is not None
        web.post("/login", data={"username": "vanphong", "password": PASSWORD, "csrf": csrf.group(1), "next": "/"})
        clients[tree.name] = web
    figures: dict[str, dict[str, dict[str, Any]]] = {tree.name: {} for tree in trees}
    try:
        for name in pages_of(trees[0]):
            times: dict[str, list[float]] = {tree.name: [] for tree in trees}
            sizes: dict[str, int] = {}
            for _ in range(repeat + 1):  # the first round warms up and is dropped
                for tree in trees:
                    began = time.perf_counter()
                    answer = clients[tree.name].get(pages_of(tree)[name])
                    times[tree.name].append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (tree.name, name, answer.status_code)
                    sizes[tree.name] = len(answer.content)
            for tree in trees:
                figures[tree.name][name] = {"server_ms": round(statistics.median(times[tree.name][1:]), 1),
                                            "html_kb": round(sizes[tree.name] / 1024)}
    finally:
        for web in clients.values():
            web.close()
    return figures


ROOMS = 149
#: True once the planner shows ``rooms`` room rows; notes the time (ms from the navigation start) first seen.
ROWS_DRAWN = """rooms => {
  if (document.querySelectorAll('#planner-grid .pl-row:not(.pl-bridge)').length < rooms) return false;
  window.__rowsDrawn = window.__rowsDrawn || performance.now();
  return true;
}"""


def browser_figures(browser: Any, tree: Tree, repeat: int, figures: dict[str, dict[str, Any]]) -> None:
    """Adds the browser's load time (median) and the page heights to ``figures`` (by page)."""
    page = login(browser, tree.base, "vanphong")
    readies: list[float] = []
    for name, path in pages_of(tree).items():
        loads = []
        for _ in range(max(3, repeat // 2)):
            page.goto(tree.base + path)
            page.wait_for_load_state("load")
            loads.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
            if name == "planner":  # its rows are drawn by grid.js from the API after the load
                page.wait_for_function(ROWS_DRAWN, arg=ROOMS, polling=5)
                readies.append(page.evaluate("window.__rowsDrawn"))
        figures[name]["load_ms"] = round(statistics.median(loads), 1)
        figures[name]["ready_ms"] = round(statistics.median(readies), 1) if readies else figures[name]["load_ms"]
        readies = []
        figures[name]["height_1366"] = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 375, "height": 812})
    for name, path in pages_of(tree).items():
        page.goto(tree.base + path)
        page.wait_for_load_state("load")
        if name == "planner":
            page.wait_for_function(ROWS_DRAWN, arg=ROOMS, polling=5)
        figures[name]["height_375"] = page.evaluate("document.documentElement.scrollHeight")
        figures[name]["wide_375"] = page.evaluate("document.documentElement.scrollWidth")
    page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another confsvc checkout to measure in the same run")
    parser.add_argument("--repeat", type=int, default=10, help="GETs per page for the server time")
    parser.add_argument("--shots", type=Path, help="save each task's last screen here (full-page PNG)")
    args = parser.parse_args()
    if args.shots:
        SHOTS.append(args.shots.resolve())
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        trees = [Tree("after", ROOT, Path(tmp))]
        if args.before:
            trees.insert(0, Tree("before", args.before.resolve(), Path(tmp)))
        results: dict[str, dict[str, Any]] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for tree in trees:
                    tree.seed()
                    tree.start()
                render = server_times(trees, args.repeat)
                for tree in trees:
                    browser_figures(browser, tree, args.repeat, render[tree.name])
                for tree in trees:
                    results[tree.name] = {
                        "render": render[tree.name],
                        "tasks": {"operator reports a problem": task_operator(browser, tree),
                                  "secretariat finds today's problems": task_secretariat(browser, tree),
                                  "book a 149-room meeting": task_book(browser, tree),
                                  "move one briefing occurrence": task_move(browser, tree),
                                  "leader gets their feed link": task_feed(browser, tree),
                                  "export last month's XLSX": task_export(browser, tree)}}
            finally:
                for tree in trees:
                    tree.stop()
                browser.close()
    print("Tasks (clicks / keystrokes / scroll px to reach the last step; logging in not counted):")
    for task in next(iter(results.values()))["tasks"]:
        line = "  ".join(f"{name}: " + (
            "not possible" if r["tasks"][task] is None else
            f"{r['tasks'][task]['clicks']} clicks, {r['tasks'][task]['keys']} keys, {r['tasks'][task]['scroll']} px")
            for name, r in results.items())
        print(f"  {task:<36} {line}")
    print("Pages (secretariat; server = median HTML GET ms; load = browser loadEventEnd ms; ready = the planner's "
          f"{ROOMS} rows drawn, ms from the navigation start, else = load; heights px):")
    for page_name in next(iter(results.values()))["render"]:
        for name, r in results.items():
            f = r["render"][page_name]
            print(f"  {page_name:<10} {name:<7} server {f['server_ms']:>7} ms  html {f['html_kb']:>4} KiB  "
                  f"load {f['load_ms']:>7} ms  ready {f['ready_ms']:>7} ms  height 1366: {f['height_1366']:>6}  375: {f['height_375']:>6}  "
                  f"width at 375: {f['wide_375']}")
    print("Reproduce: PYTHONPATH=$PWD /work/venv-dev/bin/python bench/homes.py"
          + (f" --before {args.before}" if args.before else "") + f" --repeat {args.repeat}"
          + (f" --shots {args.shots}" if args.shots else ""))


if __name__ == "__main__":
    main()
