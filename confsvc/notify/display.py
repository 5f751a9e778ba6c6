"""Room display tokens (màn hình điểm cầu): a secret that opens one room's live channel and nothing else.

Created and revoked by admin and secretariat. Stored as SHA-256 hex, compared with
``hmac.compare_digest``. Services flush, never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.endpoints.models import Room
from confsvc.errors import NotFound, Unauthorized
from confsvc.notify.models import DisplayToken
from confsvc.users.models import Role
from confsvc.users.principal import Principal

#: Secrets look like ``dsp_<43 url-safe characters>`` (256 random bits).
SECRET_PREFIX = "dsp_"
MANAGERS = (Role.admin, Role.secretariat)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_display_token(session: Session, principal: Principal, room_id: int, *,
                         name: str = "") -> tuple[DisplayToken, str]:
    """A new token for ``room_id``: the row and the secret (shown once, never stored).

    Raises: Forbidden (not admin or secretariat), NotFound (room_not_found).
    """
    principal.require_role(*MANAGERS)
    if session.get(Room, room_id) is None:
        raise NotFound(f"room {room_id} not found", code="room_not_found")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = DisplayToken(room_id=room_id, name=name, prefix=secret[:12], token_hash=hash_secret(secret),
                         created_by=principal.user_id)
    session.add(token)
    session.flush()
    return token, secret


def list_display_tokens(session: Session, principal: Principal, room_id: int) -> list[DisplayToken]:
    """Tokens of ``room_id`` (revoked ones included), by id. Raises Forbidden."""
    principal.require_role(*MANAGERS)
    return list(session.exec(select(DisplayToken).where(DisplayToken.room_id == room_id)
                             .order_by(DisplayToken.id)).all())


def revoke_display_token(session: Session, principal: Principal, room_id: int, token_id: int,
                         *, now: datetime | None = None) -> DisplayToken:
    """Revoke at once (open connections keep running until they reconnect).

    Raises: Forbidden, NotFound (display_token_not_found, also for another room's token).
    """
    principal.require_role(*MANAGERS)
    token = session.get(DisplayToken, token_id)
    if token is None or token.room_id != room_id:
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
    if token is None or not hmac.compare_digest(digest, token.token_hash) or token.revoked_at is not None:
        raise Unauthorized("invalid display token", code="invalid_token")
    return token
