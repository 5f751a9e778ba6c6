"""`confsvc demo` data on both databases, and the CLI end to end on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, func, select

from confsvc import demo
from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Endpoint, LifecycleState, Protocol, Room, Unit
from confsvc.events import Event
from confsvc.scheduling.conflicts import Window, peak_ports
from confsvc.scheduling.models import (AuditEntry, Booking, Meeting, MeetingBridge, MeetingParticipant, Occurrence,
                                       OccurrenceStatus, ResourceKind)
from confsvc.users.models import User
from confsvc.users.service import authenticate

#: A Wednesday, 10:00 in Hà Nội: the first briefing is Monday 15 September 2025.
NOW = datetime(2025, 9, 10, 3, 0, tzinfo=UTC)


def test_demo_inventory(session: Session, settings: Settings) -> None:
    summary = demo.seed(session, settings, now=NOW)
    assert (summary.communes, summary.rooms, summary.endpoints, summary.bridges) == (148, 149, 150, 2)
    chair = session.exec(select(Room).where(Room.name == demo.CHAIR_ROOM_NAME)).one()
    assert len(session.exec(select(Endpoint).where(Endpoint.room_id == chair.id)).all()) == 2
    vendors = set(session.exec(select(Endpoint.vendor)).all())
    assert vendors == {"Poly", "Cisco", "Huawei", "Yealink"}
    protocols = set(session.exec(select(Endpoint.protocol)).all())
    assert protocols == {Protocol.sip, Protocol.h323}
    dial = session.exec(select(Endpoint.dial_address)).all()
    assert len(set(dial)) == len(dial), "dial addresses must be unique"
    assert [b.port_capacity for b in session.exec(select(Bridge).order_by(Bridge.name))] == [200, 200]
    for username, (_, password) in summary.passwords.items():
        assert authenticate(session, username, password).username == username
    assert {u.role.value for u in session.exec(select(User))} == {"admin", "secretariat", "operator", "viewer",
                                                                  "requester"}


def test_demo_is_rerunnable(session: Session, settings: Settings) -> None:
    demo.seed(session, settings, now=NOW)
    bookings = session.exec(select(func.count()).select_from(Booking)).one()
    again = demo.seed(session, settings)
    assert (again.rooms, again.endpoints, again.meetings, again.occurrences) == (149, 150, 4, 7)
    assert session.exec(select(func.count()).select_from(User)).one() == 5
    assert session.exec(select(func.count()).select_from(Booking)).one() == bookings


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_demo_books_a_month(session: Session, settings: Settings) -> None:
    summary = demo.seed(session, settings, now=NOW)
    assert (summary.meetings, summary.occurrences) == (4, 7)
    secretary = session.exec(select(User).where(User.username == "vanphong")).one()
    meetings = session.exec(select(Meeting).order_by(Meeting.id)).all()
    assert [m.title for m in meetings] == [demo.BRIEFING_TITLE, *(g[0] for g in demo.GROUP_MEETINGS)]
    assert {(m.organizer_user_id, m.created_by, m.status.value) for m in meetings} == {
        (secretary.id, secretary.id, "confirmed")}
    briefing = meetings[0]
    assert (briefing.rrule, briefing.dtstart, briefing.duration_minutes) == ("FREQ=WEEKLY;BYDAY=MO;COUNT=4",
                                                                            _utc(2025, 9, 15, 1), 150)
    # Every active endpoint of the province takes part; the one in maintenance is left out.
    in_maintenance = session.exec(select(Endpoint.id).where(
        Endpoint.lifecycle_state != LifecycleState.active)).all()
    participants = session.exec(select(MeetingParticipant.endpoint_id)
                                .where(MeetingParticipant.meeting_id == briefing.id)).all()
    assert (len(in_maintenance), len(participants)) == (1, 149)
    assert set(participants) | set(in_maintenance) == set(session.exec(select(Endpoint.id)).all())
    group_sizes = [len(session.exec(select(MeetingParticipant).where(MeetingParticipant.meeting_id == m.id)).all())
                   for m in meetings[1:]]
    assert group_sizes == [17, 43, 25]  # 2 chair-room endpoints + 15 wards / 41 western / 23 eastern communes

    occurrences = session.exec(select(Occurrence).order_by(Occurrence.start)).all()
    assert [(o.meeting_id, o.start, o.end, o.status, o.is_exception) for o in occurrences] == [
        (briefing.id, _utc(2025, 9, 15, 1), _utc(2025, 9, 15, 3, 30), OccurrenceStatus.scheduled, False),
        (meetings[1].id, _utc(2025, 9, 18, 1), _utc(2025, 9, 18, 4), OccurrenceStatus.scheduled, False),
        (briefing.id, _utc(2025, 9, 23, 7), _utc(2025, 9, 23, 9, 30), OccurrenceStatus.scheduled, True),  # moved
        (meetings[2].id, _utc(2025, 9, 24, 7), _utc(2025, 9, 24, 9, 30), OccurrenceStatus.scheduled, False),
        (briefing.id, _utc(2025, 9, 29, 1), _utc(2025, 9, 29, 3, 30), OccurrenceStatus.cancelled, True),
        (meetings[3].id, _utc(2025, 10, 3, 7), _utc(2025, 10, 3, 9, 30), OccurrenceStatus.scheduled, False),
        (briefing.id, _utc(2025, 10, 6, 1), _utc(2025, 10, 6, 3, 30), OccurrenceStatus.scheduled, False),
    ]
    assert occurrences[2].recurrence_id == _utc(2025, 9, 22, 1)
    assert [a.action for a in session.exec(select(AuditEntry).order_by(AuditEntry.id))] == [
        "meeting.created"] * 4 + ["occurrence.updated", "occurrence.cancelled"]

    bookings = session.exec(select(Booking)).all()
    per_occurrence: dict[int, int] = defaultdict(int)
    for b in bookings:
        per_occurrence[b.occurrence_id] += 1
    # endpoints + rooms (chair room included) + the bridge; the cancelled occurrence holds nothing.
    assert [per_occurrence[o.id] for o in occurrences] == [298, 34, 298, 86, 0, 50, 298]
    assert len(bookings) == 1064

    # No conflict: no resource held twice at once, no bridge over capacity (SPEC rules 1, 2).
    held: dict[tuple[ResourceKind, int], list[Window]] = defaultdict(list)
    for b in bookings:
        if b.resource_kind is not ResourceKind.bridge:
            held[(b.resource_kind, b.resource_id)].append(Window(b.window_start, b.window_end))
    for windows in held.values():
        windows.sort(key=lambda w: w.start)
        assert all(a.end <= b.start for a, b in zip(windows, windows[1:], strict=False))
    for bridge in session.exec(select(Bridge)).all():
        uses = [(Window(b.window_start, b.window_end), b.ports) for b in bookings
                if b.resource_kind is ResourceKind.bridge and b.resource_id == bridge.id]
        for window, _ in uses:
            assert peak_ports(window, uses) <= bridge.port_capacity
    assert max(b.ports for b in bookings) == 149


def test_demo_meetings_start_after_now(session: Session, settings: Settings) -> None:
    demo.seed(session, settings)
    assert min(session.exec(select(Occurrence.start)).all()) > datetime.now(UTC)


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFSVC_")} | env
    return subprocess.run([sys.executable, "-m", "confsvc.cli", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_cli_demo_then_export_and_reimport(tmp_path: Path) -> None:
    done = _cli(["demo", "--no-serve"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Phú Thọ: 148 communes/wards, 149 rooms, 150 endpoints, 2 bridges" in done.stdout
    assert "Calendar: 4 meetings, 7 occurrences" in done.stdout
    again = _cli(["demo", "--no-serve"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Calendar: 4 meetings, 7 occurrences" in again.stdout
    assert (tmp_path / "data" / "confsvc.sqlite3").exists()
    exported = _cli(["endpoints", "export", "-o", "out.csv"], tmp_path)
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    assert text.count("\n") == 151 and "Phường Việt Trì" in text
    reimported = _cli(["endpoints", "import", "out.csv"], tmp_path)
    assert reimported.stdout.strip() == "0 created, 0 updated, 150 unchanged, 0 rooms created"


def test_cli_refuses_unmigrated_database(tmp_path: Path) -> None:
    result = _cli(["units", "import", "25"], tmp_path)
    assert result.returncode == 1
    assert "Run `confsvc db upgrade` first" in result.stderr


def test_cli_serve_refuses_without_secret(tmp_path: Path) -> None:
    result = _cli(["serve"], tmp_path)
    assert result.returncode == 1
    assert "CONFSVC_SECRET_KEY is missing" in result.stderr


def test_cli_users_create_reports_bad_role_scope(tmp_path: Path) -> None:
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    assert _cli(["units", "import", "25"], tmp_path).returncode == 0
    bad = _cli(["users", "create", "op", "--role", "operator", "--password", "mat-khau-dai"], tmp_path)
    assert (bad.returncode, bad.stderr.strip()) == (1, "error (operator_without_units): an operator needs at least one unit")
    ok = _cli(["users", "create", "op", "--role", "operator", "--unit", "07900", "--password", "mat-khau-dai"], tmp_path)
    assert ok.stdout.strip() == "user op (operator) created"


def test_cli_meetings_extend(tmp_path: Path) -> None:
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    result = _cli(["meetings", "extend"], tmp_path)
    assert (result.returncode, result.stdout) == (0, "0 series extended\n")


def test_national_demo_books_one_cascaded_meeting_once(session: Session, settings: Settings) -> None:
    """``confsvc demo --national`` on a smaller country (the Phú Thọ demo, then Hà Nội and Phú Thọ of the
    34): one national meeting booked by the national user through the booking service, chaired from Phú
    Thọ's provincial room, every room with an active endpoint taking part, each province's sites on its
    own bridge, linked to the chair's by a cascade leg; a second run books nothing."""
    demo.seed(session, settings, now=NOW)
    demo.seed_national(session, ["01", "25"])
    national = demo.book_national(session, settings, now=NOW)
    assert national is not None
    meeting = session.get(Meeting, national.meeting_id)
    assert meeting is not None
    chair = session.exec(select(Room).where(Room.name == demo.CHAIR_ROOM_NAME)).one()
    organizer = session.exec(select(User).where(User.username == demo.NATIONAL_USERNAME)).one()
    assert (meeting.title, meeting.chair_room_id, meeting.organizer_user_id, meeting.priority) == (
        demo.NATIONAL_TITLE, chair.id, organizer.id, 2)
    # Hà Nội 126 and Phú Thọ 148 communes/wards, two provincial rooms; rooms whose only endpoint is in
    # maintenance cannot take part (SPEC rule 4).
    active = set(session.exec(select(Endpoint.room_id).where(Endpoint.lifecycle_state == LifecycleState.active)).all())
    assert (national.sites, national.bridges, national.booked) == (len(active), 2, True) == (272, 2, True)
    [occurrence] = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)).all()
    assert (occurrence.start, occurrence.end) == (_utc(2025, 9, 25, 1), _utc(2025, 9, 25, 4))  # Thursday 08:00–11:00

    hanoi = session.exec(select(Bridge).where(Bridge.name.startswith("MCU Thành phố Hà Nội"))).one()
    root = session.exec(select(Bridge).where(Bridge.name == "MCU Trung tâm tỉnh")).one()
    assert meeting.bridge_id == root.id
    assert [(b.bridge_id, b.parent_bridge_id) for b in session.exec(
        select(MeetingBridge).where(MeetingBridge.meeting_id == meeting.id))] == [(hanoi.id, root.id)]
    endpoints = {unit: 0 for unit in (hanoi.unit_id, root.unit_id)}
    for room_unit, parent in session.exec(
            select(Unit.id, Unit.parent_id).join(Room, Room.unit_id == Unit.id).join(Endpoint, Endpoint.room_id == Room.id)
            .join(MeetingParticipant, MeetingParticipant.endpoint_id == Endpoint.id)
            .where(MeetingParticipant.meeting_id == meeting.id)).all():
        endpoints[parent or room_unit] += 1
    ports = dict(session.exec(select(Booking.resource_id, Booking.ports).where(
        Booking.meeting_id == meeting.id, Booking.resource_kind == ResourceKind.bridge)).all())
    # Each bridge: its province's site endpoints and one cascade leg (the root's: to Hà Nội's bridge).
    assert ports == {root.id: endpoints[root.unit_id] + 1, hanoi.id: endpoints[hanoi.unit_id] + 1}
    # Each room is told to dial its own province's bridge.
    dialled = {e.data["room_id"]: e.data["bridge_name"] for e in session.exec(
        select(Event).where(Event.type == "join.instructions")).all() if e.data["meeting_id"] == meeting.id}
    in_hanoi = set(session.exec(select(Room.id).join(Unit, Unit.id == Room.unit_id).where(
        (Unit.id == hanoi.unit_id) | (Unit.parent_id == hanoi.unit_id))).all())
    assert len(dialled) == len(active)
    assert {room: name for room, name in dialled.items() if name == hanoi.name}.keys() == in_hanoi & active

    bookings = session.exec(select(func.count()).select_from(Booking)).one()
    again = demo.book_national(session, settings, now=NOW)
    assert again == demo.NationalMeeting(meeting.id, 272, 2, False)
    assert session.exec(select(func.count()).select_from(Meeting).where(Meeting.title == demo.NATIONAL_TITLE)).one() == 1
    assert session.exec(select(func.count()).select_from(Booking)).one() == bookings
