"""Agent tokens: the credentials of device agents and bridge webhooks that report endpoint status.

Kept apart from users' bearer tokens (``users.models.ApiToken``): an agent token can do one
thing, ``POST /api/v1/endpoints/{id}/status``, optionally only for one endpoint or one bridge.
Secrets start with :data:`AGENT_TOKEN_PREFIX`; only their SHA-256 is stored and the comparison
is constant-time (``hmac.compare_digest``). Services flush, never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from confsvc.clock import utc_now
from confsvc.endpoints import schemas
from confsvc.endpoints.models import AgentToken, Bridge, Endpoint
from confsvc.errors import Invalid, NotFound, Unauthorized
from confsvc.tokens import digests_match, hash_secret, new_secret
from confsvc.users.principal import MANAGE_INVENTORY, Principal

#: Every agent secret starts with this (user tokens start with ``cfs_``), so the two never mix up.
AGENT_TOKEN_PREFIX = "cfa_"


def create_agent_token(session: Session, principal: Principal,
                       data: schemas.AgentTokenCreate) -> tuple[AgentToken, str]:
    """Admin only. Returns the row and the secret, which is never stored or shown again.

    Raises: Forbidden (not admin), Invalid (``unknown_bridge`` / ``unknown_endpoint``).
    """
    principal.require(MANAGE_INVENTORY)
    if data.bridge_id is not None and session.get(Bridge, data.bridge_id) is None:
        raise Invalid(f"bridge {data.bridge_id} does not exist", code="unknown_bridge")
    if data.endpoint_id is not None and session.get(Endpoint, data.endpoint_id) is None:
        raise Invalid(f"endpoint {data.endpoint_id} does not exist", code="unknown_endpoint")
    fresh = new_secret(AGENT_TOKEN_PREFIX)
    secret = fresh.secret
    token = AgentToken(name=data.name, prefix=fresh.shown, token_hash=fresh.digest, bridge_id=data.bridge_id,
                       endpoint_id=data.endpoint_id, created_by=principal.user_id)
    session.add(token)
    session.flush()
    return token, secret


def list_agent_tokens(session: Session, principal: Principal) -> list[AgentToken]:
    """Admin only, in creation order (secrets are never shown again)."""
    principal.require(MANAGE_INVENTORY)
    return list(session.exec(select(AgentToken).order_by(AgentToken.id)).all())


def revoke_agent_token(session: Session, principal: Principal, token_id: int, *,
                       now: datetime | None = None) -> AgentToken:
    """Admin only; revoking twice keeps the first time. Raises Forbidden, NotFound."""
    principal.require(MANAGE_INVENTORY)
    token = session.get(AgentToken, token_id)
    if token is None:
        raise NotFound(f"agent token {token_id} not found", code="agent_token_not_found")
    if token.revoked_at is None:
        token.revoked_at = now or utc_now()
        session.add(token)
        session.flush()
    return token


def is_agent_secret(secret: str) -> bool:
    return secret.startswith(AGENT_TOKEN_PREFIX)


def agent_for_secret(session: Session, secret: str) -> AgentToken:
    """The live agent token for ``secret``: looked up by digest, then compared in constant time.

    Raises:
        Unauthorized: unknown or revoked token (code ``invalid_token``).
    """
    digest = hash_secret(secret)
    token = session.exec(select(AgentToken).where(AgentToken.token_hash == digest)).first()
    if token is None or not digests_match(digest, token.token_hash) or token.revoked_at is not None:
        raise Unauthorized("invalid agent token", code="invalid_token")
    return token
