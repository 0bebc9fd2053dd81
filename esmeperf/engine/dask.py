"""`--scheduler ADDRESS` / `--cluster local:N`: participant shards on Dask distributed.

One long-running task per Dask worker runs a shard (the same ShardRunner as `--processes`).
Cluster-wide primitives carry the protocol: three `distributed.Event`s for "stop", "close" and
"force", and one `distributed.Queue` for the shards' deltas, errors and final reports. The
organizers, the live progress and the result files stay in this client.

Losses end the run as a first error does (exit 1, the files written with what was merged):
a worker that leaves the cluster or a shard silent for the lease is the error of its shard,
named with the worker's address; a lost scheduler is the error of the link. Nothing is left
sending: the survivors are told to stop, and every shard stops by itself when the client's
heartbeat stands still for the lease (the client, or its scheduler, is gone).

Clocks: per-second counts are keyed by each host's Unix second, so hosts are assumed to be
NTP-synchronised. The skew of every worker against this client is measured at the start
(a round trip of `time.time`) and written to the summary with its uncertainty; more than
health.CLOCK_SKEW_WARN_S is a warning, on stderr at once and in the summary's `warnings`.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..measure import health
from .directlink import ClientEnd, ShardEnd, client_address, use_direct
from .life import FirstError
from .preflight import unreachable
from .shards import (
    Alive,
    Command,
    ReportSink,
    ShardMessage,
    ShardReport,
    ShardRunner,
    ShardSpec,
)

log = logging.getLogger("esmeperf")

INSTALL_HINT = "pip install 'esmeperf[distributed]'"
# A shard stops by itself when the client's heartbeat (a counter in a distributed.Variable,
# bumped every second) stood still this long: a killed client must not leave load running.
# The client, likewise, takes a shard that sent nothing this long for lost. The environment
# variable shortens it for tests (or lengthens it for a congested network).
LEASE_TIMEOUT = 15.0
LEASE_ENV = "ESMEPERF_DASK_LEASE"
PROBE_TIMEOUT = 5.0  # seconds for the TCP connect that checks the scheduler's address
CONNECT_TIMEOUT = 30.0  # seconds Dask may take to connect to a scheduler that listens
# Seconds one call to the scheduler may take once the run is on: Dask retries a connection to
# a scheduler that died for its whole connect timeout (30 s), which would hold up the stop.
LINK_TIMEOUT = 5.0
CHECK_INTERVAL = 1.0  # seconds between the client's looks at the shards' workers
CLOSE_TIMEOUT = 5.0  # seconds the Dask client may take to close
SLOW_PUT_S = 1.0  # a shard's message this slow to reach the scheduler's queue is logged


def require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"--scheduler and --cluster need Dask distributed: {INSTALL_HINT}"
                          ) from None
    return distributed


def lease_timeout() -> float:
    """The lease in seconds: $ESMEPERF_DASK_LEASE, else LEASE_TIMEOUT."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return LEASE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 3600.0:  # under a second, two missed heartbeats end a healthy run
        raise ConfigError(f"{LEASE_ENV}={text!r}: expected seconds from 1 to 3600")
    return value


def _probe(address: str) -> None:
    """Fail at once, in one line, where nothing listens (Dask itself waits out its timeout)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise ConfigError(f"--scheduler {address}: expected tcp://HOST:PORT")
    reason = unreachable(parts.hostname, port, PROBE_TIMEOUT)
    if reason:
        raise ConfigError(f"cannot reach the Dask scheduler {address}: {reason}")


def parse_cluster(text: str) -> int:
    """`local:N` -> N (a LocalCluster of N worker processes)."""
    kind, _, count = text.partition(":")
    if kind != "local" or not count.isdigit() or int(count) < 1:
        raise ValueError(f"expected local:N with N >= 1, got {text!r}")
    return int(count)


class DaskCluster(AbstractContextManager["DaskCluster"]):
    """A client on an existing scheduler, or on a LocalCluster made (and closed) here."""

    def __init__(self, scheduler: str | None = None, local_workers: int | None = None) -> None:
        distributed = require_distributed()
        self.lease = lease_timeout()
        self._local = None
        try:
            if local_workers is not None:
                self._local = distributed.LocalCluster(
                    n_workers=local_workers, threads_per_worker=1, processes=True,
                    # The scheduler serves HTTP whatever the dashboard says; on an ephemeral
                    # loopback port it never collides with another cluster (Dask's default 8787).
                    host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
                self.client = distributed.Client(self._local, timeout=30)
            else:
                _probe(scheduler or "")
                log.info("connecting to the Dask scheduler %s (waiting up to %g s)", scheduler,
                         CONNECT_TIMEOUT)
                self.client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        self.address = str(self.client.scheduler.address)
        self.workers = sorted(self.client.scheduler_info()["workers"])
        if not self.workers:
            self.close()
            raise ConfigError("the Dask cluster has no workers")
        self.skew = self._measure_skew()
        for text in health.clock_warnings({"worker": w, **s} for w, s in self.skew.items()):
            log.warning("warning: %s", text)

    def _measure_skew(self) -> dict[str, dict[str, float]]:
        before = time.time()
        clocks = self.client.run(time.time)
        after = time.time()
        middle, uncertainty = (before + after) / 2, (after - before) / 2
        return {w: {"clock_skew_s": round(t - middle, 6), "uncertainty_s": round(uncertainty, 6)}
                for w, t in clocks.items()}

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            # Closing cancels Dask's reconnection to a lost scheduler, which it logs with a
            # traceback: the run's first error has already said it in one line. Dask gives
            # its loggers levels of their own, so each is quietened, not just the parent.
            loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
                       if name == "distributed" or name.startswith("distributed.")]
            levels = [(logger, logger.level) for logger in loggers]
            for logger in loggers:
                logger.setLevel(logging.CRITICAL)
            try:
                client.close(timeout=CLOSE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a scheduler gone: nothing left to close
                log.debug("closing the Dask client: %s", exc)
            finally:
                for logger, level in levels:
                    logger.setLevel(level)
        if self._local is not None:
            self._local.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def launcher(self) -> DaskLauncher:
        """What the engine starts its shards with: one per worker of this cluster."""
        return DaskLauncher(self)


class DaskLauncher:
    """Shards as long-running tasks on a Dask cluster, one per worker (a ShardLauncher)."""

    distributed = True

    def __init__(self, cluster: DaskCluster) -> None:
        self.cluster = cluster

    def __call__(self, specs: Sequence[ShardSpec], sink: ReportSink) -> DaskShards:
        return DaskShards(self.cluster, specs, sink)


def _log_to_worker(spec: ShardSpec) -> None:
    """The shard's log lines in the Dask worker's log (its stderr), each naming the shard."""
    if any(getattr(h, "esmeperf_shard", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.esmeperf_shard = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(f"%(asctime)s shard-{spec.index}: %(message)s"))
    log.addHandler(handler)
    log.setLevel(spec.log_level)
    log.propagate = False


def _pause_worker_profiler() -> Callable[[], None]:
    """Stop this Dask worker's statistical profiler while a shard runs on it; return what
    starts it again.

    Every 10 ms the profiler calls sys._current_frames() on the worker's event loop. Before
    CPython 3.12 that call allocates while it holds the interpreter's lock on the list of
    threads, so a garbage collection can run inside it, and Dask's own GC diagnosis (a gc
    callback reading /proc with the GIL let go) lets another thread take the GIL there; a
    thread that starts or ends then waits for the list's lock with the GIL held, and the
    profiler waits for the GIL: a deadlock (CPython gh-106883). A shard starts and ends
    threads all the time (each arrival is one), and the worker process froze whole, its shard
    never heard of again (issue 28: 1 run in 12 of the multi-machine recipe). Without the
    profiler nothing in the worker calls sys._current_frames().
    """
    import distributed

    try:
        worker = distributed.get_worker()
    except ValueError:  # not on a worker (a test calling the task directly)
        return lambda: None
    profilers = [callback for name, callback in worker.periodic_callbacks.items()
                 if name in ("profile", "profile-cycle")]
    if not profilers:
        return lambda: None
    stopped = threading.Event()

    def stop() -> None:  # on the worker's event loop: tornado's callbacks are not thread-safe
        for callback in profilers:
            callback.stop()
        stopped.set()

    worker.loop.add_callback(stop)
    if not stopped.wait(LINK_TIMEOUT):
        log.warning("shard: could not stop the Dask worker's profiler within %g s",
                    LINK_TIMEOUT)

    def start() -> None:
        for callback in profilers:
            callback.start()

    return lambda: worker.loop.add_callback(start)


def _run_shard(spec: ShardSpec, name: str, lease_s: float = LEASE_TIMEOUT,
               direct: tuple[tuple[str, int], bytes] | None = None) -> ShardReport:
    """The Dask task: run one shard on this worker until the client says CLOSE. Its messages
    go by its direct link to the client (`direct`: the client's address and the run's key;
    directlink.py), or by the scheduler's queue where that link is down."""
    import distributed

    queue = distributed.Queue(f"{name}-reports")
    # FORCE first: when both are set, skipping the waits wins.
    events = [(distributed.Event(f"{name}-{c.value}"), c)
              for c in (Command.FORCE, Command.CLOSE, Command.STOP)]
    put_lock = threading.Lock()

    _log_to_worker(spec)

    link: ShardEnd | None = None  # the direct link (sending once it is up)

    def send(message: ShardMessage) -> None:
        if link is not None and link.send(message):
            return
        # Pickled here: the scheduler stores bytes as they are, where a dataclass would make it
        # log "falling back to pickle" twice a second per shard.
        started = time.monotonic()
        with put_lock:
            queue.put(pickle.dumps(message))
        took = time.monotonic() - started
        if took > SLOW_PUT_S:
            log.warning("shard %d: a %s took %.1f s to reach the scheduler's queue", spec.index,
                        type(message).__name__, took)

    runner = ShardRunner(spec, send)
    lease = distributed.Variable(f"{name}-lease")

    beat_seen = [time.monotonic()]  # when the client's heartbeat last moved

    def guard() -> None:
        # Apart from the watch, and never calling Dask: a call to a scheduler that died can
        # hang for Dask's connect timeout, and the lease must not wait for it.
        while not runner.closing.wait(0.5):
            if time.monotonic() - beat_seen[0] > lease_s:
                log.error("shard %d: no word from the client for %g s; stopping",
                          spec.index, lease_s)
                runner.command(Command.FORCE)
                return

    def watch() -> None:
        """Obey the client's commands and follow its heartbeat, until CLOSE or FORCE."""
        seen: set[Command] = set()
        beat = None
        while not runner.closing.is_set():
            if lease.client.status != "running":  # no scheduler: the lease decides
                runner.closing.wait(0.5)
                continue
            try:
                commands = [c for event, c in events if c not in seen and event.is_set()]
                value = lease.get(timeout=LINK_TIMEOUT, callback_timeout=LINK_TIMEOUT)
            except Exception:  # noqa: BLE001 - the scheduler is unreachable: the lease decides
                runner.closing.wait(0.5)
                continue
            if value != beat:
                beat, beat_seen[0] = value, time.monotonic()
            for command in commands:
                seen.add(command)
                runner.command(command)  # a failure here is a bug: let it reach the log
            try:
                if not seen:
                    events[2][0].wait(0.5)  # block on STOP between checks
                else:
                    runner.closing.wait(0.2)  # stopping: poll for CLOSE/FORCE
            except Exception:  # noqa: BLE001 - as above
                runner.closing.wait(0.5)

    def beat() -> None:
        beat_seen[0] = time.monotonic()

    def alive(end: ShardEnd) -> None:
        # A beat a second apart from the deltas, on the direct link only (through the
        # scheduler it would load what is slow already): a shard whose deltas lag is slow,
        # not lost.
        while not runner.closing.wait(1.0):
            end.send(Alive(spec.index))

    if direct is not None:
        link = ShardEnd(direct[0], direct[1], spec.index, on_beat=beat,
                        on_command=runner.command)
        threading.Thread(target=alive, args=(link,), name=f"shard-{spec.index}-alive",
                         daemon=True).start()
    threading.Thread(target=watch, name=f"shard-{spec.index}-watch", daemon=True).start()
    threading.Thread(target=guard, name=f"shard-{spec.index}-lease", daemon=True).start()
    restart_profiler = _pause_worker_profiler()
    try:
        return runner.run()
    finally:
        restart_profiler()
        if link is not None:
            link.close()


class DaskShards:
    """The client's handle on the shard tasks (a ShardGroup)."""

    def __init__(self, cluster: DaskCluster, specs: Sequence[ShardSpec],
                 sink: ReportSink) -> None:
        distributed = require_distributed()
        self.name = f"esmeperf-{uuid.uuid4().hex[:12]}"
        self._client = client = cluster.client
        self._scheduler = cluster.address
        self._lease_s = cluster.lease
        self._skew = cluster.skew
        self._events = {c: distributed.Event(f"{self.name}-{c.value}", client=client)
                        for c in Command}
        self._closing = threading.Event()  # set once the client waits for the end
        self._unlinked = threading.Event()  # set once the scheduler is found gone
        self._sealed = threading.Event()  # set once the results are being written
        self._queue = distributed.Queue(f"{self.name}-reports", client=client)
        self._lease = distributed.Variable(f"{self.name}-lease", client=client)
        self._lease.set(0)
        self.sink = sink
        self._addresses = dict(zip(range(len(specs)), cluster.workers, strict=False))
        # Each shard's own link to this client, apart from the scheduler (directlink.py).
        self._direct = ClientEnd(client_address(self._scheduler), sink,
                                 lambda index: f"@{self._host(index)}", silent_s=self._lease_s
                                 ) if use_direct(self._scheduler) else None
        direct = None if self._direct is None else (self._direct.address, self._direct.key)
        # One shard per worker, pinned, so no shard waits behind another long-running one. Each
        # gets the grid's origin on its own clock: a worker whose clock is ahead would otherwise
        # start every arrival late by its skew (its counts stay keyed by its own clock).
        self._futures = [
            client.submit(_run_shard, replace(spec, start_wall=spec.start_wall + self._skew.get(
                address, {}).get("clock_skew_s", 0.0)), self.name, self._lease_s, direct,
                pure=False, workers=[address], key=f"{self.name}-shard-{spec.index}")
            for spec, address in zip(specs, cluster.workers, strict=False)]
        self._listener = threading.Thread(target=self._listen, name="dask-listener",
                                          daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        # get(batch=True) returns at once with what is queued: a get with a timeout would make
        # the scheduler log a TimeoutError traceback each time the queue is found empty. The
        # listening goes on past a shard given up for lost, until every shard's own report is
        # in or the results are sealed: a late final report is still merged.
        idle = threading.Event()
        beats, next_beat, next_check = 0, 0.0, time.monotonic() + CHECK_INTERVAL
        while not self.sink.reported_all(lost_too=False) and not self._sealed.is_set():
            try:
                if self._client.status != "running":
                    raise ConnectionError(f"the Dask client is {self._client.status}")
                if time.monotonic() >= next_beat:
                    beats, next_beat = beats + 1, time.monotonic() + 1.0
                    self._lease.set(beats, callback_timeout=LINK_TIMEOUT)
                messages = self._queue.get(batch=True, callback_timeout=LINK_TIMEOUT)
                if time.monotonic() >= next_check and not self._closing.is_set():
                    next_check = time.monotonic() + CHECK_INTERVAL
                    self._check_failed()
            except Exception as exc:  # noqa: BLE001 - the link broke: a run error unless ending
                self._unlinked.set()
                if not self._closing.is_set() and not self._sealed.is_set():
                    self._lost_scheduler(exc)
                for index in range(len(self._futures)):
                    if not self._linked(index):  # nothing more can come from it
                        self.sink.give_up(index, self._host(index))
                return
            for data in messages:
                message = pickle.loads(data)
                self.sink.accept(message, where=f"@{self._host(message.index)}")
            if not messages:
                idle.wait(0.1)

    def _host(self, index: int) -> str:
        return str(self._addresses.get(index, "?"))

    def _linked(self, index: int | None = None) -> bool:
        """Whether shard `index` (None: any shard) has its direct link up."""
        direct = self._direct
        if direct is None:
            return False
        return direct.any_linked() if index is None else direct.linked(index)

    def _lost_scheduler(self, exc: BaseException) -> None:
        self.sink.fail(FirstError(
            thread="dask-listener", type="SchedulerLost",
            message=f"lost the Dask scheduler {self._scheduler} ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); the shards stop within their {self._lease_s:g} s lease",
            traceback="".join(traceback.format_exception(exc))))

    def _check_failed(self) -> None:
        """A shard whose task died, whose worker left, or that fell silent: the run's error."""
        present = self._client.sync(self._client.scheduler.identity, n_workers=-1,
                                    callback_timeout=LINK_TIMEOUT)["workers"]
        now = time.monotonic()
        for index, future in enumerate(self._futures):
            if self.sink.reported(index):
                continue
            host = self._addresses.get(index)
            silent = self.sink.silent_for(index, now)
            if future.status in ("error", "lost", "cancelled"):
                exc = future.exception() if future.status == "error" else None
                kind = type(exc).__name__ if exc else "ShardLost"
                text = f"shard task {future.status}: {exc}"
                trace = "".join(traceback.format_exception(exc)) if exc else ""
            elif host not in present:
                kind, trace = "WorkerLost", ""
                text = f"the Dask worker {host} running shard {index} left the cluster"
            elif silent > self._lease_s:
                kind, trace = "ShardSilent", ""
                text = f"no word from shard {index} on the Dask worker {host} for {silent:.0f} s"
            else:
                continue
            if future.status == "pending":
                future.cancel()  # nothing may start it again: its participants are gone
            self.sink.lost(index, self._host(index), FirstError(
                thread=f"shard-{index}@{host}", type=kind, message=text, traceback=trace))

    def drained(self) -> bool:
        return self.sink.drained()

    def send(self, command: Command) -> None:
        if self._direct is not None:  # the shards with a direct link hear it at once
            self._direct.command(command)
        if self._unlinked.is_set():
            return  # no scheduler to carry it: the others stop on their lease
        self._events[command].set()

    def wait(self, timeout: float) -> None:
        """Wait for every shard's final report; a shard without one by then counts as lost
        (its report still merged if it comes before the results are sealed)."""
        deadline = time.monotonic() + timeout
        self._closing.set()  # from here on the client closes: a broken link is expected
        while not self.sink.reported_all() and time.monotonic() < deadline \
                and (self._listener.is_alive() or self._linked()):
            if self._listener.is_alive():  # the futures' states come from the scheduler
                self._check_lost()
            self._sealed.wait(0.1)
        for index in range(len(self._futures)):
            if self.sink.give_up(index, self._host(index)):
                log.warning("shard %d on %s: no final report within %g s of the close", index,
                            self._host(index), timeout)

    def _check_lost(self) -> None:
        """While waiting for the final reports: a task that ended without its report (its
        worker died, its report lost) is given up on at once, not at the deadline."""
        for index, future in enumerate(self._futures):
            if future.status in ("error", "lost", "cancelled") and not self.sink.reported(index):
                self.sink.give_up(index, self._host(index))

    def seal(self) -> list[ShardReport]:
        """The final reports, with each worker's address, clock skew and link; no more
        merging."""
        self._sealed.set()
        if self._direct is not None:  # before the seal: nothing merged while files are written
            self._direct.close()
        out = []
        for report in self.sink.seal():
            address = self._addresses.get(report.shard, "")
            skew = self._skew.get(address, {})
            out.append(replace(report, worker=address, clock_skew_s=skew.get("clock_skew_s"),
                               uncertainty_s=skew.get("uncertainty_s"),
                               link="direct" if self._direct is not None
                               and self._direct.greeted(report.shard) else "scheduler"))
        return out
