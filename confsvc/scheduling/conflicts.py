"""Pure interval arithmetic for bookings: windows, overlaps, peak port use. Values in, values out.

Every interval is half-open ``[start, end)`` (SPEC "Booking"): back-to-back windows do not overlap.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from itertools import pairwise
from typing import Any


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval ``[start, end)`` of aware UTC datetimes."""

    start: datetime
    end: datetime

    def overlaps(self, other: Window) -> bool:
        return self.start < other.end and other.start < self.end

    def intersection(self, other: Window) -> Window:
        """The overlap of two overlapping windows."""
        return Window(max(self.start, other.start), min(self.end, other.end))


def booking_window(start: datetime, end: datetime, *, check_lead_minutes: int, teardown_minutes: int) -> Window:
    """``[start − check_lead, end + teardown)``: what a booking holds for a meeting ``[start, end)``."""
    return Window(start - timedelta(minutes=check_lead_minutes), end + timedelta(minutes=teardown_minutes))


def peak_ports(window: Window, uses: Iterable[tuple[Window, int]]) -> int:
    """Largest number of ports in use at any instant of ``window`` (SPEC rule 2: peak, not a count).

    ``uses`` are (window, ports) pairs; those not overlapping ``window`` are ignored. Sweep line:
    at equal instants releases come before acquisitions, which is what half-open windows mean.
    """
    events: list[tuple[datetime, int]] = []
    for use, ports in uses:
        if not use.overlaps(window):
            continue
        clipped = use.intersection(window)
        events.append((clipped.start, ports))
        events.append((clipped.end, -ports))
    events.sort(key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def bridge_ports(sites: int, *, child_legs: int = 0, parent_leg: bool = False) -> int:
    """The ports one bridge holds for one occurrence (SPEC rule 2, cascade legs included; issue 14):
    one per site endpoint that joins it, one per cascade leg to a child bridge, and one for its own leg
    to its parent (the chair's bridge, or for a relay's root the upstream chair outside confsvc).

    The one place this sum is made: every bridge booking row stores it (``bookings.ports``), so the
    peak of a bridge (:func:`peak_ports`, :func:`port_overloads`) counts legs wherever it is read:
    booking, dry run, editing, the availability grid, the capacity check."""
    return sites + child_legs + (1 if parent_leg else 0)


def merge(windows: Iterable[Window]) -> list[Window]:
    """Sorted union of ``windows``; touching windows stay separate (they do not overlap)."""
    merged: list[Window] = []
    for window in sorted(windows):
        if merged and window.start < merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, window.end))
        else:
            merged.append(window)
    return merged


def first_pairwise_overlap(windows: list[Window]) -> tuple[Window, Window] | None:
    """Two windows of ``windows`` that overlap each other, or ``None``."""
    ordered = sorted(windows)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.overlaps(b):
            return a, b
    return None


# ---------------------------------------------------------------- port shortages (SPEC rules 2, 8)

@dataclass(frozen=True)
class Overload:
    """Where a bridge would run out of ports: ``window`` (half-open, UTC), the ports ``in_use`` by
    others there (the peak over ``window``; constant inside it) and who holds them (``holders``,
    the keys given to :func:`port_overloads`, in first-seen order)."""

    window: Window
    in_use: int
    holders: tuple[Hashable, ...]


def port_overloads(window: Window, uses: Iterable[tuple[Window, int, Hashable]], *, requested: int,
                   capacity: int) -> list[Overload]:
    """Maximal intervals of ``window`` where the ports in use plus ``requested`` exceed ``capacity``.

    ``uses`` are ``(window, ports, holder)`` triples; only those overlapping ``window`` count, and a
    holder is named only in the intervals where it holds ports (not every overlapping booking).
    Adjacent intervals merge when they have the same load and the same holders. Half-open: a use
    ending at ``t`` and another starting at ``t`` are never counted together.
    """
    live = [(u.intersection(window), p, h) for u, p, h in uses if p > 0 and u.overlaps(window)]
    points = sorted({window.start, window.end} | {w.start for w, _, _ in live} | {w.end for w, _, _ in live})
    out: list[Overload] = []
    for a, b in pairwise(points):
        holding = [(p, h) for w, p, h in live if w.start <= a and b <= w.end]
        load = sum(p for p, _ in holding)
        if load + requested <= capacity:
            continue
        holders = tuple(dict.fromkeys(h for _, h in holding))
        if out and out[-1].window.end == a and out[-1].in_use == load and out[-1].holders == holders:
            out[-1] = Overload(Window(out[-1].window.start, b), load, holders)
        else:
            out.append(Overload(Window(a, b), load, holders))
    return out


# ---------------------------------------------------------------- the conflict value (SPEC rule 8)

@dataclass(frozen=True)
class Other:
    """What a conflict collides with: a meeting's occurrence (``start``/``end`` its own times,
    ``check_start`` the start of its technical check, all UTC), a maintenance window or a whole-day
    block (``block_id``)."""

    meeting_id: int | None = None
    meeting_title: str | None = None
    occurrence_id: int | None = None
    maintenance_id: int | None = None
    block_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    check_start: datetime | None = None


@dataclass(frozen=True)
class Conflict:
    """One collision of a requested occurrence with one resource (SPEC rule 8). Built only by
    :func:`make_conflict`.

    ``window_*`` is the overlap (for ports: the interval where the peak would exceed capacity),
    UTC and local (naive, the deployment's zone). ``other_*`` are the other occurrence's own start,
    end and technical-check start. ``requested_start`` is the start (UTC) of the requested
    occurrence that collides. Bridge items add ``port_capacity``, ``ports_in_use`` (peak in use by
    others in the window) and ``ports_requested``; ``reason`` says why a bridge refuses.

    Mapping-style reads (``c["meeting_id"]``, ``c.get("reason")``) are kept for callers written
    against the earlier dict form.
    """

    resource_kind: str
    resource_id: int
    resource_name: str
    window_start: datetime
    window_end: datetime
    window_start_local: datetime
    window_end_local: datetime
    requested_start: datetime
    requested_occurrence_id: int | None = None
    meeting_id: int | None = None
    meeting_title: str | None = None
    occurrence_id: int | None = None
    maintenance_id: int | None = None
    block_id: int | None = None
    other_start: datetime | None = None
    other_end: datetime | None = None
    other_check_start: datetime | None = None
    other_start_local: datetime | None = None
    other_end_local: datetime | None = None
    other_check_start_local: datetime | None = None
    port_capacity: int | None = None
    ports_in_use: int | None = None
    ports_requested: int | None = None
    reason: str | None = None
    #: Bridge items: ports left for this booking there (capacity − in use, never below 0), and the
    #: province the bridge serves in a cascaded meeting (issue 14: a shortage explained per bridge).
    ports_free: int | None = None
    province_name: str | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None)
        return default if value is None else value

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_conflict(*, zone: tzinfo, resource_kind: str, resource_id: int, resource_name: str, overlap: Window,
                  requested_start: datetime, requested_occurrence_id: int | None, other: Other | None = None,
                  port_capacity: int | None = None, ports_in_use: int | None = None,
                  ports_requested: int | None = None, reason: str | None = None,
                  province_name: str | None = None) -> Conflict:
    """The one constructor of :class:`Conflict`: local copies of the window computed here."""
    other = other or Other()

    def local(value: datetime | None) -> datetime | None:
        return value.astimezone(zone).replace(tzinfo=None) if value is not None else None

    return Conflict(
        resource_kind=resource_kind, resource_id=resource_id, resource_name=resource_name,
        window_start=overlap.start, window_end=overlap.end,
        window_start_local=overlap.start.astimezone(zone).replace(tzinfo=None),
        window_end_local=overlap.end.astimezone(zone).replace(tzinfo=None),
        requested_start=requested_start, requested_occurrence_id=requested_occurrence_id,
        meeting_id=other.meeting_id, meeting_title=other.meeting_title, occurrence_id=other.occurrence_id,
        maintenance_id=other.maintenance_id, block_id=other.block_id, other_start=other.start, other_end=other.end,
        other_check_start=other.check_start, other_start_local=local(other.start),
        other_end_local=local(other.end), other_check_start_local=local(other.check_start),
        port_capacity=port_capacity, ports_in_use=ports_in_use,
        ports_requested=ports_requested, reason=reason, province_name=province_name,
        ports_free=max(port_capacity - ports_in_use, 0) if port_capacity is not None and ports_in_use is not None
        else None)


@dataclass
class ConflictGroup:
    """Conflicts as people read them (SPEC rule 8: grouped by the other meeting).

    ``kind``: ``meeting`` (rooms/endpoints taken by another meeting's occurrence), ``maintenance``,
    ``block`` (a whole-day block of the room or endpoint, ``block_id``),
    ``ports`` (a bridge runs out of ports in ``window``; ``holders`` are the occurrences holding
    ports there), ``number`` (no free conference number; ``holders`` hold the numbers), or
    ``bridge`` (the bridge refuses on its own, e.g. more sites than its capacity).
    ``start``/``end``/``check_start`` are the other occurrence's own times (UTC; ``*_local``
    naive local copies); ``window`` the overlap (UTC; ``window_local`` local).
    """

    kind: str
    meeting_id: int | None = None
    meeting_title: str | None = None
    occurrence_id: int | None = None
    maintenance_id: int | None = None
    block_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    check_start: datetime | None = None
    start_local: datetime | None = None
    end_local: datetime | None = None
    check_start_local: datetime | None = None
    window: Window | None = None
    window_local: Window | None = None
    rooms: list[tuple[int, str]] = field(default_factory=list)
    endpoints: list[tuple[int, str]] = field(default_factory=list)
    bridge_id: int | None = None
    bridge_name: str | None = None
    port_capacity: int | None = None
    ports_in_use: int | None = None
    ports_requested: int | None = None
    ports_free: int | None = None
    province_name: str | None = None
    holders: list[tuple[int | None, str | None, int | None]] = field(default_factory=list)
    requested_starts: list[datetime] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Rooms taken (endpoints when no room collides)."""
        return len(self.rooms) or len(self.endpoints)


def group_conflicts(conflicts: Iterable[Conflict]) -> list[ConflictGroup]:
    """One group per other occurrence (rooms and endpoints), maintenance window, port shortage
    interval or missing number, in first-seen order."""
    groups: dict[tuple[Any, ...], ConflictGroup] = {}
    # What each group holds already, as sets: a national refusal puts thousands of rooms in one group.
    seen: dict[tuple[Any, ...], set[Any]] = {}

    def first(key: tuple[Any, ...], item: Any) -> bool:
        held = seen.setdefault(key, set())
        if item in held:
            return False
        held.add(item)
        return True

    for c in conflicts:
        if c.resource_kind == "bridge":
            kind = "number" if c.reason == "no free conference number" else (
                "ports" if c.port_capacity is not None else "bridge")
            # A port shortage is one interval; a missing number spans every holder's overlap.
            key: tuple[Any, ...] = ((kind, c.resource_id, c.requested_start) if kind == "number"
                                    else (kind, c.resource_id, c.window_start, c.window_end, c.requested_start))
            group = groups.get(key)
            if group is not None and kind == "number":
                assert group.window is not None and group.window_local is not None
                group.window = Window(min(group.window.start, c.window_start), max(group.window.end, c.window_end))
                group.window_local = Window(min(group.window_local.start, c.window_start_local),
                                            max(group.window_local.end, c.window_end_local))
            if group is None:
                group = groups[key] = ConflictGroup(
                    kind=kind, window=Window(c.window_start, c.window_end),
                    window_local=Window(c.window_start_local, c.window_end_local), bridge_id=c.resource_id,
                    bridge_name=c.resource_name, port_capacity=c.port_capacity, ports_in_use=c.ports_in_use,
                    ports_requested=c.ports_requested, ports_free=c.ports_free, province_name=c.province_name)
            if c.meeting_id is not None or c.occurrence_id is not None:
                holder = (c.meeting_id, c.meeting_title, c.occurrence_id)
                if first(key, ("holder", holder)):
                    group.holders.append(holder)
        else:
            if c.maintenance_id is not None:
                key = ("maintenance", c.maintenance_id)
            elif c.block_id is not None:
                key = ("block", c.block_id)
            elif c.occurrence_id is not None:
                key = ("meeting", c.occurrence_id)
            else:
                key = ("other", c.resource_kind, c.resource_id, c.window_start)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ConflictGroup(
                    kind=key[0] if key[0] != "other" else "meeting", meeting_id=c.meeting_id,
                    meeting_title=c.meeting_title, occurrence_id=c.occurrence_id, maintenance_id=c.maintenance_id,
                    block_id=c.block_id,
                    start=c.other_start, end=c.other_end, check_start=c.other_check_start,
                    start_local=c.other_start_local, end_local=c.other_end_local,
                    check_start_local=c.other_check_start_local, window=Window(c.window_start, c.window_end),
                    window_local=Window(c.window_start_local, c.window_end_local))
            else:
                assert group.window is not None and group.window_local is not None
                group.window = Window(min(group.window.start, c.window_start), max(group.window.end, c.window_end))
                group.window_local = Window(min(group.window_local.start, c.window_start_local),
                                            max(group.window_local.end, c.window_end_local))
            bucket = group.rooms if c.resource_kind == "room" else group.endpoints
            if first(key, (c.resource_kind == "room", c.resource_id, c.resource_name)):
                bucket.append((c.resource_id, c.resource_name))
        if first(key, ("start", c.requested_start)):
            group.requested_starts.append(c.requested_start)
    return list(groups.values())
