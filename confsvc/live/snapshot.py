"""What the live channel reads from the database: join instructions per room and occurrence, the
``join.instructions`` events beside scheduling's ``meeting.*``, and connect-time snapshots.

Functions take a session and never commit. Times in answers are UTC ISO-8601 ``…Z``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from confsvc import db, events
from confsvc.clock import iso_utc
from confsvc.endpoints.models import Endpoint, Room
from confsvc.scheduling import cascade, join, participants, visibility
from confsvc.scheduling import models as scheduling_models
from confsvc.scheduling.models import Meeting, MeetingStatus, Occurrence, OccurrenceStatus

#: Dial mode used in join instructions (``Settings.join_dial_mode``), set by ``main.create_app``.
_dial_mode = {"value": "dial_in"}
#: Upcoming occurrences listed in a unit or secretariat snapshot (a room's lists at most one).
SNAPSHOT_NEXT_LIMIT = 50
#: Upcoming occurrences in a room's snapshot: the one the display shows and its "next meeting" strip.
ROOM_NEXT_LIMIT = 2


def configure(*, dial_mode: str) -> None:
    """Set the process-wide dial mode (``dial_in`` or ``dial_out``). Raises ValueError otherwise."""
    if dial_mode not in join.DIAL_MODES:
        raise ValueError(f"unknown dial mode {dial_mode!r}")
    _dial_mode["value"] = dial_mode


def occurrence_endpoints(session: Session, meeting: Meeting, occ: Occurrence) -> list[Endpoint]:
    """The participating endpoints of ``occ`` (its own list when overridden, else the meeting's), by id."""
    return list(session.exec(_OCCURRENCE_ENDPOINTS, params={"occurrence_id": occ.id}).all())


#: :func:`occurrence_endpoints`'s statement (``occurrence_id`` parameter), built once: every booking's
#: join instructions read it, and building it cost more than running it.
_OCCURRENCE_ENDPOINTS = select(Endpoint).where(Endpoint.id.in_(sa.select(
    participants.endpoint_rows(occurrence_ids=sa.bindparam("occurrence_id")).subquery().c.endpoint_id))
).order_by(Endpoint.id)


def join_for_occurrence(session: Session, meeting: Meeting, occ: Occurrence,
                        room_ids: set[int] | frozenset[int] | None = None) -> list[dict[str, Any]]:
    """Join instructions (``join.instructions`` shape) of every participating room of ``occ``, by room id.

    ``room_ids`` keeps only those rooms. The chair room is listed even without an endpoint.
    """
    # Columns, not ORM objects: a national meeting has 3,355 rooms (issue 14).
    ids = sa.select(participants.endpoint_rows(occurrence_ids=occ.id).subquery().c.endpoint_id)
    columns = (col(Endpoint.id), col(Endpoint.room_id), col(Endpoint.name), col(Endpoint.protocol), col(Endpoint.dial_address))
    query = sa.select(*columns).where(col(Endpoint.id).in_(ids)).order_by(col(Endpoint.id))
    if room_ids is not None:  # a room's display, or the rooms a sites change added: not all 3,355 (issue 14)
        query = query.where(db.ids_in(session, col(Endpoint.room_id), room_ids))
    endpoints = session.execute(query).all()
    chair = occ.chair_room_id or meeting.chair_room_id
    by_room: dict[int, list[join.EndpointRef]] = {chair: []}
    for endpoint_id, room_id, name, protocol, dial_address in endpoints:
        by_room.setdefault(room_id, []).append(join.EndpointRef(endpoint_id, name, protocol.value, dial_address))
    wanted = sorted(r for r in by_room if room_ids is None or r in room_ids)
    if not wanted:
        return []
    names = dict(session.exec(select(Room.id, Room.name).where(db.ids_in(session, Room.id, wanted))).all())
    # Each room dials the bridge it joins (issue 14: its own province's in a cascaded meeting); the
    # details are made once per bridge and number, not once per room.
    bridges = cascade.room_bridges(session, meeting, occ.id, set(wanted))
    details: dict[tuple[int | None, int | None], join.JoinDetails] = {}
    for bridge, number in bridges.values():
        if (bridge.id, number) not in details:
            details[(bridge.id, number)] = join.JoinDetails(
                conference_number=occ.number(meeting) if number is None else number,
                sip_domain=bridge.sip_domain, h323_prefix=bridge.h323_prefix, pin=meeting.pin)

    def joined(room_id: int) -> tuple[join.JoinDetails | None, str | None]:
        if room_id not in bridges:
            return None, None
        bridge, number = bridges[room_id]
        return details[(bridge.id, number)], bridge.name

    return [join.instructions(
        meeting_id=meeting.id, occurrence_id=occ.id, title=meeting.title, start=occ.start, end=occ.end,
        check_lead_minutes=meeting.check_lead_minutes, timezone=meeting.timezone, room_id=room_id,
        room_name=names[room_id], chair_room_id=chair, details=details_, endpoints=by_room[room_id],
        dial_mode=_dial_mode["value"], upstream_dial=meeting.upstream_dial, bridge_name=bridge_name)
        for room_id in wanted for details_, bridge_name in [joined(room_id)]]


#: The events after which :func:`record_join_instructions` records the rooms' join instructions.
JOIN_SOURCES = frozenset({"meeting.scheduled", "meeting.updated"})


def record_join_instructions(session: Session, event: events.Event) -> None:
    """``events.on_record`` hook (``types=JOIN_SOURCES``): after ``meeting.scheduled`` / ``meeting.updated``,
    record one ``join.instructions`` per participating room of the event's ``occurrence_id`` (routed to
    that room only), in the same transaction. Nothing for a cancelled meeting or occurrence. A sites change
    (``scope`` ``"sites"``, issue 14) records them for the event's ``room_ids`` only (the added rooms)."""
    if event.type not in JOIN_SOURCES or not event.data.get("occurrence_id"):
        return
    meeting = session.get(Meeting, event.data["meeting_id"])
    occ = session.get(Occurrence, event.data["occurrence_id"])
    if meeting is None or occ is None or meeting.status is MeetingStatus.cancelled \
            or occ.status is OccurrenceStatus.cancelled:
        return
    only = set(event.data.get("room_ids") or []) if event.data.get("scope") == "sites" else None
    if only is not None and not only:
        return
    items = join_for_occurrence(session, meeting, occ, only)
    units = participant_units(session, meeting, occ) if meeting.confidential else set()
    marked = [visibility.mark(item, confidential=meeting.confidential, participant_unit_ids=units) for item in items]
    # One insert for every room's (a national meeting has 3,355: issue 14), no ORM object per event.
    events.record_each(session, "join.instructions", [(item, [item["room_id"]]) for item in marked], returning=False)


def participant_units(session: Session, meeting: Meeting, occ: Occurrence) -> set[int]:
    """Units of ``occ``'s chair room and participating rooms (``visibility.sees_details``)."""
    rooms = {e.room_id for e in occurrence_endpoints(session, meeting, occ)} | {occ.chair_room_id
                                                                                 or meeting.chair_room_id}
    return set(session.exec(select(Room.unit_id).where(Room.id.in_(rooms))).all())


# ---------------------------------------------------------------- scopes and snapshots

@dataclass(frozen=True)
class Scope:
    """A channel: ``kind`` is ``room``, ``unit`` or ``secretariat``; ``room_ids`` are its rooms
    (``None`` = every room). ``unit_id`` matches events routed to the unit or any sub-unit. A
    secretariat channel's ``id`` is the province of a province-scoped caller (issue 14), else ``None``."""

    kind: str
    id: int | None
    room_ids: frozenset[int] | None
    #: Who is listening: decides what they see of confidential meetings (``scheduling.visibility``).
    audience: visibility.Audience = visibility.EVERYONE

    def matches(self, published: events.Published) -> bool:
        if published.message["type"] in events.INTERNAL_TYPES:
            return False
        if self.kind == "secretariat":  # ``id``: the province of a province's secretariat (issue 14)
            return self.id is None or self.id in published.unit_ids
        if self.kind == "room":
            return self.id in published.room_ids
        return self.id in published.unit_ids


def involving_rooms(room_ids: frozenset[int]) -> Any:
    """Occurrence ids whose chair room or a participant endpoint is in ``room_ids``."""
    return participants.occurrences_involving(room_ids)


def _endpoint_public(e: Endpoint) -> dict[str, Any]:
    return {"endpoint_id": e.id, "name": e.name, "room_id": e.room_id, "protocol": e.protocol.value,
            "status": e.status.value, "last_seen_at": iso_utc(e.last_seen_at) if e.last_seen_at else None}


def _listed(session: Session, scope: Scope, now: datetime) -> tuple[list[tuple[Occurrence, Meeting]],
                                                                     list[tuple[Occurrence, Meeting]]]:
    """The ``current`` and ``next`` occurrences of :func:`snapshot` (with their meetings)."""
    query = _not_ended(select(Occurrence, Meeting), now).order_by(Occurrence.start, Occurrence.id)
    if scope.room_ids is not None:
        query = query.where(Occurrence.id.in_(involving_rooms(scope.room_ids)))
    # A room display shows the upcoming meeting and, in its "Cuộc họp tiếp theo" strip, the one after it.
    limit = ROOM_NEXT_LIMIT if scope.kind == "room" else SNAPSHOT_NEXT_LIMIT
    # Started ones first (bounded by the longest booking window), then the next ``limit``.
    current: list[tuple[Occurrence, Meeting]] = []
    upcoming: list[tuple[Occurrence, Meeting]] = []
    for occ, meeting in session.exec(query.where(Occurrence.start <= now + NEAR)).all():
        _place(occ, meeting, now, limit, current, upcoming)
    if len(upcoming) < limit:
        seen = {o.id for o, _ in current + upcoming}
        later = session.exec(query.where(Occurrence.start > now + NEAR).limit(limit - len(upcoming))).all()
        upcoming += [(o, m) for o, m in later if o.id not in seen]
    return current, upcoming


#: The first read of a snapshot: occurrences starting within this time (the longest technical check lead
#: is 24 hours, ``schemas.Minutes``: every occurrence whose check has begun starts within it).
NEAR = timedelta(minutes=24 * 60)


def _not_ended(query: Any, now: datetime) -> Any:
    return (query.join(Meeting, Meeting.id == Occurrence.meeting_id)
            .where(Occurrence.status == OccurrenceStatus.scheduled, Meeting.status != MeetingStatus.cancelled,
                   Occurrence.end > now))


def _place(occ: Occurrence, meeting: Meeting, now: datetime, limit: int, current: list[tuple[Occurrence, Meeting]],
           upcoming: list[tuple[Occurrence, Meeting]]) -> None:
    """Put ``occ`` (read in start order) in ``current`` when its technical check has begun, else in
    ``upcoming`` while it holds fewer than ``limit``."""
    if occ.start - timedelta(minutes=meeting.check_lead_minutes) <= now:
        current.append((occ, meeting))
    elif len(upcoming) < limit:
        upcoming.append((occ, meeting))


def _readiness(session: Session, listed: list[tuple[Occurrence, Meeting]]) -> dict[tuple[int, int], Any]:
    """Saved readiness rows of ``listed`` by ``(occurrence id, room id)`` (none without the table)."""
    readiness_model = getattr(scheduling_models, "SiteReadiness", None)
    if readiness_model is None or not listed:
        return {}
    rows = session.exec(select(readiness_model).where(
        readiness_model.occurrence_id.in_(sorted({int(o.id or 0) for o, _ in listed})))).all()
    return {(r.occurrence_id, r.room_id): r for r in rows}


def _item(occ: Occurrence, meeting: Meeting, joins: list[dict[str, Any]], audience: visibility.Audience,
          units: Callable[[], set[int]], readiness: dict[tuple[int, int], Any]) -> dict[str, Any]:
    """One listed occurrence of a snapshot; ``units``: its participant units (read when confidential)."""
    title = meeting.title
    if meeting.confidential and not visibility.sees_details(audience, confidential=True,
                                                            participant_unit_ids=units()):
        title, joins = visibility.CONFIDENTIAL_TITLE, [visibility.redact_join(j) for j in joins]
    data = {"meeting_id": meeting.id, "occurrence_id": occ.id, "title": title,
            "start": iso_utc(occ.start), "end": iso_utc(occ.end),
            "check_at": iso_utc(occ.start - timedelta(minutes=meeting.check_lead_minutes)),
            "chair_room_id": occ.chair_room_id or meeting.chair_room_id,
            # A displaced occurrence (scheduling.displacement) is tentative whatever its meeting's status.
            "status": "tentative" if occ.tentative else meeting.status.value, "tentative": occ.tentative,
            "sequence": meeting.sequence, "join_instructions": joins}
    if getattr(scheduling_models, "SiteReadiness", None) is not None:
        data["readiness"] = [
            {"room_id": j["room_id"], "state": r.state.value if r else "not_checked", "note": r.note if r else ""}
            for j in joins for r in [readiness.get((occ.id, j["room_id"]))]]
    return data


def snapshot(session: Session, scope: Scope, *, now: datetime) -> dict[str, Any]:
    """The ``snapshot`` message data for ``scope`` at ``now`` (UTC).

    ``current``: occurrences whose technical check has begun and that have not ended
    (``start − check_lead ≤ now < end``); ``next``: the following ones in start order (two for a
    room: the display's upcoming meeting and the next one, at most :data:`SNAPSHOT_NEXT_LIMIT` otherwise). Each item carries ``join_instructions``
    for the scope's rooms and, when the readiness table exists, ``readiness`` per room.
    ``endpoints``: status of the endpoints of the scope's rooms (secretariat: of the listed
    occurrences' participants). A confidential meeting outside ``scope.audience`` is listed as
    "Cuộc họp" with its times and rooms, its join instructions without dial strings or PIN.
    """
    current, upcoming = _listed(session, scope, now)
    listed = current + upcoming
    readiness = _readiness(session, listed)

    def item(occ: Occurrence, meeting: Meeting) -> dict[str, Any]:
        return _item(occ, meeting, join_for_occurrence(session, meeting, occ, scope.room_ids), scope.audience,
                     lambda: participant_units(session, meeting, occ), readiness)

    if scope.room_ids is not None:
        endpoint_query = select(Endpoint).where(Endpoint.room_id.in_(scope.room_ids))
    else:
        ids = {e for o, m in listed for e in (x.id for x in occurrence_endpoints(session, m, o))}
        endpoint_query = select(Endpoint).where(Endpoint.id.in_(ids))
    endpoints = session.exec(endpoint_query.order_by(Endpoint.id)).all()
    return {"scope": {"kind": scope.kind, "id": scope.id}, "now": iso_utc(now),
            "current": [item(o, m) for o, m in current], "next": [item(o, m) for o, m in upcoming],
            "endpoints": [_endpoint_public(e) for e in endpoints]}


def room_snapshots(session: Session, scopes: Collection[Scope], *, now: datetime) -> dict[Scope, dict[str, Any]]:
    """:func:`snapshot` of many room channels at once, exactly as each alone, in a few queries whatever
    their number (issue 14: the first connect of thousands of room displays).

    ``scopes``: room channels (``kind == "room"``, ``room_ids == {id}``). Returns ``{scope: data}``.
    Raises ValueError for another kind of scope.
    """
    if any(s.kind != "room" or s.id is None or s.room_ids != frozenset({s.id}) for s in scopes):
        raise ValueError("room_snapshots takes room channels only")
    rooms = sorted({s.id for s in scopes if s.id is not None})
    if not rooms:
        return {}
    pairs = participants.occurrence_rooms(rooms).subquery("taking_part")
    near = _not_ended(select(Occurrence, Meeting, pairs.c.room_id), now).join(
        pairs, pairs.c.occurrence_id == Occurrence.id).where(Occurrence.start <= now + NEAR)
    current: dict[int, list[tuple[Occurrence, Meeting]]] = {r: [] for r in rooms}
    upcoming: dict[int, list[tuple[Occurrence, Meeting]]] = {r: [] for r in rooms}
    for occ, meeting, room_id in session.exec(near.order_by(Occurrence.start, Occurrence.id)).all():
        _place(occ, meeting, now, ROOM_NEXT_LIMIT, current[room_id], upcoming[room_id])
    short = [r for r in rooms if len(upcoming[r]) < ROOM_NEXT_LIMIT]
    if short:
        # The next ones after the first day, at most ROOM_NEXT_LIMIT per room (a window function).
        order = sa.func.row_number().over(partition_by=pairs.c.room_id,
                                          order_by=(Occurrence.start, Occurrence.id)).label("n")
        ranked = _not_ended(select(col(Occurrence.id).label("occurrence_id"), pairs.c.room_id, order), now).join(
            pairs, pairs.c.occurrence_id == Occurrence.id).where(Occurrence.start > now + NEAR,
                                                                  pairs.c.room_id.in_(short)).subquery("ranked")
        later = session.exec(select(Occurrence, Meeting, ranked.c.room_id)
                             .join(ranked, ranked.c.occurrence_id == Occurrence.id)
                             .join(Meeting, Meeting.id == Occurrence.meeting_id)
                             .where(ranked.c.n <= ROOM_NEXT_LIMIT).order_by(ranked.c.room_id, ranked.c.n)).all()
        for occ, meeting, room_id in later:
            if len(upcoming[room_id]) < ROOM_NEXT_LIMIT:
                upcoming[room_id].append((occ, meeting))
    listed: dict[int, tuple[Occurrence, Meeting]] = {}
    rooms_of: dict[int, set[int]] = {}
    for room_id in rooms:
        for occ, meeting in current[room_id] + upcoming[room_id]:
            listed[int(occ.id or 0)] = (occ, meeting)
            rooms_of.setdefault(int(occ.id or 0), set()).add(room_id)
    readiness = _readiness(session, list(listed.values()))
    # Join instructions once per occurrence for all its rooms here, split by room.
    joins: dict[tuple[int, int], dict[str, Any]] = {}
    for occ_id, (occ, meeting) in listed.items():
        for j in join_for_occurrence(session, meeting, occ, rooms_of[occ_id]):
            joins[(occ_id, j["room_id"])] = j
    units: dict[int, set[int]] = {}

    def units_of(occ: Occurrence, meeting: Meeting) -> Callable[[], set[int]]:
        def read() -> set[int]:
            if int(occ.id or 0) not in units:
                units[int(occ.id or 0)] = participant_units(session, meeting, occ)
            return units[int(occ.id or 0)]
        return read

    endpoints: dict[int, list[dict[str, Any]]] = {r: [] for r in rooms}
    for e in session.exec(select(Endpoint).where(col(Endpoint.room_id).in_(rooms)).order_by(Endpoint.id)).all():
        endpoints[e.room_id].append(_endpoint_public(e))

    def items(scope: Scope, occurrences: list[tuple[Occurrence, Meeting]]) -> list[dict[str, Any]]:
        room_id = int(scope.id or 0)
        return [_item(o, m, [joins[(int(o.id or 0), room_id)]] if (int(o.id or 0), room_id) in joins else [],
                      scope.audience, units_of(o, m), readiness) for o, m in occurrences]

    return {scope: {"scope": {"kind": scope.kind, "id": scope.id}, "now": iso_utc(now),
                    "current": items(scope, current[int(scope.id or 0)]),
                    "next": items(scope, upcoming[int(scope.id or 0)]),
                    "endpoints": list(endpoints[int(scope.id or 0)])} for scope in scopes}
