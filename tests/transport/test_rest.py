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


TCP_INFO_DATA_SEGS_OUT = 156  # struct tcp_info's tcpi_data_segs_out (Linux 4.6 and later)


def _data_segments_sent(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[TCP_INFO_DATA_SEGS_OUT:TCP_INFO_DATA_SEGS_OUT + 4], "little")


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux's TCP_INFO")
def test_a_request_goes_out_in_one_segment(target):
    """Head and body in one write, as Go's client sends them (not urllib3's two): counted by
    the kernel, on the pool's own connection."""
    base = target.config["participant_api_url"]
    with RestClient(5, shared=True) as client:
        client.sign_up(base, "participant_1_one_write@performance.com")
        (conn,) = list(client._connections)  # noqa: SLF001 - the one keep-alive connection
        before = _data_segments_sent(conn.sock)
        user_id, token = client.sign_up(base, "participant_2_one_write@performance.com")
        client.chat_request(base, token, target.config["event_id"])
        assert user_id > 0
        assert _data_segments_sent(conn.sock) - before == 2  # two requests, a segment each


def test_a_redirect_is_followed_as_session_post_follows_it(target):
    """A proxy or load balancer in front of ESME may answer 307: followed with its body.
    (requests drops the Authorization header when the redirect changes host or port, as a
    browser would; the token-bearing chat request is not redirected here for that reason.)"""
    import http.server
    import threading

    base = target.config["participant_api_url"]

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(307)
            self.send_header("Location", f"{base}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        front = f"http://127.0.0.1:{server.server_address[1]}"
        with RestClient(5, shared=True) as client:
            user_id, token = client.sign_up(front, "participant_1_redirected@performance.com")
            client.chat_request(base, token, target.config["event_id"])  # the token is good
        assert user_id > 0 and token.startswith("participant:")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
