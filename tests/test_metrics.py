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
