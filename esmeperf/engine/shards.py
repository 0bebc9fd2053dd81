"""Shards: participant workers in other processes (`--processes N`) or on Dask workers.

The parent keeps the organizers, the stop, the signals and the results. Shard i of N runs the
participants numbered n with (n - 1) mod N == i, on the parent's arrival grid, and ships its
measurements as deltas (Metrics.drain) twice a second, so the parent's totals, per-second counts
and HDR histograms are exactly the sums of the shards'. The protocol, whatever carries it:

    parent -> shard: a Command: STOP (stop sending, keep reading echoes), CLOSE (close sockets,
                     join, report, end), FORCE (skip the graceful waits)
    shard -> parent: a ShardMessage: Delta (metrics since the last one), Failed (the shard's
                     first error), Drained (stopped and every echo in), Done (the final report)
"""

from __future__ import annotations

import enum
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ..config import Settings, Target
from ..scenario.participant import Spawner
from ..system import openfiles, platform_support
from .workers import CpuMeter, EndReason, FirstError, Workers, cpu_seconds, worker_thread_settings

log = logging.getLogger("esmeperf")

REPORT_INTERVAL = 0.5  # seconds between deltas: the parent's live view lags at most this


class Command(enum.Enum):
    """What the parent tells its shards."""

    STOP = "stop"  # stop sending; keep reading echoes
    CLOSE = "close"  # close the sockets, join the threads, send Done, end
    FORCE = "force"  # as CLOSE, skipping every graceful wait


@dataclass(frozen=True)
class ShardReport:
    """A shard's final report (on Dask, the worker's address and clock skew are added)."""

    alive: list[str]  # threads still running after the shard's join
    late_errors: int
    sent: int
    host: str
    cpu_s: float  # the whole shard process's CPU (on Dask: the worker's)

    def as_dict(self, index: int) -> dict[str, Any]:
        return {"shard": index, **asdict(self)}


@dataclass(frozen=True)
class Delta:
    index: int
    metrics: dict[str, Any]  # Metrics.drain() of the shard


@dataclass(frozen=True)
class Failed:
    index: int
    error: FirstError
    reason: EndReason = EndReason.ERROR


@dataclass(frozen=True)
class Drained:
    index: int


@dataclass(frozen=True)
class Done:
    index: int
    report: ShardReport


ShardMessage = Delta | Failed | Drained | Done


@dataclass(frozen=True)
class ShardSpec:
    """What one shard needs to run its share of the participants."""

    index: int
    count: int
    target: Target
    settings: Settings
    stamp: int  # the run's Unix second: part of every participant email
    start_wall: float  # Unix time of the arrival grid's origin
    email_tag: str = ""  # extra email part keeping identities unique across machines


class ShardRunner:
    """The shard side, whatever transport carries its messages (`send`) and commands."""

    def __init__(self, spec: ShardSpec, send: Callable[[ShardMessage], None]) -> None:
        self.spec = spec
        self._send = send
        self.workers = Workers(spec.target, spec.settings, spec.stamp)
        self.workers.ctx.email_tag = spec.email_tag
        self.workers.on_first_error = lambda error, reason: self._send(
            Failed(spec.index, error, reason))
        self.closing = threading.Event()

    def command(self, command: Command) -> None:
        """Obey the parent."""
        if not isinstance(command, Command):  # a bug of the link: the shard's error, and out
            self.workers.record_error(f"shard-{self.spec.index}-link", TypeError(
                f"unknown command {command!r:.200}"))
            command = Command.FORCE
        self.workers.stop(EndReason.PARENT)
        if command in (Command.CLOSE, Command.FORCE):
            self.closing.set()
        if command is Command.FORCE:
            self.workers.force.set()

    def run(self) -> ShardReport:
        """Run the participants until told to close; return the shard's final report."""
        spec, workers = self.spec, self.workers
        # A spawned process inherits the parent's raised limit; a Dask worker has its own.
        soft = openfiles.raise_soft_limit()
        log.info("open files limit: %s", "none" if soft is None else soft)
        cpu_before = cpu_seconds()
        with worker_thread_settings():
            spawner = Spawner(workers.ctx, offset=spec.index, stride=spec.count,
                              start_wall=spec.start_wall)
            workers.start_lag_probe()
            workers.start_thread(f"spawner-{spec.index}", spawner.run)
            metrics = workers.ctx.metrics
            sent = delivered = 0
            drained = stopped = False
            deadline = None
            cpu = CpuMeter(metrics, None, interval=REPORT_INTERVAL, recent=workers.load)
            while not self.closing.wait(REPORT_INTERVAL):
                workers.check_stalls()
                cpu.tick()
                # Stopped a whole interval ago: a send racing the stop is in this delta.
                settled, stopped = stopped, workers.ctx.stop.is_set()
                delta = metrics.drain()
                sent += sum(delta["sent"].values())
                delivered += sum(delta["delivered"].values())
                self._send(Delta(spec.index, delta))
                if settled and not drained:
                    deadline = deadline or time.monotonic() + spec.settings.echo_timeout
                    if delivered >= sent or time.monotonic() >= deadline:
                        drained = True
                        self._send(Drained(spec.index))
            workers.shutdown(drained=lambda: True)  # the parent already waited for echoes
            delta = metrics.drain()
            sent += sum(delta["sent"].values())
            self._send(Delta(spec.index, delta))
        # The CPU of the whole shard process (on Dask: the worker's, its own overhead included).
        report = ShardReport(alive=workers.alive(), late_errors=workers.late_errors, sent=sent,
                             host=socket.gethostname(),
                             cpu_s=round(cpu_seconds() - cpu_before, 3))
        self._send(Done(spec.index, report))
        return report


class ShardGroup(Protocol):
    """The parent's handle on all shards of a run."""

    sink: ReportSink

    def send(self, command: Command) -> None: ...
    def wait(self, timeout: float) -> None: ...
    def reports(self) -> list[dict[str, Any]]: ...


class ReportSink:
    """Parent side: merges what shards send into the run's Workers; remembers final reports."""

    def __init__(self, workers: Workers, count: int) -> None:
        self.workers = workers
        self.done: dict[int, dict[str, Any]] = {}
        self.drained: set[int] = set()
        self.count = count
        self._sent: dict[int, int] = {}  # shard -> messages sent, from its deltas
        self._lock = threading.Lock()

    def accept(self, message: ShardMessage, where: str = "") -> None:
        """Merge one message; anything else on the link is a bug of the run, and its error."""
        match message:
            case Delta(index=index, metrics=metrics):
                self.workers.ctx.metrics.merge(metrics)
                with self._lock:
                    self._sent[index] = self._sent.get(index, 0) + sum(metrics["sent"].values())
            case Failed(index=index, error=error, reason=reason):
                error.thread = f"shard-{index}{where}/{error.thread}"
                self.workers.record(error, reason)
            case Drained(index=index):
                with self._lock:
                    self.drained.add(index)
            case Done(index=index, report=report):
                self.finish(index, report.as_dict(index))
            case _:
                self.workers.record_error("shards", TypeError(
                    f"unknown shard message {type(message).__name__}: {message!r:.200}"))

    def finish(self, index: int, report: dict[str, Any]) -> bool:
        """Keep a shard's final report, unless it already has one; True if it was kept."""
        with self._lock:
            if index in self.done:
                return False
            self.done[index] = report
            return True

    def sent_by(self, index: int) -> int:
        """What a shard's deltas counted as sent: the report of a shard lost before its own."""
        with self._lock:
            return self._sent.get(index, 0)

    def reported(self, index: int) -> bool:
        with self._lock:
            return index in self.done

    def finished(self) -> int:
        with self._lock:
            return len(self.done)

    def reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.done[i] for i in sorted(self.done)]

    def all_drained(self) -> bool:
        """Every shard has its echoes in (or gave up waiting), or has ended."""
        with self._lock:
            return len(self.drained | set(self.done)) >= self.count


# -- --processes N: child processes and pipes -------------------------------------------------

def _process_main(conn: Connection, spec: ShardSpec) -> None:
    """Entry point of a shard process."""
    # Out of the parent's process group: a Ctrl-C or a `timeout`'s SIGTERM sent to the group
    # reaches only the parent, which decides and relays the stop (setsid, or setpgid where
    # platform_support says so: --portable reaches here through the inherited environment).
    platform_support.active().leave_process_group()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log.setLevel(logging.DEBUG if spec.settings.debug else logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s shard-{spec.index}: %(message)s",
                                           "%Y/%m/%d %H:%M:%S"))
    log.addHandler(handler)
    send_lock = threading.Lock()
    runner: ShardRunner

    def send(message: ShardMessage) -> None:
        with send_lock:
            try:
                conn.send(message)
            except OSError:
                runner.command(Command.FORCE)  # the parent is gone

    def listen() -> None:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                command = Command.FORCE  # the parent died: stop at once
            runner.command(command)
            if command in (Command.CLOSE, Command.FORCE):
                return

    runner = ShardRunner(spec, send)
    threading.Thread(target=listen, name=f"shard-{spec.index}-link", daemon=True).start()
    runner.run()
    conn.close()


class ProcessShards:
    """`--processes N`: N spawned child processes, one pipe each."""

    def __init__(self, specs: Sequence[ShardSpec], workers: Workers) -> None:
        self.sink = ReportSink(workers, len(specs))
        context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self._shards = []
        for spec in specs:
            conn, child_conn = context.Pipe()
            process = context.Process(target=_process_main, args=(child_conn, spec),
                                      name=f"esmeperf-shard-{spec.index}", daemon=True)
            process.start()
            child_conn.close()
            listener = threading.Thread(target=self._listen, args=(spec.index, conn, process),
                                        name=f"shard-{spec.index}-listener", daemon=True)
            listener.start()
            self._shards.append((conn, process, listener, threading.Lock()))

    def _listen(self, index: int, conn: Connection, process: Any) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            self.sink.accept(message)
        if not self.sink.reported(index):
            process.join(5)
            self.sink.workers.record(FirstError(
                thread=f"shard-{index}", type="ShardDied", traceback="",
                message=f"shard process {index} ended without reporting "
                        f"(exit status {process.exitcode})"))

    def send(self, command: Command) -> None:
        for conn, _, _, lock in self._shards:
            with lock:
                try:
                    conn.send(command)
                except OSError:
                    pass  # that shard is gone; its listener reports it

    def wait(self, timeout: float) -> None:
        """Wait for every final report and exit; kill what is left past `timeout`."""
        deadline = time.monotonic() + timeout
        for conn, process, listener, _ in self._shards:
            listener.join(max(0.1, deadline - time.monotonic()))
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("%s did not exit; killing it", process.name)
                process.kill()
                process.join(5)
            conn.close()

    def reports(self) -> list[dict[str, Any]]:
        return self.sink.reports()
