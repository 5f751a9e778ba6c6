"""The room display's "Cuộc họp tiếp theo" strip (issue 13: always "–"): a room's snapshot carries the
upcoming meeting and the one after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from confsvc.config import Settings
from confsvc.live.snapshot import Scope, snapshot
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_unit, next_monday_local


def test_room_snapshot_carries_the_next_meeting_after_the_upcoming_one(session: Session,
                                                                        settings: Settings) -> None:
    make_bridge(session)
    unit = make_unit(session)
    room = make_room(session, unit, name="Điểm cầu thử")
    make_endpoint(session, room)
    monday = next_monday_local(weeks_ahead=2)
    titles = ["Giao ban sáng", "Họp chiều", "Họp thứ Ba"]
    starts = [monday.replace(hour=8), monday.replace(hour=14), monday.replace(hour=8) + timedelta(days=1)]
    for title, start in zip(titles, starts, strict=True):
        make_meeting(session, chair_room=room, start=start, end=start + timedelta(hours=2), settings=settings,
                     title=title)
    data = snapshot(session, Scope("room", room.id, frozenset({room.id})), now=datetime.now(UTC))
    assert data["current"] == []
    assert [item["title"] for item in data["next"]] == ["Giao ban sáng", "Họp chiều"]
