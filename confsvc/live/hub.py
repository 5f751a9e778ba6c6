"""The in-process WebSocket hub: routes published events to the connections whose scope they concern.

Runs on the event loop only (``deliver`` is scheduled there with ``loop.call_soon_threadsafe``
by the fan-out). Every connection has a bounded queue (``Settings.ws_queue_size``): delivery
never awaits a socket, so one slow client never stalls the others; a client whose queue is
full is dropped with close code :data:`CLOSE_SLOW` and a reason (SPEC "Live channel").
Each event is serialised once, whatever the number of connections (twice for a confidential meeting:
as its participants and the secretariat see it, and as "Cuộc họp" for the others, ``scheduling.visibility``).

A *replay* (what a fan-out reads back after a Redis or PostgreSQL outage, possibly thousands of
events at once) never drops a client for its size (issue 16 defect 13): a connection it would
overflow is marked ``behind``, gets nothing more from the hub, and its sender, once it has sent what
is queued, catches up from the events table (the missed messages in order, or a fresh snapshot when
too many: ``channel._initial``), exactly as a client resuming with ``since``.

``access.revoked`` (an internal event: ``confsvc.live.revocation``) closes, with 4401, every
connection opened with a revoked user or display token or by a user whose access changed, and drops
revoked display tokens from the process's token cache (``display.DisplayTokenCache``). Every other
event forgets the snapshots kept of its rooms (``room_snapshots``: all of them for an event routed to no
room).

The hub also keeps the last :data:`RECENT_EVENTS` events it delivered (``recent``, loaded from the
outbox at start-up): a client resuming with ``since`` inside that window is answered from memory
(:meth:`Hub.recent_since`) instead of a query per connection (issue 14: a reconnect storm).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import json
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confsvc.events import INTERNAL_TYPES, Published
from confsvc.live.display import DisplayTokenCache
from confsvc.live.room_snapshots import RoomSnapshots
from confsvc.live.snapshot import Scope
from confsvc.scheduling import visibility
from confsvc.users import token_cache

log = logging.getLogger(__name__)

#: WebSocket close codes (RFC 6455 §7.4.2: 4000–4999 are the application's).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_PING_TIMEOUT = 4408
CLOSE_SLOW = 4429
#: Control messages queued on a connection (``event id None``); the sender gives them the envelope.
PING, PONG = "ping", "pong"
#: Event ids remembered to drop duplicates (Redis and local delivery overlap after an outage).
SEEN_IDS = 10_000
#: Events kept in memory for ``since`` resumes (at least this many once the hub has seen them): several
#: per room display of the country (~4,000), so that a restart's resumes never fall back to the outbox
#: (one scan of every later event per display). About 1 KiB each.
RECENT_EVENTS = 20_000
#: Recent events routed to at most this many rooms are indexed by room (``Hub.recent_for_room``).
NARROW_ROOMS = 64


@dataclass(eq=False)
class Connection:
    """One subscriber. ``queue`` holds ``(event id or None, text)``; ``None`` marks a control message.

    A connection is registered *before* its channel is opened (authentication, scope and first
    messages are read in one database session): until :meth:`opened` gives it a ``scope``, the
    events delivered to it wait in ``pending`` (at most ``queue_size``; beyond, it is ``behind``).
    """

    scope: Scope | None
    queue_size: int
    #: Who opened it (for ``access.revoked``): the user (bearer token or web session), the user's API
    #: token, or the room display token.
    user_id: int | None = None
    api_token_id: int | None = None
    display_token_id: int | None = None
    #: The SHA-256 of the web session (cookie) that opened it: logout closes it.
    web_session: str | None = None
    queue: asyncio.Queue[tuple[int | None, str]] = field(init=False)
    dropped: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    #: Set when a replay overflowed the queue: the sender catches up from the events table.
    behind: bool = False
    #: Event-loop time of the client's last message (the hub's keep-alive closes silent ones).
    heard_at: float = 0.0
    #: The task sending to the socket: cancelled when the connection is dropped.
    sender: asyncio.Task[None] | None = None
    pending: list[tuple[int, str, Published]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)

    def opened(self, scope: Scope) -> None:
        """The channel is open: queue what arrived meanwhile and concerns ``scope``."""
        self.scope = scope
        pending, self.pending = self.pending, []
        for event_id, text, published in pending:
            if scope.matches(published):
                self.offer(event_id, text)

    def offer(self, event_id: int | None, text: str, *, replay: bool = False) -> None:
        """Queue a message without waiting. A full queue drops the connection (CLOSE_SLOW), except
        during a ``replay``, which marks it ``behind`` instead; a connection ``behind`` takes no events
        (its catch-up reads them) and skips keep-alives that do not fit."""
        if self.dropped.is_set() or (self.behind and event_id is not None):
            return
        try:
            self.queue.put_nowait((event_id, text))
        except asyncio.QueueFull:
            if replay or self.behind:
                self.behind = True
            else:
                self.drop(CLOSE_SLOW, f"quá chậm: hơn {self.queue_size} tin chưa nhận (client too slow)")

    def held_by(self, revoked: dict[str, list[int]]) -> bool:
        """Whether an ``access.revoked`` event's data names this connection's user or token."""
        return (self.user_id in revoked.get("user_ids", ()) or self.api_token_id in revoked.get("api_token_ids", ())
                or self.display_token_id in revoked.get("display_token_ids", ())
                or (self.web_session is not None and self.web_session in revoked.get("web_sessions", ())))

    def drop(self, code: int, reason: str) -> None:
        if not self.dropped.is_set():
            self.close_code, self.close_reason = code, reason
            self.dropped.set()
            if self.sender is not None:
                self.sender.cancel()


class Hub:
    """Connections of this process and the delivery of events to them."""

    def __init__(self, *, recent_events: int = RECENT_EVENTS) -> None:
        self.connections: set[Connection] = set()
        #: Open room channels by room id; every other connection (unit, secretariat, not yet opened).
        self._by_room: dict[int, set[Connection]] = {}
        self._general: set[Connection] = set()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self.max_id = 0
        self.delivered = 0
        self.dropped = 0
        #: Display tokens of this process's connect path (revoked ones dropped by ``access.revoked``).
        self.display_tokens = DisplayTokenCache()
        #: Recent client events in id order, and the id after which every event this hub delivered is
        #: in it (None until :meth:`load_recent`: nothing is answered from memory).
        self.recent: list[Published] = []
        self.recent_floor: int | None = None
        #: The same events by room (those routed to at most :data:`NARROW_ROOMS` rooms), and the wider
        #: ones: a room display's resume reads its own, not every event of the window.
        self._recent_by_room: dict[int, list[Published]] = {}
        self._recent_wide: list[Published] = []
        #: The JSON text of events in the window, encoded once (:meth:`text_of`).
        self._texts: dict[int, str] = {}
        self.recent_events = recent_events
        #: ``{meeting id: participant unit ids or None}``: whether a meeting is confidential now, as read
        #: for a ``since`` resume (``channel._confidential_now``); an event naming the meeting forgets it.
        self.confidential_now: dict[int, set[int] | None] = {}
        #: Reads of ``confidential_now`` in flight, by meeting id (shared by the resumes that need them).
        self.confidential_reads: dict[int, asyncio.Future[dict[int, set[int] | None]]] = {}
        #: Bumped by every delivered event: a reader of ``confidential_now`` caches only if unchanged.
        self.generation = 0
        #: Room channels' snapshots, forgotten by the events of their rooms (``live.room_snapshots``).
        self.room_snapshots = RoomSnapshots()

    def load_recent(self, batch: list[Published], floor: int) -> None:
        """Start the in-memory window: ``batch`` (in id order) holds every event with an id above
        ``floor`` (read from the outbox at start-up, before the fan-out starts)."""
        self.recent, self._recent_by_room, self._recent_wide, self._texts = [], {}, [], {}
        self.recent_floor = floor
        for published in batch:
            if published.message["type"] not in INTERNAL_TYPES:
                self._remember(published)

    def recent_since(self, since: int) -> list[Published] | None:
        """Every client event with an id above ``since`` that this hub delivered, in id order; None when
        the window does not reach back to ``since`` (or ``since`` is ahead of this hub): read the outbox."""
        if self.recent_floor is None or since < self.recent_floor or since > self.max_id:
            return None
        start = bisect.bisect_right(self.recent, since, key=_event_id)
        return self.recent[start:]

    def recent_for_room(self, since: int, room_id: int) -> list[Published] | None:
        """:meth:`recent_since` of the events routed to ``room_id`` only."""
        if self.recent_floor is None or since < self.recent_floor or since > self.max_id:
            return None
        own = self._recent_by_room.get(room_id, [])
        own = own[bisect.bisect_right(own, since, key=_event_id):]
        wide = self._recent_wide[bisect.bisect_right(self._recent_wide, since, key=_event_id):]
        return list(heapq.merge(own, [p for p in wide if room_id in p.room_ids], key=_event_id))

    def text_of(self, message: dict[str, Any]) -> str:
        """``message`` (an event's, unchanged: as its whole audience receives it) as JSON text: encoded
        once while the event is in the recent window, for its live delivery and every resume that replays
        it (4,000 displays resuming after a restart replay the same few events)."""
        event_id = message["id"]
        text = self._texts.get(event_id)
        if text is None:
            text = message_text(message)
            if self.recent_floor is not None and event_id > self.recent_floor:
                self._texts[event_id] = text
        return text

    def _remember(self, published: Published) -> None:
        event_id = published.message["id"]
        if self.recent_floor is None or event_id <= self.recent_floor:
            return
        lists = [self.recent]
        if len(published.room_ids) > NARROW_ROOMS:
            lists.append(self._recent_wide)
        else:
            lists += [self._recent_by_room.setdefault(room, []) for room in published.room_ids]
        for events in lists:
            if not events or event_id > events[-1].message["id"]:
                events.append(published)
            else:  # another process's commit arriving late: keep id order
                bisect.insort(events, published, key=_event_id)
        if len(self.recent) > self.recent_events + self.recent_events // 8:
            cut = len(self.recent) - self.recent_events
            self._trim(self.recent[cut - 1].message["id"])

    def _trim(self, floor: int) -> None:
        """Forget the events up to ``floor`` (the window now starts after it)."""
        gone = self.recent[:bisect.bisect_right(self.recent, floor, key=_event_id)]
        self.recent_floor = floor
        del self.recent[:len(gone)]
        for published in gone:
            self._texts.pop(published.message["id"], None)
        del self._recent_wide[:bisect.bisect_right(self._recent_wide, floor, key=_event_id)]
        for room in {room for p in gone if len(p.room_ids) <= NARROW_ROOMS for room in p.room_ids}:
            own = self._recent_by_room.get(room)
            if own is not None:
                del own[:bisect.bisect_right(own, floor, key=_event_id)]
                if not own:
                    del self._recent_by_room[room]

    def _pruned(self, oldest_id: int | None) -> None:
        """Events before ``oldest_id`` were deleted from the outbox: a resume from before it gets a
        snapshot, from memory as from the outbox."""
        if oldest_id is None or self.recent_floor is None or oldest_id - 1 <= self.recent_floor:
            return
        self._trim(oldest_id - 1)

    def _forget_meetings(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if isinstance(data, dict) and isinstance(data.get("meeting_id"), int):
            self.confidential_now.pop(data["meeting_id"], None)

    def register(self, connection: Connection) -> None:
        self.connections.add(connection)
        self._index(connection)

    def opened(self, connection: Connection, scope: Scope) -> None:
        """``connection``'s channel is open (:meth:`Connection.opened`), indexed by its room from now on."""
        self._general.discard(connection)
        connection.opened(scope)
        self._index(connection)

    def unregister(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._general.discard(connection)
        scope = connection.scope
        if scope is not None and scope.kind == "room" and scope.id is not None:
            same = self._by_room.get(scope.id)
            if same is not None:
                same.discard(connection)
                if not same:
                    del self._by_room[scope.id]

    def _index(self, connection: Connection) -> None:
        scope = connection.scope
        if scope is not None and scope.kind == "room" and scope.id is not None:
            self._by_room.setdefault(scope.id, set()).add(connection)
        else:
            self._general.add(connection)

    def _concerned(self, published: Published) -> list[Connection]:
        """The connections an event may concern: every room channel of its rooms (looked up by room,
        not by a pass over 4,000 displays per event), and every other connection."""
        rooms = published.room_ids
        if len(rooms) <= len(self._by_room):
            found = [c for room in rooms for c in self._by_room.get(room, ())]
        else:
            found = [c for room, same in self._by_room.items() if room in rooms for c in same]
        return [*self._general, *found]

    def deliver(self, batch: list[Published], *, replay: bool = False) -> None:
        """Queue each new event of ``batch`` (in order) on every connection whose scope it concerns.

        An id already delivered is skipped. ``replay``: a read-back after an outage (overflow marks a
        connection ``behind`` instead of dropping it). Must run on the event loop.
        """
        for published in batch:
            event_id = published.message["id"]
            if event_id in self._seen:
                continue
            self._seen.add(event_id)
            self._seen_order.append(event_id)
            if len(self._seen_order) > SEEN_IDS:
                self._seen.discard(self._seen_order.popleft())
            self.max_id = max(self.max_id, event_id)
            self.generation += 1
            if published.message["type"] == "access.revoked":
                self._revoke(published.message["data"])
                continue
            if published.message["type"] == "events.pruned":
                self._pruned(published.message["data"].get("oldest_id"))
                continue
            self._remember(published)
            self._forget_meetings(published.message)
            if published.room_ids:
                self.room_snapshots.forget(published.room_ids)
            else:  # routed to no room: which rooms' snapshots it changes is not known
                self.room_snapshots.forget_all()
            text = self.text_of(published.message)
            confidential = published.message.get("data", {}).get("confidential", False)
            hidden: str | None = None
            for connection in self._concerned(published):
                if connection.scope is None:
                    if len(connection.pending) < connection.queue_size:
                        connection.pending.append((event_id, text, published))
                    else:
                        connection.behind = True
                elif connection.scope.matches(published):
                    was_dropped = connection.dropped.is_set()
                    message = visibility.visible_message(connection.scope.audience, published.message) \
                        if confidential else published.message
                    if message is not published.message:  # a confidential meeting outside this audience
                        hidden = hidden or message_text(message)
                    outgoing = text if message is published.message else hidden
                    assert outgoing is not None
                    connection.offer(event_id, outgoing, replay=replay)
                    self.delivered += 1
                    if connection.dropped.is_set() and not was_dropped:
                        self.dropped += 1
                        log.warning("live client dropped (%s): %s", connection.close_code, connection.close_reason)

    async def keepalive(self, ping_seconds: float) -> None:
        """Every ``ping_seconds``: a ping to every open connection, and 4408 for one silent for three
        intervals. One task for the whole process rather than a task and a timer per connection."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(ping_seconds)
            now = loop.time()
            for connection in list(self.connections):
                if connection.scope is None:
                    continue
                if now - connection.heard_at > 3 * ping_seconds:
                    connection.drop(CLOSE_PING_TIMEOUT, f"ping timeout: im lặng hơn {3 * ping_seconds:g} giây")
                else:
                    connection.offer(None, PING)

    def revoked_tokens(self, revoked: Mapping[str, Iterable[int]]) -> None:
        """Drop revoked display tokens from the cache, and every cached bearer-token verification
        (``users.token_cache``; any thread: the committing one calls it first)."""
        self.display_tokens.revoke(revoked.get("display_token_ids", ()))
        if revoked.get("user_ids") or revoked.get("api_token_ids"):
            token_cache.invalidate()

    def _revoke(self, revoked: dict[str, list[int]]) -> None:
        self.revoked_tokens(revoked)
        for connection in list(self.connections):
            if connection.held_by(revoked):
                connection.drop(CLOSE_UNAUTHORIZED, "access_revoked: token revoked or access changed "
                                                    "(quyền truy cập đã bị thu hồi hoặc thay đổi)")


def message_text(message: dict[str, Any]) -> str:
    """A live message as sent: compact JSON, UTF-8 text as is (Vietnamese unescaped)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _event_id(published: Published) -> int:
    return int(published.message["id"])
