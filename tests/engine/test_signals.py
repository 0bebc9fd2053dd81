"""Ways out from outside: signals to esmeperf and the death of its embedded target."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

PROGRESS = re.compile(r"^\s+\d+s(/\d+s)? participants")
TARGET_PID = re.compile(r"embedded target on \S+ \(pid (\d+)\)")
GRACEFUL = re.compile(r"stopping gracefully")
FORCED = re.compile(r"stopping at once")


class Esmeperf:
    """`python -m esmeperf` as a child process whose stderr is read line by line."""

    def __init__(self, out: Path, *args: str, new_session: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "esmeperf", "--out", str(out), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=out.parent, start_new_session=new_session)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """Block until a stderr line matches within `timeout` in all (never a sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern.pattern!r} in {timeout:g} s; "
                                     f"last lines: {self.seen[-5:]}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            match = pattern.search(line)
            if match:
                return match

    def wait_for_child(self, find: Callable[[int], list[int]], timeout: float = 30.0) -> bool:
        """Whether `find(pid)` names a child within `timeout` (another process starts it)."""
        deadline = time.monotonic() + timeout
        while not find(self.proc.pid):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return False
            threading.Event().wait(0.05)
        return True

    def finish(self, timeout: float = 40.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return code

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def esmeperf_process():
    """Start `python -m esmeperf` children; each is killed (if need be) and reaped afterwards."""
    started: list[Esmeperf] = []

    def start(out: Path, *args: str, new_session: bool = False) -> Esmeperf:
        started.append(Esmeperf(out, *args, new_session=new_session))
        return started[-1]

    yield start
    for proc in started:
        proc.cleanup()


def summary_of(out: Path) -> dict:
    (path,) = out.glob("*_performance_test_summary.json")
    summary = json.loads(path.read_text())
    (rates,) = out.glob("*_performance_test_message_rates.json")
    assert sum(json.loads(rates.read_text()).values()) == summary["messages_sent"]
    return summary


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("signals", [
    (signal.SIGINT,), (signal.SIGINT, signal.SIGINT), (signal.SIGTERM,)],
    ids=["sigint", "sigint-twice", "sigterm"])
def test_signals_stop_the_run_with_files(tmp_path, esmeperf_process, signals):
    out = tmp_path / "out"
    run = esmeperf_process(out, "-sci", "10", "-cpi", "50", "-smi", "100")
    target_pid = int(run.wait_for(TARGET_PID).group(1))
    run.wait_for(PROGRESS)
    run.wait_for(PROGRESS)  # two seconds in: participants are chatting
    run.proc.send_signal(signals[0])
    run.wait_for(GRACEFUL)
    if len(signals) > 1:  # only once the first was taken, or the two may count as one
        run.proc.send_signal(signals[1])
        run.wait_for(FORCED)
    assert run.finish() == 130, run.seen[-5:]
    summary = summary_of(out)
    assert summary["end_reason"] == f"signal {signals[0].name}"
    assert summary["exit_status"] == 130
    assert summary["messages_sent"] > 0
    assert gone(target_pid)
    assert run.seen[-1].startswith(f"esmeperf: ended by signal {signals[0].name}")


def test_ctrl_c_to_the_process_group_stops_only_esmeperf(tmp_path, esmeperf_process):
    # A terminal's Ctrl-C goes to the whole foreground group; the target and the shards have
    # their own sessions, so esmeperf stops them in order and nothing is cut short.
    out = tmp_path / "out"
    run = esmeperf_process(out, "-sci", "10", "-cpi", "50", "-smi", "100", "--processes", "2",
                           new_session=True)
    run.wait_for(TARGET_PID)
    run.wait_for(PROGRESS)
    run.wait_for(PROGRESS)
    os.killpg(run.proc.pid, signal.SIGINT)
    assert run.finish() == 130, run.seen[-5:]
    summary = summary_of(out)
    assert summary["errors_after_stop"] == 0
    assert summary["messages_unconfirmed"] == 0
    assert summary["cross_check"]["difference"] == 0


def test_target_killed_mid_run(tmp_path, esmeperf_process):
    out = tmp_path / "out"
    run = esmeperf_process(out, "-sci", "10", "-cpi", "50", "-smi", "100",
                           "--handshake-timeout", "5", "--http-timeout", "5")
    target_pid = int(run.wait_for(TARGET_PID).group(1))
    run.wait_for(PROGRESS)
    os.kill(target_pid, signal.SIGKILL)
    assert run.finish() == 1, run.seen[-5:]
    summary = summary_of(out)
    assert summary["end_reason"] == "error"
    assert "the embedded target had exited with status -9" in summary["first_error"]["message"]
    assert "error" in run.seen[-1]


# -- one owner of the signals, in every phase of a job -------------------------------------------
STARTING_TARGET = re.compile(r"starting the embedded target$")
READING_STATS = re.compile(r"reading the target's /stats$")
WRITING = re.compile(r"writing the results$")
SECOND_RUN = re.compile(r"=== run 2 of 2")
BOTH = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])


LOAD = ("-sci", "10", "-cpi", "50")


def interrupt_at(run: Esmeperf, pattern: re.Pattern[str], sig: signal.Signals) -> Esmeperf:
    """Send `sig` once the run logs a line matching `pattern` (the phase under test)."""
    run.wait_for(pattern)
    run.proc.send_signal(sig)
    return run


def targets_of(pid: int) -> list[int]:
    """Live `esmeperf.target` processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pid and stat[0] != "Z" and b"esmeperf.target" in cmdline:
            found.append(int(entry.name))
    return found


@BOTH
def test_signal_while_the_target_starts(tmp_path, esmeperf_process, sig):
    out = tmp_path / "out"
    # Hashing the organizer's password this many times keeps the target busy starting.
    run = esmeperf_process(out, "-sci", "10", "-cpi", "50", "-smi", "100",
                           "--target-args", "--pbkdf2-iterations 50000000")
    run.wait_for(STARTING_TARGET)
    assert run.wait_for_child(targets_of)
    starting = targets_of(run.proc.pid)
    run.proc.send_signal(sig)
    assert run.finish() == 130, run.seen[-5:]
    assert run.seen[-1] == "esmeperf: interrupted before the run started"
    assert not list(out.glob("*_performance_test_*"))
    assert starting and all(gone(pid) for pid in starting)


@pytest.mark.slow
@BOTH
def test_signal_while_the_targets_stats_are_read(tmp_path, esmeperf_process, sig):
    out = tmp_path / "out"
    run = interrupt_at(esmeperf_process(out, *LOAD, "-smi", "100", "--duration", "2s",
                                        "--target-args", "--stats-delay 3"),
                       READING_STATS, sig)
    run.wait_for(re.compile("the results are being written; stopping after that"))
    assert run.finish() == 130, run.seen[-5:]
    summary = summary_of(out)
    assert summary["end_reason"] == "duration" and summary["target_stats"]
    assert any("stopped by" in line and "after writing the results" in line
               for line in run.seen)


@BOTH
def test_signal_while_the_files_are_written(tmp_path, esmeperf_process, sig):
    out = tmp_path / "out"
    # The plot, drawn last, takes far longer than this signal.
    run = interrupt_at(esmeperf_process(out, *LOAD, "-smi", "100", "--duration", "2s"),
                       WRITING, sig)
    assert run.finish() == 130, run.seen[-5:]
    summary = summary_of(out)
    assert summary["end_reason"] == "duration"
    assert len(list(out.glob("*_performance_test_rates.png"))) == 1
    # Every output says the same (issue 39): the summary's status is the process's, and the
    # final line, last as ever, names the signal.
    assert summary["exit_status"] == 130 and summary["verdict"]["held_signal"] == sig.name
    assert run.seen[-2].endswith(f"stopped by {sig.name} after writing the results")
    assert run.seen[-1].startswith("esmeperf: ended by duration")
    assert run.seen[-1].endswith(f"; {sig.name} came while the results were written: exit 130")


@BOTH
def test_signal_between_sweep_runs(tmp_path, esmeperf_process, sig):
    out = tmp_path / "out"
    run = interrupt_at(esmeperf_process(out, *LOAD, "-smi", "100,200", "--duration", "2s"),
                       SECOND_RUN, sig)
    assert run.finish() == 130, run.seen[-5:]
    first = out / "01_sci10_cpi50_smi100_r1"
    assert summary_of(first)["end_reason"] == "duration"
    second = out / "02_sci10_cpi50_smi200_r1"
    # The second run either never started, or started and was stopped with its files.
    if second.exists() and list(second.glob("*_summary.json")):
        assert summary_of(second)["end_reason"] == f"signal {sig.name}"
    assert "| 01_sci10_cpi50_smi100_r1 |" in (out / "report.md").read_text()
