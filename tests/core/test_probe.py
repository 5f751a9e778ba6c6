"""The reachability probe against a real TCP listener on 127.0.0.1, then against its closed port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints import probe
from confsvc.endpoints.models import Endpoint, EndpointProbe, EndpointStatus, EndpointStatusChange, LifecycleState
from tests.factories import make_endpoint, make_room

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield server
    finally:
        server.close()


def _probe_settings(settings: Settings, port: int) -> Settings:
    return settings.model_copy(update={"probe_port": port, "probe_misses_offline": 3, "probe_timeout_seconds": 1.0})


def test_reachable_then_three_misses_go_offline_then_back_online(engine: Engine, settings: Settings,
                                                                  listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with make_session(engine) as session:
        room = make_room(session)
        ep = make_endpoint(session, room, management_ip="127.0.0.1")
        make_endpoint(session, room)  # no management IP: not probed
        make_endpoint(session, room, management_ip="127.0.0.1", lifecycle_state=LifecycleState.retired)
        ep_id, room_id = ep.id, room.id
        session.commit()
    cfg = _probe_settings(settings, port)
    where = f"127.0.0.1:{port}"

    first = probe.probe_once(engine, cfg, now=T0)
    assert (first.reached, first.missed, first.changes) == ([ep_id], [], [(ep_id, "unknown", "online")])
    listener.close()
    misses = [probe.probe_once(engine, cfg, now=T0 + timedelta(minutes=n)) for n in (1, 2, 3)]
    assert [(r.reached, r.missed, r.changes) for r in misses] == [
        ([], [ep_id], []), ([], [ep_id], []), ([], [ep_id], [(ep_id, "online", "offline")])]

    with make_session(engine, write=False) as session:
        endpoint = session.get(Endpoint, ep_id)
        assert (endpoint.status, endpoint.last_seen_at) == (EndpointStatus.offline, T0)
        state = session.get(EndpointProbe, ep_id)
        assert (state.misses, state.last_ok_at, state.last_probe_at) == (3, T0, T0 + timedelta(minutes=3))
        history = session.exec(select(EndpointStatusChange).order_by(EndpointStatusChange.id)).all()
        assert [(c.endpoint_id, c.previous.value, c.status.value, c.at, c.source, c.detail) for c in history] == [
            (ep_id, "unknown", "online", T0, "probe", f"Kết nối TCP tới {where} thành công"),
            (ep_id, "online", "offline", T0 + timedelta(minutes=3), "probe",
             f"Không kết nối được TCP tới {where} sau 3 lần thử liên tiếp")]
        messages = [p.message for p in events.replay(session, 0)]
    assert [(m["type"], m["at"], m["data"]) for m in messages] == [
        ("endpoint.status", "2026-12-07T01:00:00Z",
         {"endpoint_id": ep_id, "room_id": room_id, "status": "online", "previous": "unknown",
          "at": "2026-12-07T01:00:00Z", "source": "probe"}),
        ("endpoint.status", "2026-12-07T01:03:00Z",
         {"endpoint_id": ep_id, "room_id": room_id, "status": "offline", "previous": "online",
          "at": "2026-12-07T01:03:00Z", "source": "probe"})]

    with socket.create_server(("127.0.0.1", 0)) as again:
        back = probe.probe_once(engine, _probe_settings(settings, again.getsockname()[1]),
                                now=T0 + timedelta(minutes=4))
    assert back.changes == [(ep_id, "offline", "online")]


def test_a_reachable_endpoint_keeps_in_call_and_a_reported_fault(engine: Engine, settings: Settings,
                                                                 listener: socket.socket) -> None:
    with make_session(engine) as session:
        room = make_room(session)
        busy = make_endpoint(session, room, management_ip="127.0.0.1", status=EndpointStatus.in_call)
        broken = make_endpoint(session, room, management_ip="127.0.0.1", status=EndpointStatus.fault)
        ids = (busy.id, broken.id)
        session.commit()
    report = probe.probe_once(engine, _probe_settings(settings, listener.getsockname()[1]), now=T0)
    assert (report.reached, report.changes) == (list(ids), [])
    with make_session(engine, write=False) as session:
        assert [(e.status, e.last_seen_at) for e in (session.get(Endpoint, i) for i in ids)] == [
            (EndpointStatus.in_call, T0), (EndpointStatus.fault, T0)]
        assert events.latest_id(session) == 0


@pytest.mark.postgresql_only  # the round lock is a PostgreSQL advisory lock; SQLite runs the probe in one process
def test_a_round_is_skipped_while_another_process_probes(engine: Engine, settings: Settings, backend: str) -> None:
    with engine.connect() as other:
        assert other.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": probe.PROBE_LOCK_KEY}).scalar()
        assert probe.probe_once(engine, settings).skipped is True
        other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": probe.PROBE_LOCK_KEY})
        other.commit()
    assert probe.probe_once(engine, settings).skipped is False
