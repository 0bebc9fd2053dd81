"""The worker threads of one process: start them, keep the first error, stop and join them."""

from __future__ import annotations

import enum
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..config import BATCH_MAX_MS, Settings, Target
from ..measure import attribution, health
from ..measure.lag import LagProbe, RecentLoad, Window
from ..measure.stall import Oldest
from ..measure.stats import Metrics
from ..scenario.context import Context
from ..system import openfiles, platform_support

log = logging.getLogger("esmeperf")

WORKER_STACK_SIZE = 256 * 1024  # thousands of threads: keep their stacks small
# A participant's conversation thread gets a stack of a size no other thread asks for, so
# that it never starts on a stack glibc kept from a finished arrival: a thread's exit frees
# its stack's pages except the 16 KiB below where it stood, and glibc hands a kept stack to a
# new thread that asks for at most its size and at least a quarter of it. An arrival's deep
# calls (requests, the handshake) leave 4-5 pages of 4 KiB touched there, twice the 2 pages
# a conversation needs, and thousands of conversations would keep them for nothing.
CONVERSATION_STACK_SIZE = WORKER_STACK_SIZE + 8 * 1024
# threading.stack_size() is one setting for the process, read when a thread starts: every
# start holds this lock, so none starts while a conversation's start has the size changed.
_START = threading.Lock()
# The GIL's forced hand-off interval while a run is on. With a thousand threads, the default
# 5 ms makes a thread give up the GIL in the middle of handling a frame; 50 ms lets it finish
# and block on its socket by itself. bench/cost_per_message.py: 20 s -sci 10 -cpi 20 -smi 100,
# 73-77k messages at 191-209 us each with 5 ms, 89-91k at 180-184 us with 50 ms.
SWITCH_INTERVAL = 0.05
CLOSE_GRACE = 2.0  # seconds the server gets to answer our close frames
SETTLE = 0.1  # seconds between the stop and the first look at what is still unechoed
SLOW_SHUTDOWN = 30.0  # seconds of shutdown past which its steps' times are a warning
# The GIL's switch interval once the close frames go out. Thousands of workers then wake at
# once and wait for the GIL, and each waiter wakes at every interval to ask for it (CPython's
# take_gil): at 50 ms, 10,000 of them make 200,000 wake-ups a second, which keep both cores
# and the GIL's mutex busy and the GIL itself nearly still. Workers on their way out give the
# GIL up at their next system call anyway. Set back once the workers are joined.
SHUTDOWN_SWITCH_INTERVAL = 2.0
SHUTDOWN_SWITCH_THREADS = 1000  # from this many worker threads on


# A timeout is judged against the generator's lag and CPU over this many seconds before it.
TIMEOUT_WINDOW_S = 10.0


def _waited_for_the_target(exc: BaseException) -> bool:
    """A wait for the target that ran out: a chat, a handshake, a read, a REST call."""
    import requests
    import websocket

    from ..errors import ChatWaitTimeout

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the cause may be wrapped (WebSocketFailure)
        seen.add(id(exc))
        if isinstance(exc, ChatWaitTimeout | TimeoutError | requests.Timeout
                      | websocket.WebSocketTimeoutException):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


class EndReason(enum.Enum):
    """Why a run (or a shard) stopped; the summary's `end_reason` is its text."""

    DURATION = "duration"  # --duration reached
    ERROR = "error"  # the first error in any worker
    SIGNAL = "signal"  # SIGINT or SIGTERM (its name follows in the text)
    PARENT = "parent"  # a shard told to stop by the run that owns it
    STALL = "stall"  # a request unanswered past --stall-timeout (also the first error)
    GATE = "gate"  # --abort-on-fail: a gate failed over the sliding window (gatewatch.py)


@contextmanager
def worker_thread_settings() -> Iterator[None]:
    """Small stacks and a long GIL switch interval while a run's threads live; then restore."""
    previous_stack = threading.stack_size(WORKER_STACK_SIZE)
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        threading.stack_size(previous_stack)
        sys.setswitchinterval(previous_interval)


class _StepClock:
    """How long each step of the shutdown took: in the debug log, and in a warning when the
    whole shutdown was slow (SLOW_SHUTDOWN), so a slow one says where its time went."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def done(self, step: str) -> None:
        now = time.monotonic()
        self.steps.append((step, now - self.last))
        self.last = now

    def report(self) -> None:
        text = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.steps)
        if self.last - self.start >= SLOW_SHUTDOWN:
            log.warning("warning: the shutdown took %.0f s: %s", self.last - self.start, text)
        else:
            log.debug("shutdown: %s", text)


@dataclass
class FirstError:
    """The error that stopped the run, with the thread it came from and its traceback."""

    thread: str
    message: str
    type: str
    traceback: str
    # For an error that names the target (a stall, a timeout): who it was, judged against the
    # generator's health over the same seconds (attribution.py); None for other errors.
    attribution: str | None = None

    @classmethod
    def from_exception(cls, thread: str, exc: BaseException) -> FirstError:
        return cls(thread=thread, message=str(exc) or type(exc).__name__,
                   type=type(exc).__name__, traceback="".join(traceback.format_exception(exc)))

    def as_dict(self) -> dict[str, str]:
        return dict(vars(self))


def cpu_seconds() -> float:
    """User plus system CPU time of this whole process so far: getrusage where `resource`
    exists, else time.process_time() (the same sum; Windows has no `resource`)."""
    if platform_support.active().getrusage:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    return time.process_time()


class CpuMeter:
    """CPU milliseconds per second: this process's (shards add their own), and the embedded
    target's where its pid is known. Read once a tick of `interval` seconds; a tick's CPU goes
    to the second its middle fell in.
    """

    def __init__(self, metrics: Metrics, target_pid: int | None, interval: float,
                 recent: RecentLoad) -> None:
        self._metrics, self._target_pid, self._interval = metrics, target_pid, interval
        self._recent = recent
        self._last = cpu_seconds()
        self._last_target = health.process_cpu_seconds(target_pid) if target_pid else None

    def tick(self) -> None:
        second = int(time.time() - self._interval / 2)
        now = cpu_seconds()
        used_ms = round((now - self._last) * 1000)
        self._metrics.generator_cpu_ms.add(second, used_ms)
        self._recent.cpu(second, used_ms)
        self._last = now
        if self._target_pid and self._last_target is not None:
            target = health.process_cpu_seconds(self._target_pid)
            if target is not None:
                self._metrics.target_cpu_ms.add(second,
                                                round((target - self._last_target) * 1000))
                self._last_target = target


class Workers:
    """Thread bookkeeping shared by a whole run and by one shard of it.

    Invariant: `_threads`, `first_error`, `late_errors` and `end_reason` change only under
    `_lock`; the stop Event is set after the first error is stored, never before; `_idle` is
    set exactly when `_threads` is empty.
    """

    def __init__(self, target: Target, settings: Settings, stamp: int) -> None:
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()  # started and not yet finished
        self._idle = threading.Event()  # no thread started and not yet finished
        self._idle.set()
        self.first_error: FirstError | None = None
        self.late_errors = 0
        self.end_reason: EndReason | None = None
        self.end_detail = ""  # the signal's name for EndReason.SIGNAL
        self.force = threading.Event()  # skip the graceful waits (a second signal)
        self.on_first_error: Callable[[FirstError, EndReason], None] | None = None
        self.ctx = Context(target, settings, self.start_thread, stamp=stamp)
        # This process's recent lag and CPU: what a stall or a timeout is judged against.
        self.load = RecentLoad()

    def start_lag_probe(self) -> None:
        """Measure this process's generator lag (lag.py) until the stop."""
        probe = LagProbe(self.ctx.metrics.generator_lag, self.ctx.stop, self.load)
        self.start_thread("lag-probe", probe.run)

    def start_thread(self, name: str, body: Callable[[], None],
                     conversation: bool = False) -> None:
        """Start a worker thread; `conversation`: on a fresh stack (CONVERSATION_STACK_SIZE)."""
        # Daemon only so that a thread stuck past its join timeout (reported by name) cannot
        # keep the process alive; shutdown itself always stops and joins every thread.
        thread = threading.Thread(target=self._guard, args=(name, body), name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
            self._idle.clear()
        try:
            with _START:
                if conversation:
                    previous = threading.stack_size(CONVERSATION_STACK_SIZE)
                    try:
                        thread.start()
                    finally:
                        threading.stack_size(previous)
                else:
                    thread.start()
        except BaseException:
            self._forget(thread)
            raise

    def _guard(self, name: str, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # noqa: B036 - every failure must reach the summary
            self.record_error(name, exc)
        finally:
            # A finished thread is forgotten: a long run starts one or two per participant.
            self._forget(threading.current_thread())

    def _forget(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.discard(thread)
            if not self._threads:
                self._idle.set()

    def record_error(self, thread: str, exc: BaseException) -> None:
        """Keep the first error and stop; errors after the stop are only counted."""
        error = FirstError.from_exception(thread, exc)
        if openfiles.is_out_of_files(exc):  # say so, not urllib3's retry message
            error.message = openfiles.out_of_files_message(thread)
        elif _waited_for_the_target(exc):
            span = TIMEOUT_WINDOW_S
            verdict = attribution.judge_timeout(error.message, self._recent(span),
                                                health.generator_cores(1), span)
            error.message, error.attribution = verdict.text, verdict.who
        self.record(error)

    def _recent(self, seconds: float) -> Window:
        """This process's lag and CPU over the last `seconds` (whole seconds)."""
        now = int(time.time())
        return self.load.window(now - max(1, round(seconds)), now)

    def record(self, error: FirstError, reason: EndReason = EndReason.ERROR) -> None:
        self.ctx.metrics.errors.add(int(time.time()))
        with self._lock:
            first = self.first_error is None and not self.ctx.stop.is_set()
            if first:
                self.first_error = error
                self.end_reason = reason
            else:
                self.late_errors += 1
        if first:
            log.error("%s error: %s", error.thread, error.message)
            if self.on_first_error is not None:
                self.on_first_error(error, reason)
            self.ctx.stop.set()
        else:
            log.debug("%s: error after stop: %s", error.thread, error.message)

    def check_stalls(self) -> Oldest | None:
        """Stop as at a first error if a request waited past --stall-timeout (0: never);
        return the oldest unanswered request either way (the progress line shows it)."""
        settings = self.ctx.settings
        timeout = settings.stall_timeout
        oldest = self.ctx.stalls.oldest()
        # A batched read keeps an answer waiting until the worker's next send (by design, up
        # to one interval): that much of an answer's age is not the target's.
        held = min(BATCH_MAX_MS, max(settings.smi, settings.sci)) / 1000
        if oldest is not None and timeout and oldest.age_s > timeout + held \
                and not self.ctx.stop.is_set():
            verdict = attribution.judge_stall(oldest, timeout, self._recent(oldest.age_s),
                                              health.generator_cores(1))
            self.record(FirstError(thread=oldest.worker, type="Stall", traceback="",
                                   message=verdict.text, attribution=verdict.who),
                        reason=EndReason.STALL)
        return oldest

    def stop(self, reason: EndReason, detail: str = "") -> None:
        """Stop for `reason` unless a reason (the first error, say) is already set."""
        with self._lock:
            if self.end_reason is None:
                self.end_reason, self.end_detail = reason, detail
        self.ctx.stop.set()

    def end_text(self) -> str:
        """The end reason as the summary writes it: "duration", "error", "signal SIGINT"."""
        with self._lock:
            if self.end_reason is None:
                return ""
            return " ".join(filter(None, (self.end_reason.value, self.end_detail)))

    def shutdown(self, drained: Callable[[], bool],
                 on_close: Callable[[], None] | None = None) -> None:
        """Let echoes arrive, close every socket, join every thread (bounded at each step).

        `drained` says when every echo is in; `on_close` runs when the waiting is over, just
        before the sockets are closed.
        """
        ctx, settings = self.ctx, self.ctx.settings
        steps = _StepClock()
        deadline = time.monotonic() + settings.echo_timeout
        # A worker that saw no stop yet may be in the middle of one last send: let it land
        # before counting what is still to be echoed.
        self.force.wait(SETTLE)
        while not self.force.is_set() and time.monotonic() < deadline and not drained():
            self.force.wait(0.05)
        steps.done("echoes awaited")
        if on_close is not None:
            on_close()
        # The long interval only where thousands of threads are to end, and only while they
        # end: elsewhere (a Dask client merging its shards' deltas, say) a thread that keeps
        # the GIL would make every other wait that long for it.
        interval = sys.getswitchinterval()
        with self._lock:
            many = len(self._threads) >= SHUTDOWN_SWITCH_THREADS
        if many:
            sys.setswitchinterval(SHUTDOWN_SWITCH_INTERVAL)
        try:
            self._close_all(steps)
        finally:
            sys.setswitchinterval(interval)
        ctx.rest.close()  # the keep-alive pool: a straggler's request now fails, late and counted
        steps.report()

    def _close_all(self, steps: _StepClock) -> None:
        ctx, settings = self.ctx, self.ctx.settings
        close_by = time.monotonic() + CLOSE_GRACE
        for conn in ctx.connections.snapshot():
            if self.force.is_set() or time.monotonic() > close_by:
                break  # the aborts below end the rest
            conn.close()
        steps.done("close frames sent")
        self.join(CLOSE_GRACE)
        steps.done("closed threads joined")
        # Each connection left is shut down (its worker wakes and closes it), the GIL kept
        # throughout; bounded all the same. Connections left open die with the process; their
        # threads are daemons, and the summary lists them (threads_alive_after_join).
        abort_by = time.monotonic() + settings.join_timeout
        left = ctx.connections.seal()
        for index, conn in enumerate(left):
            if time.monotonic() > abort_by:
                log.warning("shutdown: %d of %d connections not shut down within %g s",
                            len(left) - index, len(left), settings.join_timeout)
                break
            conn.wake()
        steps.done(f"{len(left)} connections shut down")
        self.join(settings.join_timeout)
        steps.done("threads joined")

    def join(self, timeout: float) -> None:
        """Wait until every thread has finished or `timeout` passes (much sooner once forced).

        One wait for all of them, not a join per thread: each join gives the GIL up and takes
        it back, and with thousands of threads waking to their close frames at once, taking it
        back can keep the main thread from its deadline for a long time.
        """
        deadline = time.monotonic() + timeout
        while not self._idle.is_set():
            if self.force.is_set():
                deadline = min(deadline, time.monotonic() + 0.5)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._idle.wait(min(remaining, 0.2))

    def alive(self) -> list[str]:
        """Names of the threads still running."""
        with self._lock:
            return [t.name for t in self._threads if t.is_alive()]
