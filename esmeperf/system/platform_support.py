"""Which OS mechanisms this process uses: each found by trying it once, each with a fallback.

esmeperf's fast paths lean on Linux: reads held back by SO_RCVLOWAT until their deadline
("batched reads") and timed by the kernel (SO_TIMESTAMPNS), exact deadlines from ppoll(),
receive deadlines as SO_RCVTIMEO,
MSG_DONTWAIT, getrusage, /proc, setsid and faulthandler on SIGUSR1. Each is detected here by
using it (a socket option read back, a loopback pair whose reads must behave as on Linux), not
by asking which OS this is, and each has a portable fallback. `--portable` (or
ESMEPERF_PORTABLE=1, which --processes shards inherit with the environment) takes every
fallback, so the paths macOS and Windows take run on Linux too. The summary records the choice
under `platform`: without kernel timestamps a round trip ends when this process read the echo,
not when the kernel received it.
"""

from __future__ import annotations

import faulthandler
import functools
import multiprocessing
import os
import platform
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from . import syscalls

ENV = "ESMEPERF_PORTABLE"  # "1": every fallback (the environment carries it to shards)

# CPython's socket module has no SO_TIMESTAMPNS (3.11-3.13), so getattr alone would turn
# kernel timestamps off on every Linux. Linux's generic value is a candidate there and nowhere
# else, kept only if a loopback read returns a control message of exactly that type holding a
# timespec of the arrival (sparc and parisc number it differently: the probe then fails).
_LINUX_GENERIC_SO_TIMESTAMPNS = 35
# struct timeval as Linux lays it out (macOS's timeval too, on little-endian
# 64-bit): used only where the probes below read them back as written.
TIMEVAL = struct.Struct("ll")
TIMESPEC = syscalls.TIMESPEC
# A batched read's low-water mark: above anything that arrives between two sends (and
# anything the probe below sends). transport/connection.py sets it.
BATCH_LOWAT = 1 << 20
_BATCH_PROBE_WAIT_US = 30_000  # the probe's read deadline


@dataclass(frozen=True)
class Mechanisms:
    """The mechanisms one process uses; `summary()` is what the result files record."""

    portable: bool  # every fallback forced (--portable, ESMEPERF_PORTABLE=1)
    timestamp_option: int | None  # SO_TIMESTAMPNS where batched reads are on, else None
    batched_reads: bool  # SO_RCVLOWAT holds a read to its deadline, as on Linux
    kernel_deadlines: bool  # SO_RCVTIMEO/SO_SNDTIMEO timevals, poll(); else socket timeouts
    exact_waits: bool  # waits end at their due time (ppoll, Linux); else at the receive timeout
    dontwait: int  # socket.MSG_DONTWAIT, 0 where missing
    getrusage: bool  # this process's CPU from resource.getrusage; else time.process_time()
    proc_stat: bool  # another process's CPU from /proc/PID/stat; else unknown
    rlimits: bool  # the open-files limit can be read and raised (resource)
    session: str  # children leave our process group by: setsid, setpgid,
    #               CREATE_NEW_PROCESS_GROUP or none
    thread_dump: str  # --debug's thread dumps: "faulthandler" (SIGUSR1, SIGQUIT), "SIGBREAK"
    #                   or "SIGUSR1" (a Python handler), or "none"
    start_method: str | None  # what --processes starts shards with ("spawn"), None: nothing
    embedded_target: bool  # the embedded target can run here (inherited pipes, POSIX signals)

    def summary(self) -> dict[str, Any]:
        """The summary's `platform` key (docs/platforms.md says what each value means)."""
        return {
            "system": platform.system(),
            "portable": self.portable,
            "receive_time": "kernel" if self.batched_reads else "clock",
            "batched_reads": self.batched_reads,
            "recv_deadlines": ("ppoll" if self.exact_waits else "SO_RCVTIMEO"
                               if self.kernel_deadlines else "socket timeout"),
            "cpu": "getrusage" if self.getrusage else "process_time",
            "target_cpu": "/proc" if self.proc_stat else "none",
            "open_files_limit": "setrlimit" if self.rlimits else "none",
            "new_session": self.session,
            "thread_dump": self.thread_dump,
        }

    def popen_session(self) -> dict[str, Any]:
        """subprocess.Popen arguments that start a child outside our process group, so a
        terminal's Ctrl-C (sent to the foreground group) reaches only esmeperf."""
        if self.session == "setsid":
            return {"start_new_session": True}
        if self.session == "setpgid":
            return {"process_group": 0}
        if self.session == "CREATE_NEW_PROCESS_GROUP":
            return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        return {}

    def leave_process_group(self) -> None:
        """The same from inside a child already running (a --processes shard). Windows has
        no way to do it then: the shard ignores SIGINT instead (its caller does that)."""
        if self.session == "setsid":
            os.setsid()
        elif self.session == "setpgid":
            os.setpgid(0, 0)


def _new_session(portable: bool) -> str:
    if not portable and hasattr(os, "setsid"):
        return "setsid"
    if hasattr(subprocess, "CREATE_NEW_PROCESS_GROUP"):
        return "CREATE_NEW_PROCESS_GROUP"
    return "setpgid" if hasattr(os, "setpgid") else "none"


def _thread_dump(portable: bool) -> str:
    if (not portable and hasattr(faulthandler, "register")
            and hasattr(signal, "SIGUSR1") and hasattr(signal, "SIGQUIT")):
        return "faulthandler"
    for name in ("SIGBREAK", "SIGUSR1"):  # Windows's Ctrl-Break, else a POSIX user signal
        if hasattr(signal, name):
            return name
    return "none"


def _kernel_deadlines() -> bool:
    """SO_RCVTIMEO and SO_SNDTIMEO take a struct timeval (Windows wants milliseconds), and
    poll() and MSG_DONTWAIT, which the sub-jiffy waits use, exist."""
    if not hasattr(select, "poll") or not hasattr(socket, "MSG_DONTWAIT"):
        return False
    value = TIMEVAL.pack(2, 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                sock.setsockopt(socket.SOL_SOCKET, option, value)
                if sock.getsockopt(socket.SOL_SOCKET, option, len(value)) != value:
                    return False
    except (OSError, AttributeError):
        return False
    return True


def _exact_waits_work() -> bool:
    """A wait for a due time 2 ms ahead, on a socket that gets nothing, ends no sooner
    (syscalls.ExactWait, ppoll() through libc). A few ms, once a process."""
    if not syscalls.ppoll_available():
        return False
    try:
        left, right = socket.socketpair()
    except (OSError, AttributeError):
        return False
    with left, right:
        try:
            due = time.monotonic_ns() + 2_000_000
            return not syscalls.ExactWait(left).wait(due) and time.monotonic_ns() >= due
        except OSError:
            return False


def _timestamp_candidate() -> int | None:
    option = getattr(socket, "SO_TIMESTAMPNS", None)
    if option is None and sys.platform.startswith("linux"):
        option = _LINUX_GENERIC_SO_TIMESTAMPNS
    return option


def _batched_reads_work(option: int) -> bool:
    """What Connection.batch_reads relies on, tried on a loopback TCP pair: a read under
    SO_RCVLOWAT waits for its SO_RCVTIMEO deadline and then returns what came (BSDs return an
    error and keep the data), stamped with its arrival time (`option`); MSG_DONTWAIT takes
    what is there below the mark. About 30 ms, once a process."""
    try:
        space = socket.CMSG_SPACE(TIMESPEC.size)
        listener = socket.create_server(("127.0.0.1", 0))
    except (OSError, AttributeError):
        return False
    try:
        with listener, socket.create_connection(listener.getsockname(), timeout=2) as reader:
            writer, _ = listener.accept()
            with writer:
                reader.settimeout(None)  # blocking: the deadline is SO_RCVTIMEO's
                reader.setsockopt(socket.SOL_SOCKET, option, 1)
                reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, BATCH_LOWAT)
                reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                  TIMEVAL.pack(0, _BATCH_PROBE_WAIT_US))
                held_ns = _BATCH_PROBE_WAIT_US * 1000 * 2 // 3
                # Linux turns timestamps on through deferred work the first time a socket
                # asks: the first packets may come unstamped. Three tries, one must carry it.
                stamped = False
                for _ in range(3):
                    sent = time.time_ns()
                    writer.sendall(b"probe")
                    data, ancillary, _, _ = reader.recvmsg(4096, space)
                    woke = time.time_ns()
                    if data != b"probe" or woke - sent < held_ns:
                        return False  # not held to the deadline, or not returned after it
                    stamp = syscalls.kernel_stamp(ancillary, option)
                    if stamp:
                        if not sent - 1_000_000_000 < stamp < woke - held_ns // 2:
                            return False  # not the arrival time
                        stamped = True
                        break
                if not stamped:
                    return False
                writer.sendall(b"now")
                deadline = time.monotonic() + 1.0
                while True:
                    try:
                        return reader.recv(4096, socket.MSG_DONTWAIT) == b"now"
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            return False
                        time.sleep(0.001)  # loopback delivers at once; this is a margin
    except (OSError, AttributeError, ValueError):
        return False


def _embedded_target_runs() -> bool:
    """The launcher passes pipe descriptors (pass_fds) and the target stops on POSIX signals."""
    return os.name == "posix"


def _start_method() -> str | None:
    """Spawn, never fork: a threaded parent must not be forked."""
    return "spawn" if "spawn" in multiprocessing.get_all_start_methods() else None


@functools.cache
def detected() -> Mechanisms:
    """The best mechanisms this process's platform offers, tried once."""
    deadlines = _kernel_deadlines()
    option = _timestamp_candidate()
    batched = bool(deadlines and option is not None and _batched_reads_work(option))
    try:
        import resource

        rlimits = hasattr(resource, "RLIMIT_NOFILE")
        getrusage = hasattr(resource, "getrusage")
    except ImportError:
        rlimits = getrusage = False
    return Mechanisms(
        portable=False,
        timestamp_option=option if batched else None,
        batched_reads=batched,
        kernel_deadlines=deadlines,
        exact_waits=deadlines and _exact_waits_work(),
        dontwait=getattr(socket, "MSG_DONTWAIT", 0),
        getrusage=getrusage,
        proc_stat=_proc_stat_works(),
        rlimits=rlimits,
        session=_new_session(portable=False),
        thread_dump=_thread_dump(portable=False),
        start_method=_start_method(),
        embedded_target=_embedded_target_runs(),
    )


@functools.cache
def fallbacks() -> Mechanisms:
    """Every portable fallback (what --portable uses), whatever this platform offers."""
    return replace(detected(), portable=True, timestamp_option=None, batched_reads=False,
                   kernel_deadlines=False, exact_waits=False, dontwait=0, getrusage=False,
                   proc_stat=False, rlimits=False, session=_new_session(portable=True),
                   thread_dump=_thread_dump(portable=True))


def _proc_stat_works() -> bool:
    try:
        with open(f"/proc/{os.getpid()}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        int(fields[11]) + int(fields[12])
        return os.sysconf("SC_CLK_TCK") > 0
    except (OSError, ValueError, IndexError, AttributeError):
        return False


def portable_requested() -> bool:
    """Whether the environment asks for the fallbacks (set by --portable, inherited)."""
    return os.environ.get(ENV, "").strip() not in ("", "0")


def active() -> Mechanisms:
    """The mechanisms this process uses now (read per connection and per run, not cached:
    tests switch paths between runs of one process)."""
    return fallbacks() if portable_requested() else detected()


@contextmanager
def portable_env(on: bool) -> Iterator[None]:
    """While a job runs: --portable sets ESMEPERF_PORTABLE=1, so the shards and Dask workers
    it starts take the fallbacks too; restored after (main() may run twice in one process)."""
    if not on or portable_requested():
        yield
        return
    previous = os.environ.get(ENV)
    os.environ[ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


def install_thread_dump(mechanisms: Mechanisms) -> str | None:
    """--debug: dump every thread's stack to stderr on a signal; returns the signals' names.

    faulthandler's C handler works even while the main thread is stuck in C code; where it
    cannot register (Windows) a Python handler on SIGBREAK (Ctrl-Break) does the same once
    the main thread runs bytecode again (it waits with timeouts, so soon).
    """
    if mechanisms.thread_dump == "faulthandler":
        for sig in (signal.SIGUSR1, signal.SIGQUIT):
            faulthandler.register(sig, all_threads=True)
        return "SIGUSR1/SIGQUIT"
    if mechanisms.thread_dump == "none":
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # Python's handlers are set in the main thread only (tests run jobs in others)
    number = getattr(signal, mechanisms.thread_dump)
    signal.signal(number, _dump_threads)
    return mechanisms.thread_dump


def _dump_threads(signum: int, frame: object) -> None:
    faulthandler.dump_traceback(all_threads=True)


def refusal(processes: int, embedded: bool, mechanisms: Mechanisms) -> str | None:
    """A one-line reason this platform cannot run what the flags ask, or None."""
    if processes > 1 and mechanisms.start_method is None:
        return (f"--processes {processes}: this platform has no 'spawn' start method for "
                "child processes; use --processes 1")
    if embedded and not mechanisms.embedded_target:
        return ("the embedded target needs a POSIX system (inherited pipes and signals); "
                "give --config with a running ESME or esmeperf-target elsewhere")
    return None
