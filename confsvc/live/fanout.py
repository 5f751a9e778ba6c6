"""From "committed" to every process's hub: in-process, through Redis pub/sub, or through PostgreSQL
``LISTEN``/``NOTIFY`` (SPEC "Live channel").

``events.subscribe`` calls :meth:`Fanout.from_commit` in the committing thread; it hands the
batch to the event loop with ``loop.call_soon_threadsafe`` and returns at once.

- :class:`LocalFanout` (no ``redis_url``): the batch goes straight to this process's hub.
- :class:`RedisFanout`: the batch is published on ``Settings.redis_channel`` and every process,
  this one included, delivers what its subscription receives. Redis going away never crashes
  anything: a failed publish is logged and delivered locally, and while the subscription is down
  every local batch is delivered locally; a background task reconnects with backoff and, once
  subscribed again, replays from the outbox every event since the outage began (other processes'
  events it missed; duplicates are dropped by the hub).

- :class:`PostgresFanout` (PostgreSQL and no ``redis_url``): every event-writing transaction sends
  ``NOTIFY confsvc_events, '<last id>'`` as it commits (``confsvc.events``); each process LISTENs on
  its own connection and, on a notification, reads the events after the last id it delivered from
  the events table, in id order (ids become visible in order: ``events`` numbers them at commit). A lost
  listening connection degrades like Redis: local batches are delivered locally, the listener
  reconnects with backoff and reads everything after the last id it delivered.

:attr:`Fanout.healthy` says whether this process receives every process's events right now (and has
caught up after start-up or an outage): only then does the live channel trust what it keeps in memory
(the display token cache, which a missed ``access.revoked`` would leave stale, and the hub's recent
events). ``access.revoked`` of this process's own commits reaches the token cache in the committing
thread, before the commit returns, so a token revoked through this process is refused at once.

Wire format on the Redis channel: a JSON list of ``{"message", "room_ids", "unit_ids"}``.
A replay after an outage is handed to the hub as a replay (``Hub.deliver(..., replay=True)``): a
client it would overflow catches up from the events table instead of being dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from typing import Any

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from confsvc import events
from confsvc.db import make_session
from confsvc.events import Published
from confsvc.live.hub import Hub

log = logging.getLogger(__name__)
#: Longest pause between reconnection attempts (seconds).
MAX_BACKOFF_SECONDS = 5.0


def encode(batch: list[Published]) -> str:
    return json.dumps([{"message": p.message, "room_ids": sorted(p.room_ids), "unit_ids": sorted(p.unit_ids)}
                       for p in batch], ensure_ascii=False, separators=(",", ":"))


def decode(text: str | bytes) -> list[Published]:
    return [Published(message=item["message"], room_ids=frozenset(item["room_ids"]),
                      unit_ids=frozenset(item["unit_ids"])) for item in json.loads(text)]


class Fanout:
    """In-process delivery; the base of :class:`RedisFanout`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        events.subscribe(self.from_commit)

    async def stop(self) -> None:
        events.unsubscribe(self.from_commit)

    @property
    def healthy(self) -> bool:
        """Every process's committed events reach this hub (in-process: always)."""
        return True

    async def wait_healthy(self, timeout: float) -> bool:
        """Wait (polling every 10 ms) until :attr:`healthy`, at most ``timeout`` seconds; whether it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.healthy and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self.healthy

    def from_commit(self, batch: list[Published]) -> None:
        """``events.subscribe`` callback: any thread; never blocks."""
        for published in batch:
            if published.message["type"] == "access.revoked":
                self.hub.revoked_tokens(published.message["data"])
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.publish, batch)

    def publish(self, batch: list[Published]) -> None:
        """On the loop: deliver a committed batch."""
        self.hub.deliver(batch)


LocalFanout = Fanout


class RedisFanout(Fanout):
    """Several processes share one stream through a Redis pub/sub channel."""

    def __init__(self, hub: Hub, *, url: str, channel: str, engine: Engine) -> None:
        super().__init__(hub)
        self.url, self.channel, self.engine = url, channel, engine
        #: CLIENT SETNAME of this process's Redis connections (``CLIENT LIST`` tells who is who).
        self.client_name = f"confsvc-{os.getpid()}-{secrets.token_hex(4)}"
        self.redis: Any = None
        self.subscribed = False
        self.outage_from: int | None = None  # hub.max_id when the subscription was lost
        self._outbox: asyncio.Queue[list[Published]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        return self.subscribed and self.outage_from is None

    async def start(self) -> None:
        import redis.asyncio as aioredis

        # What commits between the hub's start-up read and the subscription is read back once subscribed.
        self.outage_from, self._starting = self.hub.max_id, True

        self.redis = aioredis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5,
                                             retry_on_timeout=False, client_name=self.client_name)
        await super().start()
        self._tasks = [asyncio.create_task(self._listen(), name="confsvc-redis-listen"),
                       asyncio.create_task(self._publish_loop(), name="confsvc-redis-publish")]

    async def stop(self) -> None:
        await super().stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()

    def publish(self, batch: list[Published]) -> None:
        if not self.subscribed:
            self.hub.deliver(batch)  # degraded: our subscription would not bring it back
        self._outbox.put_nowait(batch)

    async def _publish_loop(self) -> None:
        failing = False
        while True:
            batch = await self._outbox.get()
            try:
                await self.redis.publish(self.channel, encode(batch))
                if failing:
                    log.warning("redis publish works again")
                failing = False
            except Exception as exc:  # noqa: BLE001 (any Redis failure degrades, never crashes)
                if not failing:
                    log.warning("redis publish failed (%s); delivering locally", exc)
                failing = True
                self.hub.deliver(batch)

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                backoff = 0.2
                if self.outage_from is not None:
                    if not self._starting:
                        log.warning("redis subscription restored; replaying events after id %s", self.outage_from)
                    await self._replay_since(self.outage_from)
                    self.outage_from, self._starting = None, False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.hub.deliver(decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                if self.subscribed or self.outage_from is None or self._starting:
                    log.warning("redis subscription lost (%s); local delivery until it is back", exc)
                    self._starting = False  # a real outage from here: its end is logged
                if self.outage_from is None:
                    self.outage_from = self.hub.max_id
                self.subscribed = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001
                    pass

    async def _replay_since(self, after_id: int) -> None:
        self.hub.deliver(await run_in_threadpool(_read_after, self.engine, after_id), replay=True)


def _read_after(engine: Engine, after_id: int) -> list[Published]:
    """Every event with an id above ``after_id``, in id order (pages of ``events.replay``)."""
    with make_session(engine, write=False) as session:
        found: list[Published] = []
        while True:
            page = events.replay(session, found[-1].message["id"] if found else after_id)
            if not page:
                return found
            found += page


class PostgresFanout(Fanout):
    """Several processes share one stream through PostgreSQL ``LISTEN``/``NOTIFY`` and the events table."""

    #: Seconds without a notification after which the listening connection is checked with a query.
    IDLE_CHECK_SECONDS = 30.0

    def __init__(self, hub: Hub, *, engine: Engine) -> None:
        super().__init__(hub)
        self.engine = engine
        self.listening = False
        self.caught_up = False
        self.cursor = hub.max_id  # the last event id read from the table and delivered
        self.connection: Any = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.cursor = self.hub.max_id
        await super().start()
        self._tasks = [asyncio.create_task(self._listen(), name="confsvc-pg-listen")]

    async def stop(self) -> None:
        await super().stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def healthy(self) -> bool:
        return self.listening and self.caught_up

    def publish(self, batch: list[Published]) -> None:
        if not self.listening:
            self.hub.deliver(batch)  # degraded: no notification will bring it back
        else:
            self._wake.set()  # our own commit: read it without waiting for the notification

    def _conninfo(self) -> str:
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _catch_up(self, *, replay: bool) -> None:
        batch = await run_in_threadpool(_read_after, self.engine, self.cursor)
        if batch:
            self.cursor = batch[-1].message["id"]
            self.hub.deliver(batch, replay=replay)

    async def _reader(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._catch_up(replay=False)

    async def _listen(self) -> None:
        import psycopg

        backoff, lost = 0.2, False
        while True:
            reader: asyncio.Task[None] | None = None
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo(), autocommit=True,
                                                                 connect_timeout=5) as conn:
                    self.connection = conn
                    await conn.execute(f"LISTEN {events.NOTIFY_CHANNEL}")
                    self.listening, backoff = True, 0.2
                    if lost:
                        log.warning("postgresql listener restored; replaying events after id %s", self.cursor)
                    await self._catch_up(replay=lost)
                    lost, self.caught_up = False, True
                    reader = asyncio.create_task(self._reader(), name="confsvc-pg-read")
                    while True:
                        async for _ in conn.notifies(timeout=self.IDLE_CHECK_SECONDS):
                            self._wake.set()
                        if reader.done():
                            reader.result()  # a failed read: reconnect and read again
                        await conn.execute("SELECT 1")  # a silent connection may be a dead one
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (a lost database connection degrades, never crashes)
                if not lost:
                    log.warning("postgresql listener lost (%s); local delivery until it is back", exc)
                self.listening, self.caught_up, lost = False, False, True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                self.connection = None
                if reader is not None:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)


def make_fanout(hub: Hub, *, redis_url: str | None, channel: str, engine: Engine) -> Fanout:
    """Redis when ``redis_url`` is set, else PostgreSQL ``LISTEN``/``NOTIFY`` on PostgreSQL, else in-process."""
    if redis_url:
        return RedisFanout(hub, url=redis_url, channel=channel, engine=engine)
    if engine.dialect.name == "postgresql":
        return PostgresFanout(hub, engine=engine)
    return Fanout(hub)
