"""Usage-statistics benchmark at national scale (issue 6; SPEC "Scale it is built for"). Not a test.

Builds the data of ``bench/booking.py`` (its inventory and its history generator: 34 provinces,
3,321 communes, ~3,500 rooms, ~4,000 endpoints, meetings per province and working day) and adds,
for every occurrence that has ended, realistic call records: each participating endpoint connects
with 95 % probability, in one period or (45 %) two (a drop and a reconnect), from up to 30 minutes
before the start (the technical check) or late, until shortly before the end. About 2 % of the
sites get an endpoint ``fault`` in their status history, 4 % a readiness ``problem``.

History is written backwards in time from two weeks ahead (as in the booking benchmark) until
``--calls`` call records exist, in two stages (``--small`` first), so the reported year and quarter
hold the same rows at both sizes and the larger run differs only by older history. With 1–2 periods
per site the country makes ~390,000 call records a year, so 5 million are ~13 years of history
(~6.7 million bookings).

At each size, in a fresh child process (so its peak RSS is the report's, not the loader's), it
times through ``stats.usage.usage_report`` as an admin:
  (q) the quarterly report of Phú Thọ per commune: group_by=unit (and group_by=room), period=month,
      unit_id=Phú Thọ, the last complete quarter;
  (y) the yearly report of the country per province: group_by=unit, unit_level=province, period=month,
      the last complete calendar year;
The child first empties the usage summary (``stats.summary``: the loader writes behind the ORM, so
no change marks exist) and fills it for every settled day of the two periods, as the background job
does once (``summary_job.refresh_summary``; its time is printed). Then "first" is each report's first run,
p50/p95 are over ``--repeat`` later runs, then one more run under
``tracemalloc`` for the Python peak of the report, and the child's peak RSS. Last, each report once
more from the live statements alone (summary off): its time and whether its JSON is identical.
Goal (issue 6): each under 1 s, memory flat between the two sizes.

    python bench/stats.py [--calls N] [--small N] [--db sqlite|postgresql|both] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import booking  # noqa: E402  (bench/booking.py: the national data builder)

from confsvc.db import make_engine, make_session  # noqa: E402
from confsvc.endpoints.models import Unit, UnitLevel  # noqa: E402
from confsvc.migrate import upgrade  # noqa: E402

PHU_THO = booking.PHU_THO
CALL_COLUMNS = ("id", "endpoint_id", "occurrence_id", "connected_at", "disconnected_at", "source", "created_by",
                "updated_at")
HISTORY_COLUMNS = ("id", "endpoint_id", "status", "previous", "at", "source", "detail", "agent_token_id", "user_id")
READINESS_COLUMNS = ("occurrence_id", "room_id", "state", "note", "updated_by", "updated_at")
EXTRA_TABLES = (("call_records", CALL_COLUMNS, "calls"), ("endpoint_status_history", HISTORY_COLUMNS, "history"),
                ("readiness", READINESS_COLUMNS, "readiness"))
CALL_INDEXES = {
    "ix_call_records_occurrence_id_endpoint_id_connected_at": "(occurrence_id, endpoint_id, connected_at)",
    "ix_call_records_connected_at": "(connected_at)",
    "ix_call_records_endpoint_id_connected_at": "(endpoint_id, connected_at)",
}


@dataclass
class StatsRows(booking.Rows):
    calls: list[tuple] = field(default_factory=list)
    history: list[tuple] = field(default_factory=list)
    readiness: list[tuple] = field(default_factory=list)

    def clear(self) -> None:
        super().clear()
        for rows in (self.calls, self.history, self.readiness):
            rows.clear()


class CallHistory(booking.History):
    """The booking benchmark's meetings, plus call records, faults and readiness for ended occurrences."""

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now
        self.ids.update(calls=0, history=0)
        self.room_of: dict[int, int] = {}

    def _meeting(self, rows: StatsRows, province: booking.ProvinceInventory, day: date, *args: Any) -> None:
        before = len(rows.participants)
        super()._meeting(rows, province, day, *args)
        occurrence_id, _, _, start, end, *_ = rows.occurrences[-1]
        if end > self.now:
            return
        rng = random.Random(occurrence_id)
        lead = booking.LEAD
        minute = timedelta(minutes=1)
        chair_room = rows.meetings[-1][5]
        rows.readiness.append((occurrence_id, chair_room, "ready", "", self.inventory.user_id, start - lead))
        for _, endpoint_id in rows.participants[before:]:
            room = self.room_of.get(endpoint_id)
            if room is not None and room != chair_room and rng.random() < 0.04:
                rows.readiness.append((occurrence_id, room, "problem", "Mất tín hiệu âm thanh", None, start - lead))
            if rng.random() < 0.02:
                fault_at = start + rng.randint(-50, 60) * minute
                for status, previous, at in (("fault", "online", fault_at), ("online", "fault", fault_at + 15 * minute)):
                    rows.history.append((self._next("history"), endpoint_id, status, previous, at, "agent", "", None,
                                         None))
            if rng.random() >= 0.95:
                continue  # this site never connected
            if rng.random() < 0.1:
                connected = start + rng.randint(6, 20) * minute    # a late join
            else:
                connected = start - rng.randint(0, 30) * minute    # during the technical check
            disconnected = end - rng.randint(0, 10) * minute
            if rng.random() < 0.45:
                drop = connected + (disconnected - connected) * rng.uniform(0.2, 0.8)
                back = drop + rng.randint(1, 10) * minute
                periods = [(connected, drop), (back, disconnected)]
            else:
                periods = [(connected, disconnected)]
            for a, b in periods:
                rows.calls.append((self._next("calls"), endpoint_id, occurrence_id, a, b, "bridge", None, b))


class StatsWriter(booking.Writer):
    """The booking writer, plus call records, status history and readiness (call-record indexes
    dropped during the load and rebuilt after it)."""

    def begin_load(self) -> None:
        super().begin_load()
        cursor = self.raw.cursor()
        if not self.postgresql:
            cursor.execute("BEGIN")
        for name in CALL_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        self.raw.commit()

    def write(self, rows: StatsRows) -> None:
        super().write(rows)
        self.write_tables(rows, EXTRA_TABLES)

    def end_load(self) -> None:
        cursor = self.raw.cursor()
        if not self.postgresql:
            cursor.execute("BEGIN")
        for name, columns in CALL_INDEXES.items():
            cursor.execute(f"CREATE INDEX {name} ON call_records {columns}")
        if self.postgresql:
            for table in ("call_records", "endpoint_status_history"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
        self.raw.commit()
        super().end_load()
        if not self.postgresql:  # PostgreSQL: VACUUM ANALYZE in super().end_load()
            cursor = self.raw.cursor()
            cursor.execute("ANALYZE")
            self.raw.commit()


def load(writer: StatsWriter, history: CallHistory, units: Any, target_calls: int) -> None:
    """Write province-days (back in time) until ``target_calls`` call records exist."""
    rows = StatsRows()
    writer.begin_load()
    while history.ids["calls"] < target_calls:
        province, day = next(units)
        history.day_rows(province, day, rows)
        if len(rows.bookings) + len(rows.calls) >= 200_000:
            writer.write(rows)
            rows.clear()
    writer.write(rows)
    writer.end_load()


# ---------------------------------------------------------------- measuring (child process)

def periods(today: date) -> dict[str, tuple[date, date]]:
    """The last complete quarter and the last complete calendar year before ``today``."""
    q_first_month = (today.month - 1) // 3 * 3 + 1
    q_after = date(today.year, q_first_month, 1)
    q_first = date(q_after.year - (1 if q_after.month == 1 else 0), (q_after.month - 4) % 12 + 1, 1)
    return {"quarter": (q_first, q_after), "year": (date(today.year - 1, 1, 1), date(today.year, 1, 1))}


REPORTS = ("q_unit", "q_room", "y_province")


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(url: str, repeat: int, today: date) -> dict[str, Any]:
    """Run in a fresh process: timings, tracemalloc peak and ru_maxrss of the three reports."""
    from confsvc.config import Settings
    from confsvc.stats import summary_job, usage
    from confsvc.stats.schemas import GroupBy, Period
    from confsvc.users.models import Role
    from confsvc.users.principal import Principal

    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key="benchmark-only-not-a-secret-" + "x" * 20)
    principal = Principal(user_id=1, username="bench", role=Role.admin, unit_ids=None)
    spans = periods(today)
    with make_session(engine, write=False) as session:
        phu_tho = session.execute(sa.select(Unit.id).where(Unit.code == PHU_THO)).scalar_one()
    kwargs = {
        "q_unit": dict(group_by=GroupBy.unit, unit_id=phu_tho, span=spans["quarter"]),
        "q_room": dict(group_by=GroupBy.room, unit_id=phu_tho, span=spans["quarter"]),
        "y_province": dict(group_by=GroupBy.unit, unit_level=UnitLevel.province, span=spans["year"]),
    }

    def run(name: str) -> dict[str, Any]:
        args = dict(kwargs[name])
        first, after = args.pop("span")
        with make_session(engine, write=False) as session:
            report = usage.usage_report(session, settings, principal, period=Period.month, from_date=first,
                                        to_date=after, **args)
            session.rollback()
        return report

    # Start from an empty usage summary: the loader wrote history behind the ORM (no change marks), and a
    # second size must not reuse the first size's stored days.
    with make_session(engine) as session:
        for table in ("usage_days", "usage_day_state", "usage_dirty"):
            session.execute(sa.text(f"DELETE FROM {table}"))
        session.commit()
    out: dict[str, Any] = {"rss_start_mib": peak_rss_mib(), "reports": {}}
    # What the background job (or `confsvc stats refresh`) does once: store every settled day of the periods.
    t0 = time.perf_counter()
    filled = summary_job.refresh_summary(engine, settings, min(first for first, _ in spans.values()), today)
    out["fill"] = {"days": len(filled), "ms": (time.perf_counter() - t0) * 1000, "rss_mib": peak_rss_mib()}
    reports: dict[str, Any] = {}
    for name in REPORTS:
        samples, first_ms = [], 0.0
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            report = run(name)
            elapsed = (time.perf_counter() - t0) * 1000
            if i:
                samples.append(elapsed)
            else:
                first_ms = elapsed
        reports[name] = report
        tracemalloc.start()
        run(name)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        t = report["totals"]
        out["reports"][name] = {
            "samples_ms": samples, "first_ms": first_ms, "tracemalloc_peak_kib": peak / 1024,
            "rows": len(report["rows"]),
            "from": report["from"].isoformat(), "to": report["to"].isoformat(),
            "totals": {k: t[k] for k in ("meetings", "sites_invited", "sites_connected", "connected_hours",
                                         "faults", "late_joins")}}
    out["rss_end_mib"] = peak_rss_mib()
    # The same reports from the live statements alone (summary switched off): time and equality.
    usage.summary_total = lambda *args: None
    for name in REPORTS:
        t0 = time.perf_counter()
        live = run(name)
        out["reports"][name]["live_ms"] = (time.perf_counter() - t0) * 1000
        out["reports"][name]["same_as_live"] = json.dumps(live, default=str) == json.dumps(reports[name], default=str)
    engine.dispose()
    return out


def measure_in_child(url: str, repeat: int, today: date) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--measure", url, "--repeat", str(repeat),
                           "--today", today.isoformat()], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver

def count_rows(engine: sa.Engine, table: str) -> int:
    return booking.count_rows(engine, table)


def run(backend: str, url: str, sizes: list[int], repeat: int, report: list[dict[str, Any]]) -> None:
    upgrade(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    inventory = booking.build_inventory(engine)
    print(f"[{backend}] inventory: {len(inventory.provinces)} provinces, {inventory.rooms} rooms, "
          f"{inventory.endpoints} endpoints ({time.perf_counter() - t0:.0f} s)", flush=True)
    now = datetime.now(UTC)
    today = now.astimezone(booking.ZONE).date()
    measured_day = today + timedelta(days=14)
    history = CallHistory(inventory, measured_day, {"meetings": 0, "occurrences": 0, "bookings": 0}, now=now)
    with engine.connect() as conn:
        history.room_of = dict(conn.execute(sa.text("SELECT id, room_id FROM endpoints")).all())
    units = history.units()
    writer = StatsWriter(engine)
    for target in sizes:
        t0 = time.perf_counter()
        load(writer, history, units, target)
        counts = {t: count_rows(engine, t) for t in ("call_records", "bookings", "occurrences", "meeting_participants",
                                                     "endpoint_status_history", "readiness")}
        print(f"[{backend}] " + ", ".join(f"{v:,} {k}" for k, v in counts.items())
              + f"; local days {history.first_day} … {history.last_day} (loaded in {time.perf_counter() - t0:.0f} s)",
              flush=True)
        result = measure_in_child(url, repeat, today)
        report.append({"db": backend, **counts, **result})
        print(f"[{backend}] measured at {counts['call_records']:,} call records: " + ", ".join(
            f"{k} p50 {statistics.median(v['samples_ms']):.0f} ms" for k, v in result["reports"].items()), flush=True)
        print(f"[{backend}]   totals: " + json.dumps({k: v["totals"] for k, v in result["reports"].items()},
                                                    ensure_ascii=False), flush=True)
    writer.close()
    engine.dispose()


def print_table(report: list[dict[str, Any]], peak_mib: float, command: str) -> None:
    print()
    names = {"q_unit": "(q) Phú Thọ quý, unit", "q_room": "(q) Phú Thọ quý, room", "y_province": "(y) cả nước năm"}
    print(f"{'db':<11}{'call records':>13}{'bookings':>11}  {'report':<24}{'rows':>6}{'first ms':>10}{'p50 ms':>9}"
          f"{'p95 ms':>9}{'live ms':>9}{'= live':>8}{'py peak KiB':>13}{'RSS before/after MiB':>22}")
    for row in report:
        for key, r in row["reports"].items():
            print(f"{row['db']:<11}{row['call_records']:>13,}{row['bookings']:>11,}  {names[key]:<24}{r['rows']:>6}"
                  f"{r['first_ms']:>10.0f}"
                  f"{statistics.median(r['samples_ms']):>9.0f}{booking.percentile(r['samples_ms'], 0.95):>9.0f}"
                  f"{r['live_ms']:>9.0f}{'yes' if r['same_as_live'] else 'NO':>8}"
                  f"{r['tracemalloc_peak_kib']:>13.0f}{row['rss_start_mib']:>12.0f} / {row['rss_end_mib']:<7.0f}")
    first = report[0]["reports"] if report else {}
    if first:
        spans = {k: f"{v['from']} … {v['to']} (exclusive)" for k, v in first.items()}
        print("periods: " + "; ".join(f"{k} {v}" for k, v in spans.items()))
    for row in report:
        fill = row["fill"]
        print(f"{row['db']} at {row['call_records']:,} call records: usage summary filled with {fill['days']} days "
              f"in {fill['ms'] / 1000:.1f} s (peak RSS then {fill['rss_mib']:.0f} MiB)")
    print("fill: summary_job.refresh_summary over every settled day of both periods, on an empty summary (what the "
          "background job does once); first: the first run after it; p50/p95: later runs; live: the same report "
          "from the live statements only (summary off); = live: identical JSON")
    print("RSS: peak resident set (VmHWM) of the fresh measuring process before the reports (imports, engine) "
          "and after all of them; py peak: tracemalloc peak during one report")
    print(f"loader process peak memory (ru_maxrss): {peak_mib:.0f} MiB")
    print("goal: each report under 1 s; memory flat between the two sizes")
    print(f"reproduce: {command}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5_000_000, help="call records of the large run")
    parser.add_argument("--small", type=int, default=1_000_000, help="call records of the small run")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per report (after a warm-up)")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--today", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat, date.fromisoformat(args.today))))
        return
    sizes = sorted({args.small, args.calls})
    report: list[dict[str, Any]] = []
    backends = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    for backend in backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="confsvc-bench-") as tmp:
                run(backend, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", sizes, args.repeat, report)
        else:
            name = f"confsvc_bench_stats_{int(time.time())}"
            admin = sa.create_engine(booking.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                url = sa.engine.make_url(booking.PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
                run(backend, url, sizes, args.repeat, report)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = shlex.join(["python", "bench/stats.py", "--calls", str(args.calls), "--small", str(args.small),
                          "--db", args.db, "--repeat", str(args.repeat)])
    print_table(report, peak_mib, f"cd {ROOT} && {command}")


if __name__ == "__main__":
    sys.exit(main())
