"""``create_app()``: wires settings, database, routers, middleware and the one error handler.

This is the only module that imports every domain.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confsvc import __version__, events
from confsvc.config import Settings, get_settings
from confsvc.db import make_engine
from confsvc.endpoints.routes import router as endpoints_router
from confsvc.endpoints import probe
from confsvc.endpoints.status_routes import router as endpoint_status_router
from confsvc.errors import ConfsvcError, PayloadTooLarge
from confsvc.metrics import Metrics, MetricsMiddleware
from confsvc.metrics import router as metrics_router
from confsvc.migrate import assert_migrated
from confsvc.calendar import feeds as calendar_feeds
from confsvc.live import channel as live_channel
from confsvc.mail import outbox as mail
from confsvc.live.snapshot import record_join_instructions
from confsvc.calendar.routes import router as calendar_router
from confsvc.mail.routes import router as mail_router
from confsvc.stats import calls as call_records
from confsvc.stats.routes import router as stats_router
from confsvc.stats import usage as usage_summary
from confsvc.scheduling import scheduler
from confsvc.scheduling.readiness_routes import router as readiness_router
from confsvc.scheduling.routes import router as scheduling_router
from confsvc.users.routes import router as users_router
from confsvc.web.pages import router as web_router
from confsvc.web.pages import static_files
from confsvc.web.csrf import ApiCsrfGuard
from confsvc.web import errors as web_errors

log = logging.getLogger("confsvc")
# join.instructions are recorded beside scheduling's meeting.* events, in the same transaction.
events.on_record(record_join_instructions)


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, by header and by counting the stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            response = JSONResponse(
                {"detail": f"request body larger than {self.max_bytes} bytes", "code": PayloadTooLarge.code},
                status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"request body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)


def _error(status: int, detail: Any, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse(jsonable_encoder({"detail": detail, "code": code, **extra}), status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConfsvcError)
    async def _domain(_: Request, exc: ConfsvcError) -> JSONResponse:
        return JSONResponse(jsonable_encoder(exc.to_body()), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return _error(422, summary or "invalid request", "validation_error", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail, f"http_{exc.status_code}", )

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
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

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: OperationalError) -> JSONResponse:
        log.exception("database unavailable")
        return _error(503, "database unavailable, try again", "database_unavailable")

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
                try:
                    yield
                finally:
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
    )
    app.state.settings = settings
    if engine is not None:
        app.state.engine = engine
    _install_error_handlers(app)
    app.add_middleware(ApiCsrfGuard)  # inside SessionMiddleware: cookie-authenticated API writes need X-CSRF-Token
    app.add_middleware(SessionMiddleware, secret_key=secret_key, session_cookie="confsvc_session",
                       max_age=settings.session_max_age_seconds, same_site="lax")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg", status_code=308)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> dict[str, str]:
        """Liveness and database reachability: ``{"status": "ok", "database": "ok"}``."""
        with request.app.state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok", "database": "ok", "version": __version__}

    app.include_router(metrics_router(metrics))
    app.include_router(users_router)
    app.include_router(endpoints_router)
    app.include_router(endpoint_status_router)
    app.include_router(scheduling_router)
    app.include_router(readiness_router)
    app.include_router(calendar_router)
    app.include_router(mail_router)
    app.include_router(stats_router)
    app.include_router(live_channel.router)
    app.include_router(web_router)
    app.mount("/static", static_files(), name="static")
    return app
