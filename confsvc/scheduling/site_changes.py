"""A province's sites added to or removed from a booked meeting without re-booking it (issue 14).

A national meeting holds ~3,355 sites; a province adding or removing one commune's site must not rewrite
every booking row, re-check every site nor re-send every display's join instructions (the whole-meeting
edit, ``editing.edit_unchecked``, does all three). Here only the changed sites are touched, in the
occurrences that take the meeting's participants (not an exception with its own list,
``Occurrence.participants_overridden``, which keeps its sites as the whole edit keeps them):

- :func:`add`: the new sites' rows (``meeting_participants``; per occurrence holding resources, an endpoint
  and a room booking each, written by ``planning.write_occurrences``' owner ``booking.booking_rows``
  through ``db.insert_rows``), checked by the one conflict owner (``booking.resource_conflicts``: SPEC
  rules 1, 4, the rooms' locks taken) and the bridges' ports (SPEC rule 2): the ports the new sites add
  to the bridge they join (``booking.bridge_check`` counts what is booked, this meeting's own rows
  included, plus the added ports), and for a province without its bridge in an occurrence a bridge
  booking of its own there, with a conference number, and its cascade leg (``cascade.fit_province``, as
  ``cascade.choose_bridges`` picks one; one more port on the root for the leg). A province without a
  bridge, or whose sites joined the root when booked, joins the root, as ``cascade.tree_ports`` says.
- :func:`remove`: the site's rows deleted (SPEC rule 6: freed at once), its ports given back; the last
  site of a province frees that province's bridge booking, the leg's port on the root, and its cascade
  leg (``meeting_bridges`` row) unless an exception still holds that bridge.

The bridges are decided per occurrence, from what each occurrence has booked (``_booked_bridges``), not
from the meeting's tree alone: an exception with its own list may hold a province's bridge and leg that
the other occurrences do not, and a site added there books that bridge (and its number) in every
occurrence lacking it, so no room is told to dial a conference its bridge does not hold.

The guarantee stays the database's (SPEC rule 7): the exclusion constraints and the rooms' locks for the
sites, ``bookings_bridge_ports`` at COMMIT for the ports (``port_guard``), the meeting's row lock
(``planning.lock_for_change``, taken by the caller) against two changes of one meeting at once.

Told: one ``meeting.updated`` event, ``scope`` ``"sites"`` (``live_events``), routed to the added or
removed rooms only (their units and ancestors: the secretariat boards of their province and of the
national office), ``room_ids`` the added rooms, ``sites`` ``{"added": [...], "removed": [...]}``; join
instructions follow for the added rooms only (``live.snapshot.record_join_instructions``); a removed
room's display reads that it no longer takes part (not in ``room_ids``) and its contact is mailed a CANCEL.
SEQUENCE bumps (the participants are material, ``editing.material_state``). Times are aware UTC;
windows half-open ``[start − check_lead, end + teardown)``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from confsvc import db
from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Endpoint, Room
from confsvc.scheduling import booking, cascade, live_events, repository
from confsvc.scheduling.audit_log import audit
from confsvc.scheduling.booking import Names, Participants, Plan
from confsvc.scheduling.conflicts import Conflict, Window, bridge_ports, make_conflict
from confsvc.scheduling.models import (
    Booking,
    Meeting,
    MeetingBridge,
    MeetingParticipant,
    Occurrence,
    OccurrenceStatus,
    ResourceKind,
)
from confsvc.scheduling.planning import BookResult, refusal
from confsvc.users.principal import Principal
from confsvc.users.service import expand_units


def add(session: Session, settings: Settings, principal: Principal, meeting: Meeting, endpoints: dict[int, int], *,
        now: datetime, action: str = "meeting.sites_added") -> BookResult:
    """Add the sites ``endpoints`` (active endpoint id → its room id; rooms not taking part yet) to
    ``meeting`` (locked and checked by the caller: ``province_sites.add_sites``). See the module docstring.

    Returns the meeting's :class:`BookResult` (scheduled occurrences, holiday warnings), as an edit does.

    Raises:
        BookingConflict: 409 naming only the added rooms' and endpoints' conflicts and the ports the
            added sites lack (with ``by_province``); nothing is written.
    """
    endpoint_ids = sorted(endpoints)
    rooms = sorted(set(endpoints.values()))
    occurrences = _inherited(session, meeting)
    plans = [booking.make_plan(o.start, o.end, o.recurrence_id, Participants(meeting.chair_room_id, endpoint_ids, rooms),
                               check_lead_minutes=meeting.check_lead_minutes,
                               teardown_minutes=meeting.teardown_minutes, occurrence=o)
             for o in occurrences if _holds(o)]
    names = Names(session)
    booking.resource_conflicts(session, settings, plans, names)
    growth = _grow_bridges(session, settings, meeting, plans, endpoint_ids)
    conflicts = [c for p in plans for c in p.conflicts]
    if conflicts:
        raise refusal(meeting.title, conflicts, session)

    def write() -> None:
        db.insert_rows(session, MeetingParticipant, [{"meeting_id": meeting.id, "endpoint_id": e} for e in endpoint_ids])
        for plan in plans:
            plan.cascade = growth.new_rows.get(_id(plan.occurrence))  # a new province's bridge, else none
        db.insert_rows(session, Booking, [row for plan in plans for row in booking.booking_rows(
            meeting, plan, _id(plan.occurrence)) if plan.cascade is not None
            or row["resource_kind"] is not ResourceKind.bridge])
        _shift_ports(session, meeting, growth.deltas)

    booking.insert_guarded(session, settings, write, plans, meeting.title)
    db.insert_rows(session, MeetingBridge, growth.legs)
    _changed(session, principal, meeting, now, action, rooms)
    live_events.record_change(session, "meeting.updated", meeting, live_events.meeting_occurrences(session, meeting),
                              scope="sites", rooms={_id(o.id): set(rooms) for o in occurrences}, now=now,
                              extra={"sites": {"added": rooms, "removed": []}})
    return _result(session, meeting, plans)


def remove(session: Session, settings: Settings, principal: Principal, meeting: Meeting, room_id: int,
           endpoint_ids: list[int], *, now: datetime, action: str = "meeting.site_removed") -> BookResult:
    """Remove the site ``room_id`` (its participant endpoints ``endpoint_ids``) from ``meeting`` (locked and
    checked by the caller: ``province_sites.remove_site``): its rows are deleted and its ports given back;
    the last site of its province frees that province's bridge and cascade leg. See the module docstring.

    Returns the meeting's :class:`BookResult`. Raises nothing of its own."""
    occurrences = _inherited(session, meeting)
    ids = [_id(o.id) for o in occurrences]
    chairing = [_id(o.id) for o in occurrences if o.chair_room_id == room_id]  # its room stays booked there
    if ids:
        session.execute(sa.delete(Booking).where(
            col(Booking.meeting_id) == meeting.id, repository.ids_in(session, Booking.occurrence_id, ids),
            sa.or_(sa.and_(col(Booking.resource_kind) == ResourceKind.endpoint,
                           repository.ids_in(session, Booking.resource_id, endpoint_ids)),
                   sa.and_(col(Booking.resource_kind) == ResourceKind.room, col(Booking.resource_id) == room_id,
                           col(Booking.occurrence_id).not_in(chairing)))))
    session.execute(sa.delete(MeetingParticipant).where(
        col(MeetingParticipant.meeting_id) == meeting.id,
        repository.ids_in(session, MeetingParticipant.endpoint_id, endpoint_ids)))
    session.flush()
    _shrink_bridges(session, meeting, room_id, len(endpoint_ids), ids)
    _changed(session, principal, meeting, now, action, [room_id])
    live_events.record_change(session, "meeting.updated", meeting, live_events.meeting_occurrences(session, meeting),
                              scope="sites", rooms={}, rooms_before=[room_id], now=now,
                              extra={"sites": {"added": [], "removed": [room_id]}})
    plans = [booking.make_plan(o.start, o.end, o.recurrence_id, Participants(meeting.chair_room_id, [], []),
                               check_lead_minutes=meeting.check_lead_minutes,
                               teardown_minutes=meeting.teardown_minutes, occurrence=o)
             for o in occurrences if _holds(o)]
    return _result(session, meeting, plans)


# ---------------------------------------------------------------- occurrences

def _inherited(session: Session, meeting: Meeting) -> list[Occurrence]:
    """The meeting's occurrences that take its participants (not an exception with its own list), by start."""
    return list(session.exec(select(Occurrence).where(
        col(Occurrence.meeting_id) == meeting.id, col(Occurrence.participants_overridden).is_(False))
        .order_by(col(Occurrence.start), col(Occurrence.id))).all())


def _holds(occ: Occurrence) -> bool:
    """Whether ``occ`` holds resources: scheduled and not displaced (``displacement``: tentative holds nothing)."""
    return occ.status is OccurrenceStatus.scheduled and not occ.tentative


def _id(value: Any) -> int:
    """A stored row's id (an occurrence, or a plan's occurrence)."""
    found = value.id if isinstance(value, Occurrence) else value
    assert isinstance(found, int)
    return found


# ---------------------------------------------------------------- bridges

class _Growth:
    """What added sites take of bridges, decided per occurrence (each occurrence's bridge tree is what it
    has booked: an exception may hold a leg the others do not). ``deltas``: occurrence id → bridge id →
    ports added to a bridge booking the occurrence holds already; each province needing its bridge in an
    occurrence: the booking (``new_rows``: occurrence id → {bridge id: (ports, conference number)}) and,
    for a province not in the meeting's tree yet, its ``meeting_bridges`` row (``legs``)."""

    def __init__(self) -> None:
        self.deltas: dict[int, Counter[int]] = {}
        self.legs: list[dict[str, Any]] = []
        self.new_rows: dict[int, dict[int, tuple[int, int | None]]] = {}

    def add(self, occurrence_id: int, bridge_id: int, ports: int) -> None:
        self.deltas.setdefault(occurrence_id, Counter())[bridge_id] += ports


def _grow_bridges(session: Session, settings: Settings, meeting: Meeting, plans: list[Plan],
                  endpoint_ids: list[int]) -> _Growth:
    """The bridges the added ``endpoint_ids`` join in each plan's occurrence and the ports they add
    (module docstring); each plan's port and number conflicts are added to its ``conflicts``.

    Per occurrence, a site of a province other than the chair's joins: that province's bridge when the
    occurrence has it booked (ports added); the root when the province's sites joined the root there
    (the province has sites, no bridge booked); else the province's bridge is booked in that occurrence
    with a conference number, as for a province new to the meeting (``cascade.fit_province``: the
    bridge the meeting's tree names for the province if it has one, keeping its number while free, else
    the province's first fitting bridge), plus one port on the root for its leg. Queries: the tree, the
    occurrences' bridge bookings, the sites' provinces, one per province needing a bridge per occurrence."""
    growth = _Growth()
    tree = cascade.tree_of(session, meeting)
    if tree.root is None or not plans:
        return growth
    root = _bridge_id(tree.root)
    occurrence_ids = [_id(p.occurrence) for p in plans]
    booked = _booked_bridges(session, meeting, occurrence_ids)
    sites = cascade.locate_ids(session, endpoint_ids, [meeting.chair_room_id])
    root_province = sites.room_province.get(meeting.chair_room_id)
    per_province = Counter(sites.endpoint_province.get(e) for e in endpoint_ids)
    names = cascade.provinces_by_id(session, {p for p in [*per_province, root_province] if p is not None})
    bridges: dict[int, Bridge] = {root: tree.root, **{b: bridge for b, (bridge, _n) in tree.others.items()}}
    province_of = {root: root_province, **{b: p for p, b in tree.bridge_of_province.items()}}
    for province, count in sorted(per_province.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        if province is None or province == root_province:
            for o in occurrence_ids:
                growth.add(o, root, count)
            continue
        leg = tree.bridge_of_province.get(province)
        leg = None if leg == root else leg
        # The occurrences here take the meeting's own list: whether the province has sites is the same in each.
        has_sites = _has_sites(session, meeting, province)
        lacking = []  # plan indexes whose occurrence needs the province's bridge booked
        for i, o in enumerate(occurrence_ids):
            if leg is not None and leg in booked.get(o, set()):
                growth.add(o, leg, count)
            elif has_sites:  # its sites joined the root there when booked: the new ones join them
                growth.add(o, root, count)
            else:
                lacking.append(i)
        if not lacking:
            continue
        if leg is not None:  # the tree names the province's bridge (the rooms dial it: ``cascade.room_bridges``)
            candidates = [bridges[leg]] if bridges[leg].active else []
        else:
            candidates = list(session.exec(select(Bridge).where(
                col(Bridge.unit_id) == province, col(Bridge.active).is_(True), col(Bridge.id) != root)
                .order_by(col(Bridge.id))).all())
        if not candidates:  # a province without a bridge of its own joins the root
            for i in lacking:
                growth.add(occurrence_ids[i], root, count)
            continue
        subset = [plans[i] for i in lacking]
        ports = bridge_ports(count, parent_leg=True)
        answer = cascade.fit_province(session, settings, subset, candidates, requested=ports,
                                      province_name=names[province].name if province in names else None,
                                      keep_number=tree.others[leg][1] if leg is not None else None)
        for j, missing in answer.conflicts.items():
            subset[j].conflicts += missing
        chosen = _bridge_id(answer.bridge)
        if leg is None:
            growth.legs.append({"meeting_id": meeting.id, "bridge_id": chosen, "parent_bridge_id": root,
                                "conference_number": answer.conference_number})
        for j, i in enumerate(lacking):
            growth.new_rows.setdefault(occurrence_ids[i], {})[chosen] = (ports, answer.numbers.get(j))
            growth.add(occurrence_ids[i], root, 1)  # the leg's port on the root
    for bridge_id in sorted({b for per_bridge in growth.deltas.values() for b in per_bridge}):
        indexes = [i for i, o in enumerate(occurrence_ids) if growth.deltas.get(o, Counter())[bridge_id]]
        subset = [plans[i] for i in indexes]
        province = province_of.get(bridge_id)
        overloads, _numbers = booking.bridge_check(
            session, settings, bridges[bridge_id], subset,
            requested=[growth.deltas[occurrence_ids[i]][bridge_id] for i in indexes],
            province_name=names[province].name if province in names else None)
        for j, items in overloads.items():
            subset[j].conflicts += _held_by_others(items, meeting, settings.zone)
    return growth


def _booked_bridges(session: Session, meeting: Meeting, occurrence_ids: list[int]) -> dict[int, set[int]]:
    """Occurrence id → the bridges ``meeting`` has booked in it (one query)."""
    out: dict[int, set[int]] = {}
    if occurrence_ids:
        for occurrence_id, bridge_id in session.exec(select(Booking.occurrence_id, Booking.resource_id).where(
                col(Booking.meeting_id) == meeting.id, col(Booking.resource_kind) == ResourceKind.bridge,
                repository.ids_in(session, Booking.occurrence_id, occurrence_ids))).all():
            if occurrence_id is not None:
                out.setdefault(occurrence_id, set()).add(bridge_id)
    return out


def _held_by_others(conflicts: list[Conflict], meeting: Meeting, zone: tzinfo) -> list[Conflict]:
    """A bridge's port conflicts for added sites as a 409 names them: the other occurrences holding the
    ports. This meeting's own ports are counted (``ports_in_use`` includes them: the added
    ``ports_requested`` come on top, ``ports_free`` is what is left for them) but never named as a holder;
    when nothing else holds any, one conflict per interval says the bridge has no port left."""
    others = [c for c in conflicts if c.meeting_id != meeting.id]
    if others:
        return others
    out: dict[tuple[datetime, datetime], Conflict] = {}
    for c in conflicts:
        out.setdefault((c.window_start, c.window_end), make_conflict(
            zone=zone, resource_kind=c.resource_kind, resource_id=c.resource_id, resource_name=c.resource_name,
            overlap=Window(c.window_start, c.window_end), requested_start=c.requested_start,
            requested_occurrence_id=c.requested_occurrence_id, port_capacity=c.port_capacity,
            ports_in_use=c.ports_in_use, ports_requested=c.ports_requested, province_name=c.province_name,
            reason="more sites than the MCU has ports"))
    return list(out.values())


def _bridge_id(bridge: Bridge | None) -> int:
    assert bridge is not None and bridge.id is not None
    return bridge.id


def _has_sites(session: Session, meeting: Meeting, province: int) -> bool:
    """Whether a participant endpoint of ``meeting`` (its own list) lies in ``province`` (unit id)."""
    units = expand_units(session, {province})
    return session.exec(select(func.count()).select_from(MeetingParticipant)
                        .join(Endpoint, col(Endpoint.id) == col(MeetingParticipant.endpoint_id))
                        .join(Room, col(Room.id) == col(Endpoint.room_id))
                        .where(col(MeetingParticipant.meeting_id) == meeting.id,
                               repository.ids_in(session, Room.unit_id, units))).one() > 0


def _shift_ports(session: Session, meeting: Meeting, deltas: dict[int, Counter[int]]) -> None:
    """Add ``deltas`` (occurrence id → bridge id → ports, negative: given back) to the meeting's bridge
    bookings: one UPDATE per bridge and delta, over the occurrences taking it (``bookings_bridge_ports``
    checks it at COMMIT on PostgreSQL). The callers shift only bookings the occurrence holds."""
    groups: dict[tuple[int, int], list[int]] = {}
    for occurrence_id, per_bridge in deltas.items():
        for bridge_id, delta in per_bridge.items():
            if delta:
                groups.setdefault((bridge_id, delta), []).append(occurrence_id)
    for (bridge_id, delta), occurrence_ids in sorted(groups.items()):
        session.execute(sa.update(Booking).where(
            col(Booking.meeting_id) == meeting.id, col(Booking.resource_kind) == ResourceKind.bridge,
            col(Booking.resource_id) == bridge_id, repository.ids_in(session, Booking.occurrence_id, occurrence_ids))
            .values(ports=col(Booking.ports) + delta))
    session.flush()


def _shrink_bridges(session: Session, meeting: Meeting, room_id: int, endpoints: int, occurrence_ids: list[int]) -> None:
    """Give back the ports of a removed site of ``room_id`` (``endpoints`` of them), per occurrence of
    ``occurrence_ids``: to its province's bridge where the occurrence has it booked, else to the root
    (its sites joined the root there). The last site of a province frees, in each occurrence holding
    it, that bridge's booking and the leg's port on the root; the leg (``meeting_bridges``) goes when
    no occurrence holds the bridge any more (an exception with its own sites there keeps it)."""
    tree = cascade.tree_of(session, meeting)
    if tree.root is None or not occurrence_ids:
        return
    root = _bridge_id(tree.root)
    province = cascade.locate_ids(session, [], [room_id]).room_province.get(room_id)
    child = tree.bridge_of_province.get(province) if province is not None else None
    if province is None or child is None or child == root:
        _shift_ports(session, meeting, {o: Counter({root: -endpoints}) for o in occurrence_ids})
        return
    booked = _booked_bridges(session, meeting, occurrence_ids)
    holding = [o for o in occurrence_ids if child in booked.get(o, set())]
    deltas = {o: Counter({root: -endpoints}) for o in occurrence_ids if o not in holding}
    if _has_sites(session, meeting, province):
        deltas.update({o: Counter({child: -endpoints}) for o in holding})
        _shift_ports(session, meeting, deltas)
        return
    if holding:
        session.execute(sa.delete(Booking).where(
            col(Booking.meeting_id) == meeting.id, col(Booking.resource_kind) == ResourceKind.bridge,
            col(Booking.resource_id) == child, repository.ids_in(session, Booking.occurrence_id, holding)))
    deltas.update({o: Counter({root: -1}) for o in holding})
    _shift_ports(session, meeting, deltas)
    still_held = session.exec(select(func.count()).select_from(Booking).where(
        col(Booking.meeting_id) == meeting.id, col(Booking.resource_kind) == ResourceKind.bridge,
        col(Booking.resource_id) == child)).one()
    if not still_held:  # an exception with its own sites there keeps the leg
        session.execute(sa.delete(MeetingBridge).where(col(MeetingBridge.meeting_id) == meeting.id,
                                                       col(MeetingBridge.bridge_id) == child))
    session.flush()


# ---------------------------------------------------------------- the change itself

def _changed(session: Session, principal: Principal, meeting: Meeting, now: datetime, action: str,
             room_ids: list[int]) -> None:
    """SEQUENCE bumps (the participants changed: RFC 5545 §3.8.7.4, ``editing.material_state``), who and
    when, and the audit record ``action`` with the rooms."""
    meeting.sequence += 1
    meeting.updated_by, meeting.updated_at = principal.user_id, now
    session.add(meeting)
    audit(session, principal, action, meeting_id=meeting.id, fields=["participant_endpoint_ids"], room_ids=room_ids)
    session.flush()


def _result(session: Session, meeting: Meeting, plans: list[Plan]) -> BookResult:
    count = session.exec(select(func.count()).select_from(Occurrence).where(
        col(Occurrence.meeting_id) == meeting.id, col(Occurrence.status) == OccurrenceStatus.scheduled)).one()
    return BookResult(meeting, count, [], booking.holiday_warnings(plans, ZoneInfo(meeting.timezone)))
