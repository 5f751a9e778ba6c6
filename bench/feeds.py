"""Benchmark: a unit feed of 1,000 VEVENTs served by confsvc vs. the same events in Radicale (issue 5).

Both servers run as real subprocesses on loopback and are fetched over HTTP with one keep-alive
``httpx`` client:

- confsvc: ``uvicorn confsvc.main:create_app --factory`` on a migrated SQLite file (or ``--db-url``),
  ``GET /ical/unit/{id}.ics?token=...``. *cold* = the first GET of the feed in a fresh server
  process, once it accepts connections (its start-up, which compiles the feed queries but renders
  no feed, is done; one ``HEAD /`` on another route first), median over ``--restarts`` processes;
  *warm* = later GETs (the rendered feed is kept by ETag); *304* = GETs with the ETag in
  If-None-Match. Besides wall time, the server process's own CPU time per GET (``/proc/<pid>/stat``,
  user + system) is printed: on a shared, loaded machine it says more than wall time.
- Radicale (a CalDAV server; ``pip install radicale``): the confsvc feed's body PUT into a collection
  (Radicale splits it into one item per UID), then ``GET`` of the whole collection, measured the same way.

Data: 850 single meetings and 50 weekly series of 6 occurrences, each series with one moved and one
cancelled occurrence (a RECURRENCE-ID override each): 850 + 50 × 3 = 1,000 VEVENTs, 1,150
occurrences, on 30 rooms of one commune, booked through ``scheduling.creation.book_meeting``.

Reproduce: ``/work/venv-dev/bin/python bench/feeds.py`` (SQLite in a temporary directory;
``--help`` for options); on PostgreSQL, an empty database:
``createdb -h 127.0.0.1 -U postgres feeds_bench && /work/venv-dev/bin/python bench/feeds.py
--db-url postgresql+psycopg://postgres@127.0.0.1:5432/feeds_bench``. Both servers run on the same
machine as the client: run it a few times on a quiet machine and compare the CPU figures too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, time as dtime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SLOTS = (dtime(8), dtime(10), dtime(14), dtime(16))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(url: str) -> tuple[int, str]:
    """Build the data; returns (unit id, feed token secret)."""
    import confsvc.all_models  # noqa: F401
    from confsvc.config import Settings
    from confsvc.db import make_engine, make_session
    from confsvc.endpoints.models import Bridge, Endpoint, Protocol, Room, Unit, UnitLevel
    from confsvc.migrate import upgrade
    from confsvc.calendar import tokens
    from confsvc.calendar.models import FeedScope
    from confsvc.scheduling import cancellation, creation, editing, reading
    from confsvc.scheduling.schemas import MeetingCreate, OccurrenceUpdate
    from confsvc.users import service as users
    from confsvc.main import install_hooks
    from confsvc.users.models import Role

    install_hooks()  # the listeners create_app installs: the data is written as the app writes it
    upgrade(url)
    settings = Settings(database_url=url, secret_key="b" * 40)
    engine = make_engine(url)
    try:
        with make_session(engine) as session:
            province = Unit(code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
            session.add(province)
            session.flush()
            unit = Unit(code="07900", name="Phường Việt Trì", division_type="phường", level=UnitLevel.commune,
                        parent_id=province.id)
            session.add(unit)
            session.add(Bridge(name="MCU Phú Thọ", port_capacity=200, sip_domain="mcu.phutho.gov.vn",
                               h323_prefix="88", conference_number_min=1000, conference_number_max=9999))
            session.flush()
            rooms = []
            for n in range(30):
                room = Room(unit_id=unit.id, name=f"Phòng họp số {n + 1}", contact_email=f"phong{n + 1}@phutho.gov.vn")
                session.add(room)
                session.flush()
                session.add(Endpoint(room_id=room.id, name=f"Thiết bị {n + 1}", vendor="Poly", model="G7500",
                                     serial=f"BENCH{n:05d}", protocol=Protocol.sip,
                                     dial_address=f"sip:pt{n}@vc.phutho.gov.vn"))
                rooms.append(room)
            user = users.create_user(session, username="vanphong", password="mật-khẩu-dài-1",
                                     role=Role.secretariat, full_name="Văn phòng UBND tỉnh",
                                     email="vanphong@phutho.gov.vn")
            principal = users.principal_for(session, user)
            first_day = datetime.now(ZONE).date() + timedelta(days=2)

            def at(day: int, slot: dtime) -> datetime:
                d = first_day + timedelta(days=day)
                return datetime(d.year, d.month, d.day, slot.hour, slot.minute, tzinfo=ZONE)

            for i in range(850):  # 20 rooms × 4 slots a day
                room, slot, day = rooms[i % 20], SLOTS[(i // 20) % 4], i // 80
                start = at(day, slot)
                creation.book_meeting(session, settings, principal, MeetingCreate(
                    title=f"Hội nghị trực tuyến số {i + 1}: triển khai nhiệm vụ, quý IV; năm 2025",
                    description="Thành phần: lãnh đạo UBND, các phòng chuyên môn.", chair_room_id=room.id,
                    participant_room_ids=[], start=start, end=start + timedelta(hours=1), check_lead_minutes=0))
            for s in range(50):  # 10 rooms × 5 slots on the series' own weekday
                room, slot = rooms[20 + s % 10], (SLOTS + (dtime(18),))[s // 10]
                start = at(60 + (s // 10) * 0, slot)
                series = creation.book_meeting(session, settings, principal, MeetingCreate(
                    title=f"Giao ban tuần số {s + 1}", chair_room_id=room.id, start=start,
                    end=start + timedelta(hours=1), check_lead_minutes=0,
                    rrule="FREQ=WEEKLY;COUNT=6")).meeting
                occurrences = reading.list_occurrences(session, series)
                moved = reading.get_occurrence(session, series, occurrences[2]["id"])
                editing.edit_occurrence(session, settings, principal, series, moved, OccurrenceUpdate(
                    start=moved.start + timedelta(days=1), end=moved.end + timedelta(days=1)))
                cancelled = reading.get_occurrence(session, series, occurrences[4]["id"])
                cancellation.cancel_occurrence(session, principal, series, cancelled)
            admin = users.create_user(session, username="quantri", password="mật-khẩu-dài-1", role=Role.admin)
            _, secret = tokens.create_feed_token(session, users.principal_for(session, admin),
                                                 scope=FeedScope.unit, scope_id=unit.id, name="bench")
            session.commit()
            return unit.id, secret
    finally:
        engine.dispose()


class Server:
    """A subprocess serving HTTP on ``port``, ready when ``probe`` answers."""

    def __init__(self, args: list[str], port: int, probe: str, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.args, self.port, self.probe, self.env, self.cwd, self.log = args, port, probe, env, cwd, log
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        # The server's output goes to a log beside its data: when it does not start, the error says why.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        code = self.process.poll()
        self.__exit__()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(self.args[:3])} did not start "
                           f"({'exited ' + str(code) if code is not None else 'no answer in 60 s'}); "
                           f"its log {self.log}:\n{tail}")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cpu_ms(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` in ms (Linux ``/proc``), ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed_get(client: httpx.Client, url: str, **kw) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = client.get(url, **kw)
    _ = response.content
    return (time.perf_counter() - start) * 1000, response


def measure(server_factory, url: str, *, restarts: int, repeats: int, auth=None) -> dict[str, object]:
    cold, warm, not_modified = [], [], []
    cpu: dict[str, list[float]] = {"cold": [], "warm": [], "304": []}
    body, etag, status_304 = b"", None, None
    for _ in range(restarts):
        with server_factory, httpx.Client(auth=auth, timeout=60) as client:
            client.head(f"http://127.0.0.1:{server_factory.port}/")  # TCP + app up; not the feed
            pid = server_factory.process.pid
            before = cpu_ms(pid)
            ms, response = timed_get(client, url)
            after = cpu_ms(pid)
            assert response.status_code == 200, (response.status_code, response.text[:300])
            cold.append(ms)
            body, etag = response.content, response.headers.get("etag")
            before_warm = cpu_ms(pid)
            for _ in range(repeats):
                warm.append(timed_get(client, url)[0])
            after_warm = cpu_ms(pid)
            if None not in (before, after, before_warm, after_warm):
                cpu["cold"].append(after - before)
                cpu["warm"].append((after_warm - before_warm) / repeats)
            if etag:
                before = cpu_ms(pid)
                for _ in range(repeats):
                    ms, response = timed_get(client, url, headers={"If-None-Match": etag})
                    status_304 = response.status_code
                    not_modified.append(ms)
                after = cpu_ms(pid)
                if None not in (before, after):
                    cpu["304"].append((after - before) / repeats)
    return {"cold": statistics.median(cold), "warm": statistics.median(warm),
            "304": statistics.median(not_modified) if not_modified else None, "status_304": status_304,
            "cpu": {k: statistics.median(v) if v else None for k, v in cpu.items()},
            "bytes": len(body), "vevents": body.count(b"BEGIN:VEVENT"), "body": body}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-url", help="SQLAlchemy URL of an EMPTY database (default: a temp SQLite file)")
    parser.add_argument("--restarts", type=int, default=3, help="fresh server processes for the cold figure")
    parser.add_argument("--repeats", type=int, default=20, help="warm and 304 GETs per process")
    args = parser.parse_args()
    if importlib.util.find_spec("radicale") is None:  # the reference server; checked before the slow part
        sys.exit(f"Radicale is not installed for {sys.executable}: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="confsvc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = args.db_url or f"sqlite:///{(tmp / 'bench.sqlite3').as_posix()}"
        t0 = time.perf_counter()
        unit_id, secret = seed(url)
        seed_s = time.perf_counter() - t0

        port = free_port()
        env = {**os.environ, "CONFSVC_DATABASE_URL": url, "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32),
               "CONFSVC_DATA_DIR": str(tmp), "CONFSVC_PUBLIC_BASE_URL": "https://lichhop.phutho.gov.vn"}
        confsvc_server = Server([sys.executable, "-m", "uvicorn", "confsvc.main:create_app", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                port, "/healthz", env, ROOT, tmp / "confsvc.log")
        feed_url = f"http://127.0.0.1:{port}/ical/unit/{unit_id}.ics?token={secret}"
        ours = measure(confsvc_server, feed_url, restarts=args.restarts, repeats=args.repeats)

        rport = free_port()
        storage = tmp / "radicale"
        radicale_server = Server([sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{rport}",
                                  "--storage-filesystem-folder", str(storage), "--auth-type", "none",
                                  "--logging-level", "warning"], rport, "/", dict(os.environ), tmp, tmp / "radicale.log")
        collection = f"http://127.0.0.1:{rport}/bench/feed/"
        auth = ("bench", "bench")
        with radicale_server, httpx.Client(auth=auth, timeout=120) as client:
            client.request("MKCOL", f"http://127.0.0.1:{rport}/bench/")
            put = client.put(collection, content=ours["body"], headers={"Content-Type": "text/calendar"})
            assert put.status_code in (200, 201, 204), (put.status_code, put.text[:300])
        theirs = measure(radicale_server, collection, restarts=args.restarts, repeats=args.repeats, auth=auth)

    def ms(value: object) -> str:
        return "n/a" if value is None else f"{value:8.1f}"

    print(f"seeded 900 meetings / {ours['vevents']} VEVENTs in {seed_s:.1f} s "
          f"({'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}); medians over {args.restarts} fresh "
          f"processes (cold) and {args.restarts}×{args.repeats} GETs (warm, 304), loopback HTTP, keep-alive")
    print(f"{'server':<34} {'VEVENTs':>7} {'bytes':>9} {'cold ms':>8} {'warm ms':>8} {'304 ms':>8}")
    print(f"{'confsvc (uvicorn subprocess)':<34} {ours['vevents']:>7} {ours['bytes']:>9} {ms(ours['cold'])} "
          f"{ms(ours['warm'])} {ms(ours['304'])}")
    print(f"{'Radicale (subprocess, GET coll.)':<34} {theirs['vevents']:>7} {theirs['bytes']:>9} "
          f"{ms(theirs['cold'])} {ms(theirs['warm'])} {ms(theirs['304'])}"
          + ("" if theirs["status_304"] == 304 else f"  (If-None-Match answered {theirs['status_304']})"))
    print("server CPU per GET (ms, user+system of the server process; clock ticks of "
          f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms, so a single cold GET is ±that):")
    for label, figures in (("confsvc", ours["cpu"]), ("Radicale", theirs["cpu"])):
        print(f"  {label:<10} cold {ms(figures['cold'])}  warm {ms(figures['warm'])}  304 {ms(figures['304'])}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"goal: confsvc cold <= Radicale cold: {'met' if ours['cold'] <= theirs['cold'] else 'NOT met'}; "
          f"304 < 5 ms: {'met' if ours['304'] is not None and ours['304'] < 5 else 'NOT met'}")
    print("reproduce: /work/venv-dev/bin/python bench/feeds.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
