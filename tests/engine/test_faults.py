"""The fault matrix: each fault gives its exit status, a one-line cause and consistent files."""

from __future__ import annotations

import socket

import pytest
from helpers import child_targets, load_results, run_main, write_config

from esmeperf.cli.main import main


@pytest.mark.parametrize(("flags", "words"), [
    (("--fail-chat-request-after", "2"),
     "/chat-requests: responded with status code: 500 instead of 200"),
    (("--garbage-signup-after", "2"), "error unmarshaling response body: 'user' is not a dict"),
])
def test_rest_faults_stop_the_run(tmp_path, target_factory, capsys, flags, words):
    target = target_factory(*flags)
    status = run_main(tmp_path, write_config(tmp_path, target.config),
                      "-sci", "10", "-cpi", "50", "-smi", "100")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    assert words in summary["first_error"]["message"]
    assert summary["first_error"]["thread"].startswith("participant-")
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert words in last


def test_handshake_slower_than_its_timeout(tmp_path, target_factory):
    target = target_factory("--ws-handshake-delay", "3")
    status = run_main(tmp_path, write_config(tmp_path, target.config),
                      "-sci", "10", "-cpi", "100", "-smi", "100", "--handshake-timeout", "0.5")
    assert status == 1
    summary, rates = load_results(tmp_path / "out")
    message = summary["first_error"]["message"]
    assert "could not connect to websocket" in message and "timed out" in message
    assert rates == {}


def test_embedded_target_port_in_use_is_one_line(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = main(["-q", "--out", str(tmp_path), "--duration", "2s",
                       "--target-args", f"--messenger-port {port}"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("esmeperf: error: could not start the embedded target")
    assert str(port) in err[-1]
    assert not child_targets()
