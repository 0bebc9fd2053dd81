"""Blocking REST calls to ESME's organizer and participant APIs, with requests."""

from __future__ import annotations

import json
import socket
import threading
import weakref
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection

from ..config import Credentials
from ..errors import RequestError, UnexpectedStatus
from . import protocol

# Keep-alive connections a shared client keeps per host: about the sign-ups in flight at once.
# Beyond it urllib3 still connects, and drops the extra connections when they come back.
SHARED_POOL_SIZE = 256


class RestClient:
    """REST calls with a timeout on every one.

    A worker's own (an organizer's sign-in), or `shared=True`: one keep-alive pool for all the
    participant threads of a process, as the Go test signs up over one http.Client. That
    saves a TCP connection per arrival on both sides. Sharing a Session across threads is
    safe for what we use: urllib3's pools are thread-safe, and we send no cookies (ESME sets
    none; a jar that changed under concurrent requests is the one thing that would not be).

    The environment's proxy settings (HTTP_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE ...) are read
    once per host, not at every request as requests does by default (it scans os.environ and
    looks for ~/.netrc each time: a fifth of an arrival's REST cost). Like the Go test's
    http.Client, ~/.netrc is not read.

    A request is a copy of one PreparedRequest per URL (the session's headers merged once) with
    its body and token set, sent by the session's HTTPAdapter: what Session.post would send,
    without merging the session's settings into each request again (29 % of an arrival's REST
    CPU: `bench/arrival_cost.py --part rest --vs REV`). What Session.send adds, ESME's answers
    do not need: they set no cookies, and a redirect (a proxy's) goes to Session.post.
    """

    def __init__(self, timeout: float, shared: bool = False) -> None:
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # the environment is read once per host: _settings()
        self._environment: dict[str, dict[str, Any]] = {}
        # Every connection the pools opened, so abort() can shut in-flight calls down.
        self._connections: weakref.WeakSet[urllib3.connection.HTTPConnection] = \
            weakref.WeakSet()
        self._lock = threading.Lock()
        self._prepared: dict[str, requests.PreparedRequest] = {}  # URL -> its template
        self._adapter = adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=(
            SHARED_POOL_SIZE if shared else requests.adapters.DEFAULT_POOLSIZE))
        adapter.poolmanager.pool_classes_by_scheme = _tracking_pools(self._track)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _track(self, conn: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            self._connections.add(conn)

    def abort(self) -> None:
        """Shut every connection down, in-flight calls too: a thread blocked reading an answer
        wakes at once with an error (a run's shutdown: arrivals in flight at the stop no longer
        matter, and must not hold the join up for --http-timeout)."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed meanwhile

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def post(self, url: str, body: dict[str, Any], expected: int, token: str | None = None,
             go_colon: bool = True) -> requests.Response:
        """POST JSON and insist on the status ESME's own test requires."""
        request = self._template(url).copy()
        # requests' own json= encoding (no NaN), the same bytes Session.post would send
        data = json.dumps(body, allow_nan=False).encode()
        request.body = data
        request.headers["Content-Length"] = str(len(data))
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._adapter.send(request, timeout=self.timeout, **self._settings(url))
            if response.is_redirect:  # followed as Session.post follows it (the Go test too)
                response.close()
                headers = {"Authorization": f"Bearer {token}"} if token else None
                response = self.session.post(url, json=body, headers=headers,
                                             timeout=self.timeout, **self._settings(url))
            response.content  # noqa: B018 - read whole, the connection back in the pool
        except requests.RequestException as exc:
            raise RequestError(f"{url}: error sending request: {exc}") from exc
        if response.status_code != expected:
            raise UnexpectedStatus(url, response.status_code, expected, response.text,
                                   colon=go_colon)
        return response

    def _template(self, url: str) -> requests.PreparedRequest:
        """A JSON POST to `url` as the session prepares it; each request sends a copy (the
        dict may be filled twice by racing threads, with equal templates)."""
        template = self._prepared.get(url)
        if template is None:
            template = self.session.prepare_request(requests.Request(
                "POST", url, headers={"Content-Type": "application/json"}, data=b""))
            self._prepared[url] = template
        return template

    def _settings(self, url: str) -> dict[str, Any]:
        """Proxies and CA bundle the environment gives `url`'s host, read once per host (the
        dict may be filled twice by racing threads, with the same values)."""
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        settings = self._environment.get(host)
        if settings is None:
            with requests.Session() as reader:  # trust_env: what requests would have used
                merged = reader.merge_environment_settings(url, {}, None, None, None)
            settings = {"proxies": merged["proxies"], "verify": merged["verify"]}
            self._environment[host] = settings
        return settings

    def sign_in(self, base_url: str, creds: Credentials) -> str:
        """Organizer sign-in; returns the token verbatim ("organizer:<jwt>")."""
        url = f"{base_url}/auth/sign-in"
        response = self.post(url, protocol.sign_in_body(creds), 200)
        return _field(_json(response, url), "token", str, url)

    def sign_up(self, base_url: str, email: str) -> tuple[int, str]:
        """Participant sign-up; returns (user id, token)."""
        url = f"{base_url}/auth/sign-up"
        data = _json(self.post(url, protocol.sign_up_body(email), 201), url)
        user = _field(data, "user", dict, url)
        return _field(user, "id", int, url), _field(data, "token", str, url)

    def chat_request(self, base_url: str, token: str, event_id: int) -> None:
        """File a help request; ESME answers 200 with an empty body."""
        url = f"{base_url}/chat-requests"
        self.post(url, protocol.chat_request_body(event_id), 200, token, go_colon=False)


def _tracking_pools(track: Any) -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """urllib3 pool classes whose connections `track(conn)` once connected (PoolManager's
    pool_classes_by_scheme: tests/system/test_library_internals.py checks it is still there),
    and send a request's head and small body in one write."""

    class Plain(_OneWrite, urllib3.connection.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            track(self)

    class Secure(_OneWrite, urllib3.connection.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            track(self)

    class PlainPool(urllib3.HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


ONE_WRITE_MAX = 16 * 1024  # bodies up to this size go out in the head's write


class _OneWrite:
    """An HTTP connection that sends a request's head and its body (bytes, small) in one
    send, as Go's http.Client does: urllib3 writes the head, then the body, two TCP segments
    (TCP_NODELAY) that the server reads and the kernel wakes it for one by one. One write
    costs both sides a syscall and a wake-up less per request.

    http.client writes the head with send() once the headers end, and urllib3 the body with
    send() after it; the head is held for the body here. urllib3.connection.HTTPConnection's
    request() and http.client's send() are the only calls used (the library-internals test
    watches them)."""

    _held: bytes | None = None  # the head, while the body is to follow

    def request(self, method: str, url: str, body: Any = None, headers: Any = None,
                **kwargs: Any) -> None:
        hold = isinstance(body, bytes) and 0 < len(body) <= ONE_WRITE_MAX
        self._held = b"" if hold else None
        try:
            super().request(method, url, body, headers, **kwargs)  # type: ignore[misc]
            held = self._held
        finally:
            self._held = None
        if held:  # the body never came (nothing in urllib3 does that): the head alone
            super().send(held)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        held = self._held
        if held is None:
            super().send(data)  # type: ignore[misc]
        elif not held:
            self._held = bytes(data)  # the head
        else:
            self._held = None
            super().send(held + bytes(data))  # type: ignore[misc]


def _json(response: requests.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise RequestError(f"{url}: error unmarshaling response body: {exc}") from exc


def _field(data: Any, key: str, kind: type, url: str) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RequestError(
            f"{url}: error unmarshaling response body: {key!r} is not a {kind.__name__}"
        )
    return value
