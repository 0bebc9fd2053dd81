"""Shards: participant workers in other processes (`--processes N`) or on Dask workers.

The parent keeps the organizers, the stop, the signals and the results. Shard i of N runs the
participants numbered n with (n - 1) mod N == i, on the parent's arrival grid, and ships its
measurements as deltas (Metrics.drain) twice a second, so the parent's totals, per-second counts
and HDR histograms are exactly the sums of the shards'. The protocol, whatever carries it:

    parent -> shard: a Command: STOP (stop sending, keep reading echoes), CLOSE (close sockets,
                     join, report, end), FORCE (skip the graceful waits)
    shard -> parent: a ShardMessage: Delta (metrics since the last one), Failed (the shard's
                     first error), Drained (stopped and every echo in), Done (the final report)

Whatever carries it is a `ShardLauncher` the engine is given (ProcessLauncher here, the Dask
cluster's in dask.py) and the `ShardGroup` it returns. Nothing measured is lost with a shard:
its deltas are merged as they come, and a shard whose final report never comes is reported
lost with what its deltas brought and from which second on its measurements are missing; a
final report that comes after the parent gave up on it is still merged until the results are
sealed (just before they are written).
"""

from __future__ import annotations

import enum
import faulthandler
import gc
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ..config import Settings, Target
from ..measure.cpu import CpuMeter, cpu_seconds
from ..measure.stats import Metrics, MetricsDelta
from ..scenario.participant import Spawner
from ..system import openfiles, platform_support
from .life import EndReason, FirstError, Life
from .workers import StepClock, Workers, worker_thread_settings

log = logging.getLogger("esmeperf")

REPORT_INTERVAL = 0.5  # seconds between deltas: the parent's live view lags at most this
# A shard whose reporting loop stood still this long writes every thread's stack to its stderr
# (the Dask worker's log): a shard that stops answering says where it stopped.
STUCK_DUMP_S = 10.0


class Command(enum.Enum):
    """What the parent tells its shards."""

    STOP = "stop"  # stop sending; keep reading echoes
    CLOSE = "close"  # close the sockets, join the threads, send Done, end
    FORCE = "force"  # as CLOSE, skipping every graceful wait


@dataclass
class ShardReport:
    """What the parent knows of one shard at the end: its final report, or, for a shard lost
    before it, what its deltas brought (`lost`; `alive`, `late_errors` and `cpu_s` unknown)."""

    shard: int
    host: str
    sent: int  # messages sent, from its deltas (and its final one)
    alive: list[str] | None = None  # threads still running after its join
    late_errors: int | None = None
    cpu_s: float | None = None  # the whole shard process's CPU (on Dask: the worker's)
    lost: bool = False  # its final report never came
    late: bool = False  # its final report came after the parent had given up on it
    last_second: int | None = None  # the newest Unix second its deltas counted anything in
    # Unix times of the steps of its end, the shard's own (stop, close, closed, report) and
    # the parent's (received, gave_up): where a slow end spent its time.
    timeline: dict[str, float] = field(default_factory=dict)
    worker: str = ""  # on Dask: the worker's address
    clock_skew_s: float | None = None  # on Dask: the worker's clock against the client's
    uncertainty_s: float | None = None
    # The longest wait between two of its deltas as the parent received them (seconds).
    delta_gap_max_s: float | None = None
    link: str = ""  # on Dask: "direct" (its own TCP link to the client) or "scheduler"

    def as_dict(self) -> dict[str, Any]:
        """The summary's `shards` entry (None where unknown)."""
        out = {k: v for k, v in vars(self).items() if k not in ("worker", "clock_skew_s",
                                                                "uncertainty_s", "link")}
        out["timeline"] = {step: round(at, 3) for step, at in self.timeline.items()}
        if self.worker:
            out.update(worker=self.worker, clock_skew_s=self.clock_skew_s,
                       uncertainty_s=self.uncertainty_s, link=self.link)
        if self.lost:
            out["missing"] = (f"shard {self.shard}'s final report never came: its last delta "
                              "(the echoes of its last half second and its shutdown) and its "
                              "threads, errors after the stop and CPU are missing"
                              + (f", from Unix second {self.last_second}" if self.last_second
                                 else ""))
        return out


@dataclass(frozen=True)
class Delta:
    index: int
    metrics: MetricsDelta  # Metrics.drain() of the shard


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


@dataclass(frozen=True)
class Alive:
    """A shard's beat, a second apart, apart from its deltas (on Dask): a shard whose beat
    comes is alive, however late its deltas (a saturated process is slow, not lost)."""

    index: int


ShardMessage = Delta | Failed | Drained | Done | Alive


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
    log_level: int = logging.INFO  # the run's own (--debug, -q), for the shard's log lines


class ShardRunner:
    """The shard side, whatever transport carries its messages (`send`) and commands."""

    def __init__(self, spec: ShardSpec, send: Callable[[ShardMessage], None]) -> None:
        self.spec = spec
        self._send = send
        self.life = Life(on_first_error=lambda error, reason: send(
            Failed(spec.index, error, reason)))
        self.workers = Workers(self.life, spec.target, spec.settings, spec.stamp,
                               email_tag=spec.email_tag)
        self.closing = threading.Event()
        self.timeline: dict[str, float] = {}  # the steps of its end, Unix time

    def command(self, command: Command) -> None:
        """Obey the parent."""
        if not isinstance(command, Command):  # a bug of the link: the shard's error, and out
            self.workers.record_error(f"shard-{self.spec.index}-link", TypeError(
                f"unknown command {command!r:.200}"))
            command = Command.FORCE
        if command.value not in self.timeline:
            self.timeline[command.value] = time.time()
            log.info("shard %d: %s", self.spec.index, command.value)
        self.life.stop(EndReason.PARENT)
        if command is Command.FORCE:
            self.life.force()
        if command in (Command.CLOSE, Command.FORCE):
            self.closing.set()

    def run(self) -> ShardReport:
        """Run the participants until told to close; return the shard's final report."""
        spec, workers, life = self.spec, self.workers, self.life
        # A spawned process inherits the parent's raised limit; a Dask worker has its own.
        soft = openfiles.raise_soft_limit()
        log.info("open files limit: %s", "none" if soft is None else soft)
        cpu_before = cpu_seconds()
        metrics = workers.ctx.metrics
        with worker_thread_settings():
            workers.start_lag_probe()
            workers.start_thread(f"spawner-{spec.index}", Spawner(
                workers.ctx, offset=spec.index, stride=spec.count,
                start_wall=spec.start_wall).run)
            sent = self._ship(metrics)
            steps = StepClock()
            workers.close(steps)  # the parent already waited for the echoes
            self.timeline["closed"] = time.time()
            delta = metrics.drain()
            sent += delta.total("sent")
            self._send(Delta(spec.index, delta))
            steps.report()
        log.info("shard %d: closed in %.1f s after the close; %d threads left", spec.index,
                 self.timeline["closed"] - self.timeline.get("close", self.timeline["closed"]),
                 len(workers.alive()))
        self.timeline["report"] = time.time()
        report = ShardReport(shard=spec.index, host=socket.gethostname(), sent=sent,
                             alive=workers.alive(), late_errors=life.late_errors,
                             cpu_s=round(cpu_seconds() - cpu_before, 3),
                             timeline=dict(self.timeline))
        self._send(Done(spec.index, report))
        log.debug("shard %d: end %s", spec.index, {k: round(v, 3) for k, v in
                                                   self.timeline.items()})
        return report

    def _ship(self, metrics: Metrics) -> int:
        """Ship a delta every REPORT_INTERVAL until CLOSE, and Drained once stopped and every
        echo is in (or --echo-timeout passed); return the messages sent."""
        workers, settings, index = self.workers, self.spec.settings, self.spec.index
        cpu = CpuMeter(metrics, None, interval=REPORT_INTERVAL, recent=workers.load)
        sent = delivered = 0
        drained = stopped = False
        deadline = None
        watchdog = _Watchdog(index)
        while not self.closing.wait(REPORT_INTERVAL):
            watchdog.rearm()
            workers.check_stalls()
            cpu.tick()
            # Stopped a whole interval ago: a send racing the stop is in this delta.
            settled, stopped = stopped, self.life.stopped.is_set()
            if stopped and "stop" not in self.timeline:
                self.timeline["stop"] = time.time()
            delta = metrics.drain()
            sent += delta.total("sent")
            delivered += delta.total("delivered")
            self._send(Delta(index, delta))
            if settled and not drained:
                deadline = deadline or time.monotonic() + settings.echo_timeout
                if delivered >= sent or time.monotonic() >= deadline:
                    drained = True
                    self._send(Drained(index))
        watchdog.cancel()
        return sent


class _Watchdog:
    """Where a stuck shard stopped: once its reporting loop stood still for STUCK_DUMP_S, a
    thread of its own logs the stack of every thread but the participants' (hundreds of them,
    named participant-N: counted, not shown); and if even that thread cannot run (the GIL
    held), faulthandler's C timer writes the raw stacks to stderr a few seconds later."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._beat = time.monotonic()
        self._done = threading.Event()
        self._raw = hasattr(faulthandler, "dump_traceback_later") and sys.stderr is not None
        threading.Thread(target=self._watch, name=f"shard-{index}-watchdog",
                         daemon=True).start()

    def rearm(self) -> None:
        self._beat = time.monotonic()
        if self._raw:
            faulthandler.dump_traceback_later(STUCK_DUMP_S + 5, exit=False)

    def cancel(self) -> None:
        self._done.set()
        if self._raw:
            faulthandler.cancel_dump_traceback_later()

    def _watch(self) -> None:
        dumped = False
        while not self._done.wait(1.0):
            stuck = time.monotonic() - self._beat
            if stuck < STUCK_DUMP_S:
                dumped = False
            elif not dumped:
                dumped = True
                log.warning("shard %d: its reporting loop stood still for %.0f s:\n%s",
                            self._index, stuck, _stacks())


def _stacks() -> str:
    """The stack of every thread of this process but the participants' (counted)."""
    # With the collector off: a collection inside this call could deadlock it against a thread
    # starting or ending (CPython gh-106883, engine/dask.py's _pause_worker_profiler).
    collecting = gc.isenabled()
    gc.disable()
    try:
        frames = sys._current_frames()  # noqa: SLF001 - the stacks of a stuck process
    finally:
        if collecting:
            gc.enable()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    out, participants = [], 0
    for ident, frame in frames.items():
        name = names.get(ident, f"thread {ident}")
        if name.startswith("participant-"):
            participants += 1
            continue
        out.append(f"{name}:\n" + "".join(traceback.format_stack(frame)))
    out.append(f"({participants} participant threads not shown)")
    return "\n".join(out)


class ReportSink:
    """The parent's side of every shard's messages: deltas merged into the run's Metrics as
    they come, errors to the run's Life, final reports kept, a lost shard's facts.

    Invariant: `_reports`, `_drained`, `_sent`, `_last_second`, `_heard` and `_sealed` change
    only under `_lock`.
    """

    def __init__(self, life: Life, metrics: Metrics, count: int) -> None:
        self._life, self._metrics, self.count = life, metrics, count
        self._lock = threading.Lock()
        self._reports: dict[int, ShardReport] = {}
        self._drained: set[int] = set()
        self._sent: dict[int, int] = {}  # shard -> messages sent, from its deltas
        self._last_second: dict[int, int] = {}  # shard -> newest second its deltas counted in
        self._heard: dict[int, float] = {}  # shard -> monotonic time of its last message
        self._last_delta: dict[int, float] = {}  # shard -> monotonic time of its last delta
        self._delta_gap: dict[int, float] = {}  # shard -> the longest wait between deltas
        self._sealed = False

    def accept(self, message: ShardMessage, where: str = "") -> None:
        """Merge one message; anything else on the link is a bug of the run, and its error."""
        if not isinstance(message, Delta | Failed | Drained | Done | Alive):
            self._life.stop(EndReason.ERROR, error=FirstError.from_exception("shards", TypeError(
                f"unknown shard message {type(message).__name__}: {message!r:.200}")))
            return
        now = time.monotonic()
        with self._lock:
            self._heard[message.index] = now
        match message:
            case Delta(index=index, metrics=delta):
                self._metrics.merge(delta)
                newest, loading = delta.newest_second(), not self._life.stopped.is_set()
                with self._lock:
                    # The gap while loading only: a shutdown's close takes its time.
                    if index in self._last_delta and loading:
                        gap = now - self._last_delta[index]
                        self._delta_gap[index] = max(gap, self._delta_gap.get(index, 0.0))
                    self._last_delta[index] = now
                    self._sent[index] = self._sent.get(index, 0) + delta.total("sent")
                    given_up = self._reports.get(index)
                    if given_up is not None and given_up.lost:  # still adds up with the run
                        given_up.sent = self._sent[index]
                    if newest is not None:
                        self._last_second[index] = max(newest, self._last_second.get(index, 0))
            case Failed(index=index, error=error, reason=reason):
                error.thread = f"shard-{index}{where}/{error.thread}"
                self._life.stop(reason, error=error)
            case Drained(index=index):
                with self._lock:
                    self._drained.add(index)
            case Done(index=index, report=report):
                self._finish(index, report)
            case Alive():
                pass  # heard: alive

    def _finish(self, index: int, report: ShardReport) -> None:
        report.timeline["received"] = time.time()
        with self._lock:
            if self._sealed:
                log.warning("shard %d's final report came after the results were sealed: it "
                            "is not in them", index)
                return
            earlier = self._reports.get(index)
            if earlier is not None and not earlier.lost:
                return
            if earlier is not None:  # the parent had given up on it: merged all the same
                report.late = True
                report.timeline["gave_up"] = earlier.timeline.get("gave_up", 0.0)
                log.warning("shard %d's final report came %.1f s after the parent gave up on "
                            "it: merged", index, report.timeline["received"]
                            - report.timeline["gave_up"])
            self._reports[index] = report

    def give_up(self, index: int, host: str) -> bool:
        """Count a shard lost with what its deltas brought; False if it has its report."""
        with self._lock:
            if index in self._reports or self._sealed:
                return False
            self._reports[index] = ShardReport(
                shard=index, host=host, sent=self._sent.get(index, 0), lost=True,
                last_second=self._last_second.get(index), timeline={"gave_up": time.time()})
            return True

    def fail(self, error: FirstError) -> None:
        """An error of the link to the shards (a lost Dask scheduler): the run's."""
        self._life.stop(EndReason.ERROR, error=error)

    def lost(self, index: int, host: str, error: FirstError) -> None:
        """A shard that ended without its final report: lost, and the run's error."""
        if self.give_up(index, host):
            self._life.stop(EndReason.ERROR, error=error)

    def silent_for(self, index: int, now: float) -> float:
        """Seconds since shard `index` last sent anything (0 if it never did yet)."""
        with self._lock:
            return now - self._heard.get(index, now)

    def reported(self, index: int) -> bool:
        """Whether shard `index` has its report (its own, or a lost one)."""
        with self._lock:
            return index in self._reports

    def reported_all(self, lost_too: bool = True) -> bool:
        with self._lock:
            return sum(1 for r in self._reports.values() if lost_too or not r.lost) \
                >= self.count

    def drained(self) -> bool:
        """Every shard has its echoes in (or gave up waiting), or has ended."""
        with self._lock:
            return len(self._drained | set(self._reports)) >= self.count

    def seal(self) -> list[ShardReport]:
        """The reports, in shard order, final from now on (the results are being written),
        each with the longest wait between its deltas."""
        with self._lock:
            self._sealed = True
            for index, report in self._reports.items():
                if index in self._delta_gap:
                    report.delta_gap_max_s = round(self._delta_gap[index], 3)
            return [self._reports[i] for i in sorted(self._reports)]

    def reports(self) -> list[ShardReport]:
        with self._lock:
            return [self._reports[i] for i in sorted(self._reports)]


class ShardGroup(Protocol):
    """The parent's handle on all shards of a run."""

    def send(self, command: Command) -> None:
        """Tell every shard (best effort: a shard gone is reported by the group itself)."""

    def drained(self) -> bool:
        """Every shard stopped with its echoes in (or gave up waiting), or ended."""

    def wait(self, timeout: float) -> None:
        """Wait for every shard's final report; past `timeout`, count the rest lost."""

    def seal(self) -> list[ShardReport]:
        """The final reports, in shard order, final from now on (the files are written)."""


class ShardLauncher(Protocol):
    """What starts a run's shards: the engine is given one (ProcessLauncher, or the Dask
    cluster's), and calls it once the participants are due to start."""

    # Shards on other hosts: participant emails carry the run id and the shard index, so two
    # machines' identities never collide.
    distributed: bool

    def __call__(self, specs: Sequence[ShardSpec], sink: ReportSink) -> ShardGroup: ...


# -- --processes N: child processes and pipes -------------------------------------------------

def _process_main(conn: Connection, spec: ShardSpec) -> None:
    """Entry point of a shard process."""
    # Out of the parent's process group: a Ctrl-C or a `timeout`'s SIGTERM sent to the group
    # reaches only the parent, which decides and relays the stop (setsid, or setpgid where
    # platform_support says so: --portable reaches here through the inherited environment).
    platform_support.active().leave_process_group()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log.setLevel(spec.log_level)
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


class ProcessLauncher:
    """`--processes N`: the shards in spawned child processes on this machine."""

    distributed = False

    def __call__(self, specs: Sequence[ShardSpec], sink: ReportSink) -> ShardGroup:
        return ProcessShards(specs, sink)


class ProcessShards:
    """N spawned child processes, one pipe each."""

    def __init__(self, specs: Sequence[ShardSpec], sink: ReportSink) -> None:
        self.sink = sink
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
            self.sink.lost(index, socket.gethostname(), FirstError(
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
        """Wait for every final report and exit; kill what is left past `timeout` (a shard
        without its report is then lost, with what its deltas brought)."""
        deadline = time.monotonic() + timeout
        for index, (conn, process, listener, _) in enumerate(self._shards):
            listener.join(max(0.1, deadline - time.monotonic()))
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("%s did not exit within %g s of the close; killing it",
                            process.name, timeout)
                process.kill()
                process.join(5)
            listener.join(1.0)  # the pipe's end: its last messages, or that it is lost
            self.sink.lost(index, socket.gethostname(), FirstError(
                thread=f"shard-{index}", type="ShardDied", traceback="",
                message=f"shard process {index} sent no final report within {timeout:g} s "
                        "of the close"))
            conn.close()

    def drained(self) -> bool:
        return self.sink.drained()

    def seal(self) -> list[ShardReport]:
        return self.sink.seal()

