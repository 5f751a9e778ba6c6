"""Who takes part in an occurrence: the one definition (SPEC "Meeting", "Occurrence").

The rule: an occurrence's **chair room** is its own ``chair_room_id`` when set, else the meeting's;
its **participant endpoints** are its own rows (``occurrence_participants``) when
``participants_overridden``, else the meeting's (``meeting_participants``; the chair room's endpoints
are among them). Its **rooms** are the chair room and the rooms of its participant endpoints. A
meeting's own participation (the default its occurrences inherit) is its chair room and its
``meeting_participants``.

Three shapes of the same rule live here:

- pure values: :func:`chair_room`, :func:`endpoints`, :func:`rooms` (values in, values out);
- loaded from a session: :func:`of_meeting`, :func:`of_occurrences`, :func:`of_occurrence`
  (a fixed number of queries whatever the number of occurrences);
- SQL, for set-based queries: :func:`endpoint_rows` (``occurrence_id, endpoint_id``),
  :func:`occurrences_involving` (occurrence ids by room or endpoint) and :func:`meetings_involving`
  (meeting ids by room or endpoint), :func:`meetings_taking_part` (meeting ids by room, occurrences
  included: an operator's scope). The filters are applied inside each branch, so an index serves
  each one and no query reads every participant row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from confsvc import db
from confsvc.endpoints.models import Bridge, Endpoint, Room
from confsvc.errors import Forbidden
from confsvc.scheduling.models import Meeting, MeetingParticipant, Occurrence, OccurrenceParticipant
from confsvc.users.principal import Principal

#: What SQL filters accept: one id (a value or a bound parameter), a collection of ids, or a select of ids.
Ids = int | sa.BindParameter[Any] | Collection[int] | sa.Select[Any]


def _columns(model: type[SQLModel]) -> Any:
    """The Core columns of ``model``'s table (SQLModel types class attributes as values, not columns)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table.c


_M, _O, _MP, _OP, _E, _R = (_columns(m) for m in (Meeting, Occurrence, MeetingParticipant, OccurrenceParticipant,
                                                     Endpoint, Room))


# ---------------------------------------------------------------- pure

@dataclass(frozen=True)
class Participation:
    """Who takes part: ``chair_room_id``, ``endpoint_ids`` (sorted) and ``room_ids`` (sorted, chair included)."""

    chair_room_id: int
    endpoint_ids: tuple[int, ...]
    room_ids: tuple[int, ...]


def chair_room(occurrence_chair_room_id: int | None, meeting_chair_room_id: int) -> int:
    """The occurrence's chair room: its own when set, else the meeting's."""
    return occurrence_chair_room_id or meeting_chair_room_id


def endpoints(overridden: bool, own: Collection[int], inherited: Collection[int]) -> Collection[int]:
    """The occurrence's participant endpoint ids: ``own`` when ``overridden``, else ``inherited`` (the meeting's)."""
    return own if overridden else inherited


def rooms(chair_room_id: int, endpoint_ids: Iterable[int], endpoint_room: Mapping[int, int]) -> frozenset[int]:
    """The chair room and the rooms of ``endpoint_ids`` (``endpoint_room``: endpoint id → room id)."""
    return frozenset({chair_room_id} | {endpoint_room[e] for e in endpoint_ids if e in endpoint_room})


def participation(chair_room_id: int, endpoint_ids: Iterable[int], endpoint_room: Mapping[int, int]) -> Participation:
    ids = tuple(sorted(set(endpoint_ids)))
    return Participation(chair_room_id, ids, tuple(sorted(rooms(chair_room_id, ids, endpoint_room))))


# ---------------------------------------------------------------- loaded

def meeting_endpoint_ids(session: Session, meeting_id: int) -> list[int]:
    """The meeting's own participant endpoint ids (the default of its occurrences), sorted."""
    return list(session.exec(select(_MP.endpoint_id).where(_MP.meeting_id == meeting_id)
                             .order_by(_MP.endpoint_id)).all())


def _endpoint_rooms(session: Session, endpoint_ids: Collection[int]) -> dict[int, int]:
    if not endpoint_ids:
        return {}
    return {e: r for e, r in session.exec(select(_E.id, _E.room_id).where(db.ids_in(session, _E.id, endpoint_ids))).all()}


def of_meeting(session: Session, meeting: Meeting) -> Participation:
    """The meeting's own participation: its chair room and ``meeting_participants``."""
    ids = meeting_endpoint_ids(session, _id(meeting.id))
    return participation(meeting.chair_room_id, ids, _endpoint_rooms(session, ids))


def of_occurrences(session: Session, meeting: Meeting, occurrences: Iterable[Occurrence]) -> dict[int, Participation]:
    """``{occurrence_id: Participation}`` of ``occurrences`` of ``meeting``, from the rows as they are now
    (at most three queries)."""
    occurrences = list(occurrences)
    default = meeting_endpoint_ids(session, _id(meeting.id))
    overridden = [_id(o.id) for o in occurrences if o.participants_overridden]
    own: dict[int, list[int]] = {i: [] for i in overridden}
    if overridden:
        for occurrence_id, endpoint_id in session.exec(
                select(_OP.occurrence_id, _OP.endpoint_id).where(_OP.occurrence_id.in_(overridden))).all():
            own[occurrence_id].append(endpoint_id)
    endpoint_room = _endpoint_rooms(session, set(default).union(*own.values()))
    return {_id(o.id): participation(chair_room(o.chair_room_id, meeting.chair_room_id),
                                     endpoints(o.participants_overridden, own.get(_id(o.id), []), default),
                                     endpoint_room)
            for o in occurrences}


def of_occurrence(session: Session, meeting: Meeting, occ: Occurrence) -> Participation:
    """The participation of one occurrence of ``meeting``."""
    return of_occurrences(session, meeting, [occ])[_id(occ.id)]


def _id(value: int | None) -> int:
    """A stored row's id (flushed rows have one)."""
    assert value is not None
    return value


# ---------------------------------------------------------------- SQL

def _matches(column: Any, ids: Ids) -> Any:
    if isinstance(ids, int | sa.BindParameter):
        return column == ids
    if isinstance(ids, sa.Select):
        return column.in_(ids)
    return column.in_(sorted(ids))


def endpoint_rows(occ: Any = None, *, overridden: str = "participants_overridden", occurrence_ids: Ids | None = None,
                  endpoint_ids: Ids | None = None) -> sa.CompoundSelect[Any]:
    """SQL rows ``(occurrence_id, endpoint_id)``: the participant endpoints of every occurrence in ``occ``
    (a from-clause with columns ``id``, ``meeting_id`` and ``overridden``; default the occurrences
    table), optionally only ``occurrence_ids`` and only ``endpoint_ids``. A UNION ALL without
    duplicates (an occurrence inherits or has its own, never both)."""
    occ = _O.id.table if occ is None else occ
    is_overridden = occ.c[overridden]
    inherited = (sa.select(occ.c.id.label("occurrence_id"), _MP.endpoint_id).select_from(occ)
                 .join(_MP.meeting_id.table, _MP.meeting_id == occ.c.meeting_id)
                 .where(is_overridden.is_(False)))
    own = (sa.select(occ.c.id.label("occurrence_id"), _OP.endpoint_id).select_from(occ)
           .join(_OP.occurrence_id.table, _OP.occurrence_id == occ.c.id)
           .where(is_overridden.is_(True)))
    if occurrence_ids is not None:
        inherited, own = inherited.where(_matches(occ.c.id, occurrence_ids)), own.where(_matches(occ.c.id,
                                                                                                  occurrence_ids))
    if endpoint_ids is not None:
        inherited = inherited.where(_matches(_MP.endpoint_id, endpoint_ids))
        own = own.where(_matches(_OP.endpoint_id, endpoint_ids))
    return sa.union_all(inherited, own)


def _endpoints_in(room_ids: Ids) -> sa.Select[Any]:
    return sa.select(_E.id).where(_matches(_E.room_id, room_ids))


def occurrences_involving(room_ids: Ids) -> sa.CompoundSelect[Any]:
    """SQL: ids of the occurrences whose chair room, or the room of a participant endpoint, is in ``room_ids``."""
    by_chair = (sa.select(_O.id).join(_M.id.table, _M.id == _O.meeting_id)
                .where(_matches(sa.func.coalesce(_O.chair_room_id, _M.chair_room_id), room_ids)))
    by_endpoint = endpoint_rows(endpoint_ids=_endpoints_in(room_ids)).subquery("involved")
    return sa.union(by_chair, sa.select(by_endpoint.c.occurrence_id))


def occurrence_rooms(room_ids: Ids) -> sa.CompoundSelect[Any]:
    """SQL rows ``(occurrence_id, room_id)``: :func:`occurrences_involving` room by room, for each room of
    ``room_ids`` the occurrences it takes part in (as the chair room or through a participant endpoint)."""
    chair = sa.func.coalesce(_O.chair_room_id, _M.chair_room_id)
    by_chair = (sa.select(_O.id.label("occurrence_id"), chair.label("room_id")).join(_M.id.table, _M.id == _O.meeting_id)
                .where(_matches(chair, room_ids)))
    rows = endpoint_rows(endpoint_ids=_endpoints_in(room_ids)).subquery("involved")
    by_endpoint = sa.select(rows.c.occurrence_id, _E.room_id).join(_E.id.table, _E.id == rows.c.endpoint_id)
    return sa.union(by_chair, by_endpoint)


def meetings_involving(*, room_ids: Ids | None = None, endpoint_ids: Ids | None = None,
                       occurrence_overrides: bool = False) -> sa.CompoundSelect[Any]:
    """SQL: ids of the meetings whose own chair room is in ``room_ids`` or whose own participant endpoints
    meet ``endpoint_ids`` or the rooms ``room_ids``.

    ``occurrence_overrides``: also meetings with an occurrence whose own chair room or own participant
    list meets them (a superset of the meetings with an occurrence involving them: callers then keep the
    occurrences that do, as the feeds). Without it, the meeting's own participation only (scoping of
    meeting lists, SPEC "Who uses it")."""
    wanted = endpoint_ids if room_ids is None else _endpoints_in(room_ids)
    branches: list[sa.Select[Any]] = []
    if room_ids is not None:
        branches.append(sa.select(_M.id).where(_matches(_M.chair_room_id, room_ids)))
    if wanted is not None:
        branches.append(sa.select(_MP.meeting_id).where(_matches(_MP.endpoint_id, wanted)))
    if occurrence_overrides:
        if room_ids is not None:
            branches.append(sa.select(_O.meeting_id).where(_matches(_O.chair_room_id, room_ids)))
        if wanted is not None:
            branches.append(sa.select(_O.meeting_id).join(_OP.occurrence_id.table, _OP.occurrence_id == _O.id)
                            .where(_matches(_OP.endpoint_id, wanted)))
    return sa.union(*branches)


def meetings_taking_part(room_ids: Ids) -> sa.CompoundSelect[Any]:
    """SQL: ids of the meetings in which a room of ``room_ids`` takes part: by the meeting's own
    participation (chair room, ``meeting_participants``) or by one of its occurrences' (an occurrence's
    own chair room or own participant list, :func:`occurrences_involving`). Exact, unlike
    ``meetings_involving(occurrence_overrides=True)``. The scope of an operator's reads (SPEC "Who uses
    it": an operator sees the meetings of their own units, an occurrence's override included)."""
    own = meetings_involving(room_ids=room_ids).subquery("own")  # SQLite takes no nested UNION
    return sa.union(sa.select(own.c.id), sa.select(_O.meeting_id).where(_O.id.in_(occurrences_involving(room_ids))))


def rooms_of_units(unit_ids: Ids) -> sa.Select[Any]:
    """SQL: ids of the rooms of ``unit_ids`` (no sub-units: expand them first)."""
    return sa.select(_R.id).where(_matches(_R.unit_id, unit_ids))


def require_in_scope(session: Session, principal: Principal, room_ids: Iterable[int]) -> None:
    """Raises NotFound (404) when a room of ``room_ids`` lies outside ``principal``'s province (issue 14:
    a province books and sees only its own sites; the rule itself is ``Principal.in_scope``)."""
    if principal.scope is None:
        return
    for unit_id in session.exec(select(_R.unit_id).where(_R.id.in_(sorted(set(room_ids))))).all():
        principal.require_in_scope(unit_id, "room")


def bridges_in_scope(principal: Principal) -> Any:
    """SQL condition on ``bridges`` keeping those ``principal`` may book: their province's and shared ones."""
    return principal.scope_filter(_columns(Bridge).unit_id, shared=True)


def holds_whole_meeting(session: Session, principal: Principal, meeting: Meeting) -> bool:
    """Whether every site of ``meeting`` lies in ``principal``'s province (always, for the national
    office): a province sees a meeting that reaches into it, but only the national office (or whoever
    holds every site) changes a meeting of several provinces (issue 14). The rule of
    :func:`require_whole_meeting`, for pages that offer the change."""
    if principal.scope is None:
        return True
    rooms = of_meeting(session, meeting).room_ids
    units = session.exec(select(_R.unit_id).where(_R.id.in_(sorted(rooms)))).all()
    return all(principal.in_scope(u) for u in units)


def require_whole_meeting(session: Session, principal: Principal, meeting: Meeting) -> None:
    """Raises Forbidden (``forbidden_scope``) unless :func:`holds_whole_meeting`."""
    if not holds_whole_meeting(session, principal, meeting):
        raise Forbidden("this meeting has sites in other provinces: the national office changes it",
                        code="forbidden_scope")
