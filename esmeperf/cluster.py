"""`--scheduler ADDRESS` / `--cluster local:N`: participant shards on Dask distributed.

One long-running task per Dask worker runs a shard (the same ShardRunner as `--processes`).
Cluster-wide primitives carry the protocol: three `distributed.Event`s for "stop", "close" and
"force", and one `distributed.Queue` for the shards' deltas, errors and final reports. The
organizers, the live progress and the result files stay in this client.

Clocks: per-second counts are keyed by each host's Unix second, so hosts are assumed to be
NTP-synchronised. The skew of every worker against this client is measured at the start
(a round trip of `time.time`) and written to the summary with its uncertainty.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .preflight import unreachable
from .shard import Command, ReportSink, ShardMessage, ShardReport, ShardRunner, ShardSpec
from .workers import FirstError, Workers

log = logging.getLogger("esmeperf")

INSTALL_HINT = "pip install 'esmeperf[distributed]'"
# A shard stops by itself when the client's heartbeat (a counter in a distributed.Variable,
# bumped every second) stood still this long: a killed client must not leave load running.
LEASE_TIMEOUT = 15.0
PROBE_TIMEOUT = 5.0  # seconds for the TCP connect that checks the scheduler's address
CONNECT_TIMEOUT = 30.0  # seconds Dask may take to connect to a scheduler that listens


def require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"--scheduler and --cluster need Dask distributed: {INSTALL_HINT}"
                          ) from None
    return distributed


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
        self._local = None
        try:
            if local_workers is not None:
                self._local = distributed.LocalCluster(
                    n_workers=local_workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
                self.client = distributed.Client(self._local, timeout=30)
            else:
                _probe(scheduler or "")
                log.info("connecting to the Dask scheduler %s (waiting up to %g s)", scheduler,
                         CONNECT_TIMEOUT)
                self.client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        self.workers = sorted(self.client.scheduler_info()["workers"])
        if not self.workers:
            self.close()
            raise ConfigError("the Dask cluster has no workers")
        self.skew = self._measure_skew()

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
            client.close()
        if self._local is not None:
            self._local.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def launcher(self, specs: Sequence[ShardSpec], workers: Workers) -> DaskShards:
        return DaskShards(self, specs, workers)


def _run_shard(spec: ShardSpec, name: str) -> dict[str, Any]:
    """The Dask task: run one shard on this worker until the client says CLOSE."""
    import distributed

    queue = distributed.Queue(f"{name}-reports")
    # FORCE first: when both are set, skipping the waits wins.
    events = [(distributed.Event(f"{name}-{c.value}"), c)
              for c in (Command.FORCE, Command.CLOSE, Command.STOP)]
    put_lock = threading.Lock()

    def send(message: ShardMessage) -> None:
        with put_lock:
            queue.put(message)

    runner = ShardRunner(spec, send)
    lease = distributed.Variable(f"{name}-lease")

    def commands_set(seen: set[Command]) -> list[Command]:
        try:
            return [command for event, command in events
                    if command not in seen and event.is_set()]
        except Exception:  # noqa: BLE001 - the scheduler is unreachable: the lease decides
            return []

    def heartbeat() -> Any:
        try:
            return lease.get(timeout=5)
        except Exception:  # noqa: BLE001 - the scheduler is gone: nobody will say stop
            return None

    def watch() -> None:
        seen: set[Command] = set()
        beat, beat_seen = None, time.monotonic()
        while Command.CLOSE not in seen and Command.FORCE not in seen:
            for command in commands_set(seen):
                seen.add(command)
                runner.command(command)  # a failure here is a bug: let it reach the log
            value = heartbeat()
            if value != beat and value is not None:
                beat, beat_seen = value, time.monotonic()
            elif time.monotonic() - beat_seen > LEASE_TIMEOUT:
                log.error("shard %d: no word from the client for %g s; stopping",
                          spec.index, LEASE_TIMEOUT)
                runner.command(Command.FORCE)
                return
            if not seen:
                events[2][0].wait(0.5)  # block on STOP between checks
            else:
                time.sleep(0.2)  # stopping: poll for CLOSE/FORCE a few times a second

    threading.Thread(target=watch, name=f"shard-{spec.index}-watch", daemon=True).start()
    return runner.run().as_dict(spec.index)


class DaskShards:
    """The client's handle on the shard tasks (a ShardGroup)."""

    def __init__(self, cluster: DaskCluster, specs: Sequence[ShardSpec],
                 workers: Workers) -> None:
        distributed = require_distributed()
        self.name = f"esmeperf-{uuid.uuid4().hex[:12]}"
        client = cluster.client
        self._skew = cluster.skew
        self._events = {c: distributed.Event(f"{self.name}-{c.value}", client=client)
                        for c in Command}
        self._closing = threading.Event()  # set once the client waits for the end
        self._queue = distributed.Queue(f"{self.name}-reports", client=client)
        self._lease = distributed.Variable(f"{self.name}-lease", client=client)
        self._lease.set(0)
        self.sink = ReportSink(workers, len(specs))
        # One shard per worker, pinned, so no shard waits behind another long-running one.
        self._futures = [client.submit(_run_shard, spec, self.name, pure=False,
                                       workers=[address], key=f"{self.name}-shard-{spec.index}")
                         for spec, address in zip(specs, cluster.workers, strict=False)]
        self._addresses = dict(zip(range(len(specs)), cluster.workers, strict=False))
        self._listener = threading.Thread(target=self._listen, name="dask-listener",
                                          daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        # get(batch=True) returns at once with what is queued: a get with a timeout would make
        # the scheduler log a TimeoutError traceback each time the queue is found empty.
        idle = threading.Event()
        beats, next_beat = 0, 0.0
        while self.sink.finished() < len(self._futures):
            try:
                if time.monotonic() >= next_beat:
                    beats, next_beat = beats + 1, time.monotonic() + 1.0
                    self._lease.set(beats)
                messages = self._queue.get(batch=True)
            except Exception as exc:  # noqa: BLE001 - the link broke: a run error unless ending
                if self._closing.is_set():
                    return
                self.sink.workers.record_error("dask-listener", exc)
                return
            for message in messages:
                self.sink.accept(message, where=f"@{self._addresses.get(message.index, '?')}")
            if not messages:
                self._check_failed()
                idle.wait(0.1)

    def _check_failed(self) -> None:
        """A shard task that died (raised, or its worker was lost) is an error of the run."""
        for index, future in enumerate(self._futures):
            if future.status not in ("error", "lost", "cancelled"):
                continue
            host = self._addresses.get(index)
            if not self.sink.finish(index, ShardReport([], 0, 0, str(host), 0.0).as_dict(index)):
                continue  # it had reported before it ended
            exc = future.exception() if future.status == "error" else None
            self.sink.workers.record(FirstError(
                thread=f"shard-{index}@{host}",
                type=type(exc).__name__ if exc else "ShardLost",
                message=f"shard task {future.status}: {exc}",
                traceback="".join(traceback.format_exception(exc)) if exc else ""))

    def send(self, command: Command) -> None:
        self._events[command].set()

    def wait(self, timeout: float) -> None:
        import distributed

        try:
            distributed.wait(self._futures, timeout=timeout, return_when="ALL_COMPLETED")
        except (TimeoutError, distributed.TimeoutError):
            log.warning("shard tasks still running after %g s; cancelling them", timeout)
            for future in self._futures:
                future.cancel()
        self._closing.set()  # from here on the client closes: a broken link is expected
        self._listener.join(timeout)

    def reports(self) -> list[dict[str, Any]]:
        out = []
        for report in self.sink.reports():
            address = self._addresses.get(report["shard"], "")
            out.append({**report, "worker": address, **self._skew.get(address, {})})
        return out
