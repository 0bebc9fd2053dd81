"""End-to-end runs of `main([...])` in-process against a real target on loopback."""

from __future__ import annotations

import json
import re
import time

import pytest
from helpers import (
    child_targets,
    load_results,
    outputs,
    run_main,
    stored_participant_messages,
    write_config,
)

from esmeperf.cli.main import main
from esmeperf.results.summary import read_series

GO_SUMMARY_KEYS = [
    "constants", "description", "organizer_time_started", "organizer_duration",
    "participants_time_started", "participants_duration", "messages_sent", "chats_count",
    "created_participants_count",
]
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?(s|ms|µs|ns)$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
MESSAGE = re.compile(r"^connection 127\.0\.0\.1:(\d+): message number (\d+)$")






@pytest.mark.portable_twin
def test_run_writes_go_compatible_files_and_exact_messages(tmp_path, target, capsys):
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100",
                      "--max-participants", "30", "--duration", "3s")
    assert status == 0
    summary, rates = load_results(tmp_path / "out")
    assert list(summary)[: len(GO_SUMMARY_KEYS)] == GO_SUMMARY_KEYS
    assert summary["constants"] == {"start_chat_interval": "10ms",
                                    "create_participant_interval": "50ms",
                                    "send_message_interval": "100ms", "log_ws": False}
    assert summary["description"] == "performance test summary"
    for key in ("organizer_time_started", "participants_time_started"):
        assert RFC3339.match(summary[key]), summary[key]
    for key in ("organizer_duration", "participants_duration"):
        assert GO_DURATION.match(summary[key]), summary[key]
    assert summary["messages_sent"] > 0
    assert 0 < summary["chats_count"] == summary["created_participants_count"]
    counts = summary["counts"]
    assert counts["chats_found_by_push"] + counts.get("chats_found_by_poll", 0) == 30
    assert summary["end_reason"] == "duration" and summary["first_error"] is None
    assert all(re.fullmatch(r"\d{10}", k) for k in rates) and list(rates) == sorted(rates)
    assert "organizer_password" not in json.dumps(summary)
    assert target.config["organizer_password"] not in json.dumps(summary)

    # Every message stored by the target is the Go test's text, numbered 1..n per connection.
    stats = target.stats()
    assert stats["participant_messages_stored"] == summary["messages_sent"]
    assert summary["messages_delivered"] == summary["messages_sent"]
    rtt = summary["latency"]["message_rtt"]
    assert rtt["count"] == summary["messages_delivered"]
    assert 0 < rtt["p50_ms"] <= rtt["p99_ms"] < 1000  # loopback: well under a second
    texts = stored_participant_messages(target.config)
    assert len(texts) == summary["messages_sent"]
    numbers: dict[str, list[int]] = {}
    for text in texts:
        match = MESSAGE.match(text)
        assert match, text
        numbers.setdefault(match.group(1), []).append(int(match.group(2)))
    assert len(numbers) == summary["chats_count"]
    for sequence in numbers.values():
        assert sorted(sequence) == list(range(1, len(sequence) + 1))

    rows = read_series(outputs(tmp_path / "out")["series"])
    assert [r["second"] for r in rows] == list(range(rows[0]["second"], rows[-1]["second"] + 1))
    assert sum(int(r["sent"]) for r in rows) == summary["messages_sent"]
    assert "ended by duration" in capsys.readouterr().err



@pytest.mark.portable_twin
def test_embedded_target_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.json here
    status = main(["-q", "--out", "out", "-sci", "10", "-cpi", "100", "-smi", "100",
                   "--duration", "2s"])
    assert status == 0
    summary, _ = load_results(tmp_path / "out")
    assert summary["target"]["embedded"] is True
    assert summary["messages_sent"] > 0
    assert summary["cross_check"] == {"messages_sent": summary["messages_sent"],
                                      "target_stored": summary["messages_sent"], "difference": 0}
    assert "plot" in outputs(tmp_path / "out")
    assert not child_targets(), "the embedded target outlived the run"



def test_chat_found_by_get_chats_when_push_is_missed(tmp_path, target_factory):
    # The handshake delay lets the organizer start each chat before its participant connects,
    # so no new_chat reaches the participant: only the get_chats fallback can find the chat.
    target = target_factory("--ws-handshake-delay", "0.4")
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "200", "-smi", "100",
                      "--max-participants", "5", "--duration", "2.5s")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    assert summary["chats_count"] == summary["created_participants_count"] > 0
    assert summary["counts"].get("chats_found_by_poll", 0) == summary["chats_count"]
    assert summary["counts"].get("chats_found_by_push", 0) == 0


def test_first_error_stops_the_run_and_files_are_written(tmp_path, target_factory, capsys):
    target = target_factory("--fail-signup-after", "3")
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    error = summary["first_error"]
    assert error["thread"].startswith("participant-")  # whichever signed up fourth
    assert "responded with status code: 500 instead of: 201" in error["message"]
    assert "Traceback" in error["traceback"] and "sign_up" in error["traceback"]
    assert summary["end_reason"] == "error" and summary["exit_status"] == 1
    assert summary["created_participants_count"] == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err  # the traceback is in the summary, not on the terminal
    assert "error: participant-" in err.splitlines()[-1]


def test_server_error_frame_is_the_first_error(tmp_path, target_factory):
    target = target_factory("--error-frame-after", "5")
    status = run_main(tmp_path, write_config(tmp_path, target.config),
                      "-sci", "10", "-cpi", "100", "-smi", "50")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    assert "server error: internal server error" in summary["first_error"]["message"]
    assert summary["messages_sent"] >= 5


def test_bad_organizer_password_is_refused_before_any_load(tmp_path, target, capsys):
    config = write_config(tmp_path, {k: v for k, v in target.config.items()
                                     if k != "organizers"},
                          organizer_password="wrong-password-123456")
    assert run_main(tmp_path, config, "--duration", "5s") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"esmeperf: error: organizer {target.config['organizer_email']}: sign-in "
                   "rejected with status 400: invalid email or password"]
    assert "wrong-password-123456" not in err[0]
    assert not outputs(tmp_path / "out")  # no run, no result files


@pytest.mark.parametrize("key", ["organizer_api_url", "participant_api_url",
                                 "messenger_ws_url"])
def test_unreachable_url_is_refused_before_any_load(tmp_path, target, unused_port, capsys,
                                                    key):
    scheme = "ws" if key == "messenger_ws_url" else "http"
    url = f"{scheme}://127.0.0.1:{unused_port}"
    config = write_config(tmp_path, target.config, **{key: url})
    assert run_main(tmp_path, config, "--duration", "5s", "--http-timeout", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"esmeperf: error: {key} {url}: connection refused"]
    assert not outputs(tmp_path / "out")


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("args", "words"), [
    (["-sci", "0"], "must be a positive number of milliseconds"),
    (["-smi", "-5"], "must be a positive number of milliseconds"),
    (["-cpi", "abc"], "expected milliseconds"),
    (["--duration", "soon"], "expected a positive time span"),
    (["--config", "/nonexistent/config.json"], "no such config file"),
    (["--min-delivered-ratio", "2"], "between 0 and 1"),
    (["--target-args", '"unclosed'], "No closing quotation"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, words):
    assert main(["--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*_performance_test_*"))


def test_bad_config_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"event_id": 1, "messenger_ws_url": "ws://127.0.0.1:1/", '
                    '"organizer_api_url": "http://127.0.0.1:1", "organizer_email": "a@b.c", '
                    '"organizer_password": "x"}')
    assert main(["--config", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"esmeperf: error: {path}: missing key 'participant_api_url'"


def test_unwritable_out_dir_is_refused_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "sub"), "--duration", "1s"]) == 2
    assert "not a writable directory" in capsys.readouterr().err


def test_ws_refused_stops_the_run(tmp_path, target_factory):
    target = target_factory("--refuse-ws-after", "3")  # the organizer's + two participants
    status = run_main(tmp_path, write_config(tmp_path, target.config),
                      "-sci", "10", "-cpi", "50", "-smi", "100")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    assert "could not connect to websocket" in summary["first_error"]["message"]
    assert summary["chats_count"] == 2


def test_server_closing_a_socket_stops_the_run(tmp_path, target_factory):
    target = target_factory("--close-after-messages", "4")
    status = run_main(tmp_path, write_config(tmp_path, target.config),
                      "-sci", "10", "-cpi", "100", "-smi", "50")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    assert "error receiving message" in summary["first_error"]["message"]


def test_echoes_waiting_at_the_stop_are_counted(tmp_path, target):
    # At -smi 1000 a participant sleeps from one send to the next, its echo waiting in the
    # socket (batched reads); the stop must still count every echo.
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "100", "-smi", "1000",
                      "--max-participants", "4", "--duration", "2.5s")
    assert status == 0
    summary, _ = load_results(tmp_path / "out")
    assert summary["messages_sent"] >= 4
    assert summary["messages_delivered"] == summary["messages_sent"]
    assert summary["messages_unconfirmed"] == 0


def test_batched_reads_wait_for_their_deadline(target, esme):
    from esmeperf.transport.connection import Connection

    token = esme.organizer_token()
    conn = Connection.open(target.config["messenger_ws_url"], token, 5, newline=True)
    try:
        assert conn.batch_reads(True)
        stamped = []
        # Linux turns receive timestamps on through a deferred work item the first time any
        # socket asks, so a packet right after that may come unstamped (rx_ns 0: the code
        # then uses the wake-up time). Three tries: at least one must carry the stamp.
        for _ in range(3):
            sent = time.time_ns()
            conn.send('{"type":"start_chat","payload":""}\n')  # answered: "no new chats"
            started = time.time_ns()
            frame = conn.recv(0.5)  # the small answer does not end the wait; the deadline does
            assert time.time_ns() - started >= 450_000_000
            assert json.loads(frame or "{}") == {"type": "info",
                                                 "payload": {"message": "no new chats"}}
            if conn.rx_ns:
                # The kernel stamped the answer on arrival, not when the deadline woke us.
                assert sent < conn.rx_ns < started + 450_000_000
                stamped.append(conn.rx_ns)
                break
        assert stamped, "no answer carried a kernel receive timestamp"
        conn.batch_reads(False)
        conn.send('{"type":"start_chat","payload":""}\n')
        started = time.time_ns()
        assert conn.recv(5) is not None  # unbatched: back as soon as the frame is there
        assert time.time_ns() - started < 2_000_000_000
    finally:
        conn.abort()


def test_ipv6_loopback_addresses_are_written_as_go_does(tmp_path, target_factory):
    target = target_factory(host="::1")
    assert target.config["messenger_ws_url"].startswith("ws://[::1]:")
    status = run_main(tmp_path, write_config(tmp_path, target.config), "-sci", "10",
                      "-cpi", "100", "-smi", "100", "--max-participants", "2", "--duration", "2s")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    texts = stored_participant_messages(target.config)
    assert texts and all(re.fullmatch(r"connection \[::1\]:\d+: message number \d+", t)
                         for t in texts)
