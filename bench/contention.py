"""Booking throughput under contention (issue 16, "Throughput under contention"). Not a test.

A fresh PostgreSQL database (migrated by the code under test), one province's inventory (``--rooms``
rooms with one endpoint each, 2 bridges of 200 ports), and ``confsvc serve --workers 2`` started
from ``--code`` (default: this checkout; point it at a copy of main to measure "before"). Then
``--clients`` threads book through ``POST /api/v1/meetings`` for ``--seconds``:

- *disjoint* clients (the even ones) each own a room and book it at successive free slots: they
  collide with nobody, only share the bridges;
- *overlapping* clients (the odd ones) book a random pair of a few shared rooms at random slots
  of one day, so most of them are refused (409) or race each other.

It prints p50/p95 latency, bookings/s (201 per second), 409 and 5xx counts, then checks the
invariants in SQL: no two overlapping bookings of one endpoint or room, no bridge over its
capacity at any instant, no conference number twice among overlapping bookings of one bridge.

    python bench/contention.py [--seconds 60] [--clients 50] [--workers 2] [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.live_support: the server runner the live tests use

from tests.live_support import booking_invariants, serving  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SHARED_ROOMS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _confsvc(code: Path, env: dict[str, str], *args: str, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from confsvc.cli import app; app()", *args]
    if kw.pop("background", False):
        return subprocess.Popen(command, env=env, **kw)
    return subprocess.run(command, env=env, check=True, **kw)


def _seed(url: str, rooms: int) -> tuple[str, list[int]]:
    """Units, rooms, endpoints, bridges and a secretariat user with an API token (plain SQL and the
    users service, whose tables are the same before and after). Returns the token."""
    sys.path.insert(0, str(ROOT))
    from sqlmodel import Session

    import confsvc.all_models  # noqa: F401
    from confsvc.endpoints.models import (
        Bridge,
        Endpoint,
        Protocol,
        Room,
        Unit,
        UnitLevel,
    )
    from confsvc.users import service as users
    from confsvc.users.models import Role

    engine = sa.create_engine(url)
    with Session(engine) as session:
        unit = Unit(code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
        session.add(unit)
        session.flush()
        room_ids = []
        for n in range(rooms):
            room = Room(unit_id=unit.id, name=f"Điểm cầu {n}", seats=40)
            session.add(room)
            session.flush()
            room_ids.append(room.id)
            session.add(Endpoint(room_id=room.id, name=f"Thiết bị {n}", vendor="Poly", model="G7500",
                                 serial=f"SN{n:08d}", protocol=Protocol.sip, dial_address=f"sip:ep{n}@vc.example.vn",
                                 search_text=f"thiet bi {n}"))
        for n in (1, 2):
            session.add(Bridge(name=f"MCU {n}", port_capacity=200, sip_domain=f"mcu{n}.example.vn", h323_prefix="88",
                               conference_number_min=1000 * n, conference_number_max=1000 * n + 999))
        user = users.create_user(session, role=Role.secretariat, unit_ids=[], username="bench",
                                 password="mật-khẩu-dài-1", full_name="Bench")
        _, secret = users.issue_token(session, user, "bench")
        session.commit()
    engine.dispose()
    return secret, room_ids


def _invariants(url: str) -> dict[str, int]:
    """Counts of violations (all must be 0) and of bookings."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = booking_invariants(conn)
        meetings = conn.exec_driver_sql("SELECT count(*) FROM meetings").scalar_one()
        total = conn.exec_driver_sql("SELECT count(*) FROM bookings").scalar_one()
    engine.dispose()
    return {**found, "meetings": meetings, "bookings": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose confsvc is served (default: this)")
    args = parser.parse_args()

    name = f"confsvc_contention_{os.getpid()}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="confsvc-contention-")
    env = {**os.environ, "PYTHONPATH": str(args.code.resolve()), "CONFSVC_DATABASE_URL": url,
           "CONFSVC_SECRET_KEY": "contention-bench-" + "k" * 40, "CONFSVC_DATA_DIR": tmp,
           "CONFSVC_REDIS_URL": os.environ.get("CONFSVC_REDIS_URL", "redis://127.0.0.1:6379/15")}
    try:
        _confsvc(args.code, env, "db", "upgrade", cwd=tmp, stdout=subprocess.DEVNULL)
        token, rooms = _seed(url, args.rooms)
        serve = [sys.executable, "-c", "from confsvc.cli import app; app()", "serve", "--port", str(port),
                 "--workers", str(args.workers)]
        with open(Path(tmp) / "server.log", "wb") as log, \
                serving(serve, port, env=env, cwd=tmp, stderr=log, start_seconds=180) as base:
            _run(args, url, base, token, rooms, tmp)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    command = shlex.join(["python", "bench/contention.py", "--seconds", f"{args.seconds:g}", "--clients",
                          str(args.clients), "--workers", str(args.workers), "--code", str(args.code)])
    print(f"reproduce: cd {ROOT} && {command}")


def _run(args: argparse.Namespace, url: str, base: str, token: str, rooms: list[int], tmp: str) -> None:
    """The clients' run against the server at ``base``, then the figures and the invariants."""
    shared, own = rooms[:SHARED_ROOMS], rooms[SHARED_ROOMS:]
    today = datetime.now(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today + timedelta(days=14)
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {"disjoint": [], "overlapping": []}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds

    def client(i: int) -> None:
        rng = random.Random(i)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
            slot = 0
            while time.monotonic() < stop:
                if i % 2 == 0:  # disjoint: my own room, the next slot of my own sequence
                    day = first_day + timedelta(days=slot // 4)
                    start = day.replace(hour=8) + timedelta(hours=2 * (slot % 4))
                    chair, extra = own[(i // 2) % len(own)], []
                    slot += 1
                else:  # overlapping: shared rooms, random slot of one day
                    start = first_day.replace(hour=7) + timedelta(minutes=30 * rng.randrange(20))
                    chair, *extra = rng.sample(shared, 2)
                body = {"title": f"Bench {i}-{slot}", "chair_room_id": chair, "participant_room_ids": extra,
                        "start": start.isoformat(), "end": (start + timedelta(minutes=90)).isoformat(),
                        "check_lead_minutes": 15}
                began = time.perf_counter()
                try:
                    status = http.post("/api/v1/meetings", json=body).status_code
                except httpx.HTTPError:
                    status = 599
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    by_kind["disjoint" if i % 2 == 0 else "overlapping"].append(elapsed)
                    statuses[status] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"code: {args.code.resolve()}   server log: {Path(tmp) / 'server.log'}")
    print(f"{args.clients} clients, {args.workers} workers, {wall:.1f} s, {len(latencies)} requests")
    print(f"p50 {quantiles[49] * 1000:.0f} ms   p95 {quantiles[94] * 1000:.0f} ms")
    for kind, values in by_kind.items():
        q = statistics.quantiles(values, n=100) if len(values) > 1 else [0.0] * 99
        print(f"  {kind}: {len(values)} requests, p50 {q[49] * 1000:.0f} ms   p95 {q[94] * 1000:.0f} ms")
    print(f"bookings/s {statuses[201] / wall:.1f}   201: {statuses[201]}   409: {statuses[409]}   "
          f"5xx: {sum(v for k, v in statuses.items() if k >= 500)}   other: "
          f"{ {k: v for k, v in statuses.items() if k not in (201, 409) and k < 500} }")
    for key, value in _invariants(url).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
