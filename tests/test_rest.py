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
