"""Side by side with ESME's own Go performance test, in the same minutes (issues 13 and 30).

    python3 bench/versus_go.py [--runs 2] [--shapes 1,2,4] [--hold] [--hold-participants N]
                               [--pacing]
                               [--duration-scale F] [--duration N=SPAN ...]
                               [--go-binary PATH] [--stop duration|sigint]
                               [--esmeperf-args ARGS] [--baseline REV] [--pause S]
                               [--keep DIR]

The output starts with the date and time (UTC), esmeperf's version and the git revision measured
(and whether esmeperf/ has uncommitted changes), the host's CPU model (/proc/cpuinfo's "model
name") and its number of CPUs: a ratio moves with the host (issue 30).

Every run gets a fresh embedded target (`python -m esmeperf.target` on loopback ephemeral ports),
a config.json naming it (the Go test's six keys: the target's seeded organizer and event), and a
temporary directory in which ONE tool runs as a child process with the same -sci/-cpi/-smi:

    go        ESME's Go test, built outside this repository (--go-binary, else
              $ESMEPERF_GO_TEST). It has no duration flag: it runs until a signal, so it
              gets SIGINT when the duration has passed since it was spawned, then writes
              its summary and message-rate files and exits 0.
    esmeperf  python -m esmeperf --config config.json --duration D, the whole process from
              spawn to exit (start-up, the run, the result files and the PNG). With
              --stop sigint it gets SIGINT at the same moment as the Go test instead.
    baseline  (--baseline REV) the same esmeperf command with the esmeperf package as it
              was at git revision REV: a change's before and after, in the same minutes as
              each other and as the Go test. Printed with its ratios to esmeperf; no goal.

Each tool's CPU (user + system) and context switches (voluntary + involuntary) come from
os.wait4's rusage of its process (its waited-for children included). Its peak RSS is that of
the whole process tree, child processes included: the larger of wait4's ru_maxrss (the largest
single process) and the largest sum of the RSS of every process in the tool's session, sampled
from /proc every 0.25 s (for a single process, ru_maxrss). Messages sent, participants created
and chats come from the `<unix>_performance_test_summary.json` it wrote. The target's /stats
(participants and chats it holds, messages it stored, frames it dropped) is read once the tool
has exited, then the target is stopped; its CPU and /stats are shown for reference only. Go and
esmeperf runs alternate (Go, esmeperf, Go, ...), --runs pairs per shape; medians are of the
runs, ratios are esmeperf/Go of the medians (the per-pair ratios follow in brackets). KB here
are KiB, as ru_maxrss counts them.

Shapes (durations are the issues'; --duration-scale 0.25 or --duration 1=5s shortens them):

    1  -sci 10 -cpi 20 -smi 100, 20 s: messages sent, CPU us and context switches per message,
       peak RSS of the whole process tree.
       Goals: CPU/msg esmeperf/Go <= 1.5 (and the must, <= 2.0), context switches/msg
       esmeperf/Go <= 1.25, peak RSS esmeperf/Go <= 2.0, messages esmeperf/Go >= 1.
    2  -sci 1 -cpi 2 -smi 10000, 30 s: participants created and peak RSS per participant.
       Goals: participants esmeperf/Go >= 1, RSS per participant esmeperf/Go <= 1.0.
    3  (--hold, or --shapes 3) esmeperf only, -sci 1 -cpi 2 -smi 10000
       --max-participants 10000, 90 s: all of them chatting, delivered/sent >= 0.99,
       peak RSS per participant <= 25 KB (--hold-participants N for a smaller smoke run).
    4  -sci 1 -cpi 5 -smi 60000, 30 s: the cost of an arrival. Both tools create the same
       number of participants, each with a chat, and send few messages. The Go test creates
       them one after another (each waits for the one before, then -cpi), so it falls behind
       -cpi; it runs first in each pair, and esmeperf gets --max-participants = the
       participants that Go run created. Both stop the duration after spawn. Per tool:
       participants created, chats (its own count and the target's), CPU per participant
       created (the whole process's CPU user + sys / participants created, in ms) and the
       arrivals reached against -cpi's. Goal: CPU per participant esmeperf/Go <= 1.5.
       (The Go test asks for its chat id only after sleeping -smi, 60 s: in a shorter run its
       own chats count stays 0, while the target's shows the chats its organizer started.)

5-8 (--pacing, or --shapes 5,6,7,8) -sci 10 -cpi 530 at -smi 100, 1000, 10000 and 60000 (15, 20,
       60 and 200 s): pacing seen by a ruler neither tool controls. The embedded target times
       the intervals between each participant connection's messages (its
       /stats?send_interval_ms=SMI): p50, p99 and max of |interval - smi| per tool, medians
       of the runs. Goals: esmeperf's p99 at most the Go test's; esmeperf's own send lateness
       p99 at most 1 ms (must: 2 ms).

Every goal is printed as "met" or "NOT met". Exit status 0 either way; 2 when the setup fails
(no Go test binary given, a target that does not start: one line on stderr).
A smoke test: `python3 bench/versus_go.py --runs 1 --duration-scale 0.25`.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from esmeperf import __version__  # noqa: E402
from esmeperf.config import CONFIG_KEYS, timespan  # noqa: E402
from esmeperf.target.launcher import TargetError, TargetProcess  # noqa: E402

SUMMARY_GLOB = "*_performance_test_summary.json"
GO, ESMEPERF, BASELINE = "go", "esmeperf", "baseline"
#: After the duration: how long a tool may take to write its files and exit before SIGKILL.
EXIT_GRACE_S = 120.0


class SetupError(Exception):
    """The benchmark cannot run; the message is one line."""


@dataclass(frozen=True)
class Shape:
    number: int
    title: str
    sci: int
    cpi: int
    smi: int
    seconds: float
    tools: tuple[str, ...]
    hold: bool = False  # esmeperf gets --max-participants (--hold-participants)
    arrivals: bool = False  # esmeperf gets --max-participants, the arrivals intended
    pacing: bool = False  # the target's clock: |interval - smi| of each participant's sends

    def flags(self) -> list[str]:
        return ["-sci", str(self.sci), "-cpi", str(self.cpi), "-smi", str(self.smi)]

    def intended(self, seconds: float) -> int:
        """The arrivals -cpi makes in `seconds` (shape 4's fixed participant count)."""
        return max(1, int(seconds * 1000 / self.cpi + 1e-6))


SHAPES = {
    1: Shape(1, "cost per message", 10, 20, 100, 20.0, (GO, ESMEPERF)),
    2: Shape(2, "arrivals and memory", 1, 2, 10000, 30.0, (GO, ESMEPERF)),
    3: Shape(3, "participants held", 1, 2, 10000, 90.0, (ESMEPERF,), hold=True),
    4: Shape(4, "cost per arrival", 1, 5, 60000, 30.0, (GO, ESMEPERF), arrivals=True),
    # Pacing (issue 37): a light load both tools carry, long enough for each to send twice at
    # -smi (the Go test polls for its chat -smi apart first, so at 60 s it needs 3 intervals).
    # -cpi 530, whose multiples fall on every phase of each -smi: with -cpi 500 every grid
    # falls on the same instant of each interval, and the figure is the cost of that burst
    # (shape 1's business), not the timer's.
    5: Shape(5, "pacing at -smi 100", 10, 530, 100, 15.0, (GO, ESMEPERF), pacing=True),
    6: Shape(6, "pacing at -smi 1000", 10, 530, 1000, 20.0, (GO, ESMEPERF), pacing=True),
    7: Shape(7, "pacing at -smi 10000", 10, 530, 10000, 60.0, (GO, ESMEPERF), pacing=True),
    8: Shape(8, "pacing at -smi 60000", 10, 530, 60000, 200.0, (GO, ESMEPERF), pacing=True),
}
PACING = (5, 6, 7, 8)


@dataclass
class Run:
    """One tool's process against one fresh target."""

    tool: str
    index: int
    directory: Path
    exit_code: int | None = None
    stopped_by: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kib: int = 0  # the whole process tree's peak: see TreeRss
    processes: int = 1  # the most processes the tool had at once (sampled)
    switches: int = 0  # context switches, voluntary and involuntary
    intended: int | None = None  # shape 4: the arrivals meant (-cpi over the duration)
    target_cpu_s: float | None = None
    summary: dict[str, Any] | None = None
    peak_connections: int | None = None  # esmeperf's series: open WebSockets, organizer too
    target_stats: dict[str, Any] | None = None  # the target's /stats once the tool has exited
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.summary is not None

    def get(self, key: str) -> Any:
        return None if self.summary is None else self.summary.get(key)

    @property
    def sent(self) -> int:
        return int(self.get("messages_sent") or 0)

    @property
    def participants(self) -> int:
        return int(self.get("created_participants_count") or 0)

    @property
    def chats(self) -> int:
        return int(self.get("chats_count") or 0)

    @property
    def us_per_msg(self) -> float | None:
        return self.cpu_s / self.sent * 1e6 if self.sent else None

    @property
    def switches_per_msg(self) -> float | None:
        return self.switches / self.sent if self.sent else None

    @property
    def kib_per_participant(self) -> float | None:
        return self.maxrss_kib / self.participants if self.participants else None

    @property
    def ms_per_participant(self) -> float | None:
        """The whole process's CPU (user + sys) per participant created, in ms."""
        return self.cpu_s / self.participants * 1e3 if self.participants else None

    @property
    def reached(self) -> float | None:
        """Participants created / the arrivals intended (shape 4)."""
        return self.participants / self.intended if self.intended else None

    def target_count(self, key: str) -> int | None:
        value = (self.target_stats or {}).get(key)
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def window_s(self) -> float | None:
        text = self.get("participants_duration")
        return go_duration_seconds(text) if isinstance(text, str) else None

    @property
    def delivered_ratio(self) -> float | None:
        value = self.get("delivered_ratio")
        return float(value) if value is not None else None

    def interval_error_ms(self, key: str) -> float | None:
        """The target's |interval - smi| (key: p50, p99 or max) in ms; None without one."""
        error = (self.target_stats or {}).get("send_interval_error_us") or {}
        return error[key] / 1000 if error.get("count") and key in error else None

    @property
    def intervals(self) -> int:
        error = (self.target_stats or {}).get("send_interval_error_us") or {}
        return int(error.get("count") or 0)

    @property
    def send_lateness_p99_ms(self) -> float | None:
        """esmeperf's own send lateness p99 (its summary); None for the Go test."""
        late = ((self.get("latency") or {}).get("send_lateness") or {})
        return late.get("p99_ms") if late.get("count") else None


# -- helpers ------------------------------------------------------------------------------

_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?)(ms|us|µs|ns|h|m|s)")


def go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go Duration.String() text such as "2m24.871s" or "350ms"; None if not one."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-"):
        return None
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in parts)
    return -seconds if text.startswith("-") else seconds


def reap(pid: int, timeout: float) -> tuple[int, resource.struct_rusage] | None:
    """wait4 the child within `timeout` seconds: (status, rusage), or None if still running."""
    deadline = time.monotonic() + timeout
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            got, status, usage = os.wait4(pid, os.WNOHANG)
            if got == pid:
                return status, usage
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if pidfd is None:
                time.sleep(min(0.05, remaining))
            else:  # readable once the process has exited
                select.select([pidfd], [], [], remaining)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class TreeRss:
    """The peak of the summed RSS of every process in one session (a tool spawned with
    start_new_session: itself and every child process it starts), sampled from /proc.

    wait4's ru_maxrss is the largest single process's peak, not what a tool with child
    processes holds at once. RSS counts shared pages once per process, so a sum overstates a
    multi-process tool a little. Without /proc (not Linux) it samples nothing.
    """

    INTERVAL_S = 0.25

    def __init__(self, session: int) -> None:
        self.session = session
        self.peak_kib = 0
        self.most = 0  # the most processes seen at once
        self._page_kib = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
        self._member: dict[str, bool] = {}  # pid -> in the session (read once from its stat)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-rss", daemon=True)

    def __enter__(self) -> TreeRss:
        if os.path.isdir("/proc/self"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.INTERVAL_S):
                return

    def sample(self) -> None:
        try:
            pids = [name for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return
        self._member = {pid: self._member[pid] for pid in pids if pid in self._member}
        total = count = 0
        for pid in pids:
            try:
                member = self._member.get(pid)
                if member is None:
                    with open(f"/proc/{pid}/stat", "rb") as handle:
                        stat = handle.read()
                    # after "(comm) ": state ppid pgrp session ...
                    member = int(stat[stat.rindex(b")") + 2:].split()[3]) == self.session
                    self._member[pid] = member
                if not member:
                    continue
                with open(f"/proc/{pid}/statm", "rb") as handle:
                    total += int(handle.read().split()[1]) * self._page_kib
                count += 1
            except (OSError, ValueError, IndexError):
                continue  # gone in between
        self.peak_kib = max(self.peak_kib, total)
        self.most = max(self.most, count)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def first_line(path: Path, pattern: str) -> str | None:
    """The first line of a log matching `pattern`, shortened."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if re.search(pattern, line):
            return line.strip()[:200]
    return None


# -- setup --------------------------------------------------------------------------------

def find_go_binary(explicit: str | None) -> str:
    """--go-binary, else ESMEPERF_GO_TEST: ESME's Go test, built outside this repository."""
    named = explicit or os.environ.get("ESMEPERF_GO_TEST")
    if not named:
        raise SetupError("needs ESME's Go performance test, built outside this repository: "
                         "give --go-binary PATH or set ESMEPERF_GO_TEST")
    if not (os.path.isfile(named) and os.access(named, os.X_OK)):
        raise SetupError(f"the Go test binary {named!r} is not an executable file")
    return named


def raise_nofile() -> int:
    """Soft open-file limit up to the hard one, for every child alike; returns it.

    Go (1.19+) raises its own soft limit to the hard one at start-up, CPython does not: without
    this the target and esmeperf could run out of descriptors where the Go test would not.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def repo_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "esmeperf"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return head + (" with uncommitted changes in esmeperf/" if dirty else "")


def cpu_model() -> str:
    """The host's CPU model: /proc/cpuinfo's "model name" (what a ratio depends on)."""
    try:
        with open("/proc/cpuinfo", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return f"CPU {value.strip()}"
    except OSError:
        pass
    return f"CPU model unknown ({platform.processor() or platform.machine()})"


def cpu_count() -> str:
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = total
    return f"{total} CPUs" + (f" ({usable} usable here)" if usable != total else "")


# -- one run ------------------------------------------------------------------------------

def run_one(tool: str, index: int, shape: Shape, seconds: float, directory: Path,
            options: argparse.Namespace, cap: int | None = None) -> Run:
    """A fresh target, one tool against it for `seconds`, the target stopped again. `cap`:
    shape 4's --max-participants for esmeperf, the participants its pair's Go run created."""
    directory.mkdir(parents=True)
    run = Run(tool, index, directory)
    if shape.arrivals:
        run.intended = shape.intended(seconds)
    children_before = children_cpu()
    target = TargetProcess(log_path=str(directory / "target.log"))
    try:
        try:
            target.start()
        except TargetError as exc:
            raise SetupError(f"the embedded target did not start: {exc}") from None
        config = {key: target.config[key] for key in CONFIG_KEYS}
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        by_signal = tool == GO or options.stop == "sigint"
        if tool == GO:
            cmd = [options.go_binary, *shape.flags()]
        else:  # esmeperf, or the baseline's (its package on PYTHONPATH: _run_child)
            cmd = [sys.executable, "-m", "esmeperf", *shape.flags(), "--config", "config.json"]
        if tool != GO:
            if not by_signal:
                cmd += ["--duration", f"{seconds:g}s"]
            if shape.hold:
                cmd += ["--max-participants", str(options.hold_participants)]
            elif run.intended is not None:
                cmd += ["--max-participants", str(cap or run.intended)]
            cmd += shlex.split(options.esmeperf_args)
        package = options.baseline_tree if tool == BASELINE else ROOT
        _run_child(run, cmd, seconds, by_signal, package)
        try:
            run.target_stats = target.stats(send_interval_ms=shape.smi if shape.pacing
                                            else None)
        except TargetError as exc:
            run.notes.append(f"no target /stats: {exc}")
    finally:
        target.stop()
    tool_cpu = run.cpu_s
    run.target_cpu_s = max(0.0, children_cpu() - children_before - tool_cpu)
    _read_summary(run, tool, by_signal)
    return run


def compile_bytecode(package: Path) -> None:
    """Compile esmeperf's bytecode once, as `pip install` does: the runs measure what a user's
    installed esmeperf costs, not a compile of every module at each start."""
    import compileall

    compileall.compile_dir(str(package), quiet=1)


def baseline_tree(revision: str, into: Path) -> Path:
    """A directory holding the esmeperf package as it was at `revision` (for PYTHONPATH)."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "esmeperf"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, capture_output=True,
                       check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        why = getattr(exc, "stderr", b"") or b""
        raise SetupError(f"--baseline {revision}: cannot check it out: "
                         f"{why.decode(errors='replace').strip() or exc}") from None
    compile_bytecode(into / "esmeperf")
    return into


def _run_child(run: Run, cmd: list[str], seconds: float, by_signal: bool,
               package: Path = ROOT) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package), env.get("PYTHONPATH")) if p)
    # As after `pip install`, which compiles the bytecode: a PYTHONDONTWRITEBYTECODE in this
    # shell would make every run compile esmeperf again (compile_bytecode() has cached it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with open(run.directory / f"{run.tool}.log", "wb") as log:
        started = time.monotonic()
        # Its own session: a Ctrl-C here reaches this script only, which then kills the child.
        proc = subprocess.Popen(cmd, cwd=run.directory, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        done = None
        tree = TreeRss(proc.pid)  # its session: start_new_session made it the leader
        with tree:
            try:
                if by_signal:
                    done = reap(proc.pid, seconds)
                    if done is None:
                        run.stopped_by = "SIGINT"
                        proc.send_signal(signal.SIGINT)
                    else:
                        run.stopped_by = "itself"
                        run.notes.append(f"exited on its own after "
                                         f"{time.monotonic() - started:.1f} s, before the SIGINT")
                else:
                    run.stopped_by = "--duration"
                if done is None:
                    done = reap(proc.pid, EXIT_GRACE_S + (0 if by_signal else seconds))
                if done is None and not by_signal:
                    run.notes.append("still running long after --duration: sent SIGINT")
                    run.stopped_by = "SIGINT (late)"
                    proc.send_signal(signal.SIGINT)
                    done = reap(proc.pid, EXIT_GRACE_S)
                if done is None:
                    run.notes.append("did not exit after SIGINT: killed")
                    run.stopped_by = "SIGKILL"
                    proc.kill()
                    done = reap(proc.pid, 30.0)
            finally:
                if done is None:  # interrupted, or not even SIGKILL worked in time
                    proc.kill()
                    done = reap(proc.pid, 30.0)
        run.wall_s = time.monotonic() - started
    if done is None:
        raise SetupError(f"{run.tool} (pid {proc.pid}) could not be reaped")
    status, usage = done
    proc.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
    run.cpu_s = usage.ru_utime + usage.ru_stime
    run.maxrss_kib = max(usage.ru_maxrss, tree.peak_kib)
    run.processes = max(1, tree.most)
    run.switches = usage.ru_nvcsw + usage.ru_nivcsw


def _read_summary(run: Run, tool: str, by_signal: bool) -> None:
    paths = sorted(run.directory.glob(SUMMARY_GLOB))
    if not paths:
        run.notes.append(f"wrote no summary file (exit {run.exit_code})")
    else:
        try:
            run.summary = json.loads(paths[-1].read_text())
        except (OSError, ValueError) as exc:
            run.notes.append(f"unreadable summary {paths[-1].name}: {exc}")
    log = run.directory / f"{tool}.log"
    if tool == GO:
        if run.stopped_by == "itself":
            cause = (first_line(log, r"(organizer|participant) error: ")
                     or first_line(log, r"panic|fatal"))
            if cause:
                run.notes.append(cause)
        return
    expected = 130 if by_signal else 0
    if run.exit_code != expected:
        run.notes.append(f"exit status {run.exit_code}")
    for series in sorted(run.directory.glob("*_performance_test_series.csv"))[-1:]:
        with open(series, newline="") as handle:
            run.peak_connections = max((int(row["connections"] or 0)
                                        for row in csv.DictReader(handle)), default=None)
    if run.summary is not None:
        reason = str(run.summary.get("end_reason"))
        if not reason.startswith("signal" if by_signal else "duration"):
            run.notes.append(f"ended by {reason}")
        error = run.summary.get("first_error")
        if isinstance(error, dict) and error.get("message"):
            run.notes.append(f"first error: {str(error['message'])[:160]}")


# -- reporting ----------------------------------------------------------------------------

def run_line(run: Run, shape: Shape) -> str:
    if not run.ok:
        return f"  {run.tool:<8} {run.index}: no result; {'; '.join(run.notes)}"
    processes = f" over {run.processes} processes" if run.processes > 1 else ""
    text = (f"  {run.tool:<8} {run.index}: {run.sent:>9,} sent, {run.participants:>6,} "
            f"participants ({run.chats:,} chats), CPU {run.cpu_s:.2f} s = "
            f"{fmt(run.us_per_msg, '.1f')} us/msg = {fmt(run.ms_per_participant, '.2f')} "
            f"ms/participant, {fmt(run.switches_per_msg, '.2f')} context "
            f"switches/msg, peak RSS {run.maxrss_kib / 1024:.1f} MB{processes} = "
            f"{fmt(run.kib_per_participant, '.1f')} KB/participant, window "
            f"{fmt(run.window_s, '.1f')} s, wall {run.wall_s:.1f} s, stopped by {run.stopped_by}")
    if run.intended is not None:
        text += (f", arrivals reached {run.participants:,} of {run.intended:,} intended "
                 f"({fmt(run.reached, '.1%')})")
    if run.tool != GO:
        text += f", delivered/sent {fmt(run.delivered_ratio, '.4f')}"
    if shape.hold:
        text += f", peak connections {fmt(run.peak_connections)} (organizer included)"
    text += f", target CPU {fmt(run.target_cpu_s, '.1f')} s"
    stats = run.target_stats or {}
    if stats:
        if shape.arrivals:
            text += (f", target holds {fmt(run.target_count('participants'))} participants "
                     f"and {fmt(run.target_count('chats'))} chats")
        text += (f", target stored {stats.get('participant_messages_stored', 0):,} messages "
                 f"and dropped {stats.get('frames_dropped', 0):,} frames")
    if run.notes:
        text += " [" + "; ".join(run.notes) + "]"
    return text


@dataclass
class Medians:
    runs: int
    sent: float | None
    participants: float | None
    chats: float | None
    us_per_msg: float | None
    switches_per_msg: float | None
    maxrss_mb: float | None
    kib_per_participant: float | None
    ms_per_participant: float | None
    target_chats: float | None
    delivered_ratio: float | None


def medians(runs: list[Run]) -> Medians:
    ok = [r for r in runs if r.ok]
    return Medians(
        runs=len(ok),
        sent=median([r.sent for r in ok]),
        participants=median([r.participants for r in ok]),
        chats=median([r.chats for r in ok]),
        us_per_msg=median([r.us_per_msg for r in ok]),
        switches_per_msg=median([r.switches_per_msg for r in ok]),
        maxrss_mb=median([r.maxrss_kib / 1024 for r in ok]),
        kib_per_participant=median([r.kib_per_participant for r in ok]),
        ms_per_participant=median([r.ms_per_participant for r in ok]),
        target_chats=median([r.target_count("chats") for r in ok]),
        delivered_ratio=median([r.delivered_ratio for r in ok]),
    )


def median_line(tool: str, m: Medians, total: int) -> str:
    text = (f"  median {tool:<8} ({m.runs} of {total} runs): {fmt(m.sent)} sent, "
            f"{fmt(m.participants)} participants, {fmt(m.chats)} chats, "
            f"{fmt(m.us_per_msg, '.1f')} us/msg, {fmt(m.ms_per_participant, '.2f')} "
            f"ms/participant, {fmt(m.switches_per_msg, '.2f')} context "
            f"switches/msg, peak RSS {fmt(m.maxrss_mb, '.1f')} MB = "
            f"{fmt(m.kib_per_participant, '.1f')} KB/participant")
    if tool != GO:
        text += f", delivered/sent {fmt(m.delivered_ratio, '.4f')}"
    return text


def arrivals_line(tool: str, m: Medians, intended: int) -> str:
    """Shape 4's figures of one tool: what an arrival costs, and how many were made."""
    return (f"  {tool:<8} participants created {fmt(m.participants)}, chats {fmt(m.chats)} "
            f"(the target's: {fmt(m.target_chats)}), CPU per participant created "
            f"{fmt(m.ms_per_participant, '.2f')} ms, arrivals reached {fmt(m.participants)} of "
            f"{intended:,} intended ({fmt(ratio(m.participants, intended), '.1%')})")


@dataclass
class Goal:
    shape: int
    text: str
    value: float | None
    limit: float
    at_most: bool
    unit: str = "x"
    spec: str = ".2f"
    kind: str = "goal"  # or "must": issue 30's floor under the goal

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "NOT met (not measured)"
        met = self.value <= self.limit if self.at_most else self.value >= self.limit
        return "met" if met else "NOT met"

    def line(self, pairs: str = "") -> str:
        sign = "<=" if self.at_most else ">="
        return (f"  {self.text}: {fmt(self.value, self.spec, self.unit)}{pairs}; {self.kind} "
                f"{sign} {self.limit:g}{self.unit}: {self.verdict}")


def report_baseline(shape: Shape, es: list[Run], base: list[Run], revision: str) -> None:
    """esmeperf against itself at --baseline REV: the change's before and after."""
    print(median_line(BASELINE, medians(base), len(base)))
    metrics: list[tuple[str, Callable[[Run], float | None]]] = [
        ("CPU per message", lambda r: r.us_per_msg),
        ("context switches per message", lambda r: r.switches_per_msg),
        ("messages sent", lambda r: r.sent)]
    if shape.number == 1:
        metrics += [("peak RSS", lambda r: r.maxrss_kib)]
    else:
        metrics += [("participants created", lambda r: r.participants),
                    ("peak RSS per participant", lambda r: r.kib_per_participant),
                    ("CPU per participant", lambda r: r.ms_per_participant)]
    for text, metric in metrics:
        value = ratio(median([metric(r) for r in es if r.ok]),
                      median([metric(r) for r in base if r.ok]))
        print(f"  {text}, esmeperf/baseline ({revision}): {fmt(value, '.2f', 'x')}"
              f"{pair_ratios(base, es, metric)}")


def pair_ratios(go: list[Run], es: list[Run], metric: Callable[[Run], float | None]) -> str:
    values = [ratio(metric(e), metric(g)) for g, e in zip(go, es, strict=False)
              if g.ok and e.ok]
    if len(values) < 2:
        return ""
    return " (pairs: " + ", ".join(fmt(v, ".2f", "x") for v in values) + ")"


def pair_goal(goal: Goal, go: list[Run], es: list[Run],
              metric: Callable[[Run], float | None]) -> Goal:
    print(goal.line(pair_ratios(go, es, metric)))
    return goal


def report_pair_shape(shape: Shape, go: list[Run], es: list[Run]) -> list[Goal]:
    mg, me = medians(go), medians(es)
    print(median_line(GO, mg, len(go)))
    print(median_line(ESMEPERF, me, len(es)))
    goals = []
    if shape.number == 1:
        cpu = ratio(me.us_per_msg, mg.us_per_msg)
        goals += [
            pair_goal(Goal(1, "CPU per message, esmeperf/Go", cpu, 1.5, at_most=True),
                      go, es, lambda r: r.us_per_msg),
            pair_goal(Goal(1, "CPU per message, esmeperf/Go", cpu, 2.0, at_most=True,
                           kind="must"), go, es, lambda r: r.us_per_msg),
            pair_goal(Goal(1, "context switches per message, esmeperf/Go",
                           ratio(me.switches_per_msg, mg.switches_per_msg), 1.25,
                           at_most=True), go, es, lambda r: r.switches_per_msg),
            pair_goal(Goal(1, "peak RSS of the whole process (children included), esmeperf/Go",
                           ratio(me.maxrss_mb, mg.maxrss_mb), 2.0, at_most=True),
                      go, es, lambda r: r.maxrss_kib),
            pair_goal(Goal(1, "messages sent, esmeperf/Go", ratio(me.sent, mg.sent), 1.0,
                           at_most=False), go, es, lambda r: r.sent),
        ]
    elif shape.arrivals:
        intended = next((r.intended for r in go + es if r.intended is not None), 0)
        print(arrivals_line(GO, mg, intended))
        print(arrivals_line(ESMEPERF, me, intended))
        participants = ratio(me.participants, mg.participants)
        print(f"  participants created, esmeperf/Go: {fmt(participants, '.2f', 'x')}"
              f"{pair_ratios(go, es, lambda r: r.participants)} (no goal: the same count is "
              f"meant)")
        goals += [
            pair_goal(Goal(4, "CPU per participant created, esmeperf/Go",
                           ratio(me.ms_per_participant, mg.ms_per_participant), 1.5,
                           at_most=True), go, es, lambda r: r.ms_per_participant),
        ]
    else:
        goals += [
            pair_goal(Goal(2, "participants created, esmeperf/Go",
                           ratio(me.participants, mg.participants), 1.0, at_most=False),
                      go, es, lambda r: r.participants),
            pair_goal(Goal(2, "peak RSS per participant, esmeperf/Go",
                           ratio(me.kib_per_participant, mg.kib_per_participant), 1.0,
                           at_most=True), go, es, lambda r: r.kib_per_participant),
        ]
    return goals


def report_pacing(shape: Shape, go: list[Run], es: list[Run],
                  base: list[Run] | None = None) -> list[Goal]:
    """The target's clock on each tool's send intervals, and esmeperf's own send lateness
    (with --baseline, the baseline's too, for reference: no goal)."""
    for tool, runs in ((GO, go), (ESMEPERF, es), *(((BASELINE, base),) if base else ())):
        figures = ", ".join(
            f"{key} {fmt(median([r.interval_error_ms(key) for r in runs]), '.3f', ' ms')}"
            for key in ("p50", "p99", "max"))
        print(f"  {tool:<8} median of {len(runs)}: |interval - smi| as the target saw it: "
              f"{figures}, over {fmt(median([float(r.intervals) for r in runs]))} intervals")
    error = ratio(median([r.interval_error_ms("p99") for r in es]),
                  median([r.interval_error_ms("p99") for r in go]))
    late = median([r.send_lateness_p99_ms for r in es])
    goals = [pair_goal(Goal(shape.number, f"send interval error p99 at -smi {shape.smi}, "
                            "esmeperf/Go", error, 1.0, at_most=True), go, es,
                       lambda r: r.interval_error_ms("p99"))]
    for limit, kind in ((1.0, "goal"), (2.0, "must")):
        goals.append(Goal(shape.number, f"esmeperf's send lateness p99 at -smi {shape.smi}",
                          late, limit, at_most=True, unit=" ms", spec=".3f", kind=kind))
        print(goals[-1].line())
    return goals


def report_hold(runs: list[Run], wanted: int) -> list[Goal]:
    m = medians(runs)
    print(median_line(ESMEPERF, m, len(runs)))
    chatting = Goal(3, f"participants chatting (of {wanted:,})", m.chats, float(wanted),
                    at_most=False, unit="", spec=",.0f")
    delivered = Goal(3, "delivered/sent", m.delivered_ratio, 0.99, at_most=False, unit="",
                     spec=".4f")
    rss = Goal(3, "peak RSS per participant", m.kib_per_participant, 25.0, at_most=True,
               unit=" KB", spec=".1f")
    for goal in (chatting, delivered, rss):
        print(goal.line())
    return [chatting, delivered, rss]


# -- main ---------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="See the docstring at the top of bench/versus_go.py for what is measured.")
    parser.add_argument("--runs", type=int, default=2, help="Go/esmeperf pairs per shape "
                        "(runs of esmeperf alone for shape 3) (default 2)")
    parser.add_argument("--shapes", default="1,2,4",
                        help="comma list of shapes to run: 1 to 8 (default 1,2,4)")
    parser.add_argument("--hold", action="store_true", help="also run shape 3")
    parser.add_argument("--pacing", action="store_true", help="also run shapes 5-8")
    parser.add_argument("--hold-participants", type=int, default=10000, metavar="N",
                        help="--max-participants in shape 3 (default 10000)")
    parser.add_argument("--duration-scale", type=float, default=1.0, metavar="F",
                        help="multiply every shape's duration by F (e.g. 0.25 for a smoke test)")
    parser.add_argument("--duration", action="append", default=[], metavar="N=SPAN",
                        help="set shape N's duration, e.g. 1=5s (repeatable; wins over the "
                        "scale)")
    parser.add_argument("--go-binary", default=None, metavar="PATH",
                        help="ESME's Go test, built outside this repository "
                        "(default: $ESMEPERF_GO_TEST)")
    parser.add_argument("--stop", choices=("duration", "sigint"), default="duration",
                        help="how esmeperf stops: its own --duration (default), or SIGINT "
                        "after the duration, as the Go test")
    parser.add_argument("--esmeperf-args", default="", metavar="ARGS",
                        help="extra esmeperf arguments, one shell-quoted string "
                        "(e.g. '--processes 2')")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also run esmeperf as it was at this git revision, in turn with "
                        "the others, and print the ratios now/then")
    parser.add_argument("--pause", type=float, default=3.0, metavar="S",
                        help="seconds to wait between runs (default 3)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep every run's directory (config, logs, result files) in DIR")
    args = parser.parse_args(argv)
    try:
        numbers = {int(n) for n in args.shapes.split(",") if n.strip()}
    except ValueError:
        parser.error(f"--shapes: expected a comma list of 1 to 8, got {args.shapes!r}")
    if args.hold:
        numbers.add(3)
    if args.pacing:
        numbers.update(PACING)
    if not numbers or not numbers <= set(SHAPES):
        parser.error(f"--shapes: expected a comma list of 1 to 8, got {args.shapes!r}")
    args.shape_numbers = sorted(numbers)
    if args.runs < 1 or args.duration_scale <= 0 or args.hold_participants < 1:
        parser.error("--runs, --duration-scale and --hold-participants must be positive")
    args.seconds = {n: SHAPES[n].seconds * args.duration_scale for n in SHAPES}
    for item in args.duration:
        number, _, span = item.partition("=")
        try:
            if int(number) not in SHAPES:
                raise ValueError(number)
            args.seconds[int(number)] = timespan(span)
        except ValueError:
            parser.error(f"--duration: expected N=SPAN with N in 1-4, e.g. 1=5s, got {item!r}")
    try:
        shlex.split(args.esmeperf_args)
    except ValueError as exc:
        parser.error(f"--esmeperf-args: {exc}")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM and SIGHUP as Ctrl-C: the child is killed and the target stopped on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        if any(GO in SHAPES[n].tools for n in args.shape_numbers):
            args.go_binary = find_go_binary(args.go_binary)
    except SetupError as exc:
        print(f"versus_go: {exc}", file=sys.stderr)
        return 2
    nofile = raise_nofile()
    compile_bytecode(ROOT / "esmeperf")
    if args.keep:
        workdir = Path(args.keep).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="esmeperf-versus-go-"))
    args.baseline_tree = None
    if args.baseline:
        try:
            args.baseline_tree = baseline_tree(args.baseline, workdir / "baseline")
        except SetupError as exc:
            print(f"versus_go: {exc}", file=sys.stderr)
            return 2
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC: esmeperf "
          f"{__version__} at revision {repo_commit()}, Python {platform.python_version()}")
    print(f"host: {cpu_model()}, {cpu_count()}, {platform.system()} {platform.release()} "
          f"{platform.machine()}, load {load}, open files {nofile}")
    if args.go_binary:
        print(f"Go test: {args.go_binary}")
    if args.baseline:
        print(f"baseline: esmeperf as of {args.baseline}")
    print(f"run directories: {workdir}{'' if args.keep else ' (removed at the end)'}", flush=True)
    goals: list[Goal] = []
    first = True
    try:
        for number in args.shape_numbers:
            shape = SHAPES[number]
            seconds = args.seconds[number]
            if shape.hold:
                extra = f" --max-participants {args.hold_participants}"
            elif shape.arrivals:
                extra = (" (esmeperf --max-participants: the participants its pair's Go run "
                         "created)")
            else:
                extra = ""
            tools = shape.tools + ((BASELINE,) if args.baseline else ())
            print(f"\nshape {number}, {shape.title}: {' '.join(shape.flags())}{extra}, "
                  f"{seconds:g} s, {' and '.join(tools)}", flush=True)
            results: dict[str, list[Run]] = {tool: [] for tool in tools}
            for index in range(1, args.runs + 1):
                # Shape 4: the Go test creates participants one after another (each waits for
                # the one before, then -cpi), so it falls behind -cpi; esmeperf keeps to it.
                # Both must create the same number: esmeperf's cap is what Go just reached.
                cap = None
                for tool in tools:
                    if not first:
                        time.sleep(args.pause)
                    first = False
                    directory = workdir / f"shape{number}_run{index}_{tool}"
                    run = run_one(tool, index, shape, seconds, directory, args, cap)
                    if shape.arrivals and tool == GO and run.participants:
                        cap = run.participants
                    results[tool].append(run)
                    print(run_line(run, shape), flush=True)
            if shape.hold:
                goals += report_hold(results[ESMEPERF], args.hold_participants)
            elif shape.pacing:
                goals += report_pacing(shape, results[GO], results[ESMEPERF],
                                       results.get(BASELINE))
            else:
                goals += report_pair_shape(shape, results[GO], results[ESMEPERF])
            if args.baseline:
                report_baseline(shape, results[ESMEPERF], results[BASELINE], args.baseline)
    except SetupError as exc:
        print(f"versus_go: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("versus_go: interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\ngoals:")
    for goal in goals:
        print(f"  shape {goal.shape}: {goal.line().strip()}")
    met = sum(goal.verdict == "met" for goal in goals)
    print(f"{met} of {len(goals)} goals met (musts included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
