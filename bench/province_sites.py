"""National meetings, province by province (issue 14): the cost of what a province does on a national
meeting, beside the national dry run measured in the same run. Not a test.

Builds the country of ``bench/cascade.py`` (34 provinces, 3,355 rooms, one bridge per province) on a fresh
database, books the national meeting (chair in province 01) WITHOUT 34 rooms (the first commune of each
province, each taken by a meeting of its own then) and with a ``sites_deadline`` a day before. Then,
in-process through the real services:

  (ref)   ``check_meeting``: the national dry run (every room but the 34 busy ones, a day later: free);
  (a)     ``province_sites`` as the national office (34 provinces' counts);
  (b)     ``province_sites`` as province 02's secretariat (its sites with their bridge, busy and free rooms);
  (c)     ``add_sites``: province 02's secretariat adds one free room (its province's bridge): only that
          site is checked and booked (``site_changes.add``) — then removes it (not timed);
  (e)     ``remove_site``: province 02's secretariat removes that room (``site_changes.remove``), then adds
          it back (not timed);
  (d)     the 409 of the whole country (every room): ``book_meeting`` refused, with ``by_province``
          (34 provinces' conflicts rendered as the API's body).

    PYTHONPATH=$PWD python bench/province_sites.py [--db postgresql|sqlite] [--repeat N]
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cascade import PG_ADMIN_URL, ZONE, build, percentile, timed  # noqa: E402  (bench/cascade.py)

from confsvc.config import Settings  # noqa: E402
from confsvc.db import make_engine, make_session  # noqa: E402
from confsvc.endpoints.models import Room, Unit  # noqa: E402
from confsvc.migrate import upgrade  # noqa: E402
from confsvc.scheduling import creation, province_sites  # noqa: E402
from confsvc.scheduling.errors import BookingConflict  # noqa: E402
from confsvc.scheduling.models import Meeting  # noqa: E402
from confsvc.scheduling.schemas import MeetingCreate  # noqa: E402
from confsvc.users.models import Role  # noqa: E402
from confsvc.users.principal import Principal  # noqa: E402
from confsvc.users.service import expand_units  # noqa: E402


def run(backend: str, url: str, repeat: int, profile: str | None = None) -> None:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    t0 = time.perf_counter()
    chair, others, user_id = build(engine, extra_bridge=False)
    print(f"{backend}: {len(others) + 1} rooms built in {time.perf_counter() - t0:.1f} s", flush=True)
    national = Principal(user_id=user_id, username="vanphongchinhphu", role=Role.secretariat, unit_ids=None)
    day = date.today() + timedelta(days=14)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    start, end = datetime.combine(day, clock(8, 0), ZONE), datetime.combine(day, clock(10, 0), ZONE)
    with make_session(engine) as session:
        provinces = dict(session.execute(sa.select(Unit.code, Unit.id).where(Unit.parent_id.is_(None))).all())
        room_unit = dict(session.execute(sa.select(Room.id, Room.unit_id)).all())
        parent = dict(session.execute(sa.select(Unit.id, Unit.parent_id)).all())
        busy = []
        for code, province in sorted(provinces.items()):
            commune_room = min(r for r in others if parent.get(room_unit[r]) == province)
            busy.append(commune_room)
            creation.book_meeting(session, settings, national, MeetingCreate(
                title=f"Giao ban tỉnh {code}", chair_room_id=commune_room, start=start, end=end))
        session.commit()
        scope = expand_units(session, {provinces["02"]})
    province = Principal(user_id=user_id, username="vanphong02", role=Role.secretariat, unit_ids=None,
                         province_id=provinces["02"], scope=scope)
    sites = [r for r in others if r not in set(busy)]
    everyone = MeetingCreate(title="Hội nghị trực tuyến Chính phủ với địa phương (benchmark)", chair_room_id=chair,
                             participant_room_ids=others, start=start, end=end)
    data = everyone.model_copy(update={"participant_room_ids": sites, "sites_deadline": start - timedelta(days=1)})

    later = data.model_copy(update={"start": start + timedelta(days=1), "end": end + timedelta(days=1)})

    def check() -> None:  # the same meeting a day later: free
        with make_session(engine, write=False) as session:
            answer = creation.check_meeting(session, settings, national, later)
            session.rollback()
        assert answer["ok"], answer["conflicts"][:3]

    with make_session(engine) as session:
        meeting_id = creation.book_meeting(session, settings, national, data).meeting.id
        session.commit()
    # A room of province 02 left out (and free): removed from the meeting, then added back in (c).
    spare = max(r for r in sites if parent.get(room_unit[r]) == provinces["02"])
    with make_session(engine) as session:
        province_sites.remove_site(session, settings, province, session.get(Meeting, meeting_id), spare)
        session.commit()

    def listing(who: Principal) -> None:
        with make_session(engine, write=False) as session:
            answer = province_sites.province_sites(session, settings, who, session.get(Meeting, meeting_id))
            session.rollback()
        assert len(answer["provinces"]) == (34 if who is national else 1), answer["provinces"][:2]

    def add():
        with make_session(engine) as session:
            province_sites.add_sites(session, settings, province, session.get(Meeting, meeting_id), [spare])
            session.commit()

        def remove() -> None:
            with make_session(engine) as session:
                province_sites.remove_site(session, settings, province, session.get(Meeting, meeting_id), spare)
                session.commit()
        return remove

    def remove():
        with make_session(engine) as session:
            province_sites.remove_site(session, settings, province, session.get(Meeting, meeting_id), spare)
            session.commit()

        def add_back() -> None:
            with make_session(engine) as session:
                province_sites.add_sites(session, settings, province, session.get(Meeting, meeting_id), [spare])
                session.commit()
        return add_back

    def refused() -> None:
        with make_session(engine) as session:
            try:
                creation.book_meeting(session, settings, national, everyone.model_copy(update={"title": "409"}))
            except BookingConflict as exc:
                body = exc.to_body()
                assert len(body["by_province"]) == 34, len(body["by_province"])
            session.rollback()

    if profile:
        import cProfile
        import pstats

        step = {"a": lambda: listing(national), "b": lambda: listing(province), "c": add, "d": refused}[profile]
        step()  # warm-up (c: adds, then the profiled run adds nothing new: removed first)
        if profile == "c":
            with make_session(engine) as session:
                province_sites.remove_site(session, settings, province, session.get(Meeting, meeting_id), spare)
                session.commit()
        with cProfile.Profile() as prof:
            step()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        return
    results = {"(ref) national dry run": timed(repeat, check),
               "(a) province-sites, national": timed(repeat, lambda: listing(national)),
               "(b) province-sites, province 02": timed(repeat, lambda: listing(province)),
               "(c) add one site, province 02": timed(repeat, add),
               "(d) whole-country 409 + by_province": timed(repeat, refused)}
    add()  # the site taking part again: (e) removes it
    results["(e) remove one site, province 02"] = timed(repeat, remove)
    print(f"{'':38}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, values in results.items():
        print(f"{name:38}{percentile(values, 0.5):10.1f}{percentile(values, 0.95):10.1f}{statistics.mean(values):10.1f}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", choices=("a", "b", "c", "d"), help="print a cProfile of one step instead")
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.repeat, args.profile)
        return
    name = f"confsvc_bench_province_sites_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        run("postgresql", sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False),
            args.repeat, args.profile)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
