"""Active reachability probe: a TCP connect to each endpoint's ``management_ip:settings.probe_port``.

Per round (:func:`probe_once`), for every endpoint with a management IP that is not retired:

- a connect within ``probe_timeout_seconds`` is a *hit*: the miss counter resets and the status
  becomes ``online``, unless it is ``in_call`` (busy, and reachable) or ``fault`` (a reported fault
  is not cleared by a TCP answer: a codec with a dead camera still answers; an agent, an admin or
  the operator clears it);
- anything else (refused, unreachable, timeout) is a *miss*: after ``probe_misses_offline``
  consecutive misses the status becomes ``offline`` (from any status).

Changes go through ``status.apply_status`` with source ``probe`` (history row + ``endpoint.status``
event). Miss counters live in ``endpoint_probes``, so a restart keeps them. On PostgreSQL a round
runs under a session advisory lock taken with ``pg_try_advisory_lock``: with several workers, one
probes and the others skip that round (misses are not double-counted). With SQLite, run one process.

The connects are asyncio (at most ``probe_concurrency`` in flight); the database work is sync.
:func:`probe_once` is sync and starts its own event loop, so the background task
(:func:`running`) calls it in a worker thread: no blocking call runs in the app's loop.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import periodic
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, EndpointProbe, EndpointStatus, LifecycleState, Room
from confsvc.endpoints.status import apply_status

log = logging.getLogger(__name__)

#: pg_try_advisory_lock key of a probe round ("probe" in ASCII).
PROBE_LOCK_KEY = 0x70726F6265


@dataclass
class ProbeReport:
    """One round: endpoint ids reached / missed, status changes ``(endpoint_id, old, new)``, and
    ``skipped`` when another process held the round's lock."""

    reached: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    changes: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: bool = False


async def reachable(host: str, port: int, timeout_seconds: float) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout_seconds``; closed at once."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_seconds)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def _reach_all(targets: list[tuple[int, str]], settings: Settings) -> dict[int, bool]:
    gate = asyncio.Semaphore(settings.probe_concurrency)

    async def one(ip: str) -> bool:
        async with gate:
            return await reachable(ip, settings.probe_port, settings.probe_timeout_seconds)

    results = await asyncio.gather(*(one(ip) for _, ip in targets))
    return {endpoint_id: ok for (endpoint_id, _), ok in zip(targets, results, strict=True)}


def _targets(engine: Engine) -> list[tuple[int, str]]:
    with make_session(engine, write=False) as session:
        rows = session.exec(select(Endpoint.id, Endpoint.management_ip)
                            .where(Endpoint.management_ip.is_not(None),
                                   Endpoint.lifecycle_state != LifecycleState.retired)
                            .order_by(Endpoint.id)).all()
    return [(endpoint_id, ip) for endpoint_id, ip in rows]


def _apply(engine: Engine, settings: Settings, endpoint_id: int, ok: bool, now: datetime,
           report: ProbeReport) -> None:
    with make_session(engine) as session:
        row = session.exec(select(Endpoint, Room).join(Room, Room.id == Endpoint.room_id)
                           .where(Endpoint.id == endpoint_id).with_for_update(of=Endpoint)).first()
        if row is None:  # deleted since the round began
            return
        endpoint, room = row
        state = session.get(EndpointProbe, endpoint_id) or EndpointProbe(endpoint_id=endpoint_id)
        state.last_probe_at = now
        target: EndpointStatus | None = None
        if ok:
            state.misses, state.last_ok_at = 0, now
            if endpoint.status not in (EndpointStatus.online, EndpointStatus.in_call, EndpointStatus.fault):
                target = EndpointStatus.online
        else:
            state.misses += 1
            if state.misses >= settings.probe_misses_offline and endpoint.status is not EndpointStatus.offline:
                target = EndpointStatus.offline
        session.add(state)
        if target is not None:
            where = f"{endpoint.management_ip}:{settings.probe_port}"
            detail = (f"Kết nối TCP tới {where} thành công" if ok else
                      f"Không kết nối được TCP tới {where} sau {state.misses} lần thử liên tiếp")
            result = apply_status(session, endpoint, room, target, at=now, source="probe", detail=detail, now=now)
            if result.changed:
                report.changes.append((endpoint_id, result.previous.value, result.status.value))
        elif ok:
            apply_status(session, endpoint, room, endpoint.status, at=now, source="probe", now=now)
        session.commit()


def probe_once(engine: Engine, settings: Settings, *, now: datetime | None = None) -> ProbeReport:
    """Probe every target once and apply the results (one short transaction per endpoint).

    ``now`` (UTC) stamps the observations; default the time the connects finished.
    Must not be called from a thread running an event loop (it runs its own).
    """
    report = ProbeReport()
    with engine.connect() as lock_conn:
        if engine.dialect.name == "postgresql":
            got = lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": PROBE_LOCK_KEY}).scalar()
            lock_conn.commit()
            if not got:
                report.skipped = True
                return report
        try:
            targets = _targets(engine)
            results = asyncio.run(_reach_all(targets, settings)) if targets else {}
            stamp = now or utc_now()
            for endpoint_id, ok in results.items():
                (report.reached if ok else report.missed).append(endpoint_id)
                _apply(engine, settings, endpoint_id, ok, stamp, report)
        finally:
            if engine.dialect.name == "postgresql":
                lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": PROBE_LOCK_KEY})
                lock_conn.commit()
    if report.changes:
        log.info("probe: %d status change(s): %s", len(report.changes), report.changes)
    return report


def running(engine: Engine, settings: Settings) -> AbstractAsyncContextManager[None]:
    """For ``main``'s lifespan: a round every ``probe_interval_seconds`` (0 = off) in a worker thread."""
    return periodic.running("probe", lambda: probe_once(engine, settings), settings.probe_interval_seconds)
