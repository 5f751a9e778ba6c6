"""National cascaded meeting benchmark (issue 14: "Book, and dry-run, the national meeting"). Not a test.

Builds a country on a fresh database: 34 provinces (codes 01…34), their 3,321 communes spread as the real
ones are (97–98 each; the names are made up, the shape is what counts), one room and one SIP endpoint per
commune plus a chair room per province (3,355 rooms), and one bridge per province sized for its sites
plus 25 % (35 with ``--extra-bridge``: a second bridge in the chair's province; ``--bridges-per-province 2``:
68, the issue's "3,355 sites on 68 bridges", two alike per province: the booking reads both, uses the
first, since one bridge per province takes its sites). A national secretariat then, in-process through
the real services (events recorded, as the app does):

  (a) ``check_meeting``: the national meeting — chair room in province 01, every other room taking part
      (3,354 rooms), 08:00–10:00 local two weeks ahead — dry run;
  (b) ``book_meeting``: the same, committed (then deleted, not timed): 34 bridges, 33 cascade legs.

It prints p50/p95 of each beside the target (issue 14: ≤ 2,000 ms on PostgreSQL) and the bridges' ports
of one booking (the chair's bridge: its sites + 33 legs).

    PYTHONPATH=$PWD python bench/cascade.py [--db postgresql|sqlite] [--repeat N] [--bridges-per-province 2]
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import select

import confsvc.all_models  # noqa: F401  (every table known to the ORM)
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.endpoints.models import Bridge, Endpoint, EndpointStatus, LifecycleState, Protocol, Room, Unit, UnitLevel
from confsvc.main import install_hooks
from confsvc.migrate import upgrade
from confsvc.scheduling import creation
from confsvc.scheduling.models import Booking, Meeting, ResourceKind
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import service as users
from confsvc.users.models import Role
from confsvc.users.principal import Principal

install_hooks()

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PROVINCES, COMMUNES = 34, 3321
TARGET_MS = 2000.0


def build(engine: sa.Engine, *, extra_bridge: bool, bridges_per_province: int = 1) -> tuple[int, list[int], int]:
    """The country, written in bulk. Returns the national chair room, every other room and the national
    secretariat's user id."""
    now = utc_now()
    with make_session(engine) as session:
        for n in range(1, PROVINCES + 1):
            session.execute(sa.insert(Unit), [{"code": f"{n:02d}", "name": f"Tỉnh Thử {n:02d}", "division_type": "tỉnh",
                                               "level": UnitLevel.province, "parent_id": None, "search_text": f"tinh thu {n}",
                                               "updated_at": now}])
        provinces = dict(session.execute(sa.select(Unit.code, Unit.id)).all())
        units = []
        for i in range(COMMUNES):
            province = provinces[f"{i % PROVINCES + 1:02d}"]
            units.append({"code": f"9{i:05d}", "name": f"Xã Thử {i}", "division_type": "xã", "level": UnitLevel.commune,
                          "parent_id": province, "search_text": f"xa thu {i}", "updated_at": now})
        session.execute(sa.insert(Unit), units)
        unit_rows = session.execute(sa.select(Unit.id, Unit.parent_id).where(Unit.level == UnitLevel.commune)).all()
        rooms = [{"unit_id": p, "name": f"Điểm cầu tỉnh {code}", "seats": 50, "search_text": f"tinh {code}",
                  "updated_at": now}
                 for code, p in provinces.items()]
        rooms += [{"unit_id": u, "name": f"Điểm cầu xã {u}", "seats": 30, "search_text": f"xa {u}",
                   "updated_at": now} for u, _ in unit_rows]
        session.execute(sa.insert(Room), rooms)
        room_rows = session.execute(sa.select(Room.id, Room.unit_id)).all()
        session.execute(sa.insert(Endpoint), [
            {"room_id": r, "name": f"Thiết bị {r}", "vendor": "Poly", "model": "G7500", "serial": f"SN{r:08d}",
             "protocol": Protocol.sip, "dial_address": f"sip:ep{r}@vc.example.vn",
             "lifecycle_state": LifecycleState.active, "status": EndpointStatus.unknown, "search_text": f"thiet bi {r}",
             "updated_at": now} for r, _ in room_rows])
        per_province: dict[int, int] = {}
        for _u, p in unit_rows:
            per_province[p] = per_province.get(p, 0) + 1
        bridges = [{"name": f"MCU tỉnh {code}", "port_capacity": int((per_province[p] + 1 + 34) * 1.25),
                    "sip_domain": f"mcu.t{code}.gov.vn", "h323_prefix": f"9{code}", "conference_number_min": 1000,
                    "conference_number_max": 1999, "active": True, "unit_id": p, "updated_at": now}
                   for code, p in provinces.items()]
        bridges += [{**b, "name": f"{b['name']} ({k})", "sip_domain": f"mcu{k}.{b['sip_domain'][4:]}"}
                    for k in range(2, bridges_per_province + 1) for b in bridges[:len(provinces)]]
        if extra_bridge:
            bridges.append({**bridges[0], "name": "MCU tỉnh 01 (extra)", "sip_domain": "mcux.t01.gov.vn"})
        session.execute(sa.insert(Bridge), bridges)
        user = users.create_user(session, role=Role.secretariat, unit_ids=[], username="vanphongchinhphu",
                                 password="benchmark-only-password", full_name="Văn phòng Chính phủ")
        session.commit()
        chair = session.execute(sa.select(Room.id).where(Room.unit_id == provinces["01"])).scalar_one()
        others = sorted(r for r, _ in room_rows if r != chair)
        user_id = user.id
    return chair, others, user_id


def timed(repeat: int, action: Callable[[], Callable[[], None] | None]) -> list[float]:
    """Milliseconds of ``action`` over ``repeat`` runs after one warm-up; it may return an untimed clean-up."""
    samples = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        cleanup = action()
        elapsed = (time.perf_counter() - t0) * 1000
        if cleanup is not None:
            cleanup()
        if i:
            samples.append(elapsed)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(backend: str, url: str, repeat: int, extra_bridge: bool, per_province: int = 1) -> None:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    t0 = time.perf_counter()
    chair, others, user_id = build(engine, extra_bridge=extra_bridge, bridges_per_province=per_province)
    with make_session(engine) as session:
        country = session.execute(sa.select(sa.func.count()).select_from(Bridge)).scalar_one()
    print(f"{backend}: {PROVINCES} provinces, {len(others) + 1} rooms, {country} bridges built in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    principal = Principal(user_id=user_id, username="vanphongchinhphu", role=Role.secretariat, unit_ids=None)
    day = date.today() + timedelta(days=14)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    data = MeetingCreate(title="Hội nghị trực tuyến Chính phủ với địa phương (benchmark)", chair_room_id=chair,
                         participant_room_ids=others, start=datetime.combine(day, clock(8, 0), ZONE),
                         end=datetime.combine(day, clock(10, 0), ZONE))
    ports: dict[int, int] = {}

    def check() -> None:
        with make_session(engine, write=False) as session:
            answer = creation.check_meeting(session, settings, principal, data)
            session.rollback()
        assert answer["ok"], answer["conflicts"][:3]

    def book() -> Callable[[], None]:
        with make_session(engine) as session:
            result = creation.book_meeting(session, settings, principal, data)
            session.commit()
        meeting_id = result.meeting.id

        def delete() -> None:
            with make_session(engine) as session:
                ports.clear()
                ports.update(session.execute(select(Booking.resource_id, Booking.ports).where(
                    Booking.meeting_id == meeting_id, Booking.resource_kind == ResourceKind.bridge)).all())
                session.execute(sa.delete(Meeting).where(Meeting.id == meeting_id))
                session.commit()
        return delete

    results = {"check": timed(repeat, check), "book": timed(repeat, book)}
    root = min(ports)
    print(f"bridges booked: {len(ports)}; chair's bridge {ports[root]} ports "
          f"(its sites + {len(ports) - 1} legs); others e.g. {sorted(ports.values())[:3]}")
    print(f"{'':8}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}   target")
    for name, values in results.items():
        print(f"{name:8}{percentile(values, 0.5):10.1f}{percentile(values, 0.95):10.1f}"
              f"{statistics.mean(values):10.1f}   ≤ {TARGET_MS:.0f} ms p50 (PostgreSQL)")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--extra-bridge", action="store_true", help="a second bridge in the chair's province (35)")
    parser.add_argument("--bridges-per-province", type=int, default=1, choices=(1, 2),
                        help="2: two bridges per province (68, the issue's wording)")
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.repeat, args.extra_bridge,
                args.bridges_per_province)
        return
    name = f"confsvc_bench_cascade_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        run("postgresql", sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False),
            args.repeat, args.extra_bridge, args.bridges_per_province)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
