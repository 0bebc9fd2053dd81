"""`--processes N`: participant workers in N child processes, each with its own GIL.

The parent keeps the organizers, the stop Event, the signals and the results. A shard runs the
participants numbered k with k mod N == its index, on the parent's arrival grid, and ships its
measurements as deltas (Metrics.drain) twice a second, so the parent's totals, per-second counts
and HDR histograms are exactly the sums of the shards'. Messages on the pipe:

    parent -> shard: "stop" (stop sending, keep reading echoes), "close" (close sockets, join,
                     report, exit), "force" (skip the graceful waits)
    shard -> parent: ("delta", metrics delta), ("error", FirstError fields),
                     ("done", threads still alive, errors after the stop)
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .config import Settings, Target
from .participant import Spawner
from .workers import WORKER_STACK_SIZE, FirstError, Workers

log = logging.getLogger("esmeperf")

REPORT_INTERVAL = 0.5  # seconds between deltas: the parent's live view lags at most this


@dataclass(frozen=True)
class ShardSpec:
    """What one shard process needs to run its share of the participants."""

    index: int
    count: int
    target: Target
    settings: Settings
    stamp: int  # the run's Unix second: part of every participant email
    start_wall: float  # Unix time of the arrival grid's origin


def shard_main(conn: Connection, spec: ShardSpec) -> None:
    """Entry point of a shard process."""
    # Ctrl-C reaches the whole process group: the parent decides and relays the stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _setup_logging(spec)
    threading.stack_size(WORKER_STACK_SIZE)
    workers = Workers(spec.target, spec.settings, spec.stamp)
    send_lock = threading.Lock()
    close = threading.Event()

    def send(message: Any) -> None:
        with send_lock:
            try:
                conn.send(message)
            except OSError:
                close.set()  # the parent is gone: wind down
                workers.stop("parent gone")

    def on_error(error: FirstError) -> None:
        send(("error", error.as_dict()))

    def listen() -> None:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                command = "force"  # the parent died: stop at once
            if command in ("stop", "close", "force"):
                workers.stop("parent")
            if command in ("close", "force"):
                close.set()
            if command == "force":
                workers.force.set()
                return
            if command == "close":
                return

    workers.on_first_error = on_error
    threading.Thread(target=listen, name=f"shard-{spec.index}-link", daemon=True).start()
    spawner = Spawner(workers.ctx, offset=spec.index, stride=spec.count,
                      start_wall=spec.start_wall)
    workers.start_thread(f"spawner-{spec.index}", spawner.run)
    metrics = workers.ctx.metrics
    while not close.wait(REPORT_INTERVAL):
        send(("delta", metrics.drain()))
    workers.shutdown(drained=lambda: True)  # the parent already waited for the echoes
    send(("delta", metrics.drain()))
    send(("done", workers.alive(), workers.late_errors))
    conn.close()


def _setup_logging(spec: ShardSpec) -> None:
    log.setLevel(logging.DEBUG if spec.settings.debug else logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s shard-{spec.index}: %(message)s",
                                           "%Y/%m/%d %H:%M:%S"))
    log.addHandler(handler)


class ShardHandle:
    """The parent's end of one shard: starts it and merges what it reports."""

    def __init__(self, spec: ShardSpec, workers: Workers) -> None:
        self.spec = spec
        self.workers = workers
        self.alive: list[str] = []
        self.late_errors = 0
        self._done = False
        self._send_lock = threading.Lock()
        context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=shard_main, args=(child_conn, spec),
                                       name=f"esmeperf-shard-{spec.index}", daemon=True)
        self.process.start()
        child_conn.close()
        self._listener = threading.Thread(target=self._listen, daemon=True,
                                          name=f"shard-{spec.index}-listener")
        self._listener.start()

    def _listen(self) -> None:
        name = f"shard-{self.spec.index}"
        while True:
            try:
                kind, *body = self._conn.recv()
            except (EOFError, OSError):
                break
            if kind == "delta":
                self.workers.ctx.metrics.merge(body[0])
            elif kind == "error":
                error = FirstError(**body[0])
                error.thread = f"{name}/{error.thread}"
                self.workers.record(error)
            elif kind == "done":
                self.alive = [f"{name}/{thread}" for thread in body[0]]
                self.late_errors = body[1]
                self._done = True
        if not self._done:
            self.process.join(5)
            self.workers.record(FirstError(
                thread=name, type="ShardDied", traceback="",
                message=f"shard process {self.spec.index} ended without reporting "
                        f"(exit status {self.process.exitcode})"))

    def send(self, command: str) -> None:
        with self._send_lock:
            try:
                self._conn.send(command)
            except OSError:
                pass  # the shard is gone; its listener reports that

    def wait(self, timeout: float) -> None:
        """Wait for the shard's final report and exit; kill it past `timeout`."""
        deadline = time.monotonic() + timeout
        self._listener.join(timeout)
        self.process.join(max(0.1, deadline - time.monotonic()))
        if self.process.is_alive():
            log.warning("shard %d did not exit; killing it", self.spec.index)
            self.process.kill()
            self.process.join(5)
        self._conn.close()
