"""Credentials: random bearer and session tokens (stored as sha256), argon2 passwords, roles."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEVICE_TOKEN_PREFIX = "vld_"
SESSION_COOKIE = "visionloop_session"

_hasher = PasswordHasher()


class Role(StrEnum):
    """A person's role; each includes the rights of those below it."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        """True when this role has every right of ``other``."""
        return self.rank >= other.rank


_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


def new_device_token() -> str:
    """A fresh device bearer token: a prefix and 256 random bits, URL-safe."""
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    """A fresh session cookie value (256 random bits)."""
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """What the database keeps of a token. A fast hash suffices: tokens carry 256 random bits."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises for a wrong password."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_password_hash() -> str:
    """A valid hash to verify against when the user does not exist, so that a login takes as long
    for an unknown name as for a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))
