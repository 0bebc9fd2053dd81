"""Blocking calls to ESME: REST with requests, the Messenger WebSocket with websocket-client."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import requests
import websocket

from .config import Credentials
from .errors import RequestError, UnexpectedStatus, WebSocketFailure

# The Go test's fixed participant data (tests/performance/participants/rest.go).
PARTICIPANT_PASSWORD = "performance"
PARTICIPANT_PHONE = "+48100200300"
CHAT_REQUEST_DESCRIPTION = "Performance test chat request"


class RestClient:
    """REST calls of one worker thread: its own requests.Session, a timeout on every call."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def post(self, url: str, body: dict[str, Any], expected: int, token: str | None = None
             ) -> requests.Response:
        """POST JSON and insist on the status ESME's own test requires."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            response = self.session.post(url, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RequestError(f"{url}: error sending request: {exc}") from exc
        if response.status_code != expected:
            raise UnexpectedStatus(url, response.status_code, expected, response.text)
        return response

    def sign_in(self, base_url: str, creds: Credentials) -> str:
        """Organizer sign-in; returns the token verbatim ("organizer:<jwt>")."""
        url = f"{base_url}/auth/sign-in"
        response = self.post(url, {"email": creds.email, "password": creds.password}, 200)
        return _field(_json(response, url), "token", str, url)

    def sign_up(self, base_url: str, email: str) -> tuple[int, str]:
        """Participant sign-up; returns (user id, token)."""
        url = f"{base_url}/auth/sign-up"
        body = {
            "email": email,
            "password": PARTICIPANT_PASSWORD,
            "confirmPassword": PARTICIPANT_PASSWORD,
            "phoneNumber": PARTICIPANT_PHONE,
        }
        data = _json(self.post(url, body, 201), url)
        user = _field(data, "user", dict, url)
        return _field(user, "id", int, url), _field(data, "token", str, url)

    def chat_request(self, base_url: str, token: str, event_id: int) -> None:
        """File a help request; ESME answers 200 with an empty body."""
        url = f"{base_url}/chat-requests"
        self.post(url, {"eventId": event_id, "description": CHAT_REQUEST_DESCRIPTION}, 200, token)


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


def go_addr(sockname: tuple[Any, ...]) -> str:
    """A socket address as Go's net.Addr.String() prints it: 127.0.0.1:5000 or [::1]:5000."""
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Closed(WebSocketFailure):
    """The peer closed the WebSocket."""


class Connection:
    """One authorized WebSocket to the Messenger API, used by one worker thread.

    `close()` and `abort()` may be called from the main thread to wake the worker at shutdown.
    """

    def __init__(self, ws: websocket.WebSocket, url: str) -> None:
        self.ws = ws
        self.url = url
        assert ws.sock is not None  # a connected WebSocket has its socket
        self.sock: socket.socket = ws.sock
        self.local_addr = go_addr(self.sock.getsockname())
        self._timeout: float | None = None
        self._closing = threading.Event()

    @classmethod
    def open(cls, ws_url: str, token: str, timeout: float, newline: bool) -> Connection:
        """Connect to `{ws_url}/connect` and send the authorization frame.

        ESME acknowledges nothing: a bad token shows only as a closed socket later.
        The Go test's participant sends its authorization without gorilla's trailing newline,
        its organizer with one; we do the same.
        """
        url = f"{ws_url}/connect"
        try:
            ws = websocket.create_connection(url, timeout=timeout, skip_utf8_validation=True)
        except (OSError, websocket.WebSocketException) as exc:
            raise WebSocketFailure(f"{url}: could not connect to websocket: {exc}") from exc
        conn = cls(ws, url)
        auth = json.dumps({"Authorization": f"Bearer {token}"}) + ("\n" if newline else "")
        try:
            ws.send(auth)
        except (OSError, websocket.WebSocketException) as exc:
            conn.abort()
            raise WebSocketFailure(f"{url}: error sending authorization message: {exc}") from exc
        return conn

    def send(self, text: str) -> None:
        try:
            self.ws.send(text)
        except (OSError, websocket.WebSocketException) as exc:
            raise WebSocketFailure(
                f"connection {self.local_addr}: error sending message: {exc}"
            ) from exc

    def recv(self, timeout: float | None) -> str | None:
        """The next text or binary frame as text, or None when `timeout` passes first."""
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout
        try:
            opcode, data = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            raise Closed(
                f"connection {self.local_addr}: error receiving message: {exc or 'connection lost'}"
            ) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise Closed(f"connection {self.local_addr}: error receiving message: closed by server")
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else data

    @property
    def closing(self) -> bool:
        """True once shutdown asked this connection to close."""
        return self._closing.is_set()

    def close(self) -> None:
        """Send a close frame (thread-safe: websocket-client locks its sends)."""
        self._closing.set()
        try:
            self.ws.send_close()
        except (OSError, websocket.WebSocketException):
            pass  # already gone: the worker sees that itself

    def abort(self) -> None:
        """Drop the TCP connection now; wakes a worker blocked in recv()."""
        self._closing.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        self.ws.shutdown()
