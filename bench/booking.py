"""Booking benchmark at national scale (issue 3; SPEC "Scale it is built for"). Not a test.

Builds the whole country on one database: the 34 provinces and 3,321 communes of
``vietnam-provinces``, ~3,500 rooms, ~4,000 endpoints, 2 bridges of 200 ports per province, and
``--bookings`` existing bookings (default 2.5 million, about five years) written in bulk
(``executemany`` on SQLite, ``COPY`` on PostgreSQL). The rows are consistent: every booking
belongs to a meeting, its occurrence and its participants; no endpoint or room holds two
overlapping bookings; a bridge never exceeds its ports and its conference numbers are unique
among overlapping occurrences (PostgreSQL re-validates the exclusion constraints after the load).

Then, in-process through the real service as a secretariat user, it measures p50/p95 of
  (a) ``book_meeting``: all 148 Phú Thọ communes (plus the chair room), 08:00–10:00 local on a
      weekday two weeks ahead, on Phú Thọ's first bridge; committed, then deleted (not timed);
  (b) ``check_meeting``: the same meeting, dry run;
  (c) ``find_free_slots``: the 148 commune endpoints, 120 minutes, over two weeks, same bridge;
at 10,000 existing bookings and again at ``--bookings``, and prints the ratio (large / small).

The bookings are generated per (province, working day) in order of distance from the measured
day, Phú Thọ's two measured weeks first: the 10,000 already hold everything the three queries
look at, so the larger run differs only by history. That is what the ratio measures: the
goal (issue 3) is ratio ≤ 1.5 and p50 of (a) ≤ 50 ms on SQLite.

    python bench/booking.py [--bookings N] [--db sqlite|postgresql|both] [--repeat N]
"""

from __future__ import annotations

import argparse
import enum
import random
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import select
from vietnam_provinces import Province

import confsvc.all_models  # noqa: F401  (every table known to the ORM)
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit
from confsvc.endpoints.units_import import import_province
from confsvc.main import install_hooks
from confsvc.migrate import upgrade
from confsvc.scheduling import availability, creation, repository
from confsvc.scheduling.conflicts import Window
from confsvc.scheduling.models import Booking, Meeting, ResourceKind
from confsvc.scheduling.schemas import MeetingCreate
from confsvc.users import service as users
from confsvc.users.models import Role
from confsvc.users.principal import Principal

# The listeners create_app installs (usage-summary marks, event publishing): the data is written as the app writes it.
install_hooks()

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SMALL = 10_000
PHU_THO = "25"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DEPARTMENT_ROOMS = 4          # per province: small meetings are chaired from these
FUTURE_DAYS = 60              # bookings exist this far after the measured day; the rest is history
LEAD = timedelta(minutes=60)  # the default technical-check lead
SLOTS = [(clock(8, 0), clock(11, 0)), (clock(14, 0), clock(16, 30))]
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- inventory

@dataclass
class ProvinceInventory:
    code: str
    chair_room: int
    chair_endpoints: list[int]
    department_rooms: list[tuple[int, int]]  # (room id, endpoint id)
    communes: list[tuple[int, int]]          # (room id, primary endpoint id), by official code
    bridges: list[tuple[int, int]]           # (bridge id, first conference number)


@dataclass
class Inventory:
    provinces: list[ProvinceInventory] = field(default_factory=list)
    rooms: int = 0
    endpoints: int = 0
    bridges: int = 0
    user_id: int = 0

    def province(self, code: str) -> ProvinceInventory:
        return next(p for p in self.provinces if p.code == code)


def build_inventory(engine: sa.Engine) -> Inventory:
    """The 34 provinces with their communes, rooms, endpoints, bridges, and a secretariat user."""
    inventory = Inventory()
    with make_session(engine) as session:
        for province in Province.iter_all():
            import_province(session, f"{province.code.value:02d}")
        session.commit()
        serial = 0
        for unit in session.exec(select(Unit).where(Unit.parent_id.is_(None)).order_by(Unit.code)).all():
            communes = session.exec(select(Unit).where(Unit.parent_id == unit.id).order_by(Unit.code)).all()
            rooms = [Room(unit_id=unit.id, name=f"Phòng họp trực tuyến UBND {unit.name}", seats=80)]
            rooms += [Room(unit_id=unit.id, name=f"Phòng họp số {i + 1} – {unit.name}", seats=30)
                      for i in range(DEPARTMENT_ROOMS)]
            rooms += [Room(unit_id=c.id, name=f"Điểm cầu UBND {c.name}", seats=30) for c in communes]
            session.add_all(rooms)
            session.flush()
            endpoints: list[list[Endpoint]] = []
            for index, room in enumerate(rooms):
                # The chair room has two codecs; every 7th commune room a second one (~4,000 in all).
                count = 2 if index == 0 or (index > DEPARTMENT_ROOMS and index % 7 == 0) else 1
                row = []
                for k in range(count):
                    serial += 1
                    row.append(Endpoint(room_id=room.id, name=f"{room.name} – thiết bị {k + 1}", vendor="Poly",
                                        model="G7500", serial=f"BENCH{serial:07d}",
                                        dial_address=f"sip:ep{serial}@vc.gov.vn"))
                endpoints.append(row)
            session.add_all(e for row in endpoints for e in row)
            bridges = [Bridge(name=f"MCU {k + 1} – {unit.name}", port_capacity=200,
                              sip_domain=f"mcu{k + 1}.{unit.code}.vn", conference_number_min=1000 * (k + 1),
                              conference_number_max=1000 * (k + 1) + 999)
                       for k in range(2)]
            session.add_all(bridges)
            session.flush()
            inventory.provinces.append(ProvinceInventory(
                code=unit.code, chair_room=rooms[0].id, chair_endpoints=[e.id for e in endpoints[0]],
                department_rooms=[(r.id, endpoints[i + 1][0].id) for i, r in enumerate(rooms[1:1 + DEPARTMENT_ROOMS])],
                communes=[(r.id, endpoints[i + 1 + DEPARTMENT_ROOMS][0].id)
                          for i, r in enumerate(rooms[1 + DEPARTMENT_ROOMS:])],
                bridges=[(b.id, b.conference_number_min) for b in bridges]))
            inventory.rooms += len(rooms)
            inventory.endpoints += sum(len(row) for row in endpoints)
            inventory.bridges += len(bridges)
        user = users.create_user(session, username="bench", password="bench-mat-khau-dai", role=Role.secretariat,
                                 full_name="Văn phòng UBND tỉnh", unit_ids=[])
        session.commit()
        inventory.user_id = user.id
    return inventory


# ---------------------------------------------------------------- history

@dataclass
class Rows:
    meetings: list[tuple] = field(default_factory=list)
    occurrences: list[tuple] = field(default_factory=list)
    participants: list[tuple] = field(default_factory=list)
    bookings: list[tuple] = field(default_factory=list)

    def clear(self) -> None:
        for rows in (self.meetings, self.occurrences, self.participants, self.bookings):
            rows.clear()


MEETING_COLUMNS = ("id", "uid", "title", "description", "organizer_user_id", "chair_room_id", "bridge_id",
                   "conference_number", "pin", "status", "check_lead_minutes", "teardown_minutes", "timezone",
                   "dtstart", "duration_minutes", "rrule", "exdates", "materialized_until", "sequence",
                   "created_by", "created_at", "updated_by", "updated_at", "cancelled_by", "cancelled_at")
OCCURRENCE_COLUMNS = ("id", "meeting_id", "recurrence_id", "start", "end", "status", "chair_room_id",
                      "participants_overridden", "is_exception", "updated_at")
PARTICIPANT_COLUMNS = ("meeting_id", "endpoint_id")
BOOKING_COLUMNS = ("id", "meeting_id", "occurrence_id", "maintenance_id", "resource_kind", "resource_id",
                   "window_start", "window_end", "ports", "conference_number")


class History:
    """Generates consistent meetings per (province, working day); ids are assigned here."""

    def __init__(self, inventory: Inventory, measured_day: date, next_ids: dict[str, int]) -> None:
        self.inventory = inventory
        self.measured_day = measured_day
        self.ids = dict(next_ids)
        self.first_day: date | None = None
        self.last_day: date | None = None

    def units(self) -> Iterator[tuple[ProvinceInventory, date]]:
        """(province, day) in the order they are written: Phú Thọ's measured fortnight first, then
        every province by distance from the measured day (at most FUTURE_DAYS ahead, then the past)."""
        phu_tho = self.inventory.province(PHU_THO)
        window = [self.measured_day + timedelta(days=i) for i in range(-1, 15)]
        for day in window:
            yield phu_tho, day
        distance = 0
        while True:
            days = [self.measured_day - timedelta(days=distance)]
            if 0 < distance <= FUTURE_DAYS:
                days.append(self.measured_day + timedelta(days=distance))
            for day in days:
                for province in self.inventory.provinces:
                    if not (province is phu_tho and day in window):
                        yield province, day
            distance += 1

    def day_rows(self, province: ProvinceInventory, day: date, rows: Rows) -> int:
        """Append one province-day of meetings to ``rows``; returns the number of bookings."""
        if day.weekday() >= 5:
            return 0
        self.first_day = min(self.first_day or day, day)
        self.last_day = max(self.last_day or day, day)
        rng = random.Random(int(province.code) * 1_000_000 + day.toordinal())
        before = len(rows.bookings)
        for slot, (start, end) in enumerate(SLOTS):
            if province.code == PHU_THO and day == self.measured_day and slot == 0:
                continue  # the measured meeting's slot is kept free
            if slot == 0 and day.weekday() == 0:
                # Monday briefing: the province's chair room with every commune, on its first bridge.
                self._meeting(rows, province, day, start, end, province.chair_room, province.chair_endpoints,
                              province.communes, province.bridges[0], 0, "Giao ban trực tuyến")
                continue
            count = rng.choice((0, 0, 1, 1, 2))
            sizes = [rng.randint(3, 8) for _ in range(count)]
            chosen = rng.sample(province.communes, min(sum(sizes), len(province.communes)))
            for index, size in enumerate(sizes):
                group, chosen = chosen[:size], chosen[size:]
                room, endpoint = province.department_rooms[index]
                self._meeting(rows, province, day, start, end, room, [endpoint], group,
                              province.bridges[index % 2], index, "Hội nghị trực tuyến chuyên đề")
        return len(rows.bookings) - before

    def _next(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def _meeting(self, rows: Rows, province: ProvinceInventory, day: date, start: clock, end: clock, chair_room: int,
                 chair_endpoints: list[int], communes: list[tuple[int, int]], bridge: tuple[int, int], number: int,
                 title: str) -> None:
        start_utc = datetime.combine(day, start, ZONE).astimezone(UTC)
        end_utc = datetime.combine(day, end, ZONE).astimezone(UTC)
        meeting_id, occurrence_id = self._next("meetings"), self._next("occurrences")
        conference = bridge[1] + number
        minutes = int((end_utc - start_utc).total_seconds() // 60)
        user = self.inventory.user_id
        rows.meetings.append((meeting_id, f"bench-{meeting_id}@confsvc", f"{title} {meeting_id}", "", user, chair_room,
                              bridge[0], conference, "123456", "confirmed", 60, 0, "Asia/Ho_Chi_Minh", start_utc,
                              minutes, None, "[]", None, 0, user, EPOCH, user, EPOCH, None, None))
        rows.occurrences.append((occurrence_id, meeting_id, start_utc, start_utc, end_utc, "scheduled", None,
                                 False, False, EPOCH))
        endpoints = sorted([*chair_endpoints, *(e for _, e in communes)])
        room_ids = sorted([chair_room, *(r for r, _ in communes)])
        rows.participants.extend((meeting_id, e) for e in endpoints)
        window_start = start_utc - LEAD
        for kind, ids in (("endpoint", endpoints), ("room", room_ids)):
            rows.bookings.extend((self._next("bookings"), meeting_id, occurrence_id, None, kind, r, window_start,
                                  end_utc, 0, None) for r in ids)
        rows.bookings.append((self._next("bookings"), meeting_id, occurrence_id, None, "bridge", bridge[0],
                              window_start, end_utc, len(endpoints), conference))


# ---------------------------------------------------------------- bulk writers

PG_CONSTRAINTS = {
    "ex_bookings_resource_window":
        "EXCLUDE USING gist (resource_kind WITH =, resource_id WITH =, "
        "tstzrange(window_start, window_end, '[)') WITH &&) WHERE (resource_kind IN ('endpoint', 'room'))",
    "ex_bookings_conference_number":
        "EXCLUDE USING gist (resource_id WITH =, conference_number WITH =, "
        "tstzrange(window_start, window_end, '[)') WITH &&) "
        "WHERE (resource_kind = 'bridge' AND conference_number IS NOT NULL)",
}
BOOKING_INDEXES = {
    "ix_bookings_meeting_id": "(meeting_id)",
    "ix_bookings_occurrence_id": "(occurrence_id)",
    "ix_bookings_maintenance_id": "(maintenance_id)",
    "ix_bookings_resource_window": "(resource_kind, resource_id, window_start)",
}
TABLES = (("meetings", MEETING_COLUMNS, "meetings"), ("occurrences", OCCURRENCE_COLUMNS, "occurrences"),
          ("meeting_participants", PARTICIPANT_COLUMNS, "participants"), ("bookings", BOOKING_COLUMNS, "bookings"))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):  # SQLAlchemy's SQLite DateTime storage format, naive UTC
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


class Writer:
    """Writes ``Rows`` in bulk; secondary booking indexes and constraints are dropped during a load
    and rebuilt after it (PostgreSQL's exclusion constraints then re-validate every row)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.postgresql = engine.dialect.name == "postgresql"
        self.raw = engine.raw_connection()

    def begin_load(self) -> None:
        cursor = self.raw.cursor()
        if not self.postgresql:
            cursor.execute("BEGIN")
        if self.postgresql:
            for name in PG_CONSTRAINTS:
                cursor.execute(f"ALTER TABLE bookings DROP CONSTRAINT {name}")
            # Foreign keys are not re-checked row by row during the load: the rows are built consistent.
            cursor.execute("SET session_replication_role = replica")
        for name in BOOKING_INDEXES:
            cursor.execute(f"DROP INDEX {name}")
        self.raw.commit()

    def write(self, rows: Rows) -> None:
        self.write_tables(rows, TABLES)

    def write_tables(self, rows: Any, tables: Any) -> None:
        """Bulk-insert ``rows``' lists into ``tables`` ((table, columns, attribute) triples): COPY on
        PostgreSQL, executemany on SQLite, one transaction."""
        cursor = self.raw.cursor()
        if not self.postgresql:
            cursor.execute("BEGIN")  # confsvc's SQLite connections autocommit unless told otherwise
        for table, columns, attribute in tables:
            data = getattr(rows, attribute)
            if not data:
                continue
            quoted = ", ".join(f'"{c}"' for c in columns)
            if self.postgresql:
                with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                    for row in data:
                        copy.write_row(row)
            else:
                cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})",
                                   [tuple(_sqlite_value(v) for v in row) for row in data])
        self.raw.commit()

    def end_load(self) -> None:
        cursor = self.raw.cursor()
        if not self.postgresql:
            cursor.execute("BEGIN")
        for name, columns in BOOKING_INDEXES.items():
            cursor.execute(f"CREATE INDEX {name} ON bookings {columns}")
        if self.postgresql:
            cursor.execute("SET session_replication_role = origin")
            for name, definition in PG_CONSTRAINTS.items():
                cursor.execute(f"ALTER TABLE bookings ADD CONSTRAINT {name} {definition}")
            for table in ("meetings", "occurrences", "bookings", "audit_log"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
        self.raw.commit()
        if self.postgresql:
            self.raw.driver_connection.autocommit = True
            self.raw.cursor().execute("VACUUM ANALYZE")
            self.raw.driver_connection.autocommit = False

    def close(self) -> None:
        self.raw.close()


def load(writer: Writer, history: History, units: Iterator[tuple[ProvinceInventory, date]], target: int,
         already: int) -> int:
    """Write province-days until ``target`` bookings exist; returns the new total."""
    total = already
    rows = Rows()
    writer.begin_load()
    while total < target:
        province, day = next(units)
        total += history.day_rows(province, day, rows)
        if len(rows.bookings) >= 100_000:
            writer.write(rows)
            rows.clear()
    writer.write(rows)
    writer.end_load()
    return total


# ---------------------------------------------------------------- measurements

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(repeat: int, action: Callable[[], Callable[[], None] | None]) -> list[float]:
    """Milliseconds of ``action`` over ``repeat`` runs after one warm-up; ``action`` may return an
    untimed clean-up."""
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


def measure(engine: sa.Engine, settings: Settings, inventory: Inventory, measured_day: date,
            repeat: int) -> dict[str, list[float]]:
    phu_tho = inventory.province(PHU_THO)
    principal = Principal(user_id=inventory.user_id, username="bench", role=Role.secretariat, unit_ids=None)
    data = MeetingCreate(
        title="Hội nghị trực tuyến toàn tỉnh Phú Thọ (benchmark)", chair_room_id=phu_tho.chair_room,
        participant_endpoint_ids=[e for _, e in phu_tho.communes], bridge_id=phu_tho.bridges[0][0],
        start=datetime.combine(measured_day, clock(8, 0), ZONE), end=datetime.combine(measured_day, clock(10, 0), ZONE))
    assert len(data.participant_endpoint_ids) == 148

    def book() -> Callable[[], None]:
        with make_session(engine) as session:
            result = creation.book_meeting(session, settings, principal, data)
            session.commit()
        assert result.occurrence_count == 1 and not result.skipped

        def delete() -> None:
            with make_session(engine) as session:
                session.execute(sa.delete(Meeting).where(Meeting.id == result.meeting.id))
                session.commit()
        return delete

    def check() -> None:
        with make_session(engine, write=False) as session:
            answer = creation.check_meeting(session, settings, principal, data)
            session.rollback()
        assert answer["ok"], answer["conflicts"][:3]

    def free_slots() -> None:
        with make_session(engine, write=False) as session:
            slots = availability.find_free_slots(
                session, settings, principal, endpoint_ids=[e for _, e in phu_tho.communes], room_ids=[],
                duration_minutes=120, from_date=measured_day, to_date=measured_day + timedelta(days=13),
                bridge_id=phu_tho.bridges[0][0])
            session.rollback()
        assert slots

    return {"book": timed(repeat, book), "check": timed(repeat, check), "free_slots": timed(repeat, free_slots)}


def count_rows(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()


def run(backend: str, url: str, bookings: int, repeat: int, report: list[dict[str, Any]]) -> None:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    t0 = time.perf_counter()
    inventory = build_inventory(engine)
    print(f"[{backend}] inventory: {len(inventory.provinces)} provinces, {count_rows(engine, 'units') - 34} communes, "
          f"{inventory.rooms} rooms, {inventory.endpoints} endpoints, {inventory.bridges} bridges "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    today = datetime.now(ZONE).date()
    measured_day = today + timedelta(days=14 + (1 - today.weekday()) % 7)  # a Tuesday two weeks ahead
    history = History(inventory, measured_day, {"meetings": 0, "occurrences": 0, "bookings": 0})
    units = history.units()
    writer = Writer(engine)
    total = 0
    for target in (SMALL, bookings):
        t0 = time.perf_counter()
        total = load(writer, history, units, target, total)
        print(f"[{backend}] {total:,} bookings, {count_rows(engine, 'meetings'):,} meetings, "
              f"{count_rows(engine, 'meeting_participants'):,} participants, local days {history.first_day} … "
              f"{history.last_day} (loaded in {time.perf_counter() - t0:.0f} s)", flush=True)
        samples = measure(engine, settings, inventory, measured_day, repeat)
        report.append({"db": backend, "bookings": count_rows(engine, "bookings"), **samples})
        print(f"[{backend}] measured at {total:,}: " + ", ".join(
            f"{k} p50 {statistics.median(v):.1f} ms" for k, v in samples.items()), flush=True)
        if total >= bookings:
            break
    explain(engine, inventory, measured_day)
    writer.close()
    engine.dispose()


def explain(engine: sa.Engine, inventory: Inventory, measured_day: date) -> None:
    """Print the plan of the overlap query (``repository.overlapping``) for the measured meeting."""
    phu_tho = inventory.province(PHU_THO)
    start = datetime.combine(measured_day, clock(7, 0), ZONE).astimezone(UTC)
    query = (select(Booking).where(
        sa.or_(sa.and_(Booking.resource_kind == ResourceKind.endpoint,
                       Booking.resource_id.in_([e for _, e in phu_tho.communes])),
               sa.and_(Booking.resource_kind == ResourceKind.room,
                       Booking.resource_id.in_([r for r, _ in phu_tho.communes]))),
        repository.overlap_filter(Window(start, start + timedelta(hours=3)), timedelta(minutes=1200))))
    compiled = query.compile(engine, compile_kwargs={"render_postcompile": True})
    with engine.connect() as conn:
        if compiled.positional:
            params: Any = tuple(_sqlite_value(compiled.params[k]) for k in compiled.positiontup)
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
            text = " | ".join(str(r[-1]) for r in plan)
        else:
            params = {k: v.value if isinstance(v, enum.Enum) else v for k, v in compiled.params.items()}
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", params).all()
            text = "\n    ".join(r[0] for r in plan)
    print(f"[{engine.dialect.name}] overlap query plan:\n    {text}", flush=True)


def print_table(report: list[dict[str, Any]], peak_mib: float, command: str) -> None:
    print()
    print(f"{'db':<11}{'bookings':>11}  {'(a) book p50/p95 ms':>21}  {'(b) check p50/p95 ms':>21}  "
          f"{'(c) free slots p50/p95 ms':>26}")
    for row in report:
        cells = [f"{statistics.median(row[k]):.1f} / {percentile(row[k], 0.95):.1f}"
                 for k in ("book", "check", "free_slots")]
        print(f"{row['db']:<11}{row['bookings']:>11,}  {cells[0]:>21}  {cells[1]:>21}  {cells[2]:>26}")
    for backend in dict.fromkeys(r["db"] for r in report):
        rows = [r for r in report if r["db"] == backend]
        if len(rows) == 2:
            ratios = [statistics.median(rows[1][k]) / statistics.median(rows[0][k])
                      for k in ("book", "check", "free_slots")]
            print(f"{backend:<11}{'ratio p50':>11}  {ratios[0]:>21.2f}  {ratios[1]:>21.2f}  {ratios[2]:>26.2f}")
    print(f"peak memory (ru_maxrss): {peak_mib:.0f} MiB")
    print("goal: ratio <= 1.5; (a) p50 <= 50 ms on SQLite in-process")
    print(f"reproduce: {command}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=2_500_000, help="existing bookings of the large run")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per measurement (after a warm-up)")
    args = parser.parse_args(argv)
    if args.bookings < SMALL:
        parser.error(f"--bookings must be at least {SMALL}")
    report: list[dict[str, Any]] = []
    backends = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    for backend in backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="confsvc-bench-") as tmp:
                run(backend, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.bookings, args.repeat, report)
        else:
            name = f"confsvc_bench_{int(time.time())}"
            admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
                run(backend, url, args.bookings, args.repeat, report)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = shlex.join(["python", "bench/booking.py", "--bookings", str(args.bookings), "--db", args.db,
                          "--repeat", str(args.repeat)])
    print_table(report, peak_mib, f"cd {Path(__file__).resolve().parents[1]} && {command}")


if __name__ == "__main__":
    sys.exit(main())
