"""Liveness and readiness (issue 16, defect 11), and what a storage failure means.

- liveness (``/healthz``): the process answers; touches nothing.
- readiness (``/readyz``): the database accepts a *committed* write (one heartbeat row is
  upserted: a read-only file or a full disk fails here, where ``SELECT 1`` would pass), and the
  broker (Redis) answers a PING when ``CONFSVC_REDIS_URL`` is set.

:func:`storage_problem` names what an ``OperationalError`` means, for the error body and the log.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from confsvc.clock import utc_now
from confsvc.db import UTCDateTime, make_session


class Heartbeat(SQLModel, table=True):
    """One row (``id`` 1) that readiness writes, so "accepts writes" is tested by a real commit."""

    __tablename__ = "heartbeats"

    id: int = Field(primary_key=True)
    beat_at: datetime = Field(sa_type=UTCDateTime)


#: (code, English detail, transient?) per kind of storage failure.
PROBLEMS = {
    "database_read_only": ("the database is read-only (file or volume permissions, or a read-only replica)", False),
    "disk_full": ("the database's disk is full", False),
    "database_unavailable": ("the database is unreachable or busy, try again", True),
}


def storage_problem(exc: BaseException) -> str:
    """The code of :data:`PROBLEMS` that ``exc`` (a driver error, or SQLAlchemy's wrapper) shows."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "database_read_only"
    if "disk is full" in text or "no space left" in text or "could not extend file" in text \
            or "database or disk is full" in text:
        return "disk_full"
    return "database_unavailable"


def check_database(engine: Engine) -> None:
    """Upserts the heartbeat row in a committed write transaction. Raises the driver's error."""
    now = utc_now()
    with make_session(engine) as session:
        row = session.get(Heartbeat, 1)
        if row is None:
            session.add(Heartbeat(id=1, beat_at=now))
        else:
            row.beat_at = now
        session.commit()


def check_broker(redis_url: str | None, timeout_seconds: float = 2.0) -> str:
    """``"ok"`` when Redis answers a PING, ``"not configured"`` without a URL. Raises on failure."""
    if not redis_url:
        return "not configured"
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def ready_report(engine: Engine, redis_url: str | None) -> tuple[bool, dict[str, str]]:
    """``(ready, {"database": "ok" | code, "broker": "ok" | "not configured" | "unreachable"})``."""
    report: dict[str, str] = {}
    try:
        check_database(engine)
        report["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        report["database"] = storage_problem(exc)
    try:
        report["broker"] = check_broker(redis_url)
    except Exception:  # noqa: BLE001 - any failure of the broker is "unreachable" for readiness
        report["broker"] = "unreachable"
    ready = report["database"] == "ok" and report["broker"] in ("ok", "not configured")
    return ready, report
