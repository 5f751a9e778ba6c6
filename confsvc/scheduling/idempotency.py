"""Idempotent requests (issue 12): an ``Idempotency-Key`` on ``POST /api/v1/meetings`` (and the web
booking form's hidden ``idempotency_key``) makes a double submit or a retried request book once and
get the same answer (IETF draft-ietf-httpapi-idempotency-key-header).

The key is scoped to the user and stored with the answer in the booking's own transaction:

- first use: the key row is inserted (``INSERT … ON CONFLICT DO NOTHING``), the request runs, its
  answer is stored, all in one commit. A refusal rolls the key back with the booking: only
  successful answers are remembered, and a retry of a refused request is evaluated again.
- the same key again (same user): a concurrent request with it waits for the first one's commit
  (PostgreSQL: the unique index; SQLite: ``BEGIN IMMEDIATE``), then gets the stored answer, byte for
  byte; with a different body it is a 422 ``idempotency_key_reused`` (the draft's advice).
- after ``Settings.idempotency_ttl_hours`` the key is forgotten and may be used afresh.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.errors import Conflict, Invalid
from confsvc.scheduling.models import IdempotencyKey
from confsvc.users.principal import Principal

#: A key: 1–255 visible ASCII characters (a UUID is the usual choice).
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as stored: status, media type, body text and an optional ``Location``."""

    status_code: int
    media_type: str
    body: str
    location: str | None = None


def fingerprint(kind: str, payload: Any) -> str:
    """SHA-256 (hex) of ``kind`` and ``payload`` in canonical JSON: equal requests, equal fingerprints."""
    text = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_key(value: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header or form field; ``None`` when absent or empty.

    The draft writes the key as a structured-field string (``"8e03…"``): surrounding quotes are removed.
    Raises Invalid ``invalid_idempotency_key`` for anything but 1–255 visible ASCII characters.
    """
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value:
        return None
    if not _KEY.match(value):
        raise Invalid("Idempotency-Key must be 1–255 visible ASCII characters (e.g. a UUID)",
                      code="invalid_idempotency_key")
    return value


def _claim(session: Session, user_id: int, key: str, digest: str, now: datetime, expires_at: datetime) -> int | None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return session.execute(insert(IdempotencyKey).values(
        user_id=user_id, key=key, fingerprint=digest, status_code=0, media_type="", body="", location=None,
        created_at=now, expires_at=expires_at).on_conflict_do_nothing().returning(IdempotencyKey.id)).scalar()


def once(session: Session, settings: Settings, principal: Principal, key: str | None, digest: str,
         run: Callable[[], Answer], *, now: datetime | None = None) -> Answer:
    """``run()``'s answer, or the answer stored for ``key`` (this user) by an earlier request.

    Without a key, ``run()`` as is. The caller's transaction must commit after this returns (the
    request's unit of work): the key, the booking and the stored answer commit together.

    Raises: Invalid ``idempotency_key_reused`` (422: the key came with a different request),
    Conflict ``idempotency_key_in_use`` (409: the first request with the key has not finished), and
    whatever ``run()`` raises (then nothing is stored).
    """
    if key is None:
        return run()
    now = now or utc_now()
    expires_at = now + timedelta(hours=settings.idempotency_ttl_hours)
    session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.user_id == principal.user_id,
                                                    IdempotencyKey.expires_at <= now))
    row_id = _claim(session, principal.user_id, key, digest, now, expires_at)
    if row_id is None:
        stored = session.exec(select(IdempotencyKey).where(IdempotencyKey.user_id == principal.user_id,
                                                           IdempotencyKey.key == key)).first()
        if stored is None or stored.status_code == 0:
            raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly",
                           code="idempotency_key_in_use")
        if stored.fingerprint != digest:
            raise Invalid("this Idempotency-Key was used for a different request", code="idempotency_key_reused")
        return Answer(stored.status_code, stored.media_type, stored.body, stored.location)
    answer = run()
    session.execute(sa.update(IdempotencyKey).where(IdempotencyKey.id == row_id).values(
        status_code=answer.status_code, media_type=answer.media_type, body=answer.body, location=answer.location))
    return answer
