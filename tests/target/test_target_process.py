"""Process-level behaviour: CLI errors, ready JSON, signals, --watch-fd, the launcher."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys

import pytest

from esmeperf.target.cli import get_parser
from esmeperf.target.launcher import TargetError, TargetProcess

READY_KEYS = ["event_id", "messenger_ws_url", "organizer_api_url", "organizer_email",
              "organizer_password", "participant_api_url", "organizers", "pid"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawn(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "esmeperf.target", *args], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_ready_file_format_and_sigterm_exit_0(tmp_path) -> None:
    ready = tmp_path / "ready.json"
    # the file is written before the fd, so EOF on the fd pipe means the file is complete
    read_end, write_end = os.pipe()
    proc = spawn("--organizer-port", "0", "--participant-port", "0", "--messenger-port", "0",
                 "--ready-file", str(ready), "--ready-fd", str(write_end),
                 pass_fds=(write_end,))
    os.close(write_end)
    try:
        assert select.select([read_end], [], [], 20)[0], "target never became ready"
        line = os.read(read_end, 65536)
        os.close(read_end)
        text = ready.read_text()
        assert text.endswith("\n") and text.count("\n") == 1
        doc = json.loads(text)
        assert list(doc) == READY_KEYS
        assert doc["event_id"] == 1 and doc["pid"] == proc.pid
        assert doc["messenger_ws_url"].startswith("ws://127.0.0.1:")
        assert not doc["messenger_ws_url"].endswith("/")
        assert doc["organizer_api_url"].startswith("http://127.0.0.1:")
        assert doc["organizer_email"] == "organizer@esmeperf.local"
        assert len(doc["organizer_password"]) >= 16
        assert doc["organizers"] == []  # the first account is in ESME's keys, once
        assert json.loads(line) == doc
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".ready-")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        # One line for a person: where the three APIs listen. The ready file goes at exit.
        assert proc.stderr.read().decode() == (  # type: ignore[union-attr]
            f"esmeperf-target: ready: organizer API {doc['organizer_api_url']}, "
            f"participant API {doc['participant_api_url']}, "
            f"Messenger API {doc['messenger_ws_url']}\n")
        assert proc.stdout.read() == b""  # type: ignore[union-attr]
        assert os.listdir(tmp_path) == []
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_ready_file_names_each_account_once_so_one_edit_changes_a_password(
        tmp_path, capsys) -> None:
    """The file is a config.json: change organizer_password in it, and that is the password
    esmeperf signs in with (here a wrong one, which the running target rejects)."""
    from esmeperf.cli.main import main
    from esmeperf.config import load_target

    ready = tmp_path / "config.json"
    read_end, write_end = os.pipe()
    proc = spawn("--organizer-port", "0", "--participant-port", "0", "--messenger-port", "0",
                 "--organizers", "2", "--ready-file", str(ready), "--ready-fd", str(write_end),
                 pass_fds=(write_end,))
    os.close(write_end)
    try:
        assert select.select([read_end], [], [], 20)[0], "target never became ready"
        os.close(read_end)
        doc = json.loads(ready.read_text())
        assert doc["organizers"] == [{"email": "organizer2@esmeperf.local",
                                      "password": doc["organizer_password"]}]
        ready.write_text(json.dumps({**doc, "organizer_password": "another-password-16+"}))
        target = load_target(ready)
        assert [(c.email, c.password) for c in target.organizers] == [
            (doc["organizer_email"], "another-password-16+"),
            ("organizer2@esmeperf.local", doc["organizer_password"])]
        out = tmp_path / "out"
        assert main(["--config", str(ready), "--organizers", "2", "--duration", "5s",
                     "--out", str(out)]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"esmeperf: error: organizer {doc['organizer_email']}: sign-in rejected with "
            "status 400: invalid email or password"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_sigint_exit_0_and_db_persists(tmp_path) -> None:
    db = tmp_path / "t.sqlite3"
    with TargetProcess("--db", str(db)) as first:
        from conftest import EsmeClient
        client = EsmeClient(first.config)
        client.sign_up("keep@example.com")
        client.close()
        os.kill(first.pid, signal.SIGINT)  # type: ignore[arg-type]
        assert first.stop() == 0
    with TargetProcess("--db", str(db)) as second:
        assert second.stats()["participants"] == 1


@pytest.mark.parametrize("args,needle", [
    (["--organizer-port", "abc"], "invalid port"),
    (["--messenger-port", "70000"], "port must be 0-65535"),
    (["--organizers", "0"], "must be >= 1"),
    (["--ready-fd", "999"], "file descriptor 999 is not open"),
    (["--watch-fd", "0"], "not a pipe or socket"),
    (["--organizer-password", "short"], "16-128 characters"),
    (["--nope"], "unrecognized arguments"),
])
def test_bad_cli_is_one_line_exit_2(args: list[str], needle: str) -> None:
    proc = spawn(*args)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("esmeperf-target: ")


@pytest.mark.parametrize("where,reason", [
    ("missing/c.json", "{path}: no such directory: {tmp}/missing"),
    (".", "{path} is a directory"),
])
def test_bad_ready_file_is_exit_2_before_binding(tmp_path, where: str, reason: str) -> None:
    path = str(tmp_path / where) if where != "." else str(tmp_path)
    with socket.socket() as busy:  # were the ports bound first, this would be exit 1
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        proc = spawn("--organizer-port", port, "--participant-port", "0", "--messenger-port",
                     "0", "--ready-file", path)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert err.decode() == ("esmeperf-target: error: argument --ready-file: "
                            + reason.format(path=path, tmp=tmp_path) + " (see --help)\n")
    assert out == b""
    assert os.listdir(tmp_path) == []  # nothing written, and the process is gone (waited)


def test_port_in_use_exit_1_names_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = spawn("--organizer-port", "0", "--participant-port", str(port),
                     "--messenger-port", "0")
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "participant" in lines[0]


def test_watch_fd_eof_shuts_down_cleanly() -> None:
    target = TargetProcess()
    target.start()
    try:
        target.close_watch_pipe()
        assert target._wait(10) == 0  # exits by itself, no signal sent
    finally:
        target.stop()


def test_launcher_reports_child_failure_and_timeout() -> None:
    with pytest.raises(TargetError, match="exited with status 2.*unrecognized"):
        TargetProcess("--bogus").start()
    slow = TargetProcess("--pbkdf2-iterations", "300000000", ready_timeout=0.5)
    with pytest.raises(TargetError, match="not ready after 0.5 s"):
        slow.start()
    assert slow.returncode is not None and slow.stop() == slow.returncode


def test_launcher_is_idempotent_and_kill_works() -> None:
    target = TargetProcess()
    config = target.start()
    assert config is target.config and target.pid == config["pid"]
    with pytest.raises(TargetError):
        target.start()
    target.kill()
    assert target.returncode == -signal.SIGKILL
    assert target.stop() == -signal.SIGKILL  # idempotent after kill


def test_ipv6_urls_are_bracketed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not available")
    with TargetProcess(host="::1") as target:
        assert target.config["messenger_ws_url"].startswith("ws://[::1]:")
        assert target.stats()["participants"] == 0


def test_every_option_has_help() -> None:
    for action in get_parser()._actions:
        assert action.help, action.dest


def test_sigterm_under_traffic_flushes_messages(tmp_path) -> None:
    from conftest import EsmeClient

    db = str(tmp_path / "t.sqlite3")
    target = TargetProcess("--db", db)
    target.start()
    client = EsmeClient(target.config)
    try:
        c = client.chat()
        for i in range(200):
            client.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": str(i)})
        for _ in range(200):  # all processed; the last rows wait for the 50 ms batch commit
            client.recv(c["part"])
        # SIGTERM now: the shutdown path must flush the pending batch
        assert target.stop() == 0
    finally:
        client.close()
        target.stop()
    import sqlite3

    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT COUNT(*) FROM messages WHERE description = 0").fetchone()[0]
    conn.close()
    assert stored == 200
    with TargetProcess("--db", db) as again:
        stats = again.stats()
        assert stats["participant_messages_stored"] == stored
        assert stats["messages_stored"] == stored + 1  # plus the problem description


def test_restart_on_db_restores_chats_and_counters(tmp_path) -> None:
    """Every read of Hub.load and of the messenger REST API sees what the first process stored."""
    from conftest import EsmeClient

    db = str(tmp_path / "t.sqlite3")
    with TargetProcess("--db", db) as first:
        client = EsmeClient(first.config)
        try:
            ended = client.chat()
            for sender, text in (ended["part"], "p"), (ended["org"], "o"):
                client.send(sender, "send_message", {"chatId": ended["chat_id"], "message": text})
                for ws in (ended["part"], ended["org"]):  # each message goes to both parties
                    assert client.recv(ws)["payload"]["content"] == text
            client.send(ended["org"], "close_chat", {"chatId": ended["chat_id"]})
            assert client.recv(ended["org"])["type"] == "closed_chat"
            active = client.chat(description="")
            _, waiting = client.sign_up()
            client.request_chat(waiting)  # stays queued: counted, not a chat
            before = first.stats()
            history = client.get("messenger_ws_url", f"/agency/chats/{ended['chat_id']}/messages",
                                 ended["o_token"]).json()
        finally:
            client.close()
    with TargetProcess("--db", db) as again:
        after = again.stats()
        for key in ("participants", "chat_requests_total", "chats", "messages_stored",
                    "participant_messages_stored", "organizer_messages_stored"):
            assert after[key] == before[key], key
        client = EsmeClient(again.config)
        try:
            o_token = client.organizer_token()
            org = client.ws(o_token)
            chats = client.request(org, "get_chats")["payload"]["chats"]
            assert [c["id"] for c in chats] == [active["chat_id"]]  # only the active one
            archived = client.get("messenger_ws_url", "/agency/chats", o_token).json()
            assert [c["id"] for c in archived] == [ended["chat_id"]]
            assert client.get("messenger_ws_url", f"/agency/chats/{ended['chat_id']}/messages",
                              o_token).json() == history
            event = client.get("organizer_api_url", "/api/events/1",
                               "esmeperf-organizer-api-key")
            assert event.status_code == 200 and event.json()["agencyId"] == 1
        finally:
            client.close()
