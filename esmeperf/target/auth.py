"""Salted PBKDF2 password hashes and the in-memory bearer-token registry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

ORGANIZER = "organizer"
PARTICIPANT = "participant"
ISSUER = "esme.com"  # ESME's JWT issuer and audience, in both APIs
TOKEN_LIFE_S = 24 * 3600


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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_JWT_HEAD = _b64(b'{"alg":"HS256","typ":"JWT"}')


class Tokens:
    """Tokens '<prefix>:<JWT>' as ESME's APIs issue them, valid until the process exits.

    Each is a real HS256 JWT with the claims ESME signs (the organizer API's `sub` as a
    number, iat, nbf, exp, iss, aud; the participant API's `sub` as a string, in Go's
    order), signed with a key of this process: the same size on the wire as the real ones
    (about 220 and 240 bytes), so a run's authenticated requests carry the real traffic's
    bytes. The target looks a token up by its text; it never decodes one."""

    def __init__(self) -> None:
        self._by_token: dict[str, Identity] = {}
        self._key = secrets.token_bytes(32)

    def issue(self, kind: str, user_id: int) -> str:
        now = int(time.time())
        if kind == PARTICIPANT:
            claims: dict[str, object] = {"iss": ISSUER, "sub": str(user_id), "aud": [ISSUER],
                                         "exp": now + TOKEN_LIFE_S, "nbf": now, "iat": now}
        else:
            claims = {"sub": user_id, "iat": now, "nbf": now, "exp": now + TOKEN_LIFE_S,
                      "aud": [ISSUER], "iss": ISSUER}
        # A jti keeps two tokens of one user in one second apart, as ESME's differ by time.
        claims["jti"] = secrets.token_hex(8)
        signed = f"{_JWT_HEAD}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        signature = _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())
        # base64url never contains ':', so the token splits into exactly two parts.
        token = f"{kind}:{signed}.{signature}"
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
