"""``create_app()``: wires settings, database, routers, middleware and the one error handler.

This is the only module that imports every domain.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confsvc import __version__, events, health, logs
from confsvc.calendar import feeds as calendar_feeds
from confsvc.calendar.routes import router as calendar_router
from confsvc.calls import intake as call_records
from confsvc.calls.routes import router as calls_router
from confsvc.config import Settings, get_settings
from confsvc.db import make_engine, make_session
from confsvc.endpoints import probe
from confsvc.endpoints.routes import router as endpoints_router
from confsvc.endpoints.status_routes import router as endpoint_status_router
from confsvc.errors import ConfsvcError, ErrorBody, PayloadTooLarge
from confsvc.live import channel as live_channel
from confsvc.live import revocation as live_revocation
from confsvc.live.snapshot import JOIN_SOURCES, record_join_instructions
from confsvc.mail import outbox as mail
from confsvc.mail.routes import router as mail_router
from confsvc.metrics import Metrics, MetricsMiddleware
from confsvc.metrics import router as metrics_router
from confsvc.middleware import LiveChannels, RequestId, SecurityHeaders
from confsvc.migrate import assert_migrated
from confsvc.scheduling import port_guard, scheduler
from confsvc.scheduling import repository as scheduling_repository
from confsvc.scheduling.grid_routes import router as grid_router
from confsvc.scheduling.office_routes import router as office_router
from confsvc.scheduling.readiness_routes import router as readiness_router
from confsvc.scheduling.routes import router as scheduling_router
from confsvc.scheduling.unit_routes import router as unit_changes_router
from confsvc.scheduling.user_routes import router as user_changes_router
from confsvc.stats import summary_job as usage_summary
from confsvc.stats.audit_routes import router as audit_router
from confsvc.stats.routes import router as stats_router
from confsvc.text import natural
from confsvc.users import token_cache
from confsvc.users.routes import router as users_router
from confsvc.users.throttle import LoginThrottle
from confsvc.users.token_cache import PrincipalCache
from confsvc.web import errors as web_errors
from confsvc.web.csrf import ApiCsrfGuard
from confsvc.web.pages import router as web_router
from confsvc.web.pages import static_files

log = logging.getLogger("confsvc")
#: The cyclic collector's thresholds while serving (CPython's are 700, 10, 10). A full collection scans
#: every object not frozen at start-up, and thousands of live connections are ~1M of them (0.1–0.4 s per
#: collection at 4,000 displays); with CPython's third threshold, the displays reconnecting after a
#: restart set off seven in a row, 1.5 s of the storm's 3.8 s of CPU (``bench/reconnect.py``). A full
#: collection is now considered 10× less often; young garbage is collected as before.
GC_THRESHOLDS = (700, 10, 100)
#: ``FastAPI(telemetry=…)``: every part of FastAPI's OpenTelemetry instrumentation off.
NO_TELEMETRY: dict[str, bool] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def install_hooks() -> None:
    """Install every process-wide listener and recorder; idempotent. No import installs any.

    - ``events.install``: recorded events reach the subscribers after commit, never after a rollback;
    - ``record_join_instructions``: ``join.instructions`` recorded beside scheduling's ``meeting.*``
      events, in the same transaction (scheduling never imports live).

    Derived data (the calendar feeds' version, the usage summary's marks) needs no listener: database
    triggers keep it fresh (migrations ``0012_feed_versions`` and ``20261208_usage_triggers``).

    :func:`create_app` calls it, and so do the CLI commands and the demo loader that write without an app.
    """
    events.install()
    port_guard.install()  # bridges' ports checked at commit before the events' final step
    scheduling_repository.install()  # bridges kept for a transaction's later reads, dropped at its end
    events.on_record(record_join_instructions, types=JOIN_SOURCES)
    live_revocation.install()  # revoked tokens and disabled users close their live channels
    token_cache.install()  # user and unit changes end cached token verifications


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, by header and by counting the stream.

    A chunked body (no ``Content-Length``) that passes the limit is cut off: the application sees a
    disconnect, its answer (a parse error) is dropped and the client gets the 413 (issue 16, 14c).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes",
                             "code": PayloadTooLarge.code}, status_code=413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        size = natural(length.decode("latin-1")) if length is not None else None
        if length is not None and (size is None or size > self.max_bytes):
            await self._too_large()(scope, receive, send)
            return
        seen, too_large, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the application's answer to a cut-off body is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large or started:
                raise
        if too_large and not started:
            await self._too_large()(scope, receive, send)


#: Seconds a client is told to wait (``Retry-After``) after a transient database failure.
RETRY_AFTER_SECONDS = 5


def _error(status: int, detail: Any, code: str, **extra: Any) -> JSONResponse:
    retry = extra.get("retry_after")
    return JSONResponse(jsonable_encoder({"detail": detail, "code": code, **extra}), status_code=status,
                        headers={"Retry-After": str(retry)} if retry is not None else None)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConfsvcError)
    async def _domain(_: Request, exc: ConfsvcError) -> JSONResponse:
        retry = exc.extra.get("retry_after")
        body = exc.to_body()
        return JSONResponse(body if exc.body_is_json else jsonable_encoder(body), status_code=exc.status_code,
                            headers={"Retry-After": str(retry)} if retry is not None else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return _error(422, summary or "invalid request", "validation_error", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, exc.detail, f"http_{exc.status_code}")
        response.headers.update(exc.headers or {})  # 405's Allow (RFC 9110 §15.5.6), 401's WWW-Authenticate
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        if port_guard.refused(exc):  # a concurrent booking took the bridge's ports (SPEC rule 7)
            with make_session(request.app.state.engine, write=False) as session:
                ports = port_guard.conflict_of(exc, session, request.app.state.settings.zone)
            log.info("bridge ports taken at commit answered as 409: %s", exc.orig)
            return JSONResponse(ports.to_body(), status_code=409)
        # A race the service's friendly check could not see; the database kept the promise.
        log.info("integrity error answered as 409: %s", exc.orig)
        return _error(409, "the request conflicts with a concurrent change; reload and retry", "integrity_conflict")

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # A number or date the drivers or datetime arithmetic cannot hold (year 1 minus a check lead,
        # a 30-digit id): bad input, never a 500.
        log.info("out-of-range input answered as 422: %s", exc)
        return _error(422, "a number or date in the request is out of the supported range", "out_of_range")

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        log.info("database refused a value, answered as 422: %s", exc.orig)
        return _error(422, "a value in the request is out of range for the database", "out_of_range")

    outage_log = app.state.outage_log = logs.Throttled(log, app.state.settings.outage_log_interval_seconds)

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: OperationalError) -> JSONResponse:
        # One log line per interval (traceback on the first), not one per request (issue 16, 14e);
        # the body names the problem: a read-only database or a full disk is not worth a retry.
        code = health.storage_problem(exc)
        detail, transient = health.PROBLEMS[code]
        outage_log.warning(code, f"{code}: {exc.orig}", exc=exc)
        return _error(503, detail, code, **({"retry_after": RETRY_AFTER_SECONDS} if transient else {}))

    @app.exception_handler(sa.exc.TimeoutError)
    async def _pool_timeout(_: Request, exc: sa.exc.TimeoutError) -> JSONResponse:
        outage_log.warning("pool_timeout", f"database connection pool exhausted: {exc}")
        return _error(503, "the server is busy, try again", "database_busy", retry_after=RETRY_AFTER_SECONDS)


def _declare_our_errors(app: FastAPI) -> None:
    """The OpenAPI document declares the 422 we answer (``ErrorBody``: ``detail`` a string, ``code``,
    ``errors`` the field list), not FastAPI's ``HTTPValidationError`` (issue 16, defect 14a)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas["ErrorBody"] = body
            declared = {"description": "Invalid input: `detail` says what, `errors` lists each field",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if "422" in operation.get("responses", {}):
                        operation["responses"]["422"] = declared
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    web_errors.install(app)  # a browser asking for a page gets these answers as Vietnamese HTML pages


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the ASGI application.

    Args:
        settings: defaults to :func:`get_settings` (environment / ``.env``).
        engine: an existing engine (tests share one); otherwise one is made from the settings.

    Raises (at startup, from the lifespan):
        NotMigrated: the database is not at the code's migration head.
        RuntimeError: no usable secret key outside demo mode.
    """
    settings = settings or get_settings()
    secret_key = settings.resolved_secret_key()
    logs.install(settings.log_format)  # secrets redacted and the request id on every line (issue 16)
    install_hooks()
    owns_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or make_engine(settings.effective_database_url)
        events.subscribe(metrics.count_events)
        try:
            assert_migrated(app.state.engine)
            calendar_feeds.warm_up(app.state.engine, settings)
            async with live_channel.running(app), mail.running(app.state.engine, settings), \
                    probe.running(app.state.engine, settings), scheduler.running(app.state.engine, settings), \
                    call_records.running(app.state.engine, settings), \
                    usage_summary.running(app.state.engine, settings):
                # Startup's ~200k long-lived objects (modules, routes, mappers) leave the cyclic
                # collector's view: otherwise the first full collection, triggered by whichever
                # request allocates enough, scans them all (~100 ms). A few KB of startup garbage
                # stay with them; ``gc.collect()`` first would cost that 100 ms at every start.
                gc.freeze()
                # One worker's synchronous requests at once (``Settings.request_threads``).
                anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
                thresholds = gc.get_threshold()
                gc.set_threshold(*GC_THRESHOLDS)
                try:
                    yield
                finally:
                    gc.set_threshold(*thresholds)
                    gc.unfreeze()
        finally:
            events.unsubscribe(metrics.count_events)
            if owns_engine:
                app.state.engine.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline package, never a CDN (an
    # intranet cannot reach one): /static-offline-docs/ serves the package's copies.
    app = FastAPIOffline(
        favicon_url="/static/favicon.svg",
        title="confsvc",
        version=__version__,
        description="Videoconference scheduling and room management for a province's online meeting network.",
        lifespan=lifespan,
        # confsvc exports its own Prometheus metrics (/metrics) and logs; FastAPI's OpenTelemetry layer
        # would otherwise look up its providers in os.environ on every request and WebSocket handshake
        # (6 % of a reconnect storm's CPU, bench/reconnect.py).
        telemetry=NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle(settings)
    app.state.principals = PrincipalCache(settings.auth_cache_seconds)
    if engine is not None:
        app.state.engine = engine
    _install_error_handlers(app)
    _declare_our_errors(app)
    app.add_middleware(ApiCsrfGuard)  # inside SessionMiddleware: cookie-authenticated API writes need X-CSRF-Token
    session_options: dict[str, Any] = {"secret_key": secret_key, "session_cookie": "confsvc_session",
                                       "max_age": settings.session_max_age_seconds, "same_site": "lax"}
    app.add_middleware(SessionMiddleware, **session_options)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    metrics = Metrics()
    metrics.add_gauges(lambda: live_channel.gauges(app), lambda: mail.gauges(app.state.engine))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders, always_secure=settings.cookie_secure)
    # WebSocket handshakes go straight to the live channels, with the web session (a confsvc page's
    # channel is authenticated by its cookie) and nothing else of the HTTP stack (issue 14).
    app.add_middleware(LiveChannels, channels=Router(routes=live_channel.ws_routes),
                       session=lambda channels: SessionMiddleware(channels, **session_options))
    app.add_middleware(RequestId)  # outermost: every log line of the request, the access line included

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg", status_code=308)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (no dependency is touched, and no request thread: it answers
        while every one of ``request_threads`` is busy). ``{"status": "ok", "version"}``. Readiness is
        ``/readyz``."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready: what failed is named"}})
    def readyz(request: Request) -> JSONResponse:
        """Readiness: the database accepts a committed write (a heartbeat row) and the broker (Redis,
        when ``CONFSVC_REDIS_URL`` is set) answers. 200 ``{"status": "ready", "database": "ok",
        "broker": "ok" | "not configured"}``; 503 ``{"status": "not ready", "database":
        "database_read_only" | "disk_full" | "database_unavailable", "broker": "unreachable", ...}``
        with ``Retry-After``."""
        ready, report = health.ready_report(request.app.state.engine, request.app.state.settings.redis_url)
        if ready:
            return JSONResponse({"status": "ready", **report, "version": __version__})
        request.app.state.outage_log.warning("not_ready", f"not ready: {report}")
        return JSONResponse({"status": "not ready", **report, "version": __version__}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    app.include_router(metrics_router(metrics))
    app.include_router(users_router)
    app.include_router(user_changes_router)
    app.include_router(unit_changes_router)  # before endpoints': /units/merge is not /units/{unit_id}
    app.include_router(endpoints_router)
    app.include_router(endpoint_status_router)
    app.include_router(scheduling_router)
    app.include_router(readiness_router)
    app.include_router(grid_router)
    app.include_router(office_router)
    app.include_router(calendar_router)
    app.include_router(mail_router)
    app.include_router(calls_router)
    app.include_router(stats_router)
    app.include_router(audit_router)
    app.include_router(live_channel.router)
    app.include_router(web_router)
    app.mount("/static", static_files(), name="static")
    return app
