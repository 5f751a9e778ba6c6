"""Room display tokens (màn hình điểm cầu): a secret that opens one room's live channel and nothing else.

Created and revoked by admin and secretariat. Stored as SHA-256 hex, compared with
``hmac.compare_digest``. Services flush, never commit.
"""

from __future__ import annotations

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
