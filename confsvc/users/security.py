"""Password hashing (argon2id via argon2-cffi) and bearer-token secrets (SHA-256 at rest)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from confsvc import tokens

_hasher = PasswordHasher()

#: Every token secret starts with this, so leaked tokens are easy to grep for.
TOKEN_PREFIX = "cfs_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches. argon2 compares in constant time."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str]:
    """A fresh token: ``(secret shown once to the user, sha256 hex stored)`` (``confsvc.tokens``)."""
    fresh = tokens.new_secret(TOKEN_PREFIX)
    return fresh.secret, fresh.digest


hash_token = tokens.hash_secret
token_matches = tokens.matches


def generate_password() -> str:
    """A random password people can type: 4 groups of 4 lower-case letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
