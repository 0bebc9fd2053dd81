"""One run: start the workers, wait for the end, stop and join everything, return the result."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings, Target
from ..measure import health
from ..measure.counts import Count
from ..measure.schedule import shortest_interval_ms
from ..measure.stall import Oldest
from ..measure.stats import settled_second
from ..scenario.context import Context
from ..scenario.organizer import Organizer
from ..scenario.participant import Spawner
from ..status import ExitStatus
from ..system import openfiles
from . import gatewatch
from .shards import Command, ProcessShards, ShardGroup, ShardSpec
from .signals import Lifecycle
from .workers import (
    CLOSE_GRACE,
    CpuMeter,
    EndReason,
    FirstError,
    Workers,
    cpu_seconds,
    worker_thread_settings,
)

log = logging.getLogger("esmeperf")



@dataclass
class Sample:
    """Gauges read by the main thread once a second."""

    participants: int
    chats: int
    connections: int
    threads: int = 0  # threads alive in this process


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
    # The embedded target's frame handling per Unix second (count, p50_us, p99_us, max_us).
    target_handling: dict[int, dict[str, int]] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    cpu_s: float = 0.0  # the generator's CPU: this process and its shards, not the target
    # Sends per second, taken once: the summary, the rates file and the series all use this
    # one copy, so they agree even if a straggler counts a send later (Go's bug 5.9.2).
    sent: dict[int, int] = field(default_factory=dict)


class Run:
    """Runs the ESME scenario once, in this process or with participants in shard processes."""

    def __init__(self, target: Target, settings: Settings,
                 target_alive: Callable[[], int | None] | None = None,
                 lifecycle: Lifecycle | None = None,
                 tokens: dict[str, str] | None = None,
                 target_pid: int | None = None) -> None:
        self.target = target
        self.settings = settings
        self.run_id = uuid.uuid4().hex[:12]
        # Reports the embedded target's exit code once it has died (None while it runs).
        self._target_exit = target_alive
        # The job's owner of signals; a Run made alone (a benchmark) gets one of its own.
        self.lifecycle = lifecycle or Lifecycle()
        self._tokens = tokens or {}  # organizers signed in by the pre-flight check
        self.workers = Workers(target, settings, stamp=int(time.time()))
        self.ctx = self.workers.ctx
        self._cpu = CpuMeter(self.ctx.metrics, target_pid, interval=1.0,
                             recent=self.workers.load)
        self._warned: set[str] = set()  # the falling-behind warnings already given
        self.gate_breaches: list[dict[str, Any]] = []  # --abort-on-fail's, for the summary
        self.shards: ShardGroup | None = None
        # Starts shards elsewhere (Dask); None: --processes N local processes.
        self.shard_launcher: Callable[[list[ShardSpec], Workers], ShardGroup] | None = None

    def _stop_for_signal(self, name: str) -> None:
        self.workers.stop(EndReason.SIGNAL, name)

    def _force_for_signal(self, name: str) -> None:
        self.workers.force.set()
        if self.shards is not None:
            self.shards.send(Command.FORCE)

    # -- the run --------------------------------------------------------------------------

    def execute(self) -> RunResult:
        """Run until the duration, the first error or a signal; always return a result."""
        settings, ctx, workers = self.settings, self.ctx, self.workers
        started_ns = time.time_ns()
        cpu_before = cpu_seconds()
        samples: dict[int, Sample] = {}
        organizers = [Organizer(ctx, i + 1, creds) for i, creds in
                      enumerate(self.target.organizers[: settings.organizers])]
        with self.lifecycle.running(self._stop_for_signal, self._force_for_signal), \
                worker_thread_settings():
            participants_started_ns = self._load(organizers, samples)
            stopped_ns = time.time_ns()
            log.info("starting graceful shutdown")
            self._shutdown()
        shard_reports = self.shards.reports() if self.shards is not None else []
        alive = workers.alive() + [f"shard-{r['shard']}/{name}" for r in shard_reports
                                   for name in r["alive"]]
        if alive:
            log.warning("threads still running after shutdown: %s", ", ".join(alive[:20]))
        return RunResult(
            run_id=self.run_id, target=self.target, settings=settings, started_ns=started_ns,
            stopped_ns=stopped_ns,
            organizer_started_ns=min((o.time_started_ns for o in organizers
                                      if o.time_started_ns), default=started_ns),
            participants_started_ns=participants_started_ns or started_ns,
            end_reason=workers.end_text(), status=self._status(), ctx=ctx, samples=samples,
            first_error=workers.first_error,
            late_errors=workers.late_errors + sum(r["late_errors"] for r in shard_reports),
            threads_alive=alive, shards=shard_reports, sent=ctx.metrics.sent.snapshot(),
            gates=self.gate_breaches,
            cpu_s=cpu_seconds() - cpu_before + sum(r.get("cpu_s", 0.0) for r in shard_reports),
        )

    def _load(self, organizers: list[Organizer], samples: dict[int, Sample]) -> int:
        """Sign in, start the organizers and participants, wait for the end; return the Unix
        ns at which participants started (0 if they never did). Always leaves the run stopped.
        """
        workers = self.workers
        participants_started_ns = 0
        try:
            self._log_settings()
            for organizer in organizers:
                organizer.token = self._tokens.get(organizer.creds.email, "")
                if not organizer.token:
                    organizer.sign_in()
            log.info("organizer initialized")
            workers.start_lag_probe()
            for organizer in organizers:
                workers.start_thread(organizer.name, organizer.run)
            participants_started_ns = time.time_ns()
            origin = time.monotonic()  # the arrival grid's origin: --duration counts from here
            self._start_participants(participants_started_ns)
            self._wait(samples, origin)
        except BaseException as exc:  # noqa: B036 - sign-in errors, bugs: the run's first error
            workers.record_error(threading.current_thread().name, exc)
        finally:
            workers.stop(EndReason.ERROR)  # no-op when a reason is set; else something broke
        return participants_started_ns

    def _start_participants(self, started_ns: int) -> None:
        """The spawner here, or one per shard (participant n goes to shard (n - 1) mod N)."""
        count = self.settings.processes
        if count == 1 and self.shard_launcher is None:
            self.workers.start_thread("spawner", Spawner(self.ctx).run)
            return
        specs = [ShardSpec(index=index, count=count, target=self.target,
                           settings=self.settings, stamp=self.ctx.stamp,
                           start_wall=started_ns / 1e9,
                           email_tag=f"{self.run_id}s{index}" if self.shard_launcher else "")
                 for index in range(count)]
        if self.shard_launcher is not None:
            self.shards = self.shard_launcher(specs, self.workers)
        else:
            self.shards = ProcessShards(specs, self.workers)
        log.info("participants spread over %d shards", count)

    def _log_settings(self) -> None:
        s = self.settings
        log.info("start chat interval: %g ms", s.sci)
        if s.stages:
            log.info("arrival stages: %s", ", ".join(f"{d:g}s:{r:g}/s" for d, r in s.stages))
        else:
            log.info("create participant interval: %g ms", s.cpi)
        log.info("send message interval: %g ms", s.smi)
        log.info("log websocket messages: %s", "true" if s.log_ws else "false")
        current = openfiles.limits()
        log.info("open files limit: %s", "none" if current is None else
                 f"{current[0]} (hard {current[1]})")
        log.info("run id: %s; target: %s", self.run_id, self.target.messenger_ws_url)
        log.info("-" * 80)

    def _wait(self, samples: dict[int, Sample], start: float) -> None:
        """The main thread's loop: a tick a second for gauges, progress and end conditions."""
        settings, ctx = self.settings, self.ctx
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
            self._cpu.tick()
            oldest = self.workers.check_stalls()
            self._warn_if_behind()
            if settings.abort_on_fail and self._gate_breached(time.monotonic() - start):
                return
            if not settings.quiet:
                print_progress(self, time.monotonic() - start, samples, oldest,
                               file=sys.stderr)
            if ctx.stop.is_set():
                return
            if self._target_exit is not None:
                code = self._target_exit()
                if code is not None:
                    self.workers.record_error("main", RuntimeError(
                        f"the embedded target exited with status {code}"))
                    return
            if deadline is not None and time.monotonic() >= deadline:
                self.workers.stop(EndReason.DURATION)
                return

    def _gate_breached(self, elapsed: float) -> bool:
        """--abort-on-fail: stop the run when a gate fails over the sliding window, once the
        load has filled it (the newest second is left out: shards' deltas may still come)."""
        if elapsed < gatewatch.WINDOW_S + GATE_LAG_S:
            return False
        failed = gatewatch.breach(self.ctx.metrics, self.settings,
                                  int(time.time()) - GATE_LAG_S)
        if failed is None:
            return False
        self.gate_breaches.append(failed)
        log.error("esmeperf: %s: stopping the run", gatewatch.describe(failed))
        self.workers.stop(EndReason.GATE)
        return True

    def _sample(self) -> Sample:
        m = self.ctx.metrics
        return Sample(m.get(Count.CREATED_PARTICIPANTS), m.get(Count.CHATS),
                      m.get(Count.CONNECTIONS_OPEN), threading.active_count())

    def _warn_if_behind(self) -> None:
        """Say once, as it happens, that arrivals or sends fell behind their schedule."""
        m, second = self.ctx.metrics, int(time.time()) - 1
        late = m.arrival_lateness.second_percentile_ms(second, 99)
        limit_ms = health.arrival_limit_ms(shortest_interval_ms(self.settings))
        if late is not None and late >= limit_ms and "arrivals" not in self._warned:
            self._warned.add("arrivals")
            log.warning("warning: arrivals are %.1f s behind the -cpi grid (p99 of the last "
                        "second): the generator may be limiting the run", late / 1000)
        missed, sent = m.missed.at(second), m.sent.at(second)
        # A send or two lost to a scheduling hiccup is noise; a share of them is a trend.
        if missed >= max(MISSED_WARN_MIN, MISSED_WARN_SHARE * (missed + sent)) \
                and "sends" not in self._warned:
            self._warned.add("sends")
            log.warning("warning: participants skipped %d of %d sends in the last second (late "
                        "by a whole -smi interval): the generator may be limiting the run",
                        missed, missed + sent)

    def _shutdown(self) -> None:
        """Drain, then close: shards close their own sockets; every wait is bounded."""
        m, shards = self.ctx.metrics, self.shards

        def to_shards(action: Callable[[ShardGroup], None]) -> None:
            # A shard transport failing now (a Dask scheduler gone) must not cost the results.
            if shards is None:
                return
            try:
                action(shards)
            except Exception as exc:  # noqa: BLE001 - logged and counted, never raised
                log.error("shards: %s", exc)
                self.workers.record_error("shards", exc)  # after the stop: counted as late

        def drained() -> bool:
            # Shards know their own echoes; merged totals lag their deltas and can't tell.
            if shards is not None:
                return shards.sink.all_drained()
            return not len(self.ctx.connections) or m.sent.total() <= m.delivered.total()

        to_shards(lambda s: s.send(Command.STOP))
        self.workers.shutdown(drained=drained, on_close=lambda: to_shards(
            lambda s: s.send(Command.CLOSE)))
        to_shards(lambda s: s.wait(CLOSE_GRACE + self.settings.join_timeout + 5))

    def _status(self) -> ExitStatus:
        if self.workers.first_error is not None:
            return ExitStatus.ERROR
        if self.workers.end_reason is EndReason.SIGNAL:
            return ExitStatus.INTERRUPTED
        if self.workers.end_reason is EndReason.GATE:
            return ExitStatus.THRESHOLD
        return ExitStatus.OK


GATE_LAG_S = 2  # --abort-on-fail's window ends this many seconds before the current one
MISSED_WARN_MIN = 10  # skipped sends in one second before the live warning ...
MISSED_WARN_SHARE = 0.05  # ... and this share of that second's scheduled sends


def print_progress(run: Run, elapsed: float, samples: dict[int, Sample],
                   oldest: Oldest | None, file: Any) -> None:
    """One line of live progress: what a person watching the run wants to see."""
    m = run.ctx.metrics
    # The newest second whose echoes are all in (stats.settled_second): its sent and delivered
    # agree in a healthy run, whatever the interval.
    second = settled_second(run.settings)
    sample = samples[max(samples)]
    sent, delivered = m.sent.at(second), m.delivered.at(second)
    p99 = m.rtt.second_percentile_ms(second, 99)  # the last second's, not the whole run's
    p99_text = f"{p99:.1f}ms" if p99 is not None else "-"
    total = f"/{run.settings.duration:.0f}s" if run.settings.duration else ""
    print(f"{elapsed:6.0f}s{total} participants {sample.participants:>6} chats {sample.chats:>6} "
          f"sent/s {sent:>6} delivered/s {delivered:>6} rtt p99 {p99_text:>8} "
          f"errors {m.errors.total()}"
          # Batched reads see an echo up to one interval after it came, so a healthy run's
          # oldest message is about one interval old: shown from two.
          + (f" oldest unanswered {oldest.age_s:.1f}s" if oldest is not None
             and oldest.age_s * 1000 > 2 * run.settings.smi else ""), file=file, flush=True)
