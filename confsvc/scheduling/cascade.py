"""Cascaded meetings (issue 14, SPEC "Cascade leg"): a meeting whose sites span provinces is a tree of
bridges rooted at the chair's bridge; each site joins a bridge of its own province, each other bridge
is linked to the root by one cascade leg taking one port on both ends. A relay (``upstream_dial``) adds
the root's leg to the chair outside confsvc.

:func:`choose_bridges` is what every booking use case calls (book, dry run, edits, series): a meeting
whose sites all lie in the chair's province goes to ``booking.choose_bridge`` exactly as before (one
bridge, plus the relay's leg); otherwise one bridge per province is chosen — the one named in
``province_bridges``, or the first active bridge of that province (by id) with enough free ports and a
free conference number over every occurrence's window. The ports are :func:`conflicts.bridge_ports`
(sites + legs); the per-bridge accounting reads every candidate bridge's bookings in one query per
occurrence. A shortage is a conflict on that bridge naming its province, the ports needed and free, and
the occurrences holding them (SPEC rule 8). Under ``lock`` the chosen bridges' conference numbers are
claimed (``repository.claim_number``); no bridge is locked: the ports are counted again at COMMIT
under each bridge's lock, in ascending id order (``port_guard``, SPEC rule 7).

A province without a bridge of its own has its sites join the root bridge. Times are UTC; windows
half-open.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from confsvc.config import Settings
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit, UnitLevel
from confsvc.errors import Invalid
from confsvc.scheduling import booking, repository
from confsvc.scheduling.booking import BridgeChoice, Names, Plan
from confsvc.scheduling.conflicts import Conflict, bridge_ports
from confsvc.scheduling.models import Booking, Meeting, MeetingBridge, ResourceKind

#: At most this many provinces may be named in one request's ``province_bridges`` (34 provinces today).
MAX_NAMED = 100


@dataclass(frozen=True)
class Wishes:
    """What a booking asks of bridges: the root named (``bridge_id``), a bridge named per province
    (province unit id → bridge id), the relay's leg, and the numbers to keep (the root's, and each other
    bridge's by bridge id: an edit keeps what the sites dial)."""

    bridge_id: int | None = None
    province_bridges: dict[int, int] = field(default_factory=dict)
    upstream: bool = False
    keep_number: int | None = None
    keep_numbers: dict[int, int] = field(default_factory=dict)


def wishes_of(session: Session, meeting: Meeting, *, bridge_id: int | None = None,
              province_bridges: dict[int, int] | None = None, keep_number: int | None = None) -> Wishes:
    """The wishes of an existing ``meeting`` being re-booked: its root (or ``bridge_id``), its other
    bridges named for their provinces (``province_bridges`` wins), their numbers and the meeting's kept."""
    rows = session.exec(select(MeetingBridge.bridge_id, MeetingBridge.conference_number, Bridge.unit_id)
                        .join(Bridge, col(Bridge.id) == col(MeetingBridge.bridge_id))
                        .where(col(MeetingBridge.meeting_id) == meeting.id)).all()
    named = {unit_id: b for b, _n, unit_id in rows if unit_id is not None}
    named.update(province_bridges or {})
    return Wishes(bridge_id=bridge_id if bridge_id is not None else meeting.bridge_id, province_bridges=named,
                  upstream=bool(meeting.upstream_dial),
                  keep_number=keep_number if keep_number is not None else meeting.conference_number,
                  keep_numbers={b: n for b, n, _u in rows if n is not None})


@dataclass(frozen=True)
class Leg:
    """A bridge of the tree other than the root: the province it serves, its parent (the root)."""

    bridge: Bridge
    province_id: int
    parent_id: int
    number: int | None


@dataclass
class CascadeChoice(BridgeChoice):
    """:class:`booking.BridgeChoice` of the root, with the other bridges (``legs``, by bridge id) and
    each plan's bridges (plan index → bridge id → (ports, conference number))."""

    legs: dict[int, Leg] = field(default_factory=dict)
    per_plan: dict[int, dict[int, tuple[int, int | None]]] = field(default_factory=dict)


# ---------------------------------------------------------------- where sites are

def unit_provinces(session: Session, unit_ids: set[int]) -> dict[int, int]:
    """Each unit of ``unit_ids`` → the province above it (itself when it is one), through one recursive
    CTE; a unit under no province is left out."""
    if not unit_ids:
        return {}
    units = sa.inspect(Unit).local_table.c
    up = sa.select(units.id.label("origin"), units.id, units.parent_id, units.level).where(
        repository.ids_in(session, units.id, unit_ids)).cte("up", recursive=True)
    up = up.union_all(sa.select(up.c.origin, units.id, units.parent_id, units.level)
                      .where(units.id == up.c.parent_id))
    rows = session.execute(sa.select(up.c.origin, up.c.id).where(up.c.level == UnitLevel.province.name)).all()
    return {origin: province for origin, province in rows}


@dataclass(frozen=True)
class Sites:
    """Where the plans' sites are: each endpoint's and room's province (None: under no province)."""

    endpoint_province: dict[int, int | None]
    room_province: dict[int, int | None]

    def per_province(self, plan: Plan) -> Counter[int | None]:
        """Site endpoints of ``plan`` per province."""
        return Counter(self.endpoint_province.get(e) for e in plan.participants.endpoint_ids)

    def chair_province(self, plan: Plan) -> int | None:
        return self.room_province.get(plan.participants.chair_room_id)


def locate(session: Session, plans: list[Plan]) -> Sites:
    """One query whatever the number of sites (:func:`locate_ids`)."""
    return locate_ids(session, sorted({e for p in plans for e in p.participants.endpoint_ids}),
                      sorted({p.participants.chair_room_id for p in plans}))


def locate_ids(session: Session, endpoint_ids: list[int], room_ids: list[int]) -> Sites:
    """The provinces of ``endpoint_ids`` and of the rooms ``room_ids``: one query whatever their number
    (the endpoints' and rooms' units seed :func:`unit_provinces`'s recursive CTE)."""
    rows = session.execute(_locate_query(session.get_bind().dialect.name),
                           {"endpoint_ids": endpoint_ids, "room_ids": room_ids}).all()
    return Sites({site: found for is_endpoint, site, found in rows if is_endpoint},
                 {site: found for is_endpoint, site, found in rows if not is_endpoint})


@functools.cache
def _locate_query(dialect: str) -> sa.Select[Any]:
    """:func:`locate_ids`'s statement, built once per dialect (building it cost more than running it):
    ``(is_endpoint, endpoint or room id, province id or NULL)`` for the ``endpoint_ids`` and ``room_ids``
    parameters (one array parameter each on PostgreSQL, like ``repository.ids_in``)."""
    among = functools.partial(_among, dialect)
    sites = sa.union_all(
        sa.select(sa.literal(True).label("is_endpoint"), col(Endpoint.id).label("site_id"), col(Room.unit_id))
        .join(Room, col(Room.id) == col(Endpoint.room_id)).where(among(Endpoint.id, "endpoint_ids")),
        sa.select(sa.literal(False), col(Room.id), col(Room.unit_id)).where(among(Room.id, "room_ids")),
    ).cte("sites")
    province = _provinces_of(sites)
    return sa.select(sites.c.is_endpoint, sites.c.site_id, province.c.id).outerjoin(
        province, province.c.origin == sites.c.unit_id)


def _among(dialect: str, column: Any, name: str) -> Any:
    """``column`` is one of the integers of the parameter ``name``: one array parameter on PostgreSQL
    (``= ANY``, one statement to cache whatever the count), an expanding ``IN`` elsewhere."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.Integer())))
    return column.in_(sa.bindparam(name, expanding=True))


def _provinces_of(sites: Any) -> Any:
    """``(origin, id)``: the province (unit id) above each unit ``sites.c.unit_id`` (the unit itself when
    it is one), by a recursive CTE up the unit tree; units under no province have no row."""
    units = sa.inspect(Unit).local_table.c
    up = sa.select(units.id.label("origin"), units.id, units.parent_id, units.level).where(
        units.id.in_(sa.select(sites.c.unit_id))).cte("up", recursive=True)
    up = up.union_all(sa.select(up.c.origin, units.id, units.parent_id, units.level)
                      .where(units.id == up.c.parent_id))
    return sa.select(up.c.origin, up.c.id).where(up.c.level == UnitLevel.province.name).subquery("province")


@dataclass(frozen=True, order=True)
class Province:
    """A province as a 409 and the pages name it: official code (2 digits), name (NFC), unit id."""

    code: str
    name: str
    id: int


def provinces_by_id(session: Session, province_ids: set[int]) -> dict[int, Province]:
    """The provinces of ``province_ids`` (unit ids) with their code and name, one query."""
    if not province_ids:
        return {}
    rows = session.exec(select(col(Unit.id), Unit.code, Unit.name).where(
        repository.ids_in(session, Unit.id, province_ids))).all()
    return {u: Province(code, name, u) for u, code, name in rows if u is not None}


def conflict_provinces(session: Session, conflicts: list[Conflict]) -> dict[tuple[str, int], Province]:
    """The province of each conflict's resource (issue 14: a national booking's 409 grouped by
    province): ``(resource_kind, resource_id)`` → :class:`Province`. A room's is its unit's province, an
    endpoint's its room's, a bridge's the province it belongs to; resources under no province are left
    out. One query whatever the number of conflicts (:func:`_conflict_provinces_query`)."""
    ids: dict[str, set[int]] = {"room": set(), "endpoint": set(), "bridge": set()}
    for c in conflicts:
        if c.resource_kind in ids:
            ids[c.resource_kind].add(c.resource_id)
    if not any(ids.values()):
        return {}
    rows = session.execute(_conflict_provinces_query(session.get_bind().dialect.name),
                           {f"{kind}_ids": sorted(found) for kind, found in ids.items()}).all()
    return {(kind, site): Province(code, name, province) for kind, site, province, code, name in rows}


@functools.cache
def _conflict_provinces_query(dialect: str) -> sa.Select[Any]:
    """:func:`conflict_provinces`'s statement, built once per dialect: ``(kind, id, province id, code,
    name)`` for the ``room_ids``, ``endpoint_ids`` and ``bridge_ids`` parameters (one array parameter
    each on PostgreSQL, like ``repository.ids_in``); each resource's unit seeds the recursive CTE of
    :func:`unit_provinces` (a refusal answered in one round trip instead of four: issue 16)."""
    among = functools.partial(_among, dialect)
    sites = sa.union_all(
        sa.select(sa.literal("room").label("kind"), col(Room.id).label("site_id"), col(Room.unit_id).label("unit_id"))
        .where(among(Room.id, "room_ids")),
        sa.select(sa.literal("endpoint"), col(Endpoint.id), col(Room.unit_id))
        .join(Room, col(Room.id) == col(Endpoint.room_id)).where(among(Endpoint.id, "endpoint_ids")),
        sa.select(sa.literal("bridge"), col(Bridge.id), col(Bridge.unit_id)).where(among(Bridge.id, "bridge_ids")),
    ).cte("sites")
    province = _provinces_of(sites)
    named = sa.inspect(Unit).local_table.alias("named")
    return (sa.select(sites.c.kind, sites.c.site_id, province.c.id, named.c.code, named.c.name)
            .join(province, province.c.origin == sites.c.unit_id).join(named, named.c.id == province.c.id))


# ---------------------------------------------------------------- choosing

def choose_bridges(session: Session, settings: Settings, plans: list[Plan], names: Names, wishes: Wishes, *,
                   lock: bool = True, allowed: Any = None) -> BridgeChoice:
    """The bridges of ``plans`` (SPEC rules 2, 3; issue 14). Sets each plan's ``upstream_leg``.

    One province (the chair's; sites under no province count as the chair's): ``booking.choose_bridge``
    with the root named by ``wishes.bridge_id`` or ``wishes.province_bridges``, as before cascades. Several:
    a :class:`CascadeChoice` (see the module's docstring); apply it with ``planning.apply_bridge``.

    ``allowed``: an SQL condition on ``bridges`` every chosen bridge meets (the booker's scope).

    Raises:
        Invalid: ``unknown_bridge`` (a named bridge missing, inactive or outside ``allowed``),
            ``bridge_not_of_province`` (a bridge named for a province it does not belong to),
            ``no_bridge``, ``too_many_provinces``.
    """
    for plan in plans:
        plan.upstream_leg = wishes.upstream
    if len(wishes.province_bridges) > MAX_NAMED:
        raise Invalid(f"at most {MAX_NAMED} provinces may name a bridge", code="too_many_provinces")
    sites = locate(session, plans) if plans else Sites({}, {})
    root_province = sites.chair_province(plans[0]) if plans else None
    spread = {p for plan in plans for p in sites.per_province(plan) if p is not None and p != root_province}
    root_named = wishes.bridge_id if wishes.bridge_id is not None else (
        wishes.province_bridges.get(root_province) if root_province is not None else None)
    if not spread:
        return booking.choose_bridge(session, settings, plans, names, bridge_id=root_named,
                                     keep_number=wishes.keep_number, lock=lock, allowed=allowed)
    allowed = sa.true() if allowed is None else allowed
    candidates = _candidates(session, wishes, root_province, root_named, spread, allowed)
    return _choose(session, settings, plans, sites, wishes, root_province, candidates, claim=lock)


@dataclass(frozen=True)
class TreePorts:
    """The ports of one occurrence's bridge tree: each child province's (its sites + its leg to the root)
    and the root's (its sites + one leg per child + the relay's leg)."""

    children: dict[int, int]
    root: int


def tree_ports(per_province: Counter[int | None], with_bridge: set[int], root_province: int | None, *,
               upstream: bool = False) -> TreePorts:
    """Where one occurrence's site endpoints join and the ports each bridge takes (SPEC rule 2, issue 14):
    ``per_province`` counts the sites per province (None: under no province, they join the root); a
    province in ``with_bridge`` other than ``root_province`` gets a child bridge of its own
    (``bridge_ports(sites, parent_leg=True)``); every other site joins the root, which also holds one leg
    per child and, for a relay (``upstream``), the leg to the chair outside confsvc. Written once for
    booking (:func:`choose_bridges`) and the free-slot search (``availability``)."""
    children = {p: bridge_ports(n, parent_leg=True) for p, n in per_province.items()
                if n and p is not None and p != root_province and p in with_bridge}
    on_root = sum(n for p, n in per_province.items() if p not in children)
    return TreePorts(children, bridge_ports(on_root, child_legs=len(children), parent_leg=upstream))


def slot_demand(session: Session, participants: booking.Participants, *,
                bridge_id: int | None = None) -> list[tuple[list[Bridge], int]] | None:
    """What a cascaded meeting of ``participants`` needs of bridges at one time, for the free-slot search
    (SPEC rule 8, issue 14): ``[(candidates, ports), …]``, the root first (``bridge_id``: the root
    named), then one entry per child province; a time is free for the bridges when every entry has a
    candidate with ``ports`` free and a free conference number. ``None`` when every site lies in the
    chair's province (one bridge, as before cascades). Bridges are chosen as :func:`choose_bridges`
    would, from the same candidates and :func:`tree_ports`.

    Raises:
        Invalid: ``unknown_bridge``, ``no_bridge`` (as :func:`choose_bridges`).
    """
    sites = locate_ids(session, sorted(participants.endpoint_ids), [participants.chair_room_id])
    per_province = Counter(sites.endpoint_province.get(e) for e in participants.endpoint_ids)
    root_province = sites.room_province.get(participants.chair_room_id)
    spread = {p for p in per_province if p is not None and p != root_province}
    if not spread:
        return None
    candidates = _candidates(session, Wishes(bridge_id=bridge_id), root_province, bridge_id, spread, sa.true())
    with_bridge = {p for p, bridges in candidates.by_province.items() if p is not None and bridges}
    tree = tree_ports(per_province, with_bridge, root_province)
    return [(candidates.by_province[None], tree.root)] + [
        (candidates.by_province[p], ports) for p, ports in sorted(tree.children.items())]


@dataclass
class _Candidates:
    """Bridges to try per province (key None: the root), and every involved province's name."""

    by_province: dict[int | None, list[Bridge]]
    provinces: dict[int, str]


def _candidates(session: Session, wishes: Wishes, root_province: int | None, root_named: int | None,
                spread: set[int], allowed: Any) -> _Candidates:
    involved = sorted(spread | ({root_province} if root_province is not None else set()))
    named_ids = {b for p, b in wishes.province_bridges.items() if p in spread} | (
        {root_named} if root_named is not None else set())
    rows = session.exec(select(Bridge).where(col(Bridge.active) == sa.true(), allowed, sa.or_(
        col(Bridge.unit_id).in_(involved), col(Bridge.unit_id).is_(None), col(Bridge.id).in_(sorted(named_ids))))
        .order_by(col(Bridge.id))).all()
    by_id = {b.id: b for b in rows if b.id is not None}
    missing = sorted(b for b in named_ids if b not in by_id)
    if missing:
        raise Invalid(f"bridge {missing[0]} does not exist or is inactive", code="unknown_bridge")
    out: dict[int | None, list[Bridge]] = {}
    for province in sorted(spread):
        named = wishes.province_bridges.get(province)
        if named is not None and by_id[named].unit_id != province:
            raise Invalid(f"bridge {named} does not belong to province {province}", code="bridge_not_of_province")
        # Never the root itself (a chair moved to another province keeps the meeting's root): those sites join it.
        out[province] = [b for b in ([by_id[named]] if named is not None else
                                     [b for b in rows if b.unit_id == province]) if b.id != root_named]
    if root_named is not None:
        out[None] = [by_id[root_named]]
    else:
        out[None] = ([b for b in rows if root_province is not None and b.unit_id == root_province]
                     + [b for b in rows if b.unit_id is None])
    if not out[None]:
        raise Invalid("no active bridge (MCU) is configured", code="no_bridge")
    provinces = {u: name for u, name in session.exec(select(col(Unit.id), Unit.name)
                                                      .where(col(Unit.id).in_(involved))).all() if u is not None}
    return _Candidates(out, provinces)


def _choose(session: Session, settings: Settings, plans: list[Plan], sites: Sites, wishes: Wishes,
            root_province: int | None, candidates: _Candidates, *, claim: bool) -> CascadeChoice:
    every = sorted({b.id for bridges in candidates.by_province.values() for b in bridges if b.id is not None})
    held: list[dict[int, list[repository.Held]]] = []
    for plan in plans:  # one query per occurrence for every candidate bridge
        per_bridge: dict[int, list[repository.Held]] = {b: [] for b in every}
        for h in repository.holdings(session, [(ResourceKind.bridge, every)], plan.window,
                                     booking.max_window(settings)):
            per_bridge[h.booking.resource_id].append(h)
        held.append(per_bridge)
    with_bridge = {p for p, bridges in candidates.by_province.items() if p is not None and bridges}
    trees = [tree_ports(sites.per_province(plan), with_bridge, root_province, upstream=wishes.upstream)
             for plan in plans]
    conflicts: dict[int, list[Conflict]] = {}
    legs: dict[int, Leg] = {}
    per_plan: dict[int, dict[int, tuple[int, int | None]]] = {i: {} for i in range(len(plans))}
    for province in sorted(with_bridge):
        indexes = [i for i, tree in enumerate(trees) if province in tree.children]
        bridges = candidates.by_province[province]
        if not indexes:
            continue
        subset = [plans[i] for i in indexes]
        requested = [trees[i].children[province] for i in indexes]
        answer = _first_fit(session, settings, bridges, subset, held, indexes, requested, wishes.keep_numbers,
                            candidates.provinces.get(province), own_numbers=False, claim=claim)
        for j, i in enumerate(indexes):
            conflicts.setdefault(i, []).extend(answer.conflicts.get(j, []))
            number = answer.numbers.get(j)
            per_plan[i][_id(answer.bridge)] = (requested[j], number)
        assert answer.bridge is not None
        legs[_id(answer.bridge)] = Leg(answer.bridge, province, -1, answer.conference_number)
    requested = [tree.root for tree in trees]
    root_name = candidates.provinces.get(root_province) if root_province is not None else None
    keep = {} if wishes.keep_number is None else {
        _id(b): wishes.keep_number for b in candidates.by_province[None]}
    root = _first_fit(session, settings, candidates.by_province[None], plans, held, list(range(len(plans))),
                      requested, keep, root_name, own_numbers=True, claim=claim)
    for i in range(len(plans)):
        conflicts.setdefault(i, []).extend(root.conflicts.get(i, []))
        per_plan[i][_id(root.bridge)] = (requested[i], root.numbers.get(i))
    legs = {b: replace(leg, parent_id=_id(root.bridge)) for b, leg in legs.items()}
    return CascadeChoice(root.bridge, root.conference_number, {i: c for i, c in conflicts.items() if c},
                         root.numbers, legs=legs, per_plan=per_plan)


def _first_fit(session: Session, settings: Settings, bridges: list[Bridge], plans: list[Plan],
               held: list[dict[int, list[repository.Held]]], indexes: list[int], requested: list[int],
               keep_numbers: dict[int, int], province_name: str | None, *, own_numbers: bool,
               claim: bool) -> BridgeChoice:
    """The first of ``bridges`` with the ports and a number for every plan (``plans[j]`` is plan
    ``indexes[j]`` of ``held``), else the first bridge's answer with its conflicts. With ``claim`` the
    numbers of a bridge with the ports are claimed (``booking.claimer``)."""
    first: BridgeChoice | None = None
    for bridge in bridges:
        check = booking.bridge_check(session, settings, bridge, plans,
                                     holdings=[held[i][_id(bridge)] for i in indexes], requested=requested,
                                     province_name=province_name)
        claims = booking.claimer(session, bridge) if claim and not check[0] else None
        answer = booking.numbers_for(settings, bridge, plans, keep_numbers.get(_id(bridge)), *check,
                                     own_numbers=own_numbers, claim=claims)
        if province_name is not None:
            answer.conflicts = {j: [c if c.province_name else replace(c, province_name=province_name) for c in cs]
                                for j, cs in answer.conflicts.items()}
        if not answer.conflicts:
            return answer
        first = first or answer
    assert first is not None
    return first


def fit_province(session: Session, settings: Settings, plans: list[Plan], bridges: list[Bridge], *,
                 requested: int, province_name: str | None, claim: bool = True,
                 keep_number: int | None = None) -> BridgeChoice:
    """A province joining a booked cascaded meeting's occurrences ``plans`` (issue 14, ``site_changes``):
    the first of ``bridges`` (that province's, by id) with ``requested`` ports free (its sites + its leg
    to the root) and a free conference number over every plan's window, as :func:`choose_bridges` picks
    a child bridge (same ``_first_fit``); else the first bridge's answer with its conflicts (by plan
    index, naming ``province_name``). ``keep_number``: the number its leg has already (another occurrence
    holds it), kept wherever free. With ``claim`` the numbers are claimed (``booking.claimer``). One
    query per plan."""
    every = [_id(b) for b in bridges]
    held: list[dict[int, list[repository.Held]]] = []
    for plan in plans:
        per_bridge: dict[int, list[repository.Held]] = {b: [] for b in every}
        for h in repository.holdings(session, [(ResourceKind.bridge, every)], plan.window,
                                     booking.max_window(settings)):
            per_bridge[h.booking.resource_id].append(h)
        held.append(per_bridge)
    keep = {} if keep_number is None else {b: keep_number for b in every}
    return _first_fit(session, settings, bridges, plans, held, list(range(len(plans))), [requested] * len(plans),
                      keep, province_name, own_numbers=False, claim=claim)


def _id(bridge: Bridge | None) -> int:
    """A stored bridge's id (every bridge here was read from the database)."""
    assert bridge is not None and bridge.id is not None
    return bridge.id


# ---------------------------------------------------------------- writing and reading the tree

def save_tree(session: Session, meeting: Meeting, choice: BridgeChoice, *, replace_all: bool = True,
              fresh: bool = False) -> None:
    """Write the meeting's bridges besides the root from ``choice`` (none for a one-bridge choice).
    ``replace_all`` (a whole-meeting booking or edit) drops the bridges it no longer uses; an
    occurrence's own booking only adds. ``fresh``: the meeting is new in this transaction and has no
    tree yet (nothing to drop or read)."""
    legs = choice.legs if isinstance(choice, CascadeChoice) else {}
    if fresh:
        present: set[int] = set()
    elif replace_all:
        session.execute(sa.delete(MeetingBridge).where(col(MeetingBridge.meeting_id) == meeting.id))
        present = set()
    else:
        present = set(session.exec(select(MeetingBridge.bridge_id)
                                   .where(col(MeetingBridge.meeting_id) == meeting.id)).all())
    rows = [{"meeting_id": meeting.id, "bridge_id": b, "parent_bridge_id": leg.parent_id,
             "conference_number": leg.number} for b, leg in sorted(legs.items()) if b not in present]
    if rows:
        session.execute(sa.insert(MeetingBridge), rows)
    single = session.info.setdefault(repository.SINGLE_BRIDGE_MEETINGS, set())
    if fresh and not rows:
        single.add(meeting.id)
    else:
        single.discard(meeting.id)
    session.flush()


@dataclass(frozen=True)
class Tree:
    """A meeting's bridges: the root (``meetings.bridge_id``), the others with their province, parent
    and number. ``bridge_of_province`` says which bridge a site of a province joins (else the root)."""

    root: Bridge | None
    others: dict[int, tuple[Bridge, int | None]]  # bridge id → (bridge, conference number)
    parent: dict[int, int]
    bridge_of_province: dict[int, int]

    @property
    def cascaded(self) -> bool:
        return bool(self.others)


def tree_of(session: Session, meeting: Meeting) -> Tree:
    """The bridges of ``meeting`` (two queries; none for a meeting this transaction booked on one
    bridge, ``repository.SINGLE_BRIDGE_MEETINGS``: a booking reads its tree for the join instructions
    and for the answer)."""
    root = session.get(Bridge, meeting.bridge_id) if meeting.bridge_id is not None else None
    if meeting.id in session.info.get(repository.SINGLE_BRIDGE_MEETINGS, ()):
        return Tree(root, {}, {}, {})
    rows = session.exec(_TREE, params={"meeting_id": meeting.id}).all()
    return Tree(root, {mb.bridge_id: (b, mb.conference_number) for mb, b in rows},
                {mb.bridge_id: mb.parent_bridge_id for mb, _b in rows},
                {b.unit_id: mb.bridge_id for mb, b in rows if b.unit_id is not None})


#: :func:`tree_of`'s statement (``meeting_id`` parameter), built once.
_TREE = (select(MeetingBridge, Bridge).join(Bridge, col(Bridge.id) == col(MeetingBridge.bridge_id))
         .where(col(MeetingBridge.meeting_id) == sa.bindparam("meeting_id")).order_by(col(MeetingBridge.bridge_id)))


def room_bridges(session: Session, meeting: Meeting, occurrence_id: int | None, room_ids: set[int],
                 ) -> dict[int, tuple[Bridge, int | None]]:
    """The bridge each room of ``room_ids`` joins for the occurrence and the conference number it dials
    there: the root's is the occurrence's own (``Occurrence.number``, the caller's), None here; another
    bridge's is the one its booking of the occurrence holds (else the tree's). Decided per occurrence:
    a room of a province whose bridge this occurrence has not booked, while it holds bridges, joins the
    root (its sites joined the root there; the leg is another occurrence's). Rooms of a meeting on one
    bridge all get the root."""
    tree = tree_of(session, meeting)
    if tree.root is None:
        return {}
    if not tree.cascaded:
        return {r: (tree.root, None) for r in room_ids}
    units = dict(session.exec(select(Room.id, Room.unit_id).where(repository.ids_in(session, Room.id, room_ids))).all())
    provinces = unit_provinces(session, set(units.values()))
    booked: dict[int, int | None] = {}
    if occurrence_id is not None:
        booked = dict(session.exec(select(Booking.resource_id, Booking.conference_number).where(
            Booking.occurrence_id == occurrence_id, Booking.resource_kind == ResourceKind.bridge)).all())
    out: dict[int, tuple[Bridge, int | None]] = {}
    for room_id in room_ids:
        bridge_id = tree.bridge_of_province.get(provinces.get(units.get(room_id, -1), -1))
        if bridge_id is None or (booked and bridge_id not in booked):
            out[room_id] = (tree.root, None)
        else:
            bridge, number = tree.others[bridge_id]
            out[room_id] = (bridge, booked.get(bridge_id, number))
    return out
