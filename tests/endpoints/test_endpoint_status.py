"""Endpoint status reports (POST /endpoints/{id}/status), agent tokens and the status history, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import events
from confsvc.db import make_session
from confsvc.endpoints.models import Endpoint, EndpointStatusChange
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user


def _setup(engine: Engine) -> tuple[dict, dict]:
    with make_session(engine) as session:
        unit, other_unit = make_unit(session), make_unit(session)
        room, other_room = make_room(session, unit), make_room(session, other_unit)
        ep, other_ep = make_endpoint(session, room), make_endpoint(session, other_room)
        bridge = make_bridge(session)
        h = {role: bearer(session, make_user(session, role)) for role in (Role.admin, Role.secretariat)}
        h["operator"] = bearer(session, make_user(session, Role.operator, units=[unit]))
        ids = {"room": room.id, "other_room": other_room.id, "ep": ep.id, "other_ep": other_ep.id,
               "bridge": bridge.id, "unit": unit.id}
        session.commit()
    return ids, h


def _agent(client: TestClient, admin: dict, **binding) -> tuple[dict, dict]:
    r = client.post("/api/v1/agent-tokens", headers=admin, json={"name": "Tác tử phòng họp", **binding})
    assert r.status_code == 201, r.text
    return r.json(), {"Authorization": f"Bearer {r.json()['token']}"}


def _events(engine: Engine) -> list[dict]:
    with make_session(engine, write=False) as session:
        return [p.message for p in events.replay(session, 0) if p.message["type"] == "endpoint.status"]


def test_agent_token_reports_a_change_once_and_repeats_only_refresh_last_seen(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    token, agent = _agent(client, h[Role.admin], endpoint_id=ids["ep"])
    assert token["token"].startswith("cfa_") and token["prefix"] == token["token"][:12]
    assert (token["endpoint_id"], token["bridge_id"], token["revoked_at"]) == (ids["ep"], None, None)

    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    r = client.post(f"/api/v1/endpoints/{ids['ep']}/status", headers=agent,
                    json={"status": "online", "at": t1.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json() == {"endpoint_id": ids["ep"], "room_id": ids["room"], "status": "online", "previous": "unknown",
                        "changed": True, "stale": False, "at": t1.isoformat().replace("+00:00", "Z"),
                        "last_seen_at": t1.isoformat().replace("+00:00", "Z")}
    t2 = t1 + timedelta(minutes=1)
    repeat = client.post(f"/api/v1/endpoints/{ids['ep']}/status", headers=agent,
                         json={"status": "online", "at": t2.replace(tzinfo=None).isoformat()})
    assert (repeat.json()["changed"], repeat.json()["last_seen_at"]) == (False, t2.isoformat().replace("+00:00", "Z"))

    [message] = _events(engine)
    assert message["data"] == {"endpoint_id": ids["ep"], "room_id": ids["room"], "status": "online",
                               "previous": "unknown", "at": t1.isoformat().replace("+00:00", "Z"), "source": "agent"}
    with make_session(engine, write=False) as session:
        endpoint = session.get(Endpoint, ids["ep"])
        assert (endpoint.status.value, endpoint.last_seen_at) == ("online", t2)
        history = session.exec(select(EndpointStatusChange)).all()
        assert [(c.status.value, c.previous.value, c.at, c.source) for c in history] == [
            ("online", "unknown", t1, "agent")]

    other = client.post(f"/api/v1/endpoints/{ids['other_ep']}/status", headers=agent, json={"status": "fault"})
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_endpoint")
    listed = client.get("/api/v1/agent-tokens", headers=h[Role.admin]).json()
    assert [t["id"] for t in listed] == [token["id"]] and "token" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    assert client.delete(f"/api/v1/agent-tokens/{token['id']}", headers=h[Role.admin]).status_code == 204
    revoked = client.post(f"/api/v1/endpoints/{ids['ep']}/status", headers=agent, json={"status": "offline"})
    assert (revoked.status_code, revoked.json()["code"]) == (401, "invalid_token")
    assert len(_events(engine)) == 1


def test_who_may_report(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    _, bridge_agent = _agent(client, h[Role.admin], bridge_id=ids["bridge"])
    url = f"/api/v1/endpoints/{ids['ep']}/status"
    assert client.post(url, headers=bridge_agent, json={"status": "in_call"}).json()["previous"] == "unknown"
    assert client.post(url, headers=h[Role.admin], json={"status": "online"}).json()["previous"] == "in_call"
    fault = client.post(url, headers=h["operator"], json={"status": "fault", "detail": "Mất tín hiệu camera"})
    assert fault.status_code == 200 and fault.json()["changed"] is True
    outside = client.post(f"/api/v1/endpoints/{ids['other_ep']}/status", headers=h["operator"],
                          json={"status": "fault"})
    assert (outside.status_code, outside.json()["code"]) == (403, "forbidden_scope")
    secretariat = client.post(url, headers=h[Role.secretariat], json={"status": "fault"})
    assert (secretariat.status_code, secretariat.json()["code"]) == (403, "forbidden_role")
    assert client.post(url, json={"status": "online"}).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer cfa_nope"}, json={"status": "online"}).status_code == 401
    assert client.post("/api/v1/endpoints/999999/status", headers=h[Role.admin],
                       json={"status": "online"}).json()["code"] == "endpoint_not_found"
    assert client.post(url, headers=h[Role.admin], json={"status": "asleep"}).status_code == 422
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    assert client.post(url, headers=h[Role.admin], json={"status": "online", "at": future}).json()["code"] == \
        "at_in_future"
    assert [(m["data"]["status"], m["data"]["source"]) for m in _events(engine)] == [
        ("in_call", "bridge"), ("online", "user"), ("fault", "user")]

    history = client.get(f"/api/v1/endpoints/{ids['ep']}/status-history", headers=h["operator"])
    assert history.status_code == 200
    assert history.json()["total"] == 3
    assert [(c["status"], c["previous"], c["source"], c["detail"]) for c in history.json()["items"]] == [
        ("fault", "online", "user", "Mất tín hiệu camera"), ("online", "in_call", "user", ""),
        ("in_call", "unknown", "bridge", "")]
    assert client.get(f"/api/v1/endpoints/{ids['other_ep']}/status-history",
                      headers=h["operator"]).status_code == 403
    assert client.get(f"/api/v1/endpoints/{ids['ep']}/status-history", headers=h[Role.secretariat],
                      params={"limit": 1, "offset": 1}).json()["items"][0]["status"] == "online"


def test_a_delayed_report_older_than_the_latest_change_is_ignored(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    url = f"/api/v1/endpoints/{ids['ep']}/status"
    now = datetime.now(UTC).replace(microsecond=0)
    assert client.post(url, headers=h[Role.admin], json={"status": "offline", "at": now.isoformat()}).json()[
        "last_seen_at"] is None
    late = client.post(url, headers=h[Role.admin],
                       json={"status": "online", "at": (now - timedelta(minutes=1)).isoformat()})
    assert (late.json()["stale"], late.json()["changed"], late.json()["status"]) == (True, False, "offline")
    assert [m["data"]["status"] for m in _events(engine)] == ["offline"]


def test_agent_token_admin_only_and_validation(client: TestClient, engine: Engine):
    ids, h = _setup(engine)
    assert client.post("/api/v1/agent-tokens", headers=h[Role.secretariat], json={"name": "x"}).status_code == 403
    assert client.get("/api/v1/agent-tokens", headers=h["operator"]).status_code == 403
    both = client.post("/api/v1/agent-tokens", headers=h[Role.admin],
                       json={"name": "x", "bridge_id": ids["bridge"], "endpoint_id": ids["ep"]})
    assert both.status_code == 422
    assert client.post("/api/v1/agent-tokens", headers=h[Role.admin],
                       json={"name": "x", "endpoint_id": 999999}).json()["code"] == "unknown_endpoint"
    assert client.delete("/api/v1/agent-tokens/999999", headers=h[Role.admin]).json()["code"] == \
        "agent_token_not_found"
