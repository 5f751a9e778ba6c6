"""Benchmark (issue 14, "The national meeting's page and the secretariat board with 3,355 sites, rendered in
Chromium"): the meeting page and the secretariat's dashboard of the national meeting, beside the same pages
of the Phú Thọ demo's 148-commune meeting in the same run.

- **national**: a fresh PostgreSQL database with the country of ``bench/cascade.py`` (34 provinces, 3,321
  communes, 3,355 rooms, a bridge per province; its builder) and the national meeting booked through the
  service by the national user (Văn phòng Chính phủ, a secretariat of no province): the chair room of
  province 01 and every other room, today (local) two hours from now; a third of the sites marked
  "Đã sẵn sàng" and one in 200 "Gặp sự cố" with a note.
- **phutho**: another fresh database with ``confsvc demo``'s Phú Thọ (149 rooms) and, booked today at the
  same time by its secretariat ("vanphong"), a meeting of the briefing's sites (the chair room and the
  148 communes), marked the same way.

Each is served by uvicorn in a subprocess (one worker, as ``confsvc serve``) and opened in Chromium
(Playwright, /usr/bin/chromium) logged in as that secretariat. Per page (``board`` = the dashboard ``/``,
whose home for the secretariat is the board of today's and tomorrow's meetings; ``meeting`` =
``/meetings/{id}``):

- ``server ms``: median wall time of ``--repeat`` GETs of the HTML over one keep-alive connection (after one
  warm-up), ``HTML KiB`` its size;
- ``load ms``: median of the browser's navigation timing ``loadEventEnd`` (1366×768, ``--repeat`` loads);
- ``DOM``: elements in the loaded page; ``height``: ``scrollHeight`` at 1366 px (px);
- ``wide@375``: ``scrollWidth`` at 375×812 (a value above 375 is a horizontal scroll).

Screenshots of both pages at 1366 and 375 px (full page) go to ``--shots`` (default
``test-artifacts/national-pages``).

Reproduce (from the worktree root; PostgreSQL on 127.0.0.1:5432 as the tests use):
    PYTHONPATH=$PWD python bench/national_pages.py [--repeat 5] [--shots DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import cascade  # noqa: E402
from bench.homes import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from confsvc import demo  # noqa: E402
from confsvc.clock import utc_now  # noqa: E402
from confsvc.config import Settings  # noqa: E402
from confsvc.db import make_engine, make_session  # noqa: E402
from confsvc.migrate import upgrade  # noqa: E402
from confsvc.scheduling import creation  # noqa: E402
from confsvc.scheduling import participants as participation  # noqa: E402
from confsvc.scheduling.models import Meeting, Occurrence, ReadinessState, SiteReadiness  # noqa: E402
from confsvc.scheduling.schemas import MeetingCreate  # noqa: E402
from confsvc.users import security  # noqa: E402
from confsvc.users import service as users  # noqa: E402
from confsvc.users.models import User  # noqa: E402

PG_ADMIN_URL = os.environ.get("CONFSVC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "mat-khau-bench-1"
TITLE = "Hội nghị trực tuyến Chính phủ với địa phương"
PHUTHO_TITLE = "Giao ban trực tuyến UBND tỉnh với các xã, phường (bench)"
PROBLEM_NOTE = "Mất tiếng micro"


def _start_today(zone: Any) -> tuple[datetime, datetime]:
    """Two hours from now rounded to the quarter hour (aware), and two hours later."""
    now = utc_now().astimezone(zone) + timedelta(hours=2)
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return start, start + timedelta(hours=2)


def _mark(session: Any, meeting_id: int, user_id: int) -> None:
    """A third of the sites ready, one in 200 reporting a problem (the rest not checked)."""
    occurrence = session.exec(sa.select(Occurrence).where(Occurrence.meeting_id == meeting_id)).scalars().one()
    meeting = session.get(Meeting, meeting_id)
    rooms = sorted(participation.of_occurrence(session, meeting, occurrence).room_ids)
    rows = []
    for i, room in enumerate(rooms):
        if i % 200 == 7:
            rows.append({"occurrence_id": occurrence.id, "room_id": room, "state": ReadinessState.problem,
                         "note": PROBLEM_NOTE, "updated_by": user_id, "updated_at": utc_now()})
        elif i % 3 == 0:
            rows.append({"occurrence_id": occurrence.id, "room_id": room, "state": ReadinessState.ready, "note": "",
                         "updated_by": user_id, "updated_at": utc_now()})
    session.execute(sa.insert(SiteReadiness), rows)


def seed_national(url: str) -> dict[str, Any]:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    chair, others, user_id = cascade.build(engine, extra_bridge=False)
    start, end = _start_today(settings.zone)
    with make_session(engine) as session:
        user = session.get(User, user_id)
        user.password_hash = security.hash_password(PASSWORD)
        session.add(user)
        principal = users.principal_for(session, user)
        meeting = creation.book_meeting(session, settings, principal, MeetingCreate(
            title=TITLE, chair_room_id=chair, participant_room_ids=others, start=start, end=end)).meeting
        _mark(session, meeting.id, user_id)
        session.commit()
        ids = {"meeting": meeting.id, "username": user.username, "sites": len(others) + 1}
    engine.dispose()
    return ids


def seed_phutho(url: str) -> dict[str, Any]:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    start, end = _start_today(settings.zone)
    with make_session(engine) as session:
        demo.seed(session, settings, now=utc_now() + timedelta(days=1))
        user = session.exec(sa.select(User).where(User.username == "vanphong")).scalars().one()
        user.password_hash = security.hash_password(PASSWORD)
        session.add(user)
        briefing = session.exec(sa.select(Meeting).where(Meeting.title == demo.BRIEFING_TITLE)).scalars().one()
        taking_part = participation.of_meeting(session, briefing)
        meeting = creation.book_meeting(session, settings, users.principal_for(session, user), MeetingCreate(
            title=PHUTHO_TITLE, chair_room_id=taking_part.chair_room_id,
            participant_room_ids=[r for r in taking_part.room_ids if r != taking_part.chair_room_id],
            start=start, end=end)).meeting
        _mark(session, meeting.id, user.id)
        session.commit()
        ids = {"meeting": meeting.id, "username": "vanphong", "sites": len(taking_part.room_ids)}
    engine.dispose()
    return ids


class Server:
    def __init__(self, url: str, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "CONFSVC_DATABASE_URL": url,
                    "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32), "CONFSVC_DATA_DIR": str(workdir),
                    "CONFSVC_MAIL_INTERVAL_SECONDS": "0"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "confsvc.main:create_app", "--factory", "--port", str(self.port),
             "--log-level", "warning"], env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def server_times(base: str, username: str, pages: dict[str, str], repeat: int) -> dict[str, dict[str, Any]]:
    web = httpx.Client(base_url=base, timeout=120)
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text)
    assert csrf is not None
    web.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf.group(1), "next": "/"})
    figures = {}
    try:
        for name, path in pages.items():
            times, size = [], 0
            for _ in range(repeat + 1):
                began = time.perf_counter()
                answer = web.get(path)
                times.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
                size = len(answer.content)
            figures[name] = {"server_ms": statistics.median(times[1:]), "html_kib": size / 1024}
    finally:
        web.close()
    return figures


def browser_figures(browser: Any, base: str, username: str, pages: dict[str, str], repeat: int, label: str,
                    shots: Path, figures: dict[str, dict[str, Any]]) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN",
                                  timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{base}/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"{base}/")
    shots.mkdir(parents=True, exist_ok=True)
    for name, path in pages.items():
        loads = []
        for _ in range(repeat):
            page.goto(base + path)
            page.wait_for_load_state("load")
            loads.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        figures[name]["load_ms"] = statistics.median(loads)
        figures[name]["dom"] = page.evaluate("document.getElementsByTagName('*').length")
        figures[name]["height"] = page.evaluate("document.documentElement.scrollHeight")
        page.screenshot(path=str(shots / f"{label}-{name}-1366.png"), full_page=figures[name]["height"] < 30_000)
    page.set_viewport_size({"width": 375, "height": 812})
    for name, path in pages.items():
        page.goto(base + path)
        page.wait_for_load_state("load")
        figures[name]["wide_375"] = page.evaluate("document.documentElement.scrollWidth")
        height = page.evaluate("document.documentElement.scrollHeight")
        page.screenshot(path=str(shots / f"{label}-{name}-375.png"), full_page=height < 30_000)
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shots", type=Path, default=ROOT / "test-artifacts" / "national-pages")
    parser.add_argument("--keep", action="store_true", help="keep the two databases (their URLs are printed)")
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]), flush=True)
    from playwright.sync_api import sync_playwright

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    suffix = secrets.token_hex(3)
    names = {"national": f"confsvc_bench_natpages_{suffix}", "phutho": f"confsvc_bench_phutho_{suffix}"}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    sites: dict[str, int] = {}
    workdir = Path(f"/tmp/confsvc_bench_natpages_{suffix}")
    workdir.mkdir(exist_ok=True)
    try:
        for label, name in names.items():
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            t0 = time.perf_counter()
            ids = seed_national(url) if label == "national" else seed_phutho(url)
            sites[label] = ids["sites"]
            print(f"{label}: {ids['sites']} sites seeded and booked in {time.perf_counter() - t0:.0f} s", flush=True)
            pages = {"board": "/", "meeting": f"/meetings/{ids['meeting']}"}
            server = Server(url, workdir)
            try:
                results[label] = server_times(server.base, ids["username"], pages, args.repeat)
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        browser_figures(browser, server.base, ids["username"], pages, args.repeat, label, args.shots,
                                        results[label])
                    finally:
                        browser.close()
            finally:
                server.stop()
    finally:
        with admin.connect() as conn:
            for name in names.values():
                if args.keep:
                    print("kept:", sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False))
                else:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    print()
    print(f"{'page':<22}{'sites':>6}{'server ms':>11}{'HTML KiB':>10}{'load ms':>10}{'DOM':>8}{'height':>9}"
          f"{'wide@375':>10}")
    for label, pages_figures in results.items():
        for name, f in pages_figures.items():
            print(f"{label + ' ' + name:<22}{sites[label]:>6}{f['server_ms']:>11.0f}{f['html_kib']:>10.0f}"
                  f"{f['load_ms']:>10.0f}{f['dom']:>8}{f['height']:>9}{f['wide_375']:>10}")
    print(f"\nscreenshots: {args.shots}")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
