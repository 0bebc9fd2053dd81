"""A run's life, and a shard's: its state, the one `stop()` every end goes through, and why.

Every source of an end calls `Life.stop(reason, ...)`: the duration, the first error of any
worker (with its traceback), a stall, a gate, a signal, a lost shard, the parent telling a shard.
The first call decides the end reason and sets `stopped`, the Event every worker waits on;
later calls change nothing (an error after the stop is counted, not kept). The engine moves
the state forward as it goes:

    STARTING -> LOADING -> STOPPING -> DRAINING -> CLOSING -> FINISHED

and `forced` (a second signal, or the parent's FORCE) tells every wait of the shutdown to give up.
"""

from __future__ import annotations

import enum
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("esmeperf")


class State(enum.Enum):
    """Where a run is in its life."""

    STARTING = "starting"  # before the load: sign-in, the workers' settings
    LOADING = "loading"  # organizers and participants at work
    STOPPING = "stopping"  # stopped: no more sends, no more arrivals; shards told
    DRAINING = "draining"  # the last echoes awaited (bounded)
    CLOSING = "closing"  # close frames, sockets shut down, threads joined (bounded)
    FINISHED = "finished"  # nothing of the run is left running


class EndReason(enum.Enum):
    """Why a run (or a shard) stopped; the summary's `end_reason` is its text."""

    DURATION = "duration"  # --duration reached
    ERROR = "error"  # the first error in any worker
    SIGNAL = "signal"  # SIGINT or SIGTERM (its name follows in the text)
    PARENT = "parent"  # a shard told to stop by the run that owns it
    STALL = "stall"  # a request unanswered past --stall-timeout (also the first error)
    GATE = "gate"  # --abort-on-fail: a gate failed over the sliding window (gatewatch.py)


@dataclass
class FirstError:
    """The error that stopped the run, with the thread it came from and its traceback."""

    thread: str
    message: str
    type: str
    traceback: str
    # For an error that names the target (a stall, a timeout): who it was, judged against the
    # generator's health over the same seconds (measure/attribution.py); None for the others.
    attribution: str | None = None

    @classmethod
    def from_exception(cls, thread: str, exc: BaseException) -> FirstError:
        return cls(thread=thread, message=str(exc) or type(exc).__name__,
                   type=type(exc).__name__, traceback="".join(traceback.format_exception(exc)))

    def as_dict(self) -> dict[str, str | None]:
        return dict(vars(self))


class Life:
    """One run's (or one shard's) life.

    Invariant: `state`, `reason`, `detail`, `first_error` and `late_errors` change only under
    `_lock`; `stopped` is set after the reason (and the first error) is stored, never before,
    so whoever wakes on it reads why.
    """

    def __init__(self, on_first_error: Callable[[FirstError, EndReason], None] | None = None
                 ) -> None:
        # Told of the first error as it is kept (a shard passes it on to its parent).
        self._on_first_error = on_first_error
        self._lock = threading.Lock()
        self.state = State.STARTING
        self.reason: EndReason | None = None
        self.detail = ""  # the signal's name for EndReason.SIGNAL
        self.first_error: FirstError | None = None
        self.late_errors = 0  # errors after the stop: counted, not kept
        self.stopped = threading.Event()  # every worker waits on it
        self.forced = threading.Event()  # skip the graceful waits

    def stop(self, reason: EndReason, detail: str = "", error: FirstError | None = None) -> bool:
        """End the run for `reason` (with `error`, for an error); True if this call ended it,
        False if it had ended already (then an error is only counted)."""
        with self._lock:
            first = self.reason is None
            if first:
                self.reason, self.detail, self.first_error = reason, detail, error
            elif error is not None:
                self.late_errors += 1
        if first and error is not None:
            log.error("%s error: %s", error.thread, error.message)
            if self._on_first_error is not None:
                self._on_first_error(error, reason)
        elif error is not None:
            log.debug("%s: error after stop: %s", error.thread, error.message)
        self.stopped.set()
        return first

    def force(self) -> None:
        """Give up every graceful wait that is left (a second signal, the parent's FORCE)."""
        self.forced.set()

    def enter(self, state: State) -> None:
        """Move on to `state` (the engine's shutdown, step by step)."""
        with self._lock:
            self.state = state
        log.debug("run state: %s", state.value)

    def end_text(self) -> str:
        """The end reason as the summary writes it: "duration", "error", "signal SIGINT"."""
        with self._lock:
            if self.reason is None:
                return ""
            return " ".join(filter(None, (self.reason.value, self.detail)))
