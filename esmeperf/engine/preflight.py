"""Before any load: reach the three URLs and sign in every organizer account the run uses.

A wrong password or a URL nobody answers is a configuration mistake: one line naming the
account or the URL and the reason, exit 2, and no result files, since no run happened. Errors
after the load started stay the run's first error (exit 1, files written).
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from ..config import Credentials, Settings, Target
from ..errors import ConfigError, RequestError, UnexpectedStatus
from ..transport.rest import RestClient

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to host:port fails ("connection refused", ...), or None."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    return None


def reach(key: str, url: str, timeout: float) -> None:
    """A TCP connection to the URL's host and port, or a ConfigError saying why not."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    reason = unreachable(parts.hostname or "", port, timeout)
    if reason:
        raise ConfigError(f"{key} {url}: {reason}")


def sign_in(rest: RestClient, target: Target, creds: Credentials) -> str:
    """The organizer's token, or a ConfigError naming the account and ESME's reason."""
    try:
        return rest.sign_in(target.organizer_api_url, creds)
    except UnexpectedStatus as exc:
        raise ConfigError(f"organizer {creds.email}: sign-in rejected with status {exc.got}: "
                          f"{_reason(exc.body)}") from None
    except RequestError as exc:
        raise ConfigError(f"organizer {creds.email}: sign-in failed: {exc}") from None


def _reason(body: str) -> str:
    """ESME's own words from an error body ({"message": ...}), else the body's start."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200] or "(empty body)"
    message = data.get("message") if isinstance(data, dict) else None
    if isinstance(message, list):  # NestJS validation errors are a list
        message = "; ".join(map(str, message))
    return str(message) if message else body[:200]


def check(target: Target, settings: Settings) -> dict[str, str]:
    """Reach every URL the run uses, then sign in each organizer it uses; their tokens by
    email."""
    keys = ("organizer_api_url", "participant_api_url") + (
        () if settings.rest_only else ("messenger_ws_url",))
    for key in keys:
        reach(key, getattr(target, key), settings.http_timeout)
    with RestClient(settings.http_timeout) as rest:
        return {creds.email: sign_in(rest, target, creds)
                for creds in target.organizers[: settings.organizers]}
