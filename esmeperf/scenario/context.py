"""What every worker thread shares: settings, target, the stop Event, metrics, open sockets."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..config import Settings, Target
from ..measure.names import Count
from ..measure.stall import StallWatch
from ..measure.stats import Metrics
from ..transport.connection import Closed, Connection
from ..transport.rest import RestClient
from .surge import SurgeStats, window_of

log = logging.getLogger("esmeperf")


class ConnectionRegistry:
    """The open WebSockets, so the main thread can close them all at shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Connection] = set()
        self._sealed = False

    def add(self, conn: Connection) -> bool:
        """Register an open connection; False (and the connection aborted) once sealed."""
        with self._lock:
            if not self._sealed:
                self._open.add(conn)
                return True
        conn.abort()
        return False

    def seal(self) -> list[Connection]:
        """Take no more connections (shutdown's last pass); return those still open."""
        with self._lock:
            self._sealed = True
            return list(self._open)

    def discard(self, conn: Connection) -> None:
        with self._lock:
            self._open.discard(conn)

    def snapshot(self) -> list[Connection]:
        with self._lock:
            return list(self._open)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


class StartThread(Protocol):
    """Workers.start_thread: start a named worker thread."""

    def __call__(self, name: str, body: Callable[[], None]) -> None: ...


@dataclass
class Context:
    """The run as a worker sees it."""

    target: Target
    settings: Settings
    start_thread: StartThread
    stamp: int  # Unix second the participants started: part of every participant email
    email_tag: str = ""  # run id and shard in distributed runs, so emails never collide
    stop: threading.Event = field(default_factory=threading.Event)
    metrics: Metrics = field(default_factory=Metrics)
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)
    rest: RestClient = field(init=False)  # the participants' shared keep-alive pool
    stalls: StallWatch = field(default_factory=StallWatch)  # workers with requests in flight

    def __post_init__(self) -> None:
        self.rest = RestClient(self.settings.http_timeout, shared=True)
        window = window_of(self.settings)
        if window is not None:
            self.metrics.extras["surge"] = SurgeStats(window)

    @property
    def surge(self) -> SurgeStats | None:
        """The per-cohort figures of a run with a surge window (surge.py), else None."""
        return self.metrics.extras.get("surge")

    def hold(self, conn: Connection, body: Callable[[Connection], None]) -> None:
        """Run `body(conn)` on an open connection: registered for shutdown, counted, aborted
        after.

        A Closed raised because shutdown closed the connection ends `body` quietly; one the
        server caused is the worker's error. A connection opened after shutdown's last pass
        is aborted at once and `body` does not run.
        """
        if not self.connections.add(conn):
            return
        self.metrics.count(Count.CONNECTIONS_OPEN)
        try:
            body(conn)
        except Closed:
            if not conn.closing:
                raise
        finally:
            self.metrics.count(Count.CONNECTIONS_OPEN, -1)
            self.connections.discard(conn)
            conn.abort()

    def log_ws(self, text: str) -> None:
        """Log a WebSocket message when -logWs is on, as the Go test does."""
        if self.settings.log_ws:
            log.info("%s", text)
