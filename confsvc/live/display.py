"""Room display tokens (màn hình điểm cầu): a secret that opens one room's live channel and nothing else.

Created and revoked by admin and secretariat. Stored as SHA-256 hex, compared with
``hmac.compare_digest``. Services flush, never commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.endpoints.models import Room, Unit
from confsvc.errors import NotFound, Unauthorized
from confsvc.live.models import DisplayToken
from confsvc.live.snapshot import involving_rooms
from confsvc.scheduling.models import Meeting, Occurrence
from confsvc.tokens import digests_match, hash_secret, new_secret
from confsvc.users.principal import MANAGE_DISPLAY_TOKENS, Principal

#: Secrets look like ``dsp_<43 url-safe characters>`` (256 random bits).
SECRET_PREFIX = "dsp_"


def create_display_token(session: Session, principal: Principal, room_id: int, *,
                         name: str = "") -> tuple[DisplayToken, str]:
    """A new token for ``room_id``: the row and the secret (shown once, never stored).

    Raises: Forbidden (not admin or secretariat), NotFound (room_not_found).
    """
    principal.require(MANAGE_DISPLAY_TOKENS)
    room = session.get(Room, room_id)
    if room is None or not principal.in_scope(room.unit_id):
        raise NotFound(f"room {room_id} not found", code="room_not_found")
    fresh = new_secret(SECRET_PREFIX)
    secret = fresh.secret
    token = DisplayToken(room_id=room_id, name=name, prefix=fresh.shown, token_hash=fresh.digest,
                         created_by=principal.user_id)
    session.add(token)
    session.flush()
    return token, secret


def list_display_tokens(session: Session, principal: Principal, room_id: int) -> list[DisplayToken]:
    """Tokens of ``room_id`` (revoked ones included), by id. Raises Forbidden, NotFound (room_not_found:
    no such room, or another province's)."""
    principal.require(MANAGE_DISPLAY_TOKENS)
    room = session.get(Room, room_id)
    if room is None or not principal.in_scope(room.unit_id):
        raise NotFound(f"room {room_id} not found", code="room_not_found")
    return list(session.exec(select(DisplayToken).where(DisplayToken.room_id == room_id)
                             .order_by(DisplayToken.id)).all())


def revoke_display_token(session: Session, principal: Principal, room_id: int, token_id: int,
                         *, now: datetime | None = None) -> DisplayToken:
    """Revoke at once: its open live channels are closed with 4401 in every process (``live.revocation``).

    Raises: Forbidden, NotFound (display_token_not_found, also for another room's token).
    """
    principal.require(MANAGE_DISPLAY_TOKENS)
    token = session.get(DisplayToken, token_id)
    if token is None or token.room_id != room_id or not principal.in_scope(
            getattr(session.get(Room, room_id), "unit_id", None)):
        raise NotFound(f"display token {token_id} of room {room_id} not found", code="display_token_not_found")
    if token.revoked_at is None:
        token.revoked_at, token.revoked_by = now or utc_now(), principal.user_id
        session.add(token)
        session.flush()
    return token


def authenticate_display(session: Session, secret: str) -> DisplayToken | None:
    """The live token behind ``secret``, or None when it does not look like a display token.

    Raises:
        Unauthorized: a display-token-shaped secret that is unknown or revoked.
    """
    if not secret.startswith(SECRET_PREFIX):
        return None
    digest = hash_secret(secret)
    token = session.exec(select(DisplayToken).where(DisplayToken.token_hash == digest)).first()
    if token is None or not digests_match(digest, token.token_hash) or token.revoked_at is not None:
        raise Unauthorized("invalid display token", code="invalid_token")
    return token


#: Most chair rooms one :func:`chair_room_names` call answers for.
CHAIR_NAMES_MAX = 50


def open_display(session: Session, secret: str, room_id: int) -> dict[str, object]:
    """The room a display page may show: ``{"room_id", "room_name", "unit_name"}``.

    Raises:
        NotFound (display_not_found): the secret is no live display token of ``room_id`` (unknown,
            revoked, another room's, or not a display token at all). One error for every case, so a
            guessed link learns nothing about which rooms or tokens exist.
    """
    try:
        token = authenticate_display(session, secret) if secret else None
    except Unauthorized:
        token = None
    room = session.get(Room, room_id) if token is not None and token.room_id == room_id else None
    if room is None:
        raise NotFound("no such room display", code="display_not_found")
    unit = session.get(Unit, room.unit_id)
    return {"room_id": room.id, "room_name": room.name, "unit_name": unit.name if unit else ""}


def chair_room_names(session: Session, room_id: int, chair_room_ids: set[int]) -> dict[int, str]:
    """``{room id: name}`` of those of ``chair_room_ids`` that chair an occurrence ``room_id`` takes part in.

    What a room display needs beside the live messages (which carry only the chair room's id); rooms
    that chair nothing involving ``room_id`` are left out, so a display token names no other room.
    At most :data:`CHAIR_NAMES_MAX` ids are looked at.
    """
    wanted = sorted(chair_room_ids)[:CHAIR_NAMES_MAX]
    if not wanted:
        return {}
    chair = sa.func.coalesce(Occurrence.chair_room_id, Meeting.chair_room_id)
    chairing = (select(chair).join(Meeting, Meeting.id == Occurrence.meeting_id)
                .where(Occurrence.id.in_(involving_rooms(frozenset({room_id}))), chair.in_(wanted)))
    rows = session.exec(select(Room.id, Room.name).where(Room.id.in_(chairing))).all()
    return {rid: name for rid, name in rows}


# ---------------------------------------------------------------- the connect path's token cache (issue 14)

#: Seconds a cached display token's room and unit are trusted before they are read again (a room moved
#: to another unit is scoped anew within this time; a revocation takes effect at once, see below).
CACHE_TTL_SECONDS = 600.0


@dataclass(frozen=True)
class CachedDisplay:
    """A live display token as the connect path needs it: its id, its room and the room's unit."""

    id: int
    room_id: int
    unit_id: int
    #: SHA-256 hex of the secret (never the secret).
    digest: str = field(repr=False)
    loaded_at: float = 0.0


class DisplayTokenCache:
    """Live display tokens of this process by SHA-256 of their secret (issue 14: a reconnect storm of
    4,000 displays must not cost a query each).

    Only digests are kept; a hit is confirmed with ``hmac.compare_digest`` like the database path.
    Revocation: ``access.revoked`` (``confsvc.live.revocation``) calls :meth:`revoke` in the committing
    thread of this process (``Fanout.from_commit``) and, for every process, when its hub receives the
    event; a revoked id is remembered for good, so a token read from the database just before its
    revocation is never cached after it (:meth:`remember` and :meth:`revoke` share a lock). The channel
    uses the cache only while its fan-out is healthy (it would miss other processes' revocations
    otherwise, ``Fanout.healthy``). Thread-safe.
    """

    def __init__(self, *, ttl_seconds: float = CACHE_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._by_digest: dict[str, CachedDisplay] = {}
        self._revoked: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_digest)

    def load(self, session: Session) -> int:
        """Cache every live display token (one query); returns how many."""
        rows = session.exec(select(DisplayToken.id, DisplayToken.room_id, DisplayToken.token_hash, Room.unit_id)
                            .join(Room, Room.id == DisplayToken.room_id)
                            .where(DisplayToken.revoked_at.is_(None))).all()
        now = time.monotonic()
        for token_id, room_id, digest, unit_id in rows:
            self.remember(CachedDisplay(token_id, room_id, unit_id, digest, now))
        return len(rows)

    def lookup(self, secret: str) -> CachedDisplay | None:
        """The cached token behind ``secret``, or None (not cached, expired, revoked, or not a display token)."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        digest = hash_secret(secret)
        entry = self._by_digest.get(digest)
        if entry is None or entry.id in self._revoked or time.monotonic() - entry.loaded_at > self.ttl_seconds:
            return None
        return entry if digests_match(digest, entry.digest) else None

    def remember(self, entry: CachedDisplay) -> None:
        """Cache ``entry`` unless its id was revoked meanwhile."""
        with self._lock:
            if entry.id not in self._revoked:
                self._by_digest[entry.digest] = entry

    def remember_token(self, token: DisplayToken, unit_id: int) -> None:
        """Cache a token just read from the database (``authenticate_display``)."""
        if token.id is not None and token.revoked_at is None:
            self.remember(CachedDisplay(token.id, token.room_id, unit_id, token.token_hash, time.monotonic()))

    def revoke(self, token_ids: Iterable[int]) -> None:
        """Forget ``token_ids`` and refuse them from now on."""
        ids = set(token_ids)
        if not ids:
            return
        with self._lock:
            self._revoked |= ids
            for digest in [d for d, e in self._by_digest.items() if e.id in ids]:
                del self._by_digest[digest]

    def is_revoked(self, token_id: int) -> bool:
        return token_id in self._revoked
