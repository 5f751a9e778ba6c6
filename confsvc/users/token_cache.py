"""Bearer tokens verified once per short TTL in each process (issue 16, "Throughput under contention":
authentication was a read session and three queries on every API request).

:class:`PrincipalCache` keeps, by SHA-256 of the secret, the :class:`Principal` a token resolved to,
for ``Settings.auth_cache_seconds`` (0: no cache). Only digests are kept, and a hit is confirmed with
``hmac.compare_digest`` like the database path (``users.service.user_for_token``).

Revocation closes access at once in the process that made it, and within the live fan-out's delay
(bounded by the TTL) in the others. Every entry carries the :func:`generation` current when its
database read began; :func:`invalidate` moves the generation on, which makes every older entry stale.
It runs:

- in this process, at the flush and at the commit of any ORM change to a user, an API token, a user's
  units or a unit (:func:`install`): revoked or expired tokens, disabled users, role, province and
  unit changes, new provinces and sub-units (the principal's scope) are all seen by the next request;
- in every process, when the hub receives ``access.revoked`` (``live.hub.Hub.revoked_tokens``: the
  event of ``live.revocation``, sent through Redis or PostgreSQL NOTIFY).

A change made without the ORM in another process (none in confsvc) is seen after the TTL at the latest.
Thread-safe.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlmodel import Session

from confsvc.clock import utc_now
from confsvc.tokens import digests_match
from confsvc.users.models import ApiToken, User, UserUnit
from confsvc.users.principal import Principal

_counter = itertools.count(1)
_generation = next(_counter)
#: Changes to these tables can revoke a token or change a principal (its role, units or scope). Units by
#: table name: users never import the inventory (imports flow core ← users ← endpoints).
_WATCHED_TABLES = frozenset({User.__tablename__, ApiToken.__tablename__, UserUnit.__tablename__, "units"})
_TOUCHED = "confsvc_auth_touched"


def generation() -> int:
    """The current generation; read it *before* the database read whose result is remembered."""
    return _generation


def invalidate() -> None:
    """Make every cached principal of every :class:`PrincipalCache` of this process stale."""
    global _generation
    _generation = next(_counter)


@dataclass(frozen=True)
class Entry:
    """A verified token: its principal, the token's expiry (aware UTC, None: never), when and in which
    generation it was read."""

    principal: Principal
    expires_at: datetime | None
    generation: int
    loaded_at: float
    #: SHA-256 hex of the secret (never the secret).
    digest: str = field(repr=False)


class PrincipalCache:
    """Principals of bearer tokens by SHA-256 digest, each for ``ttl_seconds`` at most (module docstring).

    ``max_entries`` bounds the memory: a full cache is emptied before the next entry (tokens are few;
    a flood of distinct valid tokens only costs the queries the cache saves).
    """

    def __init__(self, ttl_seconds: float, *, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._by_digest: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, digest: str, *, now: datetime | None = None) -> Principal | None:
        """The principal of the token whose SHA-256 hex is ``digest``, or None (not cached, stale,
        or expired: the caller then reads the database)."""
        if self.ttl_seconds <= 0:
            return None
        entry = self._by_digest.get(digest)
        if entry is None or entry.generation != _generation or time.monotonic() - entry.loaded_at > self.ttl_seconds:
            return None
        if entry.expires_at is not None and entry.expires_at <= (now or utc_now()):
            return None
        return entry.principal if digests_match(digest, entry.digest) else None

    def remember(self, digest: str, principal: Principal, expires_at: datetime | None, read_generation: int) -> None:
        """Cache ``principal`` for the token ``digest``, read from the database in ``read_generation``
        (:func:`generation` taken before the read): an invalidation meanwhile leaves it stale."""
        if self.ttl_seconds <= 0 or read_generation != _generation:
            return
        with self._lock:
            if len(self._by_digest) >= self.max_entries:
                self._by_digest.clear()
            self._by_digest[digest] = Entry(principal, expires_at, read_generation, time.monotonic(), digest)


def _after_flush(session: Session, _flush_context: Any) -> None:
    if any(getattr(obj, "__tablename__", None) in _WATCHED_TABLES
           for obj in itertools.chain(session.new, session.dirty, session.deleted)):
        session.info[_TOUCHED] = True
        invalidate()  # at once: this session's own later reads in other threads must not see the old state


def _after_commit(session: Session) -> None:
    if session.info.pop(_TOUCHED, False):
        invalidate()  # again: a read of the old, committed state may have been remembered since the flush


def _after_rollback(session: Session) -> None:
    session.info.pop(_TOUCHED, None)


def install() -> None:
    """Watch every ORM session of the process (idempotent; ``main.install_hooks``)."""
    for name, callback in (("after_flush", _after_flush), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not sa_event.contains(Session, name, callback):
            sa_event.listen(Session, name, callback)
