"""Prometheus metrics at ``/metrics`` (SPEC "Interfaces"), with prometheus-client.

- ``confsvc_http_requests_total{method, route, status}`` and ``confsvc_http_request_duration_seconds``
  (route = the path template, e.g. ``/api/v1/meetings/{meeting_id}``, so ids do not explode cardinality);
- ``confsvc_events_total{type}``: domain events committed by this process (bookings, cancellations,
  status changes, readiness, calls), counted from the outbox's after-commit publication.

Gauges read when scraped, from sources each domain provides (``Metrics.add_gauges``, wired by ``main``):

- ``confsvc_ws_connections{kind}``: open live-channel WebSockets of this process by channel kind
  (``room``, ``unit``, ``secretariat``);
- ``confsvc_outbox_lag_events``: the newest committed event id minus the last id this process's live
  hub has delivered (0 when the live channel is current; grows while the fan-out is stuck);
- ``confsvc_mail_backlog``: e-mail deliveries still ``pending`` (database-wide).

Each process counts its own; with several uvicorn workers, scrape each or run prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), which this module leaves to the deployment.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confsvc import events
from confsvc.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

#: One gauge reading: name, help text, labels, value.
GaugeSample = tuple[str, str, dict[str, str], float]
GaugeSource = Callable[[], Iterable[GaugeSample]]


class _Gauges(Collector):
    """Reads every source at scrape time; a failing source is logged and left out of that scrape."""

    def __init__(self) -> None:
        self.sources: list[GaugeSource] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for source in self.sources:
            try:
                samples = list(source())
            except Exception:  # noqa: BLE001 (a scrape must not fail because one reading did)
                log.exception("metrics gauge source %r failed", source)
                continue
            for name, help_text, labels, value in samples:
                family = families.get(name)
                if family is None:
                    family = families[name] = GaugeMetricFamily(name, help_text, labels=sorted(labels))
                family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()


class Metrics:
    """One registry per app, so tests and several apps in one process never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("confsvc_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=self.registry)
        self.duration = Histogram("confsvc_http_request_duration_seconds", "Time to answer an HTTP request.",
                                  ["method", "route"], registry=self.registry)
        self.events = Counter("confsvc_events", "Domain events committed by this process.", ["type"],
                              registry=self.registry)
        self._gauges = _Gauges()
        self.registry.register(self._gauges)

    def add_gauges(self, *sources: GaugeSource) -> None:
        """Read ``sources`` at every scrape (each yields ``(name, help, labels, value)``)."""
        self._gauges.sources.extend(sources)

    def count_events(self, batch: list[events.Published]) -> None:
        for published in batch:
            self.events.labels(published.message["type"]).inc()


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.duration.labels(scope["method"], template).observe(time.perf_counter() - started)


#: Client addresses that may read ``/metrics`` when no ``metrics_token`` is set.
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def require_scraper(request: Request) -> None:
    """Access to ``/metrics`` (issue 16, defect 14d): with ``CONFSVC_METRICS_TOKEN`` set, the request
    must carry ``Authorization: Bearer <that token>`` (compared in constant time); without it, only a
    loopback client (127.0.0.1, ::1) may read. Raises Unauthorized (401) / Forbidden (403)."""
    expected = request.app.state.settings.metrics_token
    if expected:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
            raise Unauthorized("send `Authorization: Bearer <metrics token>`", code="metrics_token_required")
        return
    if request.client is None or request.client.host not in LOOPBACK:
        raise Forbidden("metrics are served to loopback clients only; set CONFSVC_METRICS_TOKEN to scrape "
                        "from elsewhere", code="metrics_loopback_only")


def router(metrics: Metrics) -> APIRouter:
    api = APIRouter(tags=["ops"])

    @api.get("/metrics", include_in_schema=True, dependencies=[Depends(require_scraper)])
    def metrics_endpoint() -> Response:
        """Prometheus text exposition format. Bearer ``CONFSVC_METRICS_TOKEN``, or a loopback client when
        unset; 401 ``metrics_token_required``, 403 ``metrics_loopback_only``."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
