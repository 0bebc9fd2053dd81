"""The REST client: the environment's proxy settings still count, read once per host."""

from __future__ import annotations

import socket

import pytest

from esmeperf.errors import RequestError
from esmeperf.transport.rest import RestClient


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_environment_proxy_is_used_and_no_proxy_bypasses_it(target, monkeypatch,
                                                                closed_port):
    base = target.config["participant_api_url"]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with RestClient(5, shared=True) as client:
        with pytest.raises(RequestError, match="(?i)proxy"):
            client.sign_up(base, "participant_1_proxied@performance.com")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with RestClient(5, shared=True) as client:
        user_id, token = client.sign_up(base, "participant_1_direct@performance.com")
        client.chat_request(base, token, target.config["event_id"])
        assert user_id > 0
        # Read once for the host: a change of the environment now does not reach the client.
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
        monkeypatch.delenv("NO_PROXY")
        client.sign_up(base, "participant_2_direct@performance.com")


def test_abort_ends_a_call_in_flight_at_once():
    """The shutdown's abort(): a call waiting for an answer that will not come (a server that
    accepts and says nothing) fails at once, not at its timeout."""
    import socket
    import threading
    import time

    from esmeperf.errors import RequestError
    from esmeperf.transport.rest import RestClient

    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    waiting = threading.Event()

    def accept() -> None:
        conn, _ = server.accept()
        accepted.append(conn)
        waiting.set()

    threading.Thread(target=accept, daemon=True).start()
    client = RestClient(timeout=30.0, shared=True)
    failure: list[BaseException] = []

    def call() -> None:
        try:
            client.post(f"http://127.0.0.1:{server.getsockname()[1]}/auth/sign-up", {}, 201)
        except RequestError as exc:
            failure.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert waiting.wait(10), "the call never connected"
        started = time.monotonic()
        deadline = started + 5
        while caller.is_alive() and time.monotonic() < deadline:
            client.abort()  # again until the request is in the socket: its connect may lag
            caller.join(0.05)
        assert not caller.is_alive() and time.monotonic() - started < 5
        assert failure and "error sending request" in str(failure[0])
    finally:
        client.close()
        server.close()
        for conn in accepted:
            conn.close()
