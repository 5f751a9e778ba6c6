"""Booking engine through the service, on SQLite and PostgreSQL: boundaries, ports, maintenance,
recurrence, exceptions (SPEC conflict rules 1–6)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from confsvc.config import Settings
from confsvc.errors import Invalid
from confsvc.scheduling import cancellation, editing, maintenance, reading
from confsvc.scheduling.errors import BookingConflict
from confsvc.scheduling.models import Booking, Occurrence, OccurrenceStatus, ResourceKind
from confsvc.scheduling.schemas import MeetingUpdate, OccurrenceUpdate
from confsvc.scheduling.series import extend_series
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_user, next_monday_local

H = timedelta(hours=1)
M = timedelta(minutes=1)


def _keys(conflicts: list[dict]) -> set[tuple]:
    return {(c["resource_kind"], c["resource_id"], c["meeting_id"], c["window_start"], c["window_end"])
            for c in conflicts}


def test_back_to_back_ok_and_one_minute_lead_overlap_names_both_meetings(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    ep = make_endpoint(session, room)
    t = next_monday_local()
    first = make_meeting(session, chair_room=room, start=t, end=t + H, settings=settings).meeting
    # window [t+1h, t+3h) starts exactly where the first ends (t+1h, teardown 0): back-to-back.
    second = make_meeting(session, chair_room=room, start=t + 2 * H, end=t + 3 * H, settings=settings).meeting
    with pytest.raises(BookingConflict) as exc:
        make_meeting(session, chair_room=room, start=t + 2 * H - M, end=t + 2 * H + 30 * M, settings=settings,
                     title="Họp gấp")
    u = lambda d: d.astimezone(UTC)  # noqa: E731
    assert _keys(exc.value.conflicts) == {
        ("endpoint", ep.id, first.id, u(t + H - M), u(t + H)),
        ("room", room.id, first.id, u(t + H - M), u(t + H)),
        ("endpoint", ep.id, second.id, u(t + H), u(t + 2 * H + 30 * M)),
        ("room", room.id, second.id, u(t + H), u(t + 2 * H + 30 * M)),
    }
    assert {c["meeting_title"] for c in exc.value.conflicts} == {first.title, second.title}
    assert exc.value.status_code == 409 and exc.value.code == "booking_conflict"
    assert first.title in exc.value.detail and second.title in exc.value.detail
    local = exc.value.conflicts[0]
    assert local["window_start_local"] == local["window_start"].astimezone(settings.zone).replace(tzinfo=None)


def test_ports_at_capacity_ok_one_more_refused_naming_the_bridge(session: Session, settings: Settings):
    bridge = make_bridge(session, port_capacity=3)
    rooms = [make_room(session) for _ in range(4)]
    eps = [make_endpoint(session, r) for r in rooms]
    t = next_monday_local()
    a = make_meeting(session, chair_room=rooms[0], rooms=[rooms[1]], start=t, end=t + H, settings=settings,
                     check_lead_minutes=0)
    assert a.meeting.bridge_id == bridge.id
    make_meeting(session, chair_room=rooms[2], start=t, end=t + H, settings=settings, check_lead_minutes=0)
    with pytest.raises(BookingConflict) as exc:
        make_meeting(session, chair_room=rooms[3], start=t + 30 * M, end=t + H, settings=settings,
                     check_lead_minutes=0)
    assert {(c["resource_kind"], c["resource_id"], c["resource_name"]) for c in exc.value.conflicts} == {
        ("bridge", bridge.id, bridge.name)}
    assert {(c["port_capacity"], c["ports_in_use"], c["ports_requested"]) for c in exc.value.conflicts} == {(3, 3, 1)}
    assert len(eps) == 4


def test_ports_use_peak_not_count_of_overlapping_meetings(session: Session, settings: Settings):
    make_bridge(session, port_capacity=3)
    rooms = [make_room(session) for _ in range(5)]
    for r in rooms:
        make_endpoint(session, r)
    t = next_monday_local()
    make_meeting(session, chair_room=rooms[0], rooms=[rooms[1]], start=t, end=t + H, settings=settings,
                 check_lead_minutes=0)
    make_meeting(session, chair_room=rooms[2], rooms=[rooms[3]], start=t + 2 * H, end=t + 3 * H, settings=settings,
                 check_lead_minutes=0)
    # Overlaps both (4 ports in total) but never more than 2 + 1 at once.
    booked = make_meeting(session, chair_room=rooms[4], start=t + 30 * M, end=t + 150 * M, settings=settings,
                          check_lead_minutes=0)
    assert booked.occurrence_count == 1


def test_conference_numbers_unique_among_overlapping(session: Session, settings: Settings):
    make_bridge(session, conference_number_min=500, conference_number_max=501)
    rooms = [make_room(session) for _ in range(4)]
    for r in rooms:
        make_endpoint(session, r)
    t = next_monday_local()
    a = make_meeting(session, chair_room=rooms[0], start=t, end=t + H, settings=settings).meeting
    b = make_meeting(session, chair_room=rooms[1], start=t, end=t + H, settings=settings).meeting
    later = make_meeting(session, chair_room=rooms[2], start=t + 3 * H, end=t + 4 * H, settings=settings).meeting
    assert (a.conference_number, b.conference_number, later.conference_number) == (500, 501, 500)
    assert len(a.pin) == 6 and a.pin.isdigit()
    with pytest.raises(BookingConflict) as exc:
        make_meeting(session, chair_room=rooms[3], start=t, end=t + H, settings=settings)
    assert exc.value.conflicts[0]["reason"] == "no free conference number"


def test_maintenance_window_blocks_and_is_blocked(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    ep = make_endpoint(session, room)
    admin = users.principal_for(session, make_user(session, Role.admin))
    t = next_monday_local()
    window = maintenance.create_maintenance(session, settings, admin, ep, room, start=t, end=t + 4 * H, note="thay pin")
    with pytest.raises(BookingConflict) as exc:
        make_meeting(session, chair_room=make_room(session), endpoints=[ep], start=t + 4 * H + 30 * M,
                     end=t + 6 * H, settings=settings)
    assert [(c["resource_kind"], c["maintenance_id"], c["meeting_id"], c["window_start"], c["window_end"])
            for c in exc.value.conflicts] == [("endpoint", window.id, None, (t + 3 * H + 30 * M).astimezone(UTC),
                                               (t + 4 * H).astimezone(UTC))]
    booked = make_meeting(session, chair_room=room, start=t + 6 * H, end=t + 7 * H, settings=settings).meeting
    with pytest.raises(BookingConflict) as exc2:
        maintenance.create_maintenance(session, settings, admin, ep, room, start=t + 6 * H, end=t + 30 * H, note="")
    assert {c["meeting_id"] for c in exc2.value.conflicts} == {booked.id}


def test_long_maintenance_is_split_into_bounded_bookings(session: Session, settings: Settings):
    room = make_room(session)
    ep = make_endpoint(session, room)
    admin = users.principal_for(session, make_user(session, Role.admin))
    t = next_monday_local()
    window = maintenance.create_maintenance(session, settings, admin, ep, room, start=t, end=t + timedelta(days=3),
                                        note="")
    rows = session.exec(select(Booking).where(Booking.maintenance_id == window.id).order_by(Booking.window_start)).all()
    assert rows[0].window_start == t.astimezone(UTC) and rows[-1].window_end == (t + timedelta(days=3)).astimezone(UTC)
    assert all(r.window_end - r.window_start <= timedelta(minutes=settings.max_booking_window_minutes) for r in rows)
    assert all(a.window_end == b.window_start for a, b in zip(rows, rows[1:], strict=False))


def _weekly(session: Session, settings: Settings, room, t, **kw):
    return make_meeting(session, chair_room=room, start=t, end=t + H, settings=settings,
                        rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=4", title="Giao ban tuần", **kw)


def test_weekly_series_lists_exactly_the_conflicting_week(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local()
    blocker = make_meeting(session, chair_room=room, start=t + timedelta(weeks=2), end=t + timedelta(weeks=2) + H,
                           settings=settings).meeting
    with pytest.raises(BookingConflict) as exc:
        _weekly(session, settings, room, t)
    assert {c["requested_start"] for c in exc.value.conflicts} == {(t + timedelta(weeks=2)).astimezone(UTC)}
    assert {c["meeting_id"] for c in exc.value.conflicts} == {blocker.id}
    assert session.exec(select(Occurrence).where(Occurrence.meeting_id != blocker.id)).all() == []


def test_skip_conflicts_books_the_rest_and_lists_the_skipped(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local()
    make_meeting(session, chair_room=room, start=t + timedelta(weeks=2), end=t + timedelta(weeks=2) + H,
                 settings=settings)
    result = _weekly(session, settings, room, t, skip_conflicts=True)
    assert result.occurrence_count == 3
    assert [s["start"] for s in result.skipped] == [(t + timedelta(weeks=2)).astimezone(UTC)]
    occurrences = reading.list_occurrences(session, result.meeting)
    assert [(o["start"], o["status"]) for o in occurrences] == [
        ((t + timedelta(weeks=w)).astimezone(UTC),
         OccurrenceStatus.cancelled if w == 2 else OccurrenceStatus.scheduled) for w in range(4)]
    booked_occurrences = set(session.exec(select(Booking.occurrence_id).where(
        Booking.meeting_id == result.meeting.id)).all())
    assert booked_occurrences == {o["id"] for o in occurrences if o["status"] is OccurrenceStatus.scheduled}


def test_cancelling_an_occurrence_frees_its_slot(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local()
    series = _weekly(session, settings, room, t).meeting
    principal = users.principal_for(session, make_user(session, Role.secretariat))
    week1 = reading.get_occurrence(session, series, reading.list_occurrences(session, series)[1]["id"])
    with pytest.raises(BookingConflict):
        make_meeting(session, chair_room=room, start=week1.start, end=week1.end, settings=settings)
    cancellation.cancel_occurrence(session, principal, series, week1)
    other = make_meeting(session, chair_room=room, start=week1.start, end=week1.end, settings=settings)
    assert other.occurrence_count == 1


def test_series_edit_keeps_exceptions_and_occurrence_ids(session: Session, settings: Settings):
    make_bridge(session)
    room, other_room = make_room(session), make_room(session)
    make_endpoint(session, room)
    make_endpoint(session, other_room)
    t = next_monday_local()
    series = _weekly(session, settings, room, t).meeting
    principal = users.principal_for(session, make_user(session, Role.secretariat))
    before = reading.list_occurrences(session, series)
    cancelled = reading.get_occurrence(session, series, before[1]["id"])
    moved = reading.get_occurrence(session, series, before[2]["id"])
    cancellation.cancel_occurrence(session, principal, series, cancelled)
    moved_start = t + timedelta(weeks=2, hours=6)
    editing.edit_occurrence(session, settings, principal, series, moved,
                            OccurrenceUpdate(start=moved_start, end=moved_start + H, chair_room_id=other_room.id))
    result = editing.edit_meeting(session, settings, principal, series,
                                  MeetingUpdate(title="Giao ban tuần (mới)", start=t + H, end=t + 2 * H))
    after = reading.list_occurrences(session, series)
    assert [o["id"] for o in after] == [o["id"] for o in before]
    assert [(o["start"], o["status"], o["chair_room_id"]) for o in after] == [
        ((t + H).astimezone(UTC), OccurrenceStatus.scheduled, room.id),
        ((t + timedelta(weeks=1)).astimezone(UTC), OccurrenceStatus.cancelled, room.id),
        (moved_start.astimezone(UTC), OccurrenceStatus.scheduled, other_room.id),
        ((t + timedelta(weeks=3, hours=1)).astimezone(UTC), OccurrenceStatus.scheduled, room.id),
    ]
    assert result.meeting.title == "Giao ban tuần (mới)" and result.meeting.sequence == 3
    windows = session.exec(select(Booking.window_start).where(Booking.meeting_id == series.id,
                                                              Booking.resource_kind == ResourceKind.room)
                           .order_by(Booking.window_start)).all()
    assert windows == [(t).astimezone(UTC), (moved_start - H).astimezone(UTC),
                       (t + timedelta(weeks=3)).astimezone(UTC)]


def test_edit_rechecks_against_everything_but_itself(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local()
    first = make_meeting(session, chair_room=room, start=t, end=t + H, settings=settings).meeting
    principal = users.principal_for(session, make_user(session, Role.secretariat))
    # Moving by 30 minutes overlaps only its own old window: allowed.
    editing.edit_meeting(session, settings, principal, first, MeetingUpdate(start=t + 30 * M, end=t + 90 * M))
    second = make_meeting(session, chair_room=room, start=t + 4 * H, end=t + 5 * H, settings=settings).meeting
    with pytest.raises(BookingConflict) as exc:
        editing.edit_meeting(session, settings, principal, first, MeetingUpdate(start=t + 4 * H, end=t + 5 * H))
    assert {c["meeting_id"] for c in exc.value.conflicts} == {second.id}


@pytest.mark.parametrize(("shift", "kwargs", "code"), [
    (H, {"end_delta": timedelta(0)}, "end_not_after_start"),
    (H, {"end_delta": timedelta(hours=13)}, "duration_too_long"),
    (-timedelta(days=30), {"end_delta": H}, "start_in_past"),
    (H, {"end_delta": H, "rrule": "FREQ=SOMETIMES"}, "invalid_rrule"),
    (H, {"end_delta": H, "duplicate": True}, "duplicate_participant"),
])
def test_bad_input_is_refused_with_422(session: Session, settings: Settings, shift, kwargs, code):
    make_bridge(session)
    room = make_room(session)
    ep = make_endpoint(session, room)
    t = next_monday_local() + shift
    extra = {"rrule": kwargs["rrule"]} if "rrule" in kwargs else {}
    endpoints = [ep, ep] if kwargs.get("duplicate") else []
    with pytest.raises(Invalid) as exc:
        make_meeting(session, chair_room=room, endpoints=endpoints, start=t, end=t + kwargs["end_delta"],
                     settings=settings, **extra)
    assert exc.value.code == code and exc.value.status_code == 422


def test_retired_endpoint_and_open_series_without_horizon_are_refused(session: Session, settings: Settings):
    from confsvc.endpoints.models import LifecycleState
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    retired = make_endpoint(session, make_room(session), lifecycle_state=LifecycleState.retired)
    t = next_monday_local()
    with pytest.raises(Invalid, match="retired") as exc:
        make_meeting(session, chair_room=room, endpoints=[retired], start=t, end=t + H, settings=settings)
    assert exc.value.code == "endpoint_not_bookable"
    no_horizon = settings.model_copy(update={"series_horizon_days": 0})
    with pytest.raises(Invalid) as exc2:
        make_meeting(session, chair_room=room, start=t, end=t + H, settings=no_horizon, rrule="FREQ=WEEKLY")
    assert exc2.value.code == "rrule_without_end"


def test_open_series_materialises_to_horizon_and_extends(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local()
    short = settings.model_copy(update={"series_horizon_days": 28})
    series = make_meeting(session, chair_room=room, start=t, end=t + H, settings=short, rrule="FREQ=WEEKLY").meeting
    count = len(reading.list_occurrences(session, series))
    assert count == 4  # [start, start + 28 days)
    report = extend_series(session, short, now=series.materialized_until)
    assert report[series.id]["booked"] == 4 and report[series.id]["skipped"] == 0
    assert len(reading.list_occurrences(session, series)) == count + 4
    # The job ticks every few seconds: within a day of the last extension nothing happens.
    assert extend_series(session, short, now=series.materialized_until - 28 * 24 * H + 23 * H) == {}
    assert len(reading.list_occurrences(session, series)) == count + 4


def test_series_expands_on_local_weekdays(session: Session, settings: Settings):
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local(hour=6)  # 06:00 local Monday = 23:00 UTC Sunday
    series = make_meeting(session, chair_room=room, start=t, end=t + H, settings=settings,
                          rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=2").meeting
    starts = [o["start"] for o in reading.list_occurrences(session, series)]
    assert [s.astimezone(settings.zone).weekday() for s in starts] == [0, 0]
    assert [s.weekday() for s in starts] == [6, 6]


def test_public_holiday_is_a_warning(session: Session, settings: Settings):
    from datetime import date, datetime
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    year = datetime.now(settings.zone).year + 1
    start = datetime(year, 9, 2, 8, 0, tzinfo=settings.zone)  # Quốc khánh
    result = make_meeting(session, chair_room=room, start=start, end=start + H, settings=settings)
    assert [(w["code"], w["date"], w["name"], w["name_en"]) for w in result.warnings] == [
        ("public_holiday", date(year, 9, 2), "Quốc khánh", "National Day")]


@pytest.mark.postgresql_only
def test_database_refuses_overlapping_endpoint_bookings(session: Session, backend: str):
    """SPEC rule 7: on PostgreSQL the exclusion constraint, not Python, keeps the promise.

    SQLite has no exclusion constraint; there ``BEGIN IMMEDIATE`` serialises writers, which the race
    test covers on both backends."""
    make_bridge(session)
    room = make_room(session)
    make_endpoint(session, room)
    t = next_monday_local()
    result = make_meeting(session, chair_room=room, start=t, end=t + H)
    occ = session.exec(select(Occurrence).where(Occurrence.meeting_id == result.meeting.id)).one()
    with pytest.raises(IntegrityError, match="ex_bookings_resource_window"):
        with session.begin_nested():
            session.execute(sa.insert(Booking), [{
                "meeting_id": result.meeting.id, "occurrence_id": occ.id, "resource_kind": ResourceKind.room,
                "resource_id": room.id, "window_start": t + 59 * M, "window_end": t + 2 * H, "ports": 0}])
