"""Platform mechanisms (esmeperf/system/platform_support.py): what detection finds on this
Linux, and the portable fallbacks --portable forces, each exercised on real sockets and processes.

The run and measurement tests run on the portable path too (marked portable_twin); these
test what those cannot see from a summary."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import load_results, own_children, run_main, write_config

from esmeperf.measure import cpu
from esmeperf.system import openfiles, platform_support
from esmeperf.target.launcher import TargetProcess
from esmeperf.transport.connection import Closed, Connection

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's mechanisms")


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> platform_support.Mechanisms:
    monkeypatch.setenv(platform_support.ENV, "1")
    return platform_support.active()


def session_and_group(pid: int) -> tuple[int, int]:
    """(process group, session) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[2]), int(fields[3])


@linux
def test_linux_offers_every_fast_mechanism_and_portable_takes_every_fallback(monkeypatch):
    monkeypatch.delenv(platform_support.ENV, raising=False)
    native = platform_support.active()
    assert native == platform_support.detected() and not native.portable
    assert native.batched_reads and native.kernel_deadlines and native.timestamp_option
    assert native.getrusage and native.proc_stat and native.rlimits and native.dontwait
    assert (native.session, native.thread_dump) == ("setsid", "faulthandler")
    monkeypatch.setenv(platform_support.ENV, "1")
    fallback = platform_support.active()
    assert fallback.summary() == {
        "system": "Linux", "portable": True, "receive_time": "clock", "batched_reads": False,
        "recv_deadlines": "socket timeout", "cpu": "process_time", "target_cpu": "none",
        "open_files_limit": "none", "new_session": "setpgid", "thread_dump": "SIGUSR1"}
    monkeypatch.setenv(platform_support.ENV, "0")  # "0" is off, as unset
    assert platform_support.active() is native


def test_portable_connection_reads_each_frame_at_once_on_socket_timeouts(target, esme,
                                                                        portable):
    token = esme.organizer_token()
    conn = Connection.open(target.config["messenger_ws_url"], token, 5, newline=True)
    try:
        assert conn.batch_reads(True) is False  # no SO_RCVLOWAT, no kernel timestamps
        assert conn.sock.gettimeout() == 5  # Python's timeouts, not SO_RCVTIMEO
        conn.send('{"type":"start_chat","payload":""}\n')  # answered: "no new chats"
        started = time.monotonic()
        frame = conn.recv(3)
        assert json.loads(frame or "{}")["payload"] == {"message": "no new chats"}
        assert time.monotonic() - started < 2.5  # woken by the frame, not the deadline
        assert conn.rx_ns == 0  # the caller times it by its clock, right after the read
        assert conn.recv(0.001) is None  # a short wait ends by its timeout ...
        conn.send('{"type":"start_chat","payload":""}\n')
        assert conn.sock.gettimeout() == 5  # ... which the next send does not inherit
        assert conn.recv(3) is not None
        conn.close()  # the close frame goes out without MSG_DONTWAIT: the server answers
        with pytest.raises(Closed, match="closed by server"):
            while True:
                conn.recv(3)
    finally:
        conn.abort()


def test_portable_cpu_comes_from_process_time_and_nothing_else_from_resource(portable):
    import resource

    def rusage() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    before, before_rusage = cpu.cpu_seconds(), rusage()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU
        pass
    spent, spent_rusage = cpu.cpu_seconds() - before, rusage() - before_rusage
    assert spent >= 0.2 and abs(spent - spent_rusage) < 0.05
    assert cpu.process_cpu_seconds(os.getpid()) is None  # no /proc: target CPU unknown
    assert openfiles.limits() is None and openfiles.raise_soft_limit() is None
    assert openfiles.check(openfiles.plan(10**9, None, 1, 1, True), None) is None


@linux
@pytest.mark.parametrize("path", ["native", "portable"])
def test_embedded_target_leaves_the_terminals_process_group(monkeypatch, path):
    if path == "portable":
        monkeypatch.setenv(platform_support.ENV, "1")
    else:
        monkeypatch.delenv(platform_support.ENV, raising=False)
    with TargetProcess() as proc:
        assert proc.pid is not None
        group, session = session_and_group(proc.pid)
        assert group == proc.pid  # a Ctrl-C to our group does not reach it
        # setsid: a session of its own; setpgid (the portable path): a group in ours
        assert (session == proc.pid) is (path == "native")
        assert session == proc.pid or session == os.getsid(0)


@pytest.mark.slow  # two shards
@linux
def test_portable_flag_reaches_the_shards_and_the_summary(tmp_path, target, monkeypatch):
    monkeypatch.delenv(platform_support.ENV, raising=False)
    seen: dict[int, tuple[int, int]] = {}
    done = threading.Event()

    def watch_shards() -> None:
        """Record each shard process (a spawned child) once it has left our group."""
        while not done.wait(0.02):
            for pid in own_children(b"spawn_main"):
                group, session = session_and_group(pid)
                if group == pid:
                    seen[group] = (group, session)

    watcher = threading.Thread(target=watch_shards, name="shard-watcher")
    watcher.start()
    try:
        status = run_main(tmp_path, write_config(tmp_path, target.config), "--portable",
                          "--processes", "2", "-sci", "10", "-cpi", "50", "-smi", "100",
                          "--max-participants", "6", "--duration", "4s")
    finally:
        done.set()
        watcher.join(5)
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    assert summary["platform"]["portable"] is True and len(summary["shards"]) == 2
    assert summary["messages_delivered"] == summary["messages_sent"] > 0
    assert len(seen) == 2, seen
    # Both shards took the portable way out of the group (setpgid: our session, not theirs).
    assert all(session == os.getsid(0) for _, session in seen.values()), seen
    assert platform_support.ENV not in os.environ  # --portable lasted for its job only


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_portable_thread_dump_is_a_python_handler_on_sigusr1(capfd):
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        assert platform_support.install_thread_dump(platform_support.fallbacks()) == "SIGUSR1"
        os.kill(os.getpid(), signal.SIGUSR1)
        err, deadline = "", time.monotonic() + 5
        while "Current thread" not in err and time.monotonic() < deadline:
            err += capfd.readouterr().err  # the handler runs at the next bytecode boundary
        assert "Current thread" in err and __name__.split(".")[-1] in err
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_missing_mechanisms_are_one_line_refusals():
    here = platform_support.detected()
    assert platform_support.refusal(4, True, here) is None
    no_spawn = replace(here, start_method=None)
    assert platform_support.refusal(1, False, no_spawn) is None
    text = platform_support.refusal(4, False, no_spawn)
    assert text and "--processes 4" in text and "spawn" in text and "\n" not in text
    no_target = replace(here, embedded_target=False)
    assert platform_support.refusal(1, False, no_target) is None  # a config names a target
    text = platform_support.refusal(1, True, no_target)
    assert text and "--config" in text and "\n" not in text


def test_portable_env_is_restored_after_the_job(monkeypatch):
    monkeypatch.delenv(platform_support.ENV, raising=False)
    with platform_support.portable_env(True):
        assert platform_support.active().portable
    assert not platform_support.active().portable
    monkeypatch.setenv(platform_support.ENV, "1")  # set by the user: left as it was
    with platform_support.portable_env(True):
        pass
    assert os.environ[platform_support.ENV] == "1"
