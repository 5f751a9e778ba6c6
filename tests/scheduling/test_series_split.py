"""``scheduling.series.split_series`` and ``following_rule`` ("this and following", issue 13), on SQLite and
PostgreSQL: the old series ends one second before the occurrence (UNTIL in UTC), the new series keeps the
COUNT left, a split at the first occurrence is a whole-series edit, and the split needs a series."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlmodel import Session, select

from confsvc.config import Settings
from confsvc.errors import Invalid
from confsvc.scheduling import series
from confsvc.scheduling.models import Meeting, Occurrence
from confsvc.scheduling.schemas import MeetingUpdate
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_user, next_monday_local

H = timedelta(hours=1)


def _series(session: Session, settings: Settings, rrule: str | None) -> tuple[Meeting, list[Occurrence], object]:
    make_bridge(session)
    chair, other = make_room(session), make_room(session)
    for room in (chair, other):
        make_endpoint(session, room)
    start = next_monday_local()
    meeting = make_meeting(session, chair_room=chair, rooms=[other], start=start, end=start + 2 * H,
                           settings=settings, rrule=rrule).meeting
    occurrences = list(session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)
                                    .order_by(Occurrence.start)).all())
    return meeting, occurrences, users.principal_for(session, make_user(session, Role.secretariat))


def test_following_rule_keeps_the_count_left_and_until(session: Session, settings: Settings) -> None:
    meeting, occurrences, _principal = _series(session, settings, "FREQ=WEEKLY;BYDAY=MO;COUNT=4")
    assert series.following_rule(meeting, occurrences[0].recurrence_id) == "FREQ=WEEKLY;BYDAY=MO;COUNT=4"
    assert series.following_rule(meeting, occurrences[2].recurrence_id) == "FREQ=WEEKLY;BYDAY=MO;COUNT=2"
    meeting.rrule = "FREQ=WEEKLY;UNTIL=20991231T165959Z"
    assert series.following_rule(meeting, occurrences[2].recurrence_id) == "FREQ=WEEKLY;UNTIL=20991231T165959Z"


def test_split_ends_the_old_series_and_books_the_rest(session: Session, settings: Settings) -> None:
    meeting, occurrences, principal = _series(session, settings, "FREQ=WEEKLY;BYDAY=MO;COUNT=4")
    sequence, at = meeting.sequence, occurrences[2].recurrence_id
    result = series.split_series(session, settings, principal, meeting, occurrences[2],
                                 MeetingUpdate(title="Phần sau"))
    new = result.meeting
    assert meeting.rrule == f"FREQ=WEEKLY;BYDAY=MO;UNTIL={(at - timedelta(seconds=1)).astimezone(UTC):%Y%m%dT%H%M%S}Z"
    assert meeting.sequence == sequence + 1
    assert [o.id for o in session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)
                                       .order_by(Occurrence.start))] == [occurrences[0].id, occurrences[1].id]
    assert (new.title, new.rrule, new.sequence, new.dtstart) == ("Phần sau", "FREQ=WEEKLY;BYDAY=MO;COUNT=2", 0, at)
    assert [o.start for o in session.exec(select(Occurrence).where(Occurrence.meeting_id == new.id)
                                          .order_by(Occurrence.start))] == [at, at + timedelta(days=7)]


def test_split_at_the_first_occurrence_edits_the_whole_series(session: Session, settings: Settings) -> None:
    meeting, occurrences, principal = _series(session, settings, "FREQ=WEEKLY;BYDAY=MO;COUNT=2")
    result = series.split_series(session, settings, principal, meeting, occurrences[0], MeetingUpdate(title="Mới"))
    assert (result.meeting.id, result.meeting.title, result.meeting.rrule) == (meeting.id, "Mới",
                                                                               "FREQ=WEEKLY;BYDAY=MO;COUNT=2")
    assert len(session.exec(select(Meeting)).all()) == 1


def test_split_needs_a_series(session: Session, settings: Settings) -> None:
    meeting, occurrences, principal = _series(session, settings, None)
    with pytest.raises(Invalid) as refused:
        series.split_series(session, settings, principal, meeting, occurrences[0], MeetingUpdate())
    assert refused.value.code == "not_a_series"


def test_a_dry_run_split_records_no_event(session: Session, settings: Settings) -> None:
    from confsvc import events

    meeting, occurrences, principal = _series(session, settings, "FREQ=WEEKLY;BYDAY=MO;COUNT=3")
    session.commit()
    before = len(session.exec(select(events.Event)).all())
    with events.dry_run(session):
        series.split_series(session, settings, principal, meeting, occurrences[1], MeetingUpdate(title="Thử"))
        session.flush()
        assert len(session.exec(select(events.Event)).all()) == before
    session.rollback()
    assert len(session.exec(select(Meeting)).all()) == 1
