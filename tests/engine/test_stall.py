"""A frozen target is a failed run: stall detection while the load runs (SIGSTOP, real target)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import load_results, write_config

from esmeperf.cli.main import main
from esmeperf.target.launcher import TargetProcess

pytestmark = pytest.mark.slow  # each waits out a stall timeout of seconds

# All participants arrive before the freeze (a sign-up to a frozen target would fail by its
# HTTP timeout first); the shutdown's waits are short, since a frozen target answers nothing.
LOAD = ("-sci", "10", "-cpi", "50", "-smi", "200", "--max-participants", "10",
        "--echo-timeout", "1", "--join-timeout", "3")


class Background:
    """main(argv) in a thread (a frozen target must not freeze the test), its status kept."""

    def __init__(self, argv: list[str]) -> None:
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self.thread.start()

    def _run(self, argv: list[str]) -> None:
        self.status = main(argv)

    def join(self, timeout: float) -> int | None:
        self.thread.join(timeout)
        return self.status


def wait_for_messages(target: TargetProcess, at_least: int, timeout: float = 20) -> None:
    """Until the target has stored `at_least` participant messages (a condition, bounded)."""
    deadline = time.monotonic() + timeout
    while target.stats()["participant_messages_stored"] < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} messages in {timeout} s"
        threading.Event().wait(0.1)


@pytest.fixture
def frozen() -> Iterator[list[TargetProcess]]:
    """Targets the test froze; resumed (and stopped by their fixture) whatever happens."""
    stopped: list[TargetProcess] = []
    yield stopped
    for proc in stopped:
        if proc.pid is not None and proc.returncode is None:
            os.kill(proc.pid, signal.SIGCONT)


def freeze(target: TargetProcess, frozen: list[TargetProcess]) -> None:
    assert target.pid is not None
    frozen.append(target)
    os.kill(target.pid, signal.SIGSTOP)


@pytest.mark.exclusive  # a stall is timed, and named, against the machine's load
def test_a_frozen_target_stops_the_run_as_a_stall(tmp_path, target, frozen):
    config = write_config(tmp_path, target.config)
    run = Background(["-q", "--no-plot", "--out", str(tmp_path / "out"), "--config", str(config),
                      *LOAD, "--duration", "40s", "--stall-timeout", "3"])
    wait_for_messages(target, 30)
    freeze(target, frozen)
    frozen_at = time.monotonic()
    assert run.join(3 + 20) == 1
    assert time.monotonic() - frozen_at < 3 + 20
    summary, _ = load_results(tmp_path / "out")
    assert summary["end_reason"] == "stall" and summary["exit_status"] == 1
    error = summary["first_error"]
    assert re.fullmatch(r"participant-\d+|organizer-1", error["thread"]), error
    assert re.fullmatch(r"(message number \d+|start_chat) unanswered for \d+\.\d s "
                        r"\(--stall-timeout 3 s\): the target stopped answering",
                        error["message"]), error
    # The generator was healthy and nothing waited unread: the target's, and said so.
    assert error["attribution"] == "target"
    assert summary["attribution"]["limited_by"] == "target"
    assert summary["messages_unconfirmed"] > 0
    assert summary["messages_confirmed"] == summary["messages_delivered"]
    # The view that counts the unanswered at their age cannot look healthy.
    assert summary["latency"]["message_rtt_with_unconfirmed"]["max_ms"] >= 3000
    assert summary["latency"]["message_rtt"]["p99_ms"] < 3000


def test_stall_timeout_0_keeps_the_old_behaviour(tmp_path, target, frozen):
    config = write_config(tmp_path, target.config)
    run = Background(["-q", "--no-plot", "--out", str(tmp_path / "out"), "--config", str(config),
                      *LOAD, "--duration", "5s", "--stall-timeout", "0"])
    wait_for_messages(target, 30)
    freeze(target, frozen)
    assert run.join(5 + 20) == 0
    summary, _ = load_results(tmp_path / "out")
    assert summary["end_reason"] == "duration" and summary["first_error"] is None
    assert summary["messages_unconfirmed"] > 0
    assert summary["latency"]["message_rtt_with_unconfirmed"]["max_ms"] >= 1000


@pytest.mark.exclusive  # a stall is timed, and named, against the machine's load
def test_a_pause_shorter_than_the_timeout_does_not_trip_it(tmp_path, target, frozen):
    config = write_config(tmp_path, target.config)
    run = Background(["-q", "--no-plot", "--out", str(tmp_path / "out"), "--config", str(config),
                      *LOAD, "--duration", "7s", "--stall-timeout", "5"])
    wait_for_messages(target, 30)
    freeze(target, frozen)
    threading.Event().wait(1.5)  # the pause under test: the target frozen for 1.5 s
    assert target.pid is not None
    os.kill(target.pid, signal.SIGCONT)
    assert run.join(7 + 20) == 0
    summary, _ = load_results(tmp_path / "out")
    assert summary["end_reason"] == "duration" and summary["first_error"] is None
    assert summary["messages_unconfirmed"] == 0
    assert summary["latency"]["message_rtt"]["max_ms"] >= 1000  # the pause shows, no more
