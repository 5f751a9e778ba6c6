"""/metrics: Prometheus exposition with request counts by route template and domain events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from confsvc import events
from confsvc.main import create_app
from confsvc.users.models import Role
from tests.factories import bearer, make_endpoint, make_user


@pytest.fixture
def client(settings, engine) -> Iterator[TestClient]:
    """A loopback client: without ``CONFSVC_METRICS_TOKEN`` only loopback may read ``/metrics``."""
    with TestClient(create_app(settings, engine=engine), client=("127.0.0.1", 50000)) as client:
        yield client


def _samples(client: TestClient) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_requests_counted_by_route_template_and_events_by_type(client: TestClient, session: Session) -> None:
    endpoint = make_endpoint(session)
    headers = bearer(session, make_user(session, Role.viewer))
    session.commit()
    for _ in range(3):
        assert client.get(f"/api/v1/endpoints/{endpoint.id}", headers=headers).status_code == 200
    assert client.get("/api/v1/endpoints/999999", headers=headers).status_code == 404
    events.record(session, "endpoint.status", {"endpoint_id": endpoint.id, "status": "online"})
    session.commit()
    samples = _samples(client)
    route = "/api/v1/endpoints/{endpoint_id}"
    assert samples[("confsvc_http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))] == 3
    assert samples[("confsvc_http_requests_total", (("method", "GET"), ("route", route), ("status", "404")))] == 1
    assert samples[("confsvc_events_total", (("type", "endpoint.status"),))] == 1
    assert samples[("confsvc_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))] == 4


def test_metrics_are_not_open_to_any_address(settings, engine) -> None:
    with TestClient(create_app(settings, engine=engine), client=("203.0.113.9", 50000)) as remote:
        response = remote.get("/metrics")
    assert (response.status_code, response.json()["code"]) == (403, "metrics_loopback_only")


def test_metrics_token_is_required_when_set(settings, engine) -> None:
    with_token = settings.model_copy(update={"metrics_token": "giam-sat-7f3a9c"})
    with TestClient(create_app(with_token, engine=engine), client=("203.0.113.9", 50000)) as remote:
        missing = remote.get("/metrics")
        right = remote.get("/metrics", headers={"Authorization": "Bearer giam-sat-7f3a9c"})
    with TestClient(create_app(with_token, engine=engine), client=("127.0.0.1", 50000)) as local:
        wrong = local.get("/metrics", headers={"Authorization": "Bearer giam-sat-0000"})
    assert (missing.status_code, missing.json()["code"]) == (401, "metrics_token_required")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "metrics_token_required")
    assert (right.status_code, right.headers["content-type"].startswith("text/plain; version=")) == (200, True)


def test_gauges_count_open_websockets_by_kind_outbox_lag_and_mail_backlog(
        db_url: str, tmp_path, engine) -> None:
    """Issue 12 "Operations": the gauges a secretariat's monitoring needs, read by scraping /metrics."""
    import secrets
    from datetime import timedelta

    import httpx
    import sqlalchemy as sa
    from prometheus_client.parser import text_string_to_metric_families

    from confsvc.clock import utc_now
    from confsvc.config import Settings
    from confsvc.db import make_session
    from confsvc.live import display
    from confsvc.mail.models import MailDelivery, MailMessage
    from confsvc.main import create_app
    from confsvc.users import service as users
    from tests.factories import make_bridge, make_meeting, make_room, make_unit, next_monday_local
    from tests.live_support import ThreadServer, recv

    with make_session(engine) as session:
        unit = make_unit(session)
        room = make_room(session, unit)
        make_bridge(session)
        make_endpoint(session, room)
        secretariat = make_user(session, Role.secretariat)
        _, display_secret = display.create_display_token(session, users.principal_for(session, secretariat), room.id)
        viewer = bearer(session, make_user(session, Role.viewer))["Authorization"].split(" ", 1)[1]
        start = next_monday_local()
        meeting = make_meeting(session, chair_room=room, start=start, end=start + timedelta(hours=1)).meeting
        message = MailMessage(event_id=1, meeting_id=meeting.id, method="REQUEST", subject="s", body_text="b", ics="i")
        session.add(message)
        session.flush()
        session.add_all([MailDelivery(message_id=message.id, recipient=f"r{n}@example.vn") for n in range(3)]
                        + [MailDelivery(message_id=message.id, recipient="done@example.vn", status="sent")])
        session.commit()
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    with ThreadServer(create_app(settings, engine=engine)) as server, \
            server.ws(f"/ws/rooms/{room.id}?token={display_secret}") as a, \
            server.ws(f"/ws/units/{unit.id}?token={viewer}") as b, server.ws(f"/ws/units/{unit.id}?token={viewer}") as c:
        for ws in (a, b, c):
            assert recv(ws)["type"] == "snapshot"
        # An event this process's hub has not delivered (another process's, its notification lost).
        with make_session(engine) as session:
            session.execute(sa.insert(events.Event).values(type="endpoint.status", data={}, room_ids=[],
                                                           unit_ids=[], at=utc_now()))
            session.commit()
        text = httpx.get(f"{server.base}/metrics", timeout=10).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert {k: v for k, v in samples.items() if k[0] in (
        "confsvc_ws_connections", "confsvc_outbox_lag_events", "confsvc_mail_backlog")} == {
        ("confsvc_ws_connections", (("kind", "room"),)): 1.0,
        ("confsvc_ws_connections", (("kind", "unit"),)): 2.0,
        ("confsvc_ws_connections", (("kind", "secretariat"),)): 0.0,
        ("confsvc_outbox_lag_events", ()): 1.0,
        ("confsvc_mail_backlog", ()): 3.0}
