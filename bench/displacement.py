"""Displacement cost (issue 14 "Priority and displacement"). Not a test.

A fresh database (migrated by the code under test): one province's unit, ``--sites`` + 1 rooms with
one endpoint each, one 200-port bridge, a secretariat user. Each round, on its own weekday slot
(08:00–10:00 local, rounds a day apart), in-process through the real services:

  (a) ``book_meeting`` of a routine meeting on the chair room and ``--sites`` rooms (the reference: a
      plain booking of the same size, nothing in the way);
  (b) ``book_meeting`` of a Government session (priority 2) on the same rooms and time, without
      confirmation: the 409 ``displacement_required`` with its list and token;
  (c) the same with ``displace`` and the token: the routine occurrence freed and tentative, the
      session booked, the nearest free slot searched, event, mail event and audit line written.

Each step commits (a refusal rolls back). Prints p50/p95 in ms of (a), (b), (c) and the ratio of
(c) to (a), then the invariant in SQL (no two overlapping bookings of one endpoint or room).

    python bench/displacement.py [--db sqlite|postgresql] [--rounds 30] [--sites 20]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import confsvc.all_models  # noqa: F401  (every table known to the ORM)
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.endpoints.models import Bridge, Endpoint, Protocol, Room, Unit, UnitLevel
from confsvc.main import install_hooks
from confsvc.migrate import upgrade
from confsvc.scheduling import creation
from confsvc.scheduling.displacement import DisplacementRequired
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import service as users
from confsvc.users.models import Role, User

install_hooks()

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _setup(url: str, sites: int) -> tuple[Settings, Engine, int, list[int]]:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    with make_session(engine) as session:
        unit = Unit(code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province,
                    search_text="tinh phu tho")
        session.add(unit)
        session.flush()
        rooms = []
        for i in range(sites + 1):
            room = Room(unit_id=unit.id, name=f"Điểm cầu {i}", seats=30, search_text=f"diem cau {i}")
            session.add(room)
            session.flush()
            session.add(Endpoint(room_id=room.id, name=f"Thiết bị {i}", vendor="Poly", model="G7500",
                                 serial=f"SN{i:08d}", protocol=Protocol.sip, dial_address=f"sip:ep{i}@vc.example.vn",
                                 search_text=f"thiet bi {i}"))
            rooms.append(room.id)
        session.add(Bridge(name="MCU", port_capacity=200, sip_domain="mcu.example.vn", h323_prefix="88",
                           conference_number_min=1000, conference_number_max=1999))
        user = users.create_user(session, role=Role.secretariat, unit_ids=[], username="vanphong",
                                 password="mật-khẩu-dài-1", full_name="Văn phòng UBND tỉnh")
        session.commit()
        user_id = user.id
    return settings, engine, user_id, rooms


def _slot(round_: int) -> datetime:
    day = datetime.now(ZONE).date() + timedelta(days=14)
    day += timedelta(days=round_)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 8, tzinfo=ZONE)


def run(url: str, rounds: int, sites: int) -> dict[str, list[float]]:
    settings, engine, user_id, rooms = _setup(url, sites)
    timings: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    used: set[datetime] = set()
    for i in range(rounds + 1):  # round 0 warms up
        start = _slot(i * 2)
        while start in used:
            start += timedelta(days=1)
        used.add(start)
        body = {"chair_room_id": rooms[0], "participant_room_ids": rooms[1:], "start": start,
                "end": start + timedelta(hours=2)}
        with make_session(engine) as session:
            principal = users.principal_for(session, session.get(User, user_id))
        t0 = time.perf_counter()
        with make_session(engine) as session:
            creation.book_meeting(session, settings, principal, MeetingCreate(title="Giao ban", **body))
            session.commit()
        t1 = time.perf_counter()
        session_body = MeetingCreate(title="Phiên họp Chính phủ", priority=2, **body)
        try:
            with make_session(engine) as session:
                creation.book_meeting(session, settings, principal, session_body)
            raise AssertionError("expected displacement_required")
        except DisplacementRequired as exc:
            token = exc.offer.token
        t2 = time.perf_counter()
        with make_session(engine) as session:
            creation.book_meeting(session, settings, principal, session_body.model_copy(
                update={"displace": True, "displacement_token": token}))
            session.commit()
        t3 = time.perf_counter()
        if i:
            timings["a"].append((t1 - t0) * 1000)
            timings["b"].append((t2 - t1) * 1000)
            timings["c"].append((t3 - t2) * 1000)
    with engine.connect() as conn:
        pairs = conn.exec_driver_sql(
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.resource_kind = b.resource_kind "
            "AND a.resource_id = b.resource_id AND a.id < b.id AND a.resource_kind IN ('endpoint', 'room') "
            "AND a.window_start < b.window_end AND b.window_start < a.window_end").scalar_one()
    engine.dispose()
    print(f"overlapping endpoint/room pairs: {pairs} (must be 0)")
    return timings


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--sites", type=int, default=20)
    args = parser.parse_args(argv)
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="confsvc-bench-") as tmp:
            timings = run(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.rounds, args.sites)
    else:
        name = f"confsvc_bench_displace_{int(time.time())}"
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            timings = run(url, args.rounds, args.sites)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    labels = {"a": "(a) plain booking (reference)", "b": "(b) 409 displacement_required",
              "c": "(c) confirmed displacement"}
    print(f"{args.db}, {args.sites} sites + chair, {args.rounds} rounds, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for key, label in labels.items():
        print(f"  {label:<32} p50 {_p(timings[key], 50):7.1f} ms   p95 {_p(timings[key], 95):7.1f} ms")
    print(f"  (c) / (a) at p50: {_p(timings['c'], 50) / _p(timings['a'], 50):.2f}")
    command = shlex.join(["python", "bench/displacement.py", "--db", args.db, "--rounds", str(args.rounds),
                          "--sites", str(args.sites)])
    print(f"reproduce: cd {Path(__file__).resolve().parents[1]} && PYTHONPATH=. {command}")


if __name__ == "__main__":
    sys.exit(main())
