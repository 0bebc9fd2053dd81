"""Salted PBKDF2 password hashes and the in-memory bearer-token registry."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

ORGANIZER = "organizer"
PARTICIPANT = "participant"


def hash_password(password: str, iterations: int) -> str:
    """Return 'pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>'; blocking, run it in a thread."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash in constant time; blocking."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                     int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token belongs to."""

    kind: str  # ORGANIZER or PARTICIPANT
    user_id: int


class Tokens:
    """Opaque random tokens '<prefix>:<random>', valid until the process exits."""

    def __init__(self) -> None:
        self._by_token: dict[str, Identity] = {}

    def issue(self, kind: str, user_id: int) -> str:
        # token_urlsafe never contains ':', so the token splits into exactly two parts.
        token = f"{kind}:{secrets.token_urlsafe(24)}"
        self._by_token[token] = Identity(kind, user_id)
        return token

    def lookup(self, token: str) -> Identity | None:
        return self._by_token.get(token)


def split_bearer(header: str) -> str | None:
    """The token of 'Bearer <token>' split on single spaces into exactly two parts, else None."""
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer":
        return None
    return parts[1]


def token_prefix(token: str) -> str | None:
    """The prefix of '<prefix>:<rest>' with exactly one colon, else None."""
    parts = token.split(":")
    if len(parts) != 2:
        return None
    return parts[0]
