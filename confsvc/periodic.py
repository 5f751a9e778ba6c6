"""Run a blocking job every few seconds beside the app, for as long as the app's lifespan lasts.

Used by the reachability probe and the scheduler. The job runs in a worker thread (it does sync
database work: no blocking call in the event loop, STYLE habit 7); its errors are logged, never
fatal. On shutdown a running job is given ``stop_grace_seconds`` to finish before the task is
cancelled, so it does not outlive the engine it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)


async def _loop(name: str, job: Callable[[], Any], interval_seconds: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(job)
        except Exception:
            log.exception("%s failed", name)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_seconds)


@asynccontextmanager
async def running(name: str, job: Callable[[], Any], interval_seconds: float, *,
                  stop_grace_seconds: float = 30.0) -> AsyncIterator[None]:
    """Call ``job()`` now and then every ``interval_seconds`` (> 0) while the block runs; 0 = never."""
    if interval_seconds <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(name, job, interval_seconds, stop), name=f"confsvc-{name}")
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, stop_grace_seconds)
        except TimeoutError:
            log.warning("%s still running after %.0f s at shutdown; cancelled", name, stop_grace_seconds)
