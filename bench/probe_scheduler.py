"""Benchmark: one reachability-probe round and one scheduler tick at province scale (issue 4).

- probe: 250 endpoints (SPEC "Scale": ~250 per province) whose management IP is 127.0.0.1, first
  with a real TCP listener on the probe port (every connect succeeds: 250 status changes
  unknown → online, each a transaction with a history row and an event), then an idle round
  (all reachable, no change), then with the listener closed (every connect refused: misses).
- scheduler: 1,000 occurrences (one province's year of meetings) all falling due at once, as after
  a long outage: the first tick claims and sends every notice (one transaction each), the second
  finds nothing to send.

Only loopback is used; the round time with unreachable hosts is bounded by ``probe_timeout_seconds``
(the connects run concurrently, ``probe_concurrency`` at a time), not measured here.

Reproduce: ``/work/.venv-dev/bin/python bench/probe_scheduler.py [--db-url URL]`` (default: a temp SQLite file).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confsvc.config import Settings  # noqa: E402
from confsvc.db import make_engine, make_session  # noqa: E402
from confsvc.endpoints import probe  # noqa: E402
from confsvc.endpoints.models import Endpoint, Room, Unit, UnitLevel  # noqa: E402
from confsvc.migrate import upgrade  # noqa: E402
from confsvc.scheduling import scheduler  # noqa: E402
from confsvc.scheduling.models import Meeting, Occurrence  # noqa: E402


def _timed(label: str, fn):
    began = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - began:.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", help="a migrated or empty database (default: temp SQLite file)")
    parser.add_argument("--endpoints", type=int, default=250)
    parser.add_argument("--occurrences", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(url)
        engine = make_engine(url)
        try:
            run(engine, Settings(database_url=url, secret_key="x" * 40), args)
        finally:
            engine.dispose()


def run(engine, settings: Settings, args) -> None:
    start = datetime(2030, 3, 4, 1, 0, tzinfo=UTC)
    with make_session(engine) as session:
        unit = Unit(code="99999", name="Xã Đo Tốc Độ", division_type="xã", level=UnitLevel.commune)
        session.add(unit)
        session.flush()
        rooms = [Room(unit_id=unit.id, name=f"Điểm cầu {i}") for i in range(args.endpoints)]
        session.add_all(rooms)
        session.flush()
        session.add_all(Endpoint(room_id=r.id, name=f"Thiết bị {i}", vendor="Poly", model="G7500",
                                 serial=f"BENCH{i:06d}", dial_address=f"sip:b{i}@vc.example.vn",
                                 management_ip="127.0.0.1") for i, r in enumerate(rooms))
        for i in range(args.occurrences):
            at = start + timedelta(minutes=3 * i)
            meeting = Meeting(uid=f"bench-{i}@confsvc", title=f"Hội nghị {i}", chair_room_id=rooms[i % len(rooms)].id,
                              dtstart=at, duration_minutes=60)
            session.add(meeting)
            session.flush()
            session.add(Occurrence(meeting_id=meeting.id, recurrence_id=at, start=at, end=at + timedelta(hours=1)))
        session.commit()

    with socket.create_server(("127.0.0.1", 0), backlog=1024) as listener:
        cfg = settings.model_copy(update={"probe_port": listener.getsockname()[1]})
        report = _timed(f"probe round, {args.endpoints} reachable, all change to online", lambda: probe.probe_once(engine, cfg))
        assert len(report.changes) == args.endpoints, len(report.changes)
        _timed(f"probe round, {args.endpoints} reachable, no change", lambda: probe.probe_once(engine, cfg))
    _timed(f"probe round, {args.endpoints} refused (misses)", lambda: probe.probe_once(engine, cfg))

    now = start + timedelta(minutes=3 * args.occurrences)  # every occurrence started, most ended
    wide = settings.model_copy(update={"ended_notice_grace_minutes": 10 * 24 * 60})
    sent = _timed(f"scheduler tick, {args.occurrences} occurrences due", lambda: scheduler.run_due(engine, wide, now))
    print(f"  notices sent: {len(sent)}")
    again = _timed("scheduler tick, nothing left to send", lambda: scheduler.run_due(engine, wide, now))
    assert again == []


if __name__ == "__main__":
    main()
