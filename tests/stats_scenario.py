"""The hand-computed scenario of the usage-statistics tests (times are Asia/Ho_Chi_Minh, +07:00, no DST).

Units: province «Tỉnh Thử Nghiệm» with a commune «Xã Đồi Chè» under it. Rooms: «Phòng họp tỉnh» (R1) in
the province with endpoint E1, «Điểm cầu xã Đồi Chè» (R2) in the commune with E2. One bridge (10 ports).

* M1, Saturday 31/10/2026 22:00 → Sunday 01/11 01:00 (crosses midnight and the month's end), chair R1,
  participant R2, check lead 60 min, on the bridge with 2 ports (window 21:00 → 01:00).
  Calls: E1 21:30 → 00:30 (agent), plus a duplicate `connected` 21:40 from the bridge (no-op);
  E2 22:10 → 23:00 and again 23:30 → open, closed at the end 01:00 by ``close_open_records``.
* M2, Sunday 01/11/2026 09:00 → 11:00, chair R1: its only occurrence is cancelled.
* M3, Monday 02/11/2026 08:00 → 10:00, chair R1 only (1 port, window 07:00 → 10:00).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from confsvc.calls import intake as calls
from confsvc.calls.schemas import CallEventCreate
from confsvc.config import Settings
from confsvc.endpoints.models import UnitLevel
from confsvc.scheduling import cancellation
from confsvc.scheduling.models import Occurrence
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_unit, make_user

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=ZONE)


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


@dataclass
class Scenario:
    province: int
    commune: int
    r1: int
    r2: int
    e1: int
    e2: int
    bridge: int
    m1: int
    o1: int
    m2: int
    o2: int
    m3: int
    o3: int


def occurrence_of(session: Session, meeting_id: int) -> int:
    from sqlmodel import select

    return session.exec(select(Occurrence.id).where(Occurrence.meeting_id == meeting_id)).one()


def build(session: Session, settings: Settings, *, with_calls: bool = True) -> Scenario:
    """Create the scenario (flushes; the caller commits)."""
    province = make_unit(session, name="Tỉnh Thử Nghiệm", division_type="tỉnh", level=UnitLevel.province,
                         code="97")
    commune = make_unit(session, name="Xã Đồi Chè", division_type="xã", parent_id=province.id)
    r1 = make_room(session, province, name="Phòng họp tỉnh")
    r2 = make_room(session, commune, name="Điểm cầu xã Đồi Chè")
    e1, e2 = make_endpoint(session, r1, name="Thiết bị tỉnh"), make_endpoint(session, r2, name="Thiết bị xã")
    bridge = make_bridge(session, name="MCU Tỉnh", port_capacity=10)
    admin = make_user(session, Role.admin)
    m1 = make_meeting(session, chair_room=r1, rooms=[r2], start=local(31, 22, month=10), end=local(1, 1),
                      user=admin, settings=settings, title="Hội nghị giao ban cuối tháng").meeting
    m2 = make_meeting(session, chair_room=r1, start=local(1, 9), end=local(1, 11), user=admin, settings=settings,
                      title="Họp bị hủy").meeting
    m3 = make_meeting(session, chair_room=r1, start=local(2, 8), end=local(2, 10), user=admin, settings=settings,
                      title="Họp thứ Hai").meeting
    principal = users.principal_for(session, admin)
    o2 = occurrence_of(session, m2.id)
    cancellation.cancel_occurrence(session, principal, m2, session.get(Occurrence, o2))
    s = Scenario(province.id, commune.id, r1.id, r2.id, e1.id, e2.id, bridge.id, m1.id,
                 occurrence_of(session, m1.id), m2.id, o2, m3.id, occurrence_of(session, m3.id))
    if with_calls:
        report = [(e1, "connected", local(31, 21, 30, month=10), "agent"),
                  (e1, "connected", local(31, 21, 40, month=10), "bridge"),
                  (e2, "connected", local(31, 22, 10, month=10), "bridge"),
                  (e2, "disconnected", local(31, 23, 0, month=10), "bridge"),
                  (e2, "connected", local(31, 23, 30, month=10), "bridge"),
                  (e1, "disconnected", local(1, 0, 30), "agent")]
        for endpoint, event, at, source in report:
            calls.report_call(session, settings, principal,
                              CallEventCreate(endpoint_id=endpoint.id, event=event, at=at, source=source), now=NOW)
        calls.close_open_records(session, NOW)
    session.flush()
    return s
