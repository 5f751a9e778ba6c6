"""The in-process WebSocket hub: routes published events to the connections whose scope they concern.

Runs on the event loop only (``deliver`` is scheduled there with ``loop.call_soon_threadsafe``
by the fan-out). Every connection has a bounded queue (``Settings.ws_queue_size``): delivery
never awaits a socket, so one slow client never stalls the others; a client whose queue is
full is dropped with close code :data:`CLOSE_SLOW` and a reason (SPEC "Live channel").
Each event is serialised once, whatever the number of connections (twice for a confidential meeting:
as its participants and the secretariat see it, and as "Cuộc họp" for the others, ``scheduling.visibility``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field

from confsvc.events import Published
from confsvc.live.snapshot import Scope
from confsvc.scheduling import visibility

log = logging.getLogger(__name__)

#: WebSocket close codes (RFC 6455 §7.4.2: 4000–4999 are the application's).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_PING_TIMEOUT = 4408
CLOSE_SLOW = 4429
#: Event ids remembered to drop duplicates (Redis and local delivery overlap after an outage).
SEEN_IDS = 10_000


@dataclass(eq=False)
class Connection:
    """One subscriber. ``queue`` holds ``(event id or None, text)``; ``None`` marks a control message."""

    scope: Scope
    queue_size: int
    queue: asyncio.Queue[tuple[int | None, str]] = field(init=False)
    dropped: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)

    def offer(self, event_id: int | None, text: str) -> None:
        """Queue a message without waiting; a full queue drops the connection (CLOSE_SLOW)."""
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait((event_id, text))
        except asyncio.QueueFull:
            self.drop(CLOSE_SLOW, f"quá chậm: hơn {self.queue_size} tin chưa nhận (client too slow)")

    def drop(self, code: int, reason: str) -> None:
        if not self.dropped.is_set():
            self.close_code, self.close_reason = code, reason
            self.dropped.set()


class Hub:
    """Connections of this process and the delivery of events to them."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self.max_id = 0
        self.delivered = 0
        self.dropped = 0

    def register(self, connection: Connection) -> None:
        self.connections.add(connection)

    def unregister(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def deliver(self, batch: list[Published]) -> None:
        """Queue each new event of ``batch`` (in order) on every connection whose scope it concerns.

        An id already delivered is skipped. Must run on the event loop.
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
            text = json.dumps(published.message, ensure_ascii=False, separators=(",", ":"))
            confidential = published.message.get("data", {}).get("confidential", False)
            hidden: str | None = None
            for connection in list(self.connections):
                if connection.scope.matches(published):
                    was_dropped = connection.dropped.is_set()
                    message = visibility.visible_message(connection.scope.audience, published.message) \
                        if confidential else published.message
                    if message is not published.message:  # a confidential meeting outside this audience
                        hidden = hidden or json.dumps(message, ensure_ascii=False, separators=(",", ":"))
                    outgoing = text if message is published.message else hidden
                    assert outgoing is not None
                    connection.offer(event_id, outgoing)
                    self.delivered += 1
                    if connection.dropped.is_set() and not was_dropped:
                        self.dropped += 1
                        log.warning("live client dropped (%s): %s", connection.close_code, connection.close_reason)
