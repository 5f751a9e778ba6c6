"""SEQUENCE bumps on every change a participant must notice and only then (RFC 5545 §3.8.7.4,
RFC 5546 §2.1.4), and the invite carries the meeting's SEQUENCE. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Room
from confsvc.calendar import feeds
from confsvc.scheduling import cancellation, editing, reading
from confsvc.scheduling.models import Meeting
from confsvc.scheduling.schemas import MeetingUpdate, OccurrenceUpdate
from confsvc.users import service as users
from confsvc.users.models import Role
from confsvc.users.principal import Principal
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_user, next_monday_local

H = timedelta(hours=1)
BASE_URL = "https://lichhop.example.vn"


@dataclass
class World:
    settings: Settings
    principal: Principal
    chair: Room
    other: Room
    spare: Room
    series: Meeting


@pytest.fixture
def world(session: Session, settings: Settings) -> World:
    make_bridge(session)
    make_bridge(session)
    chair, other, spare = make_room(session), make_room(session), make_room(session)
    for room in (chair, other, spare):
        make_endpoint(session, room)
    start = next_monday_local()
    series = make_meeting(session, chair_room=chair, rooms=[other], start=start, end=start + 2 * H,
                          settings=settings, rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3", description="Mô tả").meeting
    principal = users.principal_for(session, make_user(session, Role.secretariat))
    return World(settings, principal, chair, other, spare, series)


def _invite_sequences(session: Session, world: World, occurrence_id: int | None = None) -> tuple[str, set[int]]:
    doc = feeds.invite(session, world.settings, world.series, base_url=BASE_URL, occurrence_id=occurrence_id)
    calendar = Calendar.from_ical(doc.body)
    return str(calendar["METHOD"]), {int(e["SEQUENCE"]) for e in calendar.walk("VEVENT")}


def _edit(session: Session, world: World, **fields: Any) -> int:
    editing.edit_meeting(session, world.settings, world.principal, world.series, MeetingUpdate(**fields))
    return world.series.sequence


@pytest.mark.parametrize("fields", [
    {"title": "Giao ban tuần, đã sửa tên"},
    {"description": "Chỉ sửa mô tả; nội dung khác"},
    {"title": "Tên mới", "description": "Mô tả mới"},
    {"teardown_minutes": 15},  # not shown to participants
    {"status": "confirmed"},  # unchanged value
], ids=["title", "description", "title+description", "teardown", "same-status"])
def test_edit_nobody_must_notice_keeps_sequence(session: Session, world: World, fields: dict[str, Any]) -> None:
    before = _invite_sequences(session, world)
    stamp = world.series.updated_at
    assert before == ("REQUEST", {0})
    assert _edit(session, world, **fields) == 0
    assert _invite_sequences(session, world) == ("REQUEST", {0})
    assert world.series.updated_at >= stamp  # DTSTAMP still tells a newer copy (RFC 5546 §2.1.5)


def test_resending_the_same_values_keeps_sequence(session: Session, world: World) -> None:
    series = world.series
    end = series.dtstart + timedelta(minutes=series.duration_minutes)
    assert _edit(session, world, start=series.dtstart, end=end, chair_room_id=world.chair.id,
                 participant_room_ids=[world.other.id], rrule="RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3",
                 check_lead_minutes=series.check_lead_minutes) == 0


@pytest.mark.parametrize("change", [
    "start", "end", "rrule", "exdates", "chair_room", "participants", "status", "check_lead", "bridge"])
def test_material_edit_bumps_sequence_and_the_invite_says_so(session: Session, world: World, change: str) -> None:
    series = world.series
    start = series.dtstart
    end = start + timedelta(minutes=series.duration_minutes)
    fields: dict[str, Any] = {
        "start": {"start": start + H, "end": end + H},
        "end": {"end": end + H},
        "rrule": {"rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=2"},
        "exdates": {"exdates": [start + timedelta(weeks=1)]},
        "chair_room": {"chair_room_id": world.spare.id},
        "participants": {"participant_room_ids": [world.other.id, world.spare.id]},
        "status": {"status": "tentative"},
        "check_lead": {"check_lead_minutes": 30},
        "bridge": {"bridge_id": next(b for b in _bridge_ids(session) if b != series.bridge_id)},
    }[change]
    assert _edit(session, world, **fields) == 1
    assert _invite_sequences(session, world) == ("REQUEST", {1})
    assert _edit(session, world, title="Chỉ đổi tên sau đó") == 1


def _bridge_ids(session: Session) -> list[int]:
    return list(session.exec(select(Bridge.id).order_by(Bridge.id)).all())


def test_occurrence_edit_bumps_only_when_it_moves_or_changes_rooms(session: Session, world: World) -> None:
    occ_id = reading.list_occurrences(session, world.series)[1]["id"]
    occ = reading.get_occurrence(session, world.series, occ_id)

    def edit(**fields: Any) -> int:
        editing.edit_occurrence(session, world.settings, world.principal, world.series, occ,
                                OccurrenceUpdate(**fields))
        return world.series.sequence

    assert edit(start=occ.start, end=occ.end) == 0
    assert edit(start=occ.start + H, end=occ.end + H) == 1
    assert _invite_sequences(session, world, occ.id) == ("REQUEST", {1})
    assert edit(chair_room_id=world.other.id) == 2
    assert edit(participant_room_ids=[world.spare.id]) == 3
    assert _invite_sequences(session, world) == ("REQUEST", {3})


def test_cancel_occurrence_then_meeting_bump_and_cancel_carries_it(session: Session, world: World) -> None:
    occ_id = reading.list_occurrences(session, world.series)[2]["id"]
    occ = reading.get_occurrence(session, world.series, occ_id)
    cancellation.cancel_occurrence(session, world.principal, world.series, occ)
    assert world.series.sequence == 1
    assert _invite_sequences(session, world, occ.id) == ("CANCEL", {1})
    assert _invite_sequences(session, world) == ("REQUEST", {1})
    cancellation.cancel_meeting(session, world.principal, world.series)
    assert world.series.sequence == 2
    assert _invite_sequences(session, world) == ("CANCEL", {2})
