"""Who takes part in an occurrence (``confsvc.scheduling.participants``): the pure rule, the loaded
form and the SQL form give the same exact sets, an occurrence's own chair room and participant
list included, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.config import Settings
from confsvc.scheduling import editing, participants, reading
from confsvc.scheduling.models import Occurrence
from confsvc.scheduling.schemas import OccurrenceUpdate
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_unit, make_user, next_monday_local

H = timedelta(hours=1)


def test_pure_rule_chair_endpoints_and_rooms() -> None:
    assert participants.chair_room(None, 7) == 7
    assert participants.chair_room(9, 7) == 9
    assert participants.endpoints(False, {5}, {1, 2}) == {1, 2}
    assert participants.endpoints(True, {5}, {1, 2}) == {5}
    assert participants.rooms(9, [1, 2, 5], {1: 7, 2: 8, 5: 8}) == frozenset({7, 8, 9})
    assert participants.participation(9, [5, 1, 1], {1: 7, 5: 8}) == participants.Participation(9, (1, 5), (7, 8, 9))


def _scenario(session: Session, settings: Settings):
    """A weekly series of three, chair room A with room B; the second occurrence moved to chair room C
    with room D (another unit) instead."""
    make_bridge(session)
    u1, u2 = make_unit(session), make_unit(session)
    a, b, c = make_room(session, u1), make_room(session, u1), make_room(session, u1)
    d = make_room(session, u2)
    a1, a2, b1, c1, d1 = (make_endpoint(session, a), make_endpoint(session, a), make_endpoint(session, b),
                          make_endpoint(session, c), make_endpoint(session, d))
    t = next_monday_local()
    meeting = make_meeting(session, chair_room=a, rooms=[b], start=t, end=t + H, rrule="FREQ=WEEKLY;COUNT=3",
                           settings=settings).meeting
    occs = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id)
                        .order_by(Occurrence.start)).all()
    principal = users.principal_for(session, make_user(session, Role.secretariat))
    editing.edit_occurrence(session, settings, principal, meeting, occs[1],
                            OccurrenceUpdate(chair_room_id=c.id, participant_room_ids=[d.id]))
    session.flush()
    return meeting, occs, (a, b, c, d), (a1, a2, b1, c1, d1), (u1, u2)


def test_occurrence_override_replaces_chair_and_participants(session: Session, settings: Settings) -> None:
    meeting, occs, (a, b, c, d), (a1, a2, b1, c1, d1), _ = _scenario(session, settings)
    default = participants.Participation(a.id, tuple(sorted([a1.id, a2.id, b1.id])), tuple(sorted([a.id, b.id])))
    own = participants.Participation(c.id, tuple(sorted([c1.id, d1.id])), tuple(sorted([c.id, d.id])))
    assert participants.of_meeting(session, meeting) == default
    assert participants.of_occurrences(session, meeting, occs) == {occs[0].id: default, occs[1].id: own,
                                                                    occs[2].id: default}
    assert participants.of_occurrence(session, meeting, occs[1]) == own


def test_sql_forms_give_the_same_sets(session: Session, settings: Settings) -> None:
    meeting, occs, (a, b, c, d), (a1, a2, b1, c1, d1), (u1, u2) = _scenario(session, settings)
    o1, o2, o3 = (o.id for o in occs)
    rows = participants.endpoint_rows(occurrence_ids=[o1, o2, o3]).subquery()
    assert set(session.exec(sa.select(rows.c.occurrence_id, rows.c.endpoint_id)).all()) == {
        *((o, e.id) for o in (o1, o3) for e in (a1, a2, b1)), (o2, c1.id), (o2, d1.id)}
    assert set(session.exec(participants.endpoint_rows(occurrence_ids=o2, endpoint_ids=d1.id)).all()) == {(o2, d1.id)}
    assert session.exec(participants.endpoint_rows(occurrence_ids=o2, endpoint_ids=b1.id)).all() == []

    def involving(*rooms) -> set[int]:
        return set(session.exec(participants.occurrences_involving(frozenset(r.id for r in rooms))).scalars())

    assert involving(a) == {o1, o3}
    assert involving(b) == {o1, o3}
    assert involving(c) == {o2}
    assert involving(d) == {o2}
    assert involving(a, d) == {o1, o2, o3}

    def meetings(**kwargs) -> set[int]:
        return set(session.exec(participants.meetings_involving(**kwargs)).scalars())

    assert meetings(room_ids=b.id) == {meeting.id}
    assert meetings(room_ids=d.id) == set()  # the meeting's own participation only
    assert meetings(room_ids=d.id, occurrence_overrides=True) == {meeting.id}
    assert meetings(room_ids=c.id, occurrence_overrides=True) == {meeting.id}
    assert meetings(endpoint_ids=d1.id) == set()
    assert meetings(endpoint_ids=[d1.id], occurrence_overrides=True) == {meeting.id}
    assert meetings(room_ids=participants.rooms_of_units([u2.id])) == set()
    assert meetings(room_ids=participants.rooms_of_units([u1.id])) == {meeting.id}


def test_callers_read_the_same_participation(session: Session, settings: Settings) -> None:
    from confsvc.live import snapshot
    from confsvc.scheduling import live_events

    meeting, occs, (a, b, c, d), (a1, a2, b1, c1, d1), _ = _scenario(session, settings)
    assert live_events.occurrence_rooms(session, meeting, occs) == {
        occs[0].id: {a.id, b.id}, occs[1].id: {c.id, d.id}, occs[2].id: {a.id, b.id}}
    assert [e.id for e in snapshot.occurrence_endpoints(session, meeting, occs[1])] == sorted([c1.id, d1.id])
    assert [o["participant_endpoint_ids"] for o in reading.list_occurrences(session, meeting)] == [
        sorted([a1.id, a2.id, b1.id]), sorted([c1.id, d1.id]), sorted([a1.id, a2.id, b1.id])]


def test_list_meetings_operator_scope_includes_occurrence_overrides(session: Session, settings: Settings) -> None:
    """Regression: an operator whose unit takes part only through an occurrence's override (room D of
    unit u2 in the second occurrence) could neither list nor open the meeting."""
    meeting, occs, (a, b, c, d), _, (u1, u2) = _scenario(session, settings)
    other = make_unit(session)
    make_room(session, other)

    def scope(unit) -> tuple[list[int], int]:
        principal = users.principal_for(session, make_user(session, Role.operator, units=[unit]))
        found, total = reading.list_meetings(session, principal)
        return [m.id for m in found], total

    assert scope(u2) == ([meeting.id], 1)
    assert scope(u1) == ([meeting.id], 1)
    assert scope(other) == ([], 0)
    operator = users.principal_for(session, make_user(session, Role.operator, units=[u2]))
    assert reading.get_meeting(session, operator, meeting.id).id == meeting.id
    assert set(session.exec(participants.meetings_taking_part([d.id])).scalars()) == {meeting.id}
    assert set(session.exec(participants.meetings_taking_part([b.id])).scalars()) == {meeting.id}
    assert set(session.exec(participants.meetings_taking_part(participants.rooms_of_units([other.id])))
               .scalars()) == set()
