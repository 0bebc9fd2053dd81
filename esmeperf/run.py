"""One run: start the workers, wait for the end, stop and join everything, return the result."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .config import Settings, Target
from .context import Context
from .organizer import Organizer
from .participant import Spawner
from .status import ExitStatus

log = logging.getLogger("esmeperf")

WORKER_STACK_SIZE = 256 * 1024  # thousands of threads: keep their stacks small
CLOSE_GRACE = 2.0  # seconds the server gets to answer our close frames


@dataclass
class FirstError:
    """The error that stopped the run, with the thread it came from and its traceback."""

    thread: str
    message: str
    type: str
    traceback: str

    def as_dict(self) -> dict[str, str]:
        return dict(vars(self))


@dataclass
class Sample:
    """Gauges read by the main thread once a second."""

    participants: int
    chats: int
    connections: int


@dataclass
class RunResult:
    """Everything the result files are made from."""

    run_id: str
    target: Target
    settings: Settings
    started_ns: int
    stopped_ns: int
    organizer_started_ns: int
    participants_started_ns: int
    end_reason: str
    status: ExitStatus
    ctx: Context
    samples: dict[int, Sample]
    first_error: FirstError | None = None
    late_errors: int = 0
    threads_alive: list[str] = field(default_factory=list)
    target_stats: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)


class Run:
    """Runs the ESME scenario once. Not reusable."""

    def __init__(self, target: Target, settings: Settings,
                 target_alive: Callable[[], int | None] | None = None) -> None:
        self.target = target
        self.settings = settings
        self.run_id = uuid.uuid4().hex[:12]
        # Reports the embedded target's exit code once it has died (None while it runs).
        self._target_exit = target_alive
        self._lock = threading.Lock()  # guards _threads, _first_error, _late_errors
        self._threads: list[threading.Thread] = []
        self._first_error: FirstError | None = None
        self._late_errors = 0
        self._end_reason = ""
        self._signals = 0
        self._force = threading.Event()  # a second signal: skip the graceful waits
        self.ctx = Context(target, settings, self._start_thread, stamp=int(time.time()))

    # -- threads and errors -------------------------------------------------------------

    def _start_thread(self, name: str, body: Callable[[], None]) -> None:
        # Daemon only so that a thread stuck past its join timeout (reported by name) cannot
        # keep the process alive; shutdown itself always stops and joins every thread.
        thread = threading.Thread(target=self._guard, args=(name, body), name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _guard(self, name: str, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # noqa: B036 - every failure must reach the summary
            self.record_error(name, exc)

    def record_error(self, thread: str, exc: BaseException) -> None:
        """Keep the first error and stop the run; later ones are only counted."""
        self.ctx.metrics.errors.add(int(time.time()))
        with self._lock:
            if self._first_error is None and not self.ctx.stop.is_set():
                self._first_error = FirstError(
                    thread=thread,
                    message=str(exc) or type(exc).__name__,
                    type=type(exc).__name__,
                    traceback="".join(traceback.format_exception(exc)),
                )
                self._end_reason = "error"
                first = True
            else:
                self._late_errors += 1
                first = False
        if first:
            log.error("%s error: %s", thread, self._first_error.message if self._first_error
                      else exc)
            self.ctx.stop.set()
        else:
            log.debug("%s: error after stop: %s", thread, exc)

    def _stop(self, reason: str) -> None:
        with self._lock:
            if not self._end_reason:
                self._end_reason = reason
        self.ctx.stop.set()

    # -- signals ------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.warning("%s: stopping gracefully (again to stop at once)", name)
            self._stop(f"signal {name}")
        else:
            log.warning("%s: stopping at once; results are still written", name)
            self._force.set()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    # -- the run --------------------------------------------------------------------------

    def execute(self) -> RunResult:
        """Run until the duration, the first error or a signal; always return a result."""
        settings, ctx = self.settings, self.ctx
        started_ns = time.time_ns()
        previous_handlers = self._install_signals()
        previous_stack = threading.stack_size(WORKER_STACK_SIZE)
        samples: dict[int, Sample] = {}
        organizers = [Organizer(ctx, i + 1, creds) for i, creds in
                      enumerate(self.target.organizers[: settings.organizers])]
        spawner = Spawner(ctx)
        try:
            self._log_settings()
            for organizer in organizers:
                organizer.sign_in()
            log.info("organizer initialized")
            for organizer in organizers:
                self._start_thread(organizer.name, organizer.run)
            self._start_thread("spawner", spawner.run)
            self._wait(samples, started_ns)
        except BaseException as exc:  # noqa: B036 - sign-in errors, KeyboardInterrupt, bugs
            self.record_error(threading.current_thread().name, exc)
        finally:
            self._stop("error")
            stopped_ns = time.time_ns()
            log.info("starting graceful shutdown")
            try:
                self._shutdown()
            finally:
                threading.stack_size(previous_stack)
                for sig, handler in previous_handlers.items():
                    signal.signal(sig, handler)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("threads still running after shutdown: %s", ", ".join(alive[:20]))
        return RunResult(
            run_id=self.run_id, target=self.target, settings=settings, started_ns=started_ns,
            stopped_ns=stopped_ns,
            organizer_started_ns=min((o.time_started_ns for o in organizers
                                      if o.time_started_ns), default=started_ns),
            participants_started_ns=spawner.time_started_ns or started_ns,
            end_reason=self._end_reason, status=self._status(), ctx=ctx, samples=samples,
            first_error=self._first_error, late_errors=self._late_errors, threads_alive=alive,
        )

    def _log_settings(self) -> None:
        s = self.settings
        log.info("start chat interval: %g ms", s.sci)
        log.info("create participant interval: %g ms", s.cpi)
        log.info("send message interval: %g ms", s.smi)
        log.info("log websocket messages: %s", "true" if s.log_ws else "false")
        log.info("run id: %s; target: %s", self.run_id, self.target.messenger_ws_url)
        log.info("-" * 80)

    def _wait(self, samples: dict[int, Sample], started_ns: int) -> None:
        """The main thread's loop: a tick a second for gauges, progress and end conditions."""
        settings, ctx = self.settings, self.ctx
        start = time.monotonic()
        deadline = start + settings.duration if settings.duration else None
        tick = 0
        while True:
            tick += 1
            next_tick = start + tick
            if deadline is not None:
                next_tick = min(next_tick, deadline)
            if ctx.stop.wait(max(0.0, next_tick - time.monotonic())):
                return
            samples[int(time.time())] = self._sample()
            if not settings.quiet:
                print_progress(self, time.monotonic() - start, samples, file=sys.stderr)
            if self._target_exit is not None:
                code = self._target_exit()
                if code is not None:
                    self.record_error("main", RuntimeError(
                        f"the embedded target exited with status {code}"))
                    return
            if deadline is not None and time.monotonic() >= deadline:
                self._stop("duration")
                return

    def _sample(self) -> Sample:
        m = self.ctx.metrics
        return Sample(m.get("created_participants_count"), m.get("chats_count"),
                      m.get("connections_open"))

    def _shutdown(self) -> None:
        """Let echoes arrive, close every socket, join every thread (bounded at each step)."""
        ctx, settings = self.ctx, self.settings
        m = ctx.metrics
        drain_deadline = time.monotonic() + settings.echo_timeout
        while (not self._force.is_set() and time.monotonic() < drain_deadline
               and len(ctx.connections) and m.sent.total() > m.delivered.total()):
            self._force.wait(0.05)
        for conn in ctx.connections.snapshot():
            conn.close()
        self._join(CLOSE_GRACE if not self._force.is_set() else 0.2)
        for conn in ctx.connections.snapshot():
            conn.abort()
        self._join(settings.join_timeout if not self._force.is_set() else 1.0)

    def _join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            while thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                thread.join(min(remaining, 0.2))
                if self._force.is_set() and timeout > 1.0:
                    return

    def _status(self) -> ExitStatus:
        if self._first_error is not None:
            return ExitStatus.ERROR
        if self._end_reason.startswith("signal"):
            return ExitStatus.INTERRUPTED
        return ExitStatus.OK


def print_progress(run: Run, elapsed: float, samples: dict[int, Sample], file: Any) -> None:
    """One line of live progress: what a person watching the run wants to see."""
    m = run.ctx.metrics
    second = int(time.time()) - 1  # the last complete second
    sample = samples[max(samples)]
    sent = m.sent.snapshot().get(second, 0)
    delivered = m.delivered.snapshot().get(second, 0)
    p99 = m.rtt.second_percentile_ms(second, 99)  # the last second's, not the whole run's
    p99_text = f"{p99:.1f}ms" if p99 is not None else "-"
    print(f"{elapsed:6.0f}s participants {sample.participants:>6} chats {sample.chats:>6} "
          f"sent/s {sent:>6} delivered/s {delivered:>6} rtt p99 {p99_text:>8} "
          f"errors {m.errors.total()}", file=file, flush=True)
