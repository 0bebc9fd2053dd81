"""The one owner of SIGINT and SIGTERM for a whole job, from the first flag to the last file.

A job goes through three phases, again for every run of a sweep:

    STARTING   the embedded target, the Dask cluster: a signal aborts at once
               (KeyboardInterrupt in the main thread; nothing ran, nothing to write), and
               the job goes to FINISHING
    RUNNING    the load: the first signal stops the run gracefully, a second skips the waits
    FINISHING  the target's stats, the result files: a signal is held, and acted on when the
               files are written (the job then ends with 130, a sweep runs no further run)

The handler never acts by itself: it runs between two bytecodes of the main thread, which may
hold a lock that stopping needs (an Event's, the logging handler's), so it only queues the
signal for a relay thread. Only in STARTING, where no lock of ours is held and the main thread
is blocked in a wait that must end, does it raise.
"""

from __future__ import annotations

import enum
import logging
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("esmeperf")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Phase(enum.Enum):
    """Where the job is, as far as a signal is concerned."""

    STARTING = "starting"
    RUNNING = "running"
    FINISHING = "finishing"


class Interrupted(KeyboardInterrupt):
    """A signal arrived before the run started: nothing ran."""


class Lifecycle:
    """Signals and phases of one job. Install it once in the main thread (`installed()`).

    Invariant: `_phase`, `_stop`, `_force` and `held` change under `_lock`, except that the
    handler (main thread, never blocking) appends to `received` and `held` and leaves STARTING.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase = Phase.STARTING
        self._stop: Callable[[str], object] | None = None
        self._force: Callable[[str], object] | None = None
        self._in_run = 0  # signals taken by the current run
        self.received: list[str] = []  # names of every signal of the job, in order
        self.held: list[str] = []  # signals held while the current run's files were written
        self._queue: queue.SimpleQueue[tuple[int, Phase] | None] = queue.SimpleQueue()

    @contextmanager
    def installed(self) -> Iterator[Lifecycle]:
        """Own SIGINT/SIGTERM until the block ends (outside the main thread: phases only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        relay = threading.Thread(target=self._relay, name="signal-relay", daemon=True)
        relay.start()
        previous = {sig: signal.signal(sig, self._handler) for sig in SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._queue.put(None)
            relay.join(5)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        # Plain reads and writes: the handler must not take the lock the main thread may hold.
        # It records the signal itself, so that whatever the main thread does next (start
        # another run: next_run) already knows of it, however late the relay acts.
        name = signal.Signals(signum).name
        self.received.append(name)
        phase = self._phase
        if phase is Phase.STARTING:
            # Nothing more starts; what follows (stopping the target, a sweep's report) is
            # finishing, and a further signal must not cut it short.
            self._phase = Phase.FINISHING
            raise Interrupted(name)
        if phase is Phase.FINISHING:
            self.held.append(name)
        self._queue.put_nowait((signum, phase))

    def _relay(self) -> None:
        while (item := self._queue.get()) is not None:
            self._act(signal.Signals(item[0]).name, item[1])

    def _act(self, name: str, arrived_in: Phase) -> None:
        with self._lock:
            phase, stop, force = self._phase, self._stop, self._force
            if phase is Phase.RUNNING:
                self._in_run += 1
                first = self._in_run == 1
            elif arrived_in is Phase.RUNNING:  # the run ended before the relay got to it
                self.held.append(name)
        if phase is not Phase.RUNNING:
            log.warning("%s: the results are being written; stopping after that", name)
        elif first:
            log.warning("%s: stopping gracefully (again to stop at once)", name)
            assert stop is not None
            stop(name)
        else:
            log.warning("%s: stopping at once; results are still written", name)
            assert force is not None
            force(name)

    @contextmanager
    def running(self, stop: Callable[[str], object], force: Callable[[str], object]
                ) -> Iterator[None]:
        """The load phase: signals call `stop`, then `force`; FINISHING follows the block."""
        with self._lock:
            self._phase, self._stop, self._force = Phase.RUNNING, stop, force
            self._in_run = 0
        try:
            yield
        finally:
            with self._lock:
                self._phase, self._stop, self._force = Phase.FINISHING, None, None

    def next_run(self) -> None:
        """STARTING for the next run; raises Interrupted if a signal already ended the job."""
        with self._lock:
            if self.received:
                raise Interrupted(self.received[0])
            self._phase = Phase.STARTING
            self.held = []
