"""``POST /api/v1/calls`` with agent tokens (``cfa_…``) besides admin/secretariat bearer tokens, and the
automatic closing of open call records by the periodic job wired in ``main``; SQLite and PostgreSQL.

Scenario: ``stats_scenario`` (M1 31/10 22:00 → 01/11 01:00 on bridge B1 with E1 and E2), plus B2 and
M4 on B2, Monday 02/11 14:00 → 15:00 (window 13:00 → 15:00), with E2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.calls import intake as calls
from confsvc.calls.models import CallRecord
from confsvc.calls.schemas import CallEventCreate
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints import agent_tokens
from confsvc.endpoints.models import AgentToken, Room
from confsvc.endpoints.schemas import AgentTokenCreate
from confsvc.main import create_app
from confsvc.users import service as users
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import bearer, make_bridge, make_meeting, make_user


@dataclass
class Setup:
    s: sc.Scenario
    b2: int
    m4: int
    o4: int
    headers: dict[str, dict[str, str]]
    token_ids: dict[str, int]


def _setup(engine: Engine, settings: Settings) -> Setup:
    with make_session(engine) as session:
        s = sc.build(session, settings, with_calls=False)
        b2 = make_bridge(session, name="MCU dự phòng", port_capacity=10)
        admin_user = make_user(session, Role.admin)  # books in the past
        m4 = make_meeting(session, chair_room=session.get(Room, s.r2), start=sc.local(2, 14), end=sc.local(2, 15),
                          settings=settings, bridge_id=b2.id, title="Họp trên MCU dự phòng", user=admin_user).meeting
        admin = users.principal_for(session, admin_user)
        headers, token_ids = {}, {}
        for name, binding in (("e1", {"endpoint_id": s.e1}), ("b1", {"bridge_id": s.bridge}),
                              ("b2", {"bridge_id": b2.id}), ("free", {}), ("revoked", {})):
            token, secret = agent_tokens.create_agent_token(session, admin,
                                                            AgentTokenCreate(name=f"Tác tử {name}", **binding))
            headers[name], token_ids[name] = {"Authorization": f"Bearer {secret}"}, token.id
        agent_tokens.revoke_agent_token(session, admin, token_ids["revoked"])
        for role in (Role.secretariat, Role.viewer):
            headers[role.value] = bearer(session, make_user(session, role))
        o4 = sc.occurrence_of(session, m4.id)
        session.commit()
        return Setup(s, b2.id, m4.id, o4, headers, token_ids)


def _periods(engine: Engine, endpoint_id: int) -> list[tuple[str, str | None, str]]:
    with make_session(engine, write=False) as session:
        rows = session.exec(select(CallRecord).where(CallRecord.endpoint_id == endpoint_id)
                            .order_by(CallRecord.connected_at)).all()
    fmt = "%d/%m %H:%M"
    return [(r.connected_at.astimezone(sc.ZONE).strftime(fmt),
             r.disconnected_at.astimezone(sc.ZONE).strftime(fmt) if r.disconnected_at else None, r.source)
            for r in rows]


def _post(client: TestClient, headers: dict, endpoint_id: int, event: str, at: str, **extra):
    return client.post("/api/v1/calls", headers=headers,
                       json={"endpoint_id": endpoint_id, "event": event, "at": at, **extra})


def test_endpoint_bound_agent_token_reports_only_its_endpoint(client: TestClient, engine: Engine,
                                                              settings: Settings):
    x = _setup(engine, settings)
    s = x.s
    r = _post(client, x.headers["e1"], s.e1, "connected", "2026-10-31T21:30:00+07:00")
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["occurrence_id"], r.json()["record"]["source"]) == (True, s.o1, "agent")
    other = _post(client, x.headers["e1"], s.e2, "connected", "2026-10-31T21:30:00+07:00")
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_endpoint")
    assert _post(client, x.headers["e1"], s.e1, "disconnected", "2026-11-01T00:30:00+07:00").json()["accepted"]
    assert _periods(engine, s.e1) == [("31/10 21:30", "01/11 00:30", "agent")]
    assert _periods(engine, s.e2) == []
    with make_session(engine, write=False) as session:
        assert session.get(AgentToken, x.token_ids["e1"]).last_used_at is not None
        assert session.get(AgentToken, x.token_ids["b1"]).last_used_at is None


def test_bridge_bound_agent_token_reports_only_occurrences_on_its_bridge(client: TestClient, engine: Engine,
                                                                         settings: Settings):
    x = _setup(engine, settings)
    s = x.s
    # B1's webhook: E2 in M1 (on B1) is accepted, with source "bridge" by default; E2 in M4 (on B2) is not.
    ok = _post(client, x.headers["b1"], s.e2, "connected", "2026-10-31T22:10:00+07:00")
    assert (ok.status_code, ok.json()["record"]["source"]) == (200, "bridge")
    for body in ({"at": "2026-11-02T14:05:00+07:00"}, {"at": "2026-11-02T14:05:00+07:00", "occurrence_id": x.o4}):
        refused = _post(client, x.headers["b1"], s.e2, "connected", **body)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_bridge")
    assert _periods(engine, s.e2) == [("31/10 22:10", None, "bridge")]  # nothing closed or opened by the 403s
    # B2's webhook: the M4 report is its own; an explicit source is kept; it may not close M1's call.
    mine = _post(client, x.headers["b2"], s.e2, "connected", "2026-11-02T14:05:00+07:00", source="webhook")
    assert (mine.status_code, mine.json()["occurrence_id"], mine.json()["record"]["source"]) == (200, x.o4, "webhook")
    assert _periods(engine, s.e2) == [("31/10 22:10", "01/11 01:00", "bridge"), ("02/11 14:05", None, "webhook")]
    not_mine = _post(client, x.headers["b2"], s.e1, "connected", "2026-10-31T21:30:00+07:00")
    assert (not_mine.status_code, not_mine.json()["code"]) == (403, "forbidden_bridge")
    closing = _post(client, x.headers["b1"], s.e2, "disconnected", "2026-11-02T14:30:00+07:00")
    assert (closing.status_code, closing.json()["code"]) == (403, "forbidden_bridge")
    assert _post(client, x.headers["b2"], s.e2, "disconnected", "2026-11-02T14:30:00+07:00").json()["accepted"]
    assert _periods(engine, s.e2)[-1] == ("02/11 14:05", "02/11 14:30", "webhook")


def test_unbound_revoked_and_user_tokens(client: TestClient, engine: Engine, settings: Settings):
    x = _setup(engine, settings)
    s = x.s
    assert _post(client, x.headers["free"], s.e2, "connected", "2026-11-02T14:05:00+07:00").status_code == 200
    revoked = _post(client, x.headers["revoked"], s.e1, "connected", "2026-10-31T21:30:00+07:00")
    assert (revoked.status_code, revoked.json()["code"]) == (401, "invalid_token")
    unknown = _post(client, {"Authorization": "Bearer cfa_khong-ton-tai"}, s.e1, "connected",
                    "2026-10-31T21:30:00+07:00")
    assert unknown.status_code == 401
    viewer = _post(client, x.headers["viewer"], s.e1, "connected", "2026-10-31T21:30:00+07:00")
    assert (viewer.status_code, viewer.json()["code"]) == (403, "forbidden_role")
    secretariat = _post(client, x.headers["secretariat"], s.e1, "connected", "2026-10-31T21:30:00+07:00")
    assert (secretariat.status_code, secretariat.json()["record"]["source"]) == (200, "bridge")


def _open_e2_call(engine: Engine, settings: Settings) -> sc.Scenario:
    """E2 connected to M1 at 23:30 and never disconnected (committed)."""
    with make_session(engine) as session:
        s = sc.build(session, settings, with_calls=False)
        admin = users.principal_for(session, make_user(session, Role.admin))
        calls.report_call(session, settings, admin, CallEventCreate(endpoint_id=s.e2, event="connected",
                                                                   at=sc.local(31, 23, 30, month=10)), now=sc.NOW)
        session.commit()
    return s


def test_close_due_closes_an_open_record_at_the_occurrence_end(engine: Engine, settings: Settings):
    s = _open_e2_call(engine, settings)
    seen: list[events.Published] = []
    events.subscribe(seen.extend)
    try:
        assert calls.close_due(engine, sc.local(1, 0, 59).astimezone(UTC)) == 0  # M1 still running
        assert _periods(engine, s.e2) == [("31/10 23:30", None, "bridge")]
        assert calls.close_due(engine, sc.NOW.astimezone(UTC)) == 1
        assert calls.close_due(engine, sc.NOW.astimezone(UTC)) == 0
    finally:
        events.unsubscribe(seen.extend)
    assert _periods(engine, s.e2) == [("31/10 23:30", "01/11 01:00", "bridge")]
    assert [(p.message["type"], p.message["data"]["disconnected_at"]) for p in seen] == [
        ("call.disconnected", "2026-10-31T18:00:00Z")]


def test_running_app_closes_open_records_on_the_scheduler_cadence(engine: Engine, settings: Settings):
    s = _open_e2_call(engine, settings)  # M1 ended on 01/11, before the real clock's now
    fast = settings.model_copy(update={"scheduler_interval_seconds": 0.05})
    with TestClient(create_app(fast, engine=engine)):
        deadline = time.monotonic() + 20
        while _periods(engine, s.e2)[0][1] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _periods(engine, s.e2) == [("31/10 23:30", "01/11 01:00", "bridge")]
