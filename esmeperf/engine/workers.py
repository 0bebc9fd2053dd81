"""The worker threads of one process: start them, report their errors, close and join them."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..config import BATCH_MAX_MS, Settings, Target
from ..measure import attribution, health
from ..measure.lag import LagProbe, RecentLoad, Window
from ..measure.stall import Oldest
from ..scenario.context import Context
from ..system import openfiles
from .life import EndReason, FirstError, Life

log = logging.getLogger("esmeperf")

WORKER_STACK_SIZE = 256 * 1024  # thousands of threads: keep their stacks small
# The GIL's forced hand-off interval while a run is on. With a thousand threads, the default
# 5 ms makes a thread give up the GIL in the middle of handling a frame; 50 ms lets it finish
# and block on its socket by itself. bench/cost_per_message.py: 20 s -sci 10 -cpi 20 -smi 100,
# 73-77k messages at 191-209 us each with 5 ms, 89-91k at 180-184 us with 50 ms.
SWITCH_INTERVAL = 0.05
CLOSE_GRACE = 2.0  # seconds the server gets to answer our close frames
SLOW_SHUTDOWN = 30.0  # seconds of shutdown past which its steps' times are a warning
# The GIL's switch interval while thousands of workers close. They wake at once and wait for
# the GIL, and each waiter wakes at every interval to ask for it (CPython's take_gil): at
# 50 ms, 10,000 of them make 200,000 wake-ups a second, which keep both cores and the GIL's
# mutex busy and the GIL itself nearly still. Workers on their way out give the GIL up at their
# next system call anyway. Set back once the workers are joined.
SHUTDOWN_SWITCH_INTERVAL = 2.0
SHUTDOWN_SWITCH_THREADS = 1000  # from this many worker threads on
# A timeout is judged against the generator's lag and CPU over this many seconds before it.
TIMEOUT_WINDOW_S = 10.0


@contextmanager
def worker_thread_settings() -> Iterator[None]:
    """Small stacks, a long GIL switch interval and a frozen heap while a run's threads live;
    then restore.

    The heap: a full garbage collection walks every tracked object, about 100,000 of them
    once requests, urllib3 and the rest are imported, and holds the GIL 40 ms doing it, a
    stall in every participant's sends (enough, in a short run, to make its send lateness
    p99 half of a 100 ms interval). Whatever lives before the load (modules, the settings)
    is moved out of the collector's sight for the run (gc.freeze), so a full collection
    walks the run's own objects only."""
    previous_stack = threading.stack_size(WORKER_STACK_SIZE)
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()  # nothing that is already garbage is frozen
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        threading.stack_size(previous_stack)
        sys.setswitchinterval(previous_interval)


class StepClock:
    """How long each step of a shutdown took: in the debug log, and in a warning when the
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


def _waited_for_the_target(exc: BaseException) -> bool:
    """A wait for the target that ran out: a chat, a handshake, a read, a REST call."""
    import requests
    import websocket

    from ..errors import ChatWaitTimeout

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # maybe wrapped (WebSocketFailure)
        seen.add(id(current))
        if isinstance(current, ChatWaitTimeout | TimeoutError | requests.Timeout
                      | websocket.WebSocketTimeoutException):
            return True
        current = current.__cause__ or current.__context__
    return False


class Workers:
    """The worker threads of a whole run, or of one shard of it: their starts, their errors
    (each goes to `life.stop`), stalls, and their closing.

    Invariant: `_threads` changes only under `_lock`; `_idle` is set exactly when it is empty.
    """

    def __init__(self, life: Life, target: Target, settings: Settings, stamp: int,
                 email_tag: str = "", embedded_target: bool = False) -> None:
        self.life = life
        self.embedded_target = embedded_target  # out of descriptors: the remedy differs
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()  # started and not yet finished
        self._idle = threading.Event()  # no thread started and not yet finished
        self._idle.set()
        self.ctx = Context(target, settings, self.start_thread, stamp=stamp,
                           email_tag=email_tag, stop=life.stopped)
        # This process's recent lag and CPU: what a stall or a timeout is judged against.
        self.load = RecentLoad()

    def start_thread(self, name: str, body: Callable[[], None]) -> None:
        """Start a worker thread."""
        # Daemon only so that a thread stuck past its join timeout (reported by name) cannot
        # keep the process alive; the shutdown itself always stops and joins every thread.
        thread = threading.Thread(target=self._guard, args=(name, body), name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
            self._idle.clear()
        try:
            thread.start()
        except BaseException:
            self._forget(thread)
            raise

    def start_lag_probe(self) -> None:
        """Measure this process's generator lag (measure/lag.py) until the stop."""
        probe = LagProbe(self.ctx.metrics.generator_lag, self.life.stopped, self.load)
        self.start_thread("lag-probe", probe.run)

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
        """A worker's error: the run's first (it stops the run) or, after the stop, counted."""
        error = FirstError.from_exception(thread, exc)
        if openfiles.is_out_of_files(exc):  # say so, not urllib3's retry message
            error.message = openfiles.out_of_files_message(thread, self.embedded_target)
        elif _waited_for_the_target(exc):
            verdict = attribution.judge_timeout(error.message, self.recent(TIMEOUT_WINDOW_S),
                                                health.generator_cores(1), TIMEOUT_WINDOW_S)
            error.message, error.attribution = verdict.text, verdict.who
        self.life.stop(EndReason.ERROR, error=error)
        self.ctx.metrics.errors.add(int(time.time()))

    def recent(self, seconds: float) -> Window:
        """This process's lag and CPU over the last `seconds` (whole seconds)."""
        now = int(time.time())
        return self.load.window(now - max(1, round(seconds)), now)

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
                and not self.life.stopped.is_set():
            verdict = attribution.judge_stall(oldest, timeout, self.recent(oldest.age_s),
                                              health.generator_cores(1))
            self.life.stop(EndReason.STALL, error=FirstError(
                thread=oldest.worker, type="Stall", traceback="", message=verdict.text,
                attribution=verdict.who))
            self.ctx.metrics.errors.add(int(time.time()))
        return oldest

    def close(self, steps: StepClock) -> None:
        """Close every connection and join every thread, each step bounded: close frames
        (CLOSE_GRACE to send them), the threads they end joined (CLOSE_GRACE), the rest of
        the connections shut down (the worker blocked on one wakes and closes it) and joined
        (--join-timeout); the keep-alive REST pool last. A thread left after that is named
        by alive(); its socket dies with the process."""
        # The long interval only where thousands of threads are to end, and only while they
        # end: elsewhere (a Dask client merging its shards' deltas, say) a thread that keeps
        # the GIL would make every other wait that long for it.
        # Arrivals still signing up or asking for help at the stop no longer matter: their
        # calls end now (late errors, counted), not at --http-timeout, holding the join up.
        self.ctx.rest.abort()
        interval = sys.getswitchinterval()
        with self._lock:
            many = len(self._threads) >= SHUTDOWN_SWITCH_THREADS
        if many:
            sys.setswitchinterval(SHUTDOWN_SWITCH_INTERVAL)
        try:
            self._close_all(steps)
        finally:
            sys.setswitchinterval(interval)
        self.ctx.rest.close()  # a straggler's request now fails, late and counted

    def _close_all(self, steps: StepClock) -> None:
        ctx, forced = self.ctx, self.life.forced
        close_by = time.monotonic() + CLOSE_GRACE
        for conn in ctx.connections.snapshot():
            if forced.is_set() or time.monotonic() > close_by:
                break  # the shutdowns below end the rest
            conn.close()
        steps.done("close frames sent")
        self.join(CLOSE_GRACE)
        steps.done("closed threads joined")
        # Each connection left is shut down with the GIL kept throughout (syscalls.shutdown);
        # bounded all the same. Its worker wakes and closes it.
        join_timeout = ctx.settings.join_timeout
        abort_by = time.monotonic() + join_timeout
        left = ctx.connections.seal()
        for index, conn in enumerate(left):
            if time.monotonic() > abort_by:
                log.warning("shutdown: %d of %d connections not shut down within %g s",
                            len(left) - index, len(left), join_timeout)
                break
            conn.wake()
        steps.done(f"{len(left)} connections shut down")
        self.join(join_timeout)
        steps.done("threads joined")

    def join(self, timeout: float) -> None:
        """Wait until every thread has finished or `timeout` passes (much sooner once forced).

        One wait for all of them, not a join per thread: each join gives the GIL up and takes
        it back, and with thousands of threads waking to their close frames at once, taking it
        back can keep the main thread from its deadline for a long time.
        """
        deadline = time.monotonic() + timeout
        while not self._idle.is_set():
            if self.life.forced.is_set():
                deadline = min(deadline, time.monotonic() + 0.5)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._idle.wait(min(remaining, 0.2))

    def alive(self) -> list[str]:
        """Names of the threads still running."""
        with self._lock:
            return [t.name for t in self._threads if t.is_alive()]
