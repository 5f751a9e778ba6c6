"""Bearer secrets: the one scheme of user API tokens (``cfs_``), feed tokens (``cal_``), display tokens
(``dsp_``) and agent tokens (``cfa_``).

A secret is ``<prefix><43 url-safe characters>`` (256 random bits), shown once; only its SHA-256
(lowercase hex) is stored, with its first :data:`SHOWN_CHARS` characters so lists can name it.
Presented secrets are compared on their digests in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

#: Characters of a secret kept in clear (``prefix`` columns) so a list can tell tokens apart.
SHOWN_CHARS = 12


@dataclass(frozen=True)
class NewSecret:
    """A fresh secret: ``secret`` (shown once, never stored), ``shown`` (its first characters) and
    ``digest`` (SHA-256 hex, stored)."""

    secret: str
    shown: str
    digest: str


def new_secret(prefix: str) -> NewSecret:
    """A fresh secret starting with ``prefix`` (e.g. ``"cal_"``)."""
    secret = prefix + secrets.token_urlsafe(32)
    return NewSecret(secret, secret[:SHOWN_CHARS], hash_secret(secret))


def hash_secret(secret: str) -> str:
    """SHA-256 of the UTF-8 secret, lowercase hex (the stored form)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def digests_match(digest: str, stored_digest: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(digest, stored_digest)


def matches(secret: str, stored_digest: str) -> bool:
    """Whether ``secret`` is the one whose digest is ``stored_digest`` (constant time)."""
    return digests_match(hash_secret(secret), stored_digest)
