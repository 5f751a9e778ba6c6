"""Room channels' snapshots kept in memory (issue 14: thousands of room displays connecting at once).

A room display connecting without ``since`` gets the ``snapshot`` of its room (``snapshot.snapshot``).
This process keeps the last one read per room channel (:class:`RoomSnapshots`) and sends it again to the
next display of that room, with ``now`` and ``at`` of the moment it is sent, while it is still what a
fresh read would give:

- an event routed to the room (every change of a meeting, an occurrence, its join instructions, a
  site's readiness or an endpoint's status is one, routed to the rooms it concerns, before and after)
  forgets the room's snapshot, in every process (the hub sees every event: ``Hub.deliver``);
- time forgets it when a listed occurrence's technical check begins or a current one ends
  (``valid_until``: ``current`` and ``next`` change then without an event);
- changes that record no event (a room or endpoint renamed or moved in the inventory, an endpoint's
  ``last_seen_at`` refreshed by a probe that finds its status unchanged, a bridge's dial domain
  edited) reach a snapshot within :data:`TTL_SECONDS`.

Misses are read together: the rooms asked for while a read is running are read by the next one, in one
session and a few queries whatever their number (``snapshot.room_snapshots``). A read that an event for
one of its rooms overtook is sent to the displays that asked (it is what the database held when read, and
the event follows it on their channel) but not kept. The channel uses this only while its fan-out is
healthy (an event missed would leave a snapshot stale).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from confsvc.clock import utc_now
from confsvc.live.snapshot import Scope

#: Seconds a snapshot is kept at most (changes without an event: see the module's docstring).
TTL_SECONDS = 30.0
#: Rooms read in one go at most.
BATCH_MAX = 500
#: Snapshots kept at most (about one per room display of the country); beyond, all are forgotten.
KEPT_MAX = 20_000

#: ``read(scopes, now) -> (latest event id, {scope: snapshot data})``, run in a worker thread.
Reader = Callable[[list[Scope], datetime], tuple[int, dict[Scope, dict[str, Any]]]]


@dataclass(frozen=True)
class Kept:
    """One room channel's snapshot: the latest event id when read, the data, and until when (UTC) and
    since when (``time.monotonic``) it holds."""

    latest_id: int
    data: dict[str, Any]
    valid_until: datetime | None
    read_at: float


def valid_until(data: dict[str, Any]) -> datetime | None:
    """When ``data``'s lists change by time alone: the earliest end of a ``current`` occurrence and
    technical check start (``check_at``) of a ``next`` one (UTC); None when nothing is listed."""
    times = [item["end"] for item in data["current"]] + [item["check_at"] for item in data["next"]]
    return min((datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times), default=None)


class RoomSnapshots:
    """The snapshots of this process's room channels. Runs on the event loop only."""

    def __init__(self, *, ttl_seconds: float = TTL_SECONDS, batch_max: int = BATCH_MAX) -> None:
        self.ttl_seconds = ttl_seconds
        self.batch_max = batch_max
        #: By room id, then channel (a user's channel of a room sees it as that user may).
        self._kept: dict[int, dict[Scope, Kept]] = {}
        #: Rooms forgotten, by the sequence number of the forgetting (a read started before keeps nothing of them).
        self._forgotten_at: dict[int, int] = {}
        self._all_forgotten_at = 0
        self._sequence = 0
        self._waiting: dict[Scope, asyncio.Future[Kept]] = {}
        self._reading = False
        self.reads = 0
        self.hits = 0

    def __len__(self) -> int:
        return sum(len(same) for same in self._kept.values())

    def forget(self, room_ids: Iterable[int]) -> None:
        """An event concerns ``room_ids``: their snapshots are stale."""
        self._sequence += 1
        rooms = set(room_ids)
        for room in rooms:
            self._forgotten_at[room] = self._sequence
        for room in rooms:
            self._kept.pop(room, None)
        if len(self._forgotten_at) > KEPT_MAX:
            self.forget_all()

    def forget_all(self) -> None:
        self._sequence += 1
        self._all_forgotten_at = self._sequence
        self._kept.clear()
        self._forgotten_at.clear()

    def _fresh(self, scope: Scope, now: datetime) -> Kept | None:
        same = self._kept.get(scope.id or 0)
        kept = same.get(scope) if same else None
        if kept is None:
            return None
        if time.monotonic() - kept.read_at > self.ttl_seconds or (kept.valid_until is not None
                                                                  and now >= kept.valid_until):
            del same[scope]  # type: ignore[union-attr]
            return None
        return kept

    async def get(self, scope: Scope, read: Reader) -> Kept:
        """``scope``'s snapshot: the one kept, or read (with the other rooms waiting) by ``read`` in a
        worker thread. Raises what ``read`` raises."""
        kept = self._fresh(scope, utc_now())
        if kept is not None:
            self.hits += 1
            return kept
        waiting = self._waiting.get(scope)
        if waiting is None:
            waiting = self._waiting[scope] = asyncio.get_running_loop().create_future()
        if not self._reading:
            self._reading = True
            asyncio.ensure_future(self._read_all(read))
        return await asyncio.shield(waiting)

    async def _read_all(self, read: Reader) -> None:
        try:
            await asyncio.sleep(0)  # the displays connecting in the same turn of the loop join this read
            while self._waiting:
                batch = list(self._waiting)[:self.batch_max]
                futures = {scope: self._waiting.pop(scope) for scope in batch}
                started = self._sequence
                try:
                    now = utc_now()
                    latest, found = await run_in_threadpool(read, batch, now)
                except Exception as exc:  # noqa: BLE001 (each waiting display gets the error)
                    for future in futures.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.reads += 1
                read_at = time.monotonic()
                for scope, future in futures.items():
                    data = found[scope]
                    kept = Kept(latest, data, valid_until(data), read_at)
                    room = scope.id or 0
                    if self._all_forgotten_at <= started and self._forgotten_at.get(room, 0) <= started:
                        if len(self._kept) >= KEPT_MAX:
                            self._kept.clear()
                        self._kept.setdefault(room, {})[scope] = kept
                    if not future.done():
                        future.set_result(kept)
        finally:
            self._reading = False
            if self._waiting:  # asked for after the loop ended
                self._reading = True
                asyncio.ensure_future(self._read_all(read))
