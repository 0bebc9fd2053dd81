"""Stall detection: the oldest request the target has not answered, across every worker.

A target that stops answering (a GC pause, a deadlock, a full disk) still lets the generator
write into the kernel's socket buffers for a while, so nothing fails and the few messages
answered before the freeze give a healthy latency. Every worker therefore keeps the send time
of its oldest unanswered request (a participant's message, an organizer's start_chat); the
run's loop (and each shard's) looks at the oldest of them once a tick, and past
--stall-timeout the run stops as at a first error (Workers.check_stalls).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..transport.connection import Connection


class Waiting(Protocol):
    """A worker with requests in flight."""

    name: str

    def oldest_unanswered(self) -> tuple[int, str] | None:
        """(send time in Unix ns, what it was) of the oldest unanswered request, if any."""

    def connection(self) -> Connection | None:
        """The WebSocket its answers come on (a stall looks at what waits unread in it)."""


@dataclass(frozen=True)
class Oldest:
    """The longest-waiting request of the run at one look."""

    age_s: float
    worker: str
    what: str
    # Bytes of the target's answers waiting unhandled on its connection (None: unknown).
    unread: int | None = field(default=None, compare=False)


class StallWatch:
    """The workers with requests in flight (added when they start sending, removed at end)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: set[Waiting] = set()

    def add(self, worker: Waiting) -> None:
        with self._lock:
            self._workers.add(worker)

    def discard(self, worker: Waiting) -> None:
        with self._lock:
            self._workers.discard(worker)

    def oldest(self, now_ns: int | None = None) -> Oldest | None:
        """The oldest unanswered request now (a read of each worker's own two fields)."""
        now_ns = now_ns or time.time_ns()
        with self._lock:
            workers = list(self._workers)
        worst: tuple[int, str, Waiting] | None = None
        for worker in workers:
            pending = worker.oldest_unanswered()
            if pending is not None and (worst is None or pending[0] < worst[0]):
                worst = (pending[0], pending[1], worker)
        if worst is None:
            return None
        conn = worst[2].connection()
        return Oldest((now_ns - worst[0]) / 1e9, worst[2].name, worst[1],
                      conn.unread_bytes() if conn is not None else None)

